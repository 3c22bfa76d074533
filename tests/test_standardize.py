"""The whitening layer: data init is the maximum-likelihood full-covariance Gaussian, its
output is standardised, it is affine-equivariant and degenerate columns stay finite."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from nitsjax.bijectors.base import chain
from nitsjax.bijectors.linear import lu_linear
from nitsjax.bijectors.standardize import whiten
from nitsjax.distributions.base import standard_normal
from nitsjax.flow import Flow


def _correlated(n, seed=0):
    rng = np.random.default_rng(seed)
    a = np.array([[2.0, 0.0, 0.0], [1.5, 0.3, 0.0], [-0.7, 0.4, 5.0]])
    return rng.normal(size=(n, 3)) @ a.T + np.array([3.0, -20.0, 100.0])


@pytest.mark.parametrize("jitter", [0.0, 1e-6])
def test_flow_after_data_init_is_the_fitted_gaussian(jitter):
    with jax.enable_x64(True):
        x = _correlated(50)
        # whitening, then layers that are the identity at init, on a N(0, I) base
        bij = chain([whiten(3, jitter=jitter), lu_linear(3, permute=False)])
        flow = Flow(standard_normal(3), bij, 3)
        params = flow.init(jax.random.key(0), x)
        x_test = _correlated(20, seed=1)
        lp = np.asarray(flow.log_prob(params, x_test))
        ml = stats.multivariate_normal(x.mean(0), np.cov(x.T, bias=True))
        expected = ml.logpdf(x_test)
        tol = 1e-10 if jitter == 0.0 else 1e-4
        np.testing.assert_allclose(lp, expected, rtol=tol, atol=tol)
        assert lp.dtype == np.float64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_data_init_output_is_standardised(dtype):
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(_correlated(200), dtype)
        # float64 without jitter: exact; float32: the eps-floored jitter (~1e-6 relative)
        layer = whiten(3, jitter=0.0)
        params, z = jax.jit(layer.data_init)(layer.init(None), x)
        z = np.asarray(z, np.float64)
        tol = 1e-4 if dtype == "float32" else 1e-9
        np.testing.assert_allclose(z.mean(0), 0.0, atol=tol)
        np.testing.assert_allclose(np.cov(z.T, bias=True), np.eye(3), atol=10 * tol)
        w = np.asarray(params["lower"])
        assert np.all(np.triu(w, 1) == 0)
        # z from data_init is forward(new params, x); inverse gives x back
        back, ld = jax.vmap(lambda zi: layer.inverse(params, zi))(jnp.asarray(z, dtype))
        np.testing.assert_allclose(back, x, rtol=10 * tol, atol=10 * tol * 100)


def test_init_is_identity_and_deterministic():
    layer = whiten(3)
    p = layer.init(jax.random.key(0))
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(lambda a, b: np.array_equal(a, b), p, layer.init(None))
    )
    x = jnp.array([0.3, -1.0, 2.0])
    z, ld = layer.forward(p, x)
    np.testing.assert_array_equal(z, x)
    assert float(ld) == 0.0


def test_data_init_is_affine_equivariant():
    with jax.enable_x64(True):
        x = _correlated(40)
        a = np.array([100.0, 1e-3, 7.0])
        b = np.array([7.0, -3.0, 1e4])
        layer = whiten(3)
        _, z = layer.data_init(layer.init(None), jnp.asarray(x))
        _, z2 = layer.data_init(layer.init(None), jnp.asarray(a * x + b))
        np.testing.assert_allclose(z2, z, atol=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("jitter", [0.0, 1e-6])
def test_constant_and_collinear_columns_stay_finite(dtype, jitter):
    with jax.enable_x64(dtype == "float64"):
        rng = np.random.default_rng(3)
        x = rng.normal(size=(30, 4)) * 3.0
        x[:, 1] = 2.5  # constant
        x[:, 3] = x[:, 0] + 2.0 * x[:, 2]  # total next to its parts
        x = jnp.asarray(x, dtype)
        flow = Flow(standard_normal(4), whiten(4, jitter=jitter), 4)
        params = flow.init(jax.random.key(0), x)
        leaves = jax.tree_util.tree_leaves(params)
        assert all(np.all(np.isfinite(np.asarray(a))) for a in leaves)
        lp = flow.log_prob(params, x)
        assert np.all(np.isfinite(np.asarray(lp)))
        # the constant column is only centred: z_1 = x_1 - 2.5 = 0, scale 1
        w = np.asarray(params["bijector"]["lower"])
        assert w[1, 1] == 0.0 and np.all(w[1, :1] == 0.0) and np.all(w[2:, 1] == 0.0)
        # a single row: every column constant, only centred
        p1 = flow.init(jax.random.key(0), x[:1])
        np.testing.assert_array_equal(p1["bijector"]["lower"], 0.0)


def test_argument_errors():
    with pytest.raises(ValueError, match="jitter"):
        whiten(3, jitter=-1.0)
    with pytest.raises(ValueError, match="dim"):
        whiten(0)
    layer = whiten(3)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 3\)"):
        layer.data_init(layer.init(None), jnp.zeros((4, 2)))
