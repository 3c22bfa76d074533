"""ActNorm (nitsjax/bijectors/actnorm.py) beyond the generic contract: data init alone
and through Flow.init -> stack -> chain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import scaled_data

from nitsjax.bijectors.actnorm import actnorm
from nitsjax.bijectors.affine import affine_transformer
from nitsjax.bijectors.coupling import coupling
from nitsjax.flows.affine import flow_layer, realnvp

KEY = jax.random.key(0)



@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_actnorm_data_init_standardises(dtype):
    with jax.enable_x64(dtype == "float64"):
        x = scaled_data(500, dtype)
        bij = actnorm(4)
        params, z = bij.data_init(bij.init(KEY), x)
        z = np.asarray(z)
        # float32: column 1 has mean/std = 3000, so rounding of its mean alone is ~2e-4
        tol = 1e-3 if dtype == "float32" else 1e-10
        np.testing.assert_allclose(z.mean(0), 0.0, atol=tol)
        np.testing.assert_allclose(z[:, :3].std(0), 1.0, rtol=tol)
        # constant column: centred, unit scale, no log(0)
        assert np.all(z[:, 3] == 0.0) and float(params["log_scale"][3]) == 0.0
        np.testing.assert_allclose(
            params["log_scale"][:3], np.log(np.asarray(x)[:, :3].std(0)), rtol=1e-5
        )
        # z is what the layer's forward gives, and the log-det is -sum(log std)
        zf, ld = jax.vmap(lambda xi: bij.forward(params, xi))(x)
        np.testing.assert_allclose(zf, z, atol=tol)
        np.testing.assert_allclose(ld, -np.sum(np.asarray(params["log_scale"])), rtol=1e-6)
        assert params["shift"].dtype == bij.init(KEY)["shift"].dtype


def test_actnorm_data_init_guards_tiny_variance_and_single_row():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        x = jnp.asarray(np.stack([1.0 + 1e-12 * rng.normal(size=50), rng.normal(size=50)], 1))
        bij = actnorm(2, min_std=1e-6)
        params, z = bij.data_init(bij.init(KEY), x)
        np.testing.assert_allclose(params["log_scale"][0], np.log(1e-6))
        assert np.all(np.isfinite(z))
        params, z = bij.data_init(bij.init(KEY), x[:1])
        np.testing.assert_array_equal(params["log_scale"], 0.0)
        np.testing.assert_array_equal(z, 0.0)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 2\), got \(5, 3\)"):
        bij.data_init(bij.init(KEY), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="min_std"):
        actnorm(2, min_std=0.0)


def test_flow_init_runs_actnorm_data_init_in_every_scanned_layer():
    """Flow.init(key, x) -> stack.data_init -> chain.data_init -> actnorm.data_init: the
    ActNorm of layer i standardises the batch as it arrives at layer i."""
    dim, layers = 3, 3
    flow = realnvp(dim, layers=layers, hidden=(8,), actnorm=True, linear="lu", standardize=None)
    x = scaled_data(256, jnp.float32)[:, :dim]
    params = flow.init(KEY, x=x)["bijector"]["layers"]
    layer = flow_layer(coupling(affine_transformer(), dim, (8,)), dim, True, "lu")
    layer_fwd = jax.jit(jax.vmap(layer.forward, in_axes=(None, 0)))
    h, total = x, 0.0
    for i in range(layers):
        p = jax.tree_util.tree_map(lambda a, i=i: a[i], params)
        an = p["actnorm"]
        np.testing.assert_allclose(an["shift"], h.mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(jnp.exp(an["log_scale"]), h.std(0), rtol=1e-4)
        h, ld = layer_fwd(p, h)
        total = total + ld
    # the flow's own log_prob agrees with the replay: base log-density of h + log-dets
    expected = -0.5 * jnp.sum(h**2, -1) - 0.5 * dim * np.log(2 * np.pi) + total
    lp = flow.log_prob({"bijector": {"layers": params}, "base": {}}, x)
    np.testing.assert_allclose(lp, expected, rtol=1e-4, atol=1e-3)
