"""nitsjax.interop: flows as distrax distributions, bijectors as distrax bijectors."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj
from nitsjax.interop import to_distrax, to_distrax_bijector

DIM = 2


def _perturbed(flow, key, scale=0.3):
    """Flow params plus noise, so the checks do not sit at the identity initialisation."""
    params = flow.init(key)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), max(len(leaves), 1))
    noisy = [leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
             for leaf, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(tree, noisy)


def _base(name):
    """The flow's base density as a distrax distribution."""
    zeros, ones = jnp.zeros(DIM), jnp.ones(DIM)
    if name == "nits":
        return distrax.Independent(distrax.Uniform(zeros, ones), 1)
    return distrax.MultivariateNormalDiag(zeros, ones)


MAKERS = {
    "maf": lambda: nj.flows.maf(DIM, layers=2, hidden=(8,)),
    "nits": lambda: nj.flows.nits(DIM, arch=(4,), hidden=16, blocks=1),
}


@pytest.fixture(scope="module", params=sorted(MAKERS))
def model(request):
    flow = MAKERS[request.param]()
    params = _perturbed(flow, jax.random.key(0), 0.1 if request.param == "nits" else 0.3)
    x = jax.random.normal(jax.random.key(1), (6, DIM))
    return request.param, flow, params, x


