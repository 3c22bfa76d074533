"""The enforced contract (event sizes, named chain params, invert's data init) and ``Flow``
as a value: equality, data init, the Gaussian start after data init, affine equivariance,
preprocessing that keeps the flow's behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import cast, perturbed_params
from scipy import stats

import nitsjax as nj
from nitsjax import flow as flow_module
from nitsjax.bijectors.actnorm import actnorm
from nitsjax.bijectors.affine import affine_transformer
from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import chain, invert, needs_data_init, stack, unique_names
from nitsjax.bijectors.elementwise import logit
from nitsjax.bijectors.linear import lu_linear
from nitsjax.bijectors.permute import reverse
from nitsjax.flows import iaf, maf, nits, nsf, realnvp

KEY = jax.random.key(0)


def _data(n, dim, seed=0, dtype=np.float64):
    """Correlated rows with different scales and means (a full covariance)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dim, dim)) + 2.0 * np.eye(dim)
    return (rng.normal(size=(n, dim)) @ mix * np.arange(1, dim + 1) + 3.0).astype(dtype)


# ------------------------------------------------------------------------- the contract
def test_chain_names_params_by_layer_with_suffixes_for_repeats():
    assert unique_names(["made", "reverse", "made", "made", "made_1"]) == [
        "made", "reverse", "made_2", "made_3", "made_1"
    ]
    ar = masked_autoregressive(affine_transformer(), 3, (4,))
    bij = chain([ar, reverse(3), ar, reverse(3)])
    params = bij.init(KEY)
    assert set(params) == {"made", "reverse", "made_1", "reverse_1"}
    named = chain({"first": ar, "flip": reverse(3)})
    assert set(named.init(KEY)) == {"first", "flip"} and named.event_size == 3


def test_chain_and_stack_check_sizes_and_param_structure():
    with pytest.raises(ValueError, match=r"layer 'made' has event_size 3 but layer "
                                         r"'reverse' has event_size 4"):
        chain([masked_autoregressive(affine_transformer(), 3, (4,)), reverse(4)])
    bij = chain([actnorm(2), lu_linear(2)])
    params = bij.init(KEY)
    x = jnp.ones(2)
    with pytest.raises(ValueError, match=r"keys \['actnorm', 'lu_linear'\], got a tuple"):
        bij.forward(tuple(params.values()), x)
    with pytest.raises(ValueError, match=r"got keys \['actnorm'\]"):
        bij.forward({"actnorm": params["actnorm"]}, x)
    with pytest.raises(ValueError, match=r"expected one event of shape \(2,\), got \(3,\)"):
        bij.forward(params, jnp.ones(3))
    st = stack(bij, 3, name="layers")
    with pytest.raises(ValueError, match=r"stack 'layers': params: .*leading axis of size 3"):
        st.forward(params, x)
    with pytest.raises(TypeError, match="chain: layer 0: expected a nitsjax Bijector"):
        chain([lambda x: x])


def test_invert_keeps_data_init_through_inverse_data_init():
    """invert(actnorm) initialised from data standardises it through its (inverted)
    forward; invert of a layer without inverse_data_init says why it cannot."""
    with jax.enable_x64(True):
        x = jnp.asarray(_data(300, 3))
        inv = invert(actnorm(3))
        params = inv.init(KEY)
        assert bool(needs_data_init(inv, params))
        new, z = inv.data_init(params, x)
        zf = jax.vmap(lambda xi: inv.forward(new, xi)[0])(x)
        np.testing.assert_allclose(zf, z, atol=1e-12)
        np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-10)
        np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-10)
        assert not bool(needs_data_init(inv, new))
        # double inversion is the plain layer's data init again
        twice = invert(inv)
        new2, z2 = twice.data_init(twice.init(KEY), x)
        np.testing.assert_allclose(z2.std(0), 1.0, rtol=1e-10)
    from nitsjax.bijectors.standardize import whiten

    w = whiten(3)
    if w.inverse_data_init is None:
        with pytest.raises(ValueError, match=r"invert\(whiten\).*keep it outside invert"):
            invert(w).data_init(w.init(KEY), jnp.ones((5, 3)))


def test_every_registered_bijector_declares_event_size_and_name():
    from conftest import collect

    for case in collect("BIJECTORS"):
        bij = case.make()
        assert bij.event_size in (None, case.dim), (case.name, bij.event_size)
        assert bij.name and bij.name != "bijector", case.name


