"""The LU linear map (nitsjax/bijectors/linear.py) against dense linear algebra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import perturbed_params

from nitsjax.bijectors.linear import lu_linear

KEY = jax.random.key(0)


def test_lu_linear_initial_map():
    x = jnp.arange(1.0, 6.0)
    ident = lu_linear(5, permute=False)
    z, ld = ident.forward(ident.init(KEY), x)
    np.testing.assert_allclose(z, x, rtol=1e-6)
    assert abs(float(ld)) < 1e-5
    perm = lu_linear(5, seed=4)
    jac = np.asarray(jax.jacfwd(lambda v: perm.forward(perm.init(KEY), v)[0])(x))
    np.testing.assert_allclose(np.sort(jac, axis=1)[:, -1], 1.0, rtol=1e-6)  # one 1 per row
    np.testing.assert_allclose(np.abs(jac).sum(0), 1.0, rtol=1e-6)  # and per column
    assert not np.allclose(jac, np.eye(5))


def test_lu_linear_matches_dense_algebra():
    """W from jacfwd: forward is W x + b, the inverse is solve(W, z - b), the log-det is
    log|det W|, for params far from the identity."""
    with jax.enable_x64(True):
        dim = 6
        bij = lu_linear(dim, seed=2)
        params = perturbed_params(bij, jax.random.key(3), 1.0)
        x = jax.random.normal(jax.random.key(4), (dim,), jnp.float64)
        b = np.asarray(params["bias"])
        w = np.asarray(jax.jit(jax.jacfwd(lambda v: bij.forward(params, v)[0]))(x))
        z, ld = jax.jit(bij.forward)(params, x)
        np.testing.assert_allclose(z, w @ np.asarray(x) + b, rtol=1e-12)
        np.testing.assert_allclose(ld, np.linalg.slogdet(w)[1], rtol=1e-12)
        zs = jax.random.normal(jax.random.key(5), (10, dim), jnp.float64)
        xs, ld_inv = jax.jit(jax.vmap(lambda zi: bij.inverse(params, zi)))(zs)
        np.testing.assert_allclose(xs, np.linalg.solve(w, (np.asarray(zs) - b).T).T, rtol=1e-9)
        np.testing.assert_allclose(ld_inv, -ld, rtol=1e-12)


def test_lu_linear_round_trip_float32_and_floor():
    dim = 8
    bij = lu_linear(dim)
    params = perturbed_params(bij, jax.random.key(6), 0.3)
    x = jax.random.normal(jax.random.key(7), (1000, dim))
    fwd = jax.jit(jax.vmap(bij.forward, in_axes=(None, 0)))
    inv = jax.jit(jax.vmap(bij.inverse, in_axes=(None, 0)))
    z, _ = fwd(params, x)
    x2, _ = inv(params, z)
    np.testing.assert_allclose(x2, x, atol=1e-4)
    # a collapsed diagonal stays at the floor: finite log-det and inverse
    crushed = {**params, "lu": params["lu"] - 1e4 * jnp.eye(dim)}
    z, ld = fwd(crushed, x[:1])
    np.testing.assert_allclose(ld, dim * np.log(1e-3), rtol=1e-5)
    x2, _ = inv(crushed, z)
    assert np.all(np.isfinite(x2))
    with pytest.raises(ValueError, match="min_diag"):
        lu_linear(3, min_diag=0.0)
    with pytest.raises(ValueError, match="dim"):
        lu_linear(0)


def test_lu_linear_param_gradients_finite():
    bij = lu_linear(4)
    params = perturbed_params(bij, jax.random.key(8), 0.5)
    x = jnp.array([0.3, -1.0, 2.0, 0.5])

    def loss(p):
        z, ld = bij.forward(p, x)
        xi, ldi = bij.inverse(p, z * 1.1)
        return jnp.sum(z**2) - ld + jnp.sum(xi) + ldi

    g = jax.jit(jax.grad(loss))(params)
    assert all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves(g))