def test_distribution_equals_flow(model):
    name, flow, params, x = model
    dist = to_distrax(flow, params)
    assert isinstance(dist, distrax.Distribution)
    assert dist.event_shape == (DIM,) and dist.batch_shape == ()
    assert dist.dtype == jnp.float32
    np.testing.assert_allclose(dist.log_prob(x), flow.log_prob(params, x), rtol=1e-6, atol=1e-6)
    key = jax.random.key(2)
    xs, lp = dist.sample_and_log_prob(seed=key, sample_shape=6)
    xf, lpf = flow.sample_and_log_prob(params, key, 6)
    np.testing.assert_allclose(xs, xf, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lp, lpf, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dist.sample(seed=key, sample_shape=6), xf, rtol=1e-6, atol=1e-6)
    # the returned log-density is the density of the returned sample
    np.testing.assert_allclose(dist.log_prob(xs), lp, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sample_shape", [(), 6, (2, 3), (1, 3, 2)])  # n = 1 or 6
def test_sample_shapes(model, sample_shape):
    _, flow, params, _ = model
    dist = to_distrax(flow, params)
    shape = (sample_shape,) if isinstance(sample_shape, int) else sample_shape
    xs = dist.sample(seed=jax.random.key(3), sample_shape=sample_shape)
    assert xs.shape == shape + (DIM,)
    xs, lp = dist.sample_and_log_prob(seed=7, sample_shape=sample_shape)  # an int seed
    assert xs.shape == shape + (DIM,) and lp.shape == shape
    assert dist.log_prob(xs).shape == shape


def test_log_prob_any_leading_shape(model):
    _, flow, params, x = model
    dist = to_distrax(flow, params)
    flat = np.asarray(dist.log_prob(x))
    np.testing.assert_allclose(dist.log_prob(x.reshape(2, 3, DIM)), flat.reshape(2, 3))
    np.testing.assert_allclose(dist.log_prob(x[0]), flat[0], rtol=1e-6)
    assert dist.log_prob(x[0]).shape == ()


def test_transformed_bijector_gives_flow_density(model):
    name, flow, params, x = model
    bij = to_distrax_bijector(flow.bijector, params["bijector"])
    assert isinstance(bij, distrax.Bijector)
    assert bij.event_ndims_in == 1 and bij.event_ndims_out == 1
    td = distrax.Transformed(_base(name), bij)
    np.testing.assert_allclose(td.log_prob(x), flow.log_prob(params, x), rtol=1e-5, atol=1e-5)
    # distrax direction: inverse = nitsjax forward (data -> latent), forward = its inverse
    z, ld = bij.inverse_and_log_det(x)
    zn, ldn = jax.vmap(lambda e: flow.bijector.forward(params["bijector"], e))(x)
    np.testing.assert_allclose(z, zn, rtol=1e-6)
    np.testing.assert_allclose(ld, ldn, rtol=1e-6)
    y, fld = bij.forward_and_log_det(z)
    np.testing.assert_allclose(y, x, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(fld, -ld, rtol=1e-3, atol=1e-3)
    y2, _ = bij.forward_and_log_det(z.reshape(3, 2, DIM))  # any leading shape
    np.testing.assert_allclose(y2.reshape(-1, DIM), y, rtol=1e-6)
    ys, lps = td.sample_and_log_prob(seed=jax.random.key(4), sample_shape=(2, 2))
    assert ys.shape == (2, 2, DIM)
    np.testing.assert_allclose(lps, flow.log_prob(params, ys.reshape(-1, DIM)).reshape(2, 2),
                               rtol=1e-4, atol=1e-4)


def test_jit(model):
    _, flow, params, x = model
    dist = to_distrax(flow, params)
    expected = flow.log_prob(params, x)
    np.testing.assert_allclose(jax.jit(lambda d, v: d.log_prob(v))(dist, x), expected,
                               rtol=1e-5, atol=1e-5)
    built_inside = jax.jit(lambda p, v: to_distrax(flow, p).log_prob(v))
    np.testing.assert_allclose(built_inside(params, x), expected, rtol=1e-5, atol=1e-5)
    sample = jax.jit(lambda d, k: d.sample_and_log_prob(seed=k, sample_shape=(2, 3)))
    xs, lp = sample(dist, jax.random.key(5))
    xe, lpe = dist.sample_and_log_prob(seed=jax.random.key(5), sample_shape=(2, 3))
    np.testing.assert_allclose(xs, xe, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lp, lpe, rtol=1e-5, atol=1e-5)
    bij = to_distrax_bijector(flow.bijector, params["bijector"])
    z, ld = jax.jit(lambda b, v: b.inverse_and_log_det(v))(bij, x)
    np.testing.assert_allclose(z, bij.inverse(x), rtol=1e-5, atol=1e-5)


def test_conditional_flow_binds_context():
    flow = nj.flows.maf(DIM, layers=2, hidden=(8,), context_dim=3)
    params = _perturbed(flow, jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, DIM))
    c = jax.random.normal(jax.random.key(2), (3,))
    dist = to_distrax(flow, params, context=c)
    assert dist.batch_shape == () and dist.event_shape == (DIM,)
    np.testing.assert_allclose(
        dist.log_prob(x), flow.log_prob(params, x, jnp.broadcast_to(c, (4, 3))), rtol=1e-5
    )
    key = jax.random.key(3)
    np.testing.assert_allclose(dist.sample(seed=key, sample_shape=4),
                               flow.sample(params, key, 4, c), rtol=1e-5, atol=1e-6)
    # a batch of contexts is a batch of distributions
    cs = jax.random.normal(jax.random.key(4), (4, 3))
    batched = to_distrax(flow, params, context=cs)
    assert batched.batch_shape == (4,)
    np.testing.assert_allclose(batched.log_prob(x), flow.log_prob(params, x, cs), rtol=1e-5)
    xs, lp = batched.sample_and_log_prob(seed=key, sample_shape=(2,))
    assert xs.shape == (2, 4, DIM) and lp.shape == (2, 4)
    np.testing.assert_allclose(batched.log_prob(xs), lp, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        lp[1], flow.log_prob(params, xs[1], cs), rtol=1e-4, atol=1e-4
    )
    # the bijector with a bound context
    bij = to_distrax_bijector(flow.bijector, params["bijector"], context=c)
    td = distrax.Transformed(_base("maf"), bij)
    np.testing.assert_allclose(td.log_prob(x), dist.log_prob(x), rtol=1e-5, atol=1e-5)


def test_bad_input_is_named():
    flow = nj.flows.maf(DIM, layers=1, hidden=(4,))
    params = flow.init(jax.random.key(0))
    with pytest.raises(ValueError, match="context: this flow is unconditional"):
        to_distrax(flow, params, context=jnp.zeros(3))
    cond = nj.flows.maf(DIM, layers=1, hidden=(4,), context_dim=3)
    cparams = cond.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"context: this flow is conditional \(context_dim=3\)"):
        to_distrax(cond, cparams)
    with pytest.raises(ValueError, match=r"context: expected shape \(3,\)"):
        to_distrax(cond, cparams, context=jnp.zeros(2))
    with pytest.raises(TypeError, match="flow: expected a nitsjax Flow"):
        to_distrax(flow.bijector, params)
    with pytest.raises(TypeError, match="params: expected the flow's params"):
        to_distrax(flow, params["bijector"])
    with pytest.raises(TypeError, match="bijector: expected a nitsjax Bijector"):
        to_distrax_bijector(flow, params)
    dist = to_distrax(flow, params)
    with pytest.raises(ValueError, match=r"value: expected shape \(\.\.\., 2\)"):
        dist.log_prob(jnp.zeros((4, 3)))
    with pytest.raises(TypeError, match="value: expected a floating-point array"):
        dist.log_prob(np.zeros((4, 2), np.int32))