# ---------------------------------------------------------------------- Flow as a value
def test_equal_flows_share_compiled_functions():
    a = maf(2, layers=2, hidden=(4,))
    b = maf(2, layers=2, hidden=[4])
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != maf(2, layers=3, hidden=(4,)) and a != iaf(2, layers=2, hidden=(4,))
    hand = nj.Flow(a.base, a.bijector, 2)
    assert hand == hand and hand != nj.Flow(a.base, a.bijector, 2) and hand != a
    params = a.init(KEY)
    x = np.zeros((3, 2), np.float32)
    a.log_prob(params, x)
    size = flow_module._log_prob_compiled._cache_size()
    b.log_prob(params, x)
    assert flow_module._log_prob_compiled._cache_size() == size


def test_needs_data_init_and_data_init():
    x = _data(64, 3, dtype=np.float32)
    flow = maf(3, layers=2, hidden=(4,))
    fresh = flow.init(KEY)
    assert flow.needs_data_init(fresh)
    ready = flow.data_init(fresh, x)
    assert not flow.needs_data_init(ready)
    np.testing.assert_array_equal(  # only the data-initialised layer changed
        ready["bijector"]["layers"]["made"]["params"]["MaskedDense_0"]["kernel"],
        fresh["bijector"]["layers"]["made"]["params"]["MaskedDense_0"]["kernel"],
    )
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), flow.init(KEY, x), ready)
    )
    plain = maf(3, layers=2, hidden=(4,), standardize=None)
    assert not plain.needs_data_init(plain.init(KEY))
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 3\)"):
        flow.data_init(fresh, x[:, :2])


def test_with_preprocessing_keeps_type_and_support_rule():
    flow = nits(2, arch=(4,), hidden=8, blocks=1, bounds=(0.0, 1.0))
    pre = flow.with_preprocessing(logit(-1.0, 2.0), spec=("logit", -1.0, 2.0))
    assert type(pre) is type(flow) and pre.bounds is flow.bounds and pre.name == "logit_nits"
    assert pre == flow.with_preprocessing(logit(-1.0, 2.0), spec=("logit", -1.0, 2.0))
    params = pre.init(KEY)
    assert set(params["bijector"]) == {"preprocessing", "flow"}
    inside = np.array([[0.7, 1.0]], np.float32)  # logit((x + 1) / 3) lies in [0, 1]^2
    assert np.all(np.isfinite(pre.log_prob(params, inside)))
    with pytest.raises(ValueError, match=r"outside the bounded NITS support.*dimension 0"):
        pre.log_prob(params, np.array([[1.9, 0.5]], np.float32))


# -------------------------------------------------- the Gaussian start and equivariance
FLOWS = {
    "maf": lambda d, **kw: maf(d, layers=2, hidden=(8,), **kw),
    "iaf": lambda d, **kw: iaf(d, layers=2, hidden=(8,), **kw),
    "realnvp": lambda d, **kw: realnvp(d, layers=2, hidden=(8,), linear="lu", **kw),
    "nsf_coupling": lambda d, **kw: nsf(d, layers=2, hidden=(8,), bins=4, **kw),
    "nsf_autoregressive": lambda d, **kw: nsf(d, layers=2, hidden=(8,), bins=4,
                                              autoregressive=True, **kw),
}


def _fitted_gaussian(x, jitter):
    """The Gaussian that whitening's data init fits: ML mean, the covariance with 1/n
    regularised as ``whiten`` documents (``cov + jitter * diag(var)``)."""
    cov = np.cov(x.T, bias=True)
    return stats.multivariate_normal(x.mean(0), cov + jitter * np.diag(np.diag(cov)))


@pytest.mark.parametrize("name", [*FLOWS, "nits"])
def test_data_init_gives_the_fitted_gaussian_and_affine_equivariance(name):
    """(1) A fresh core behind whitening set from the data is the full-covariance Gaussian
    fitted to the training rows, to float64 rounding (not NITS: its base is uniform).
    (2) Same perturbed (non-identity) core params, data init on x and on 100 x + 7:
    log-densities differ by exactly d log 100."""
    with jax.enable_x64(True):
        d = 3
        flow = nits(d, arch=(4,), hidden=8, blocks=1) if name == "nits" else FLOWS[name](d)
        x = _data(100, d)
        if name != "nits":
            params = flow.data_init(cast(flow.init(KEY), jnp.float64), x)
            want = _fitted_gaussian(x, 1e-6).logpdf(x)
            np.testing.assert_allclose(flow.log_prob(params, x), want, rtol=1e-9)
        start = cast(perturbed_params(flow, KEY, 0.1), jnp.float64)
        a = flow.data_init(start, x)
        b = flow.data_init(start, 100 * x + 7)
        lp_a = flow.log_prob(a, x)
        lp_b = flow.log_prob(b, 100 * x + 7)
        assert np.all(np.isfinite(lp_a))
        np.testing.assert_allclose(lp_a - lp_b, d * np.log(100.0), rtol=1e-8)
