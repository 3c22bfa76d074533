"""Batched bracketing solvers and their implicit-function gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nitsjax import root_finding as rf

METHODS = rf.METHODS


def logistic_cdf(params, x):
    loc, scale = params
    return jax.nn.sigmoid((x - loc) / scale)


def cubic(x):  # strictly increasing with a flat point at 0 (Newton's worst case)
    return x**3 + 1e-3 * x


def _solve(method, fn, target, lo, hi, xtol, **kw):
    if method == "newton":
        ev = lambda x: jax.jvp(fn, (x,), (jnp.ones_like(x),))  # noqa: E731
        return rf.newton(ev, target, lo, hi, xtol=xtol, **kw)
    if method == "bisection":
        return rf.bisection(fn, target, lo, hi, xtol=xtol, **kw)
    return rf.chandrupatla(fn, target, lo, hi, xtol=xtol, **kw)


@pytest.mark.parametrize("method", METHODS)
def test_solvers_find_roots_batched(method):
    with jax.enable_x64(True):
        roots = jnp.linspace(-1.9, 1.9, 41)
        target = cubic(roots)
        xtol = 1e-10
        res = jax.jit(lambda t: _solve(method, cubic, t, -2.0, 2.0, xtol))(target)
        assert res.x.shape == roots.shape
        assert bool(jnp.all(res.converged))
        # bracket guarantee: the answer is inside the original interval
        assert bool(jnp.all((res.x >= -2.0) & (res.x <= 2.0)))
        np.testing.assert_allclose(res.x, roots, atol=2 * xtol)
        np.testing.assert_allclose(res.residual, cubic(res.x) - target, atol=1e-14)
        bound = rf.bisection_steps(4.0, xtol)
        assert int(res.iterations.max()) <= (bound if method == "bisection" else bound + 8)
        if method == "bisection":
            assert int(res.iterations.max()) == bound == math.ceil(math.log2(4.0 / xtol))
        else:  # the hybrids beat bisection on average
            assert float(res.iterations.mean()) < 0.5 * bound


@pytest.mark.parametrize("method", METHODS)
def test_solvers_endpoints_and_vmap(method):
    """Targets at F(lo) / F(hi) give the bracket ends; vmap of a scalar solve == batched."""
    fn = lambda x: jax.nn.sigmoid(4.0 * x)  # noqa: E731
    lo, hi = -1.0, 1.0
    targets = jnp.array([fn(lo), fn(hi), 0.5, 0.3])
    res = _solve(method, fn, targets, lo, hi, 1e-6)
    np.testing.assert_allclose(res.x[:2], [lo, hi], atol=2e-6)
    np.testing.assert_allclose(res.x[2], 0.0, atol=2e-6)
    single = jax.jit(jax.vmap(lambda t: _solve(method, fn, t, lo, hi, 1e-6, max_iter=40).x))
    np.testing.assert_allclose(single(targets), res.x, atol=2e-6)


def test_newton_beats_bisection_on_steep_function():
    """A steep logistic: Newton-type solvers need a handful of iterations, bisection ~log2."""
    with jax.enable_x64(True):
        params = (jnp.asarray(0.3), jnp.asarray(0.01))
        u = jax.random.uniform(jax.random.key(0), (256,), jnp.float64, 1e-6, 1 - 1e-6)
        fn = lambda x: logistic_cdf(params, x)  # noqa: E731
        its = {m: _solve(m, fn, u, -1.0, 1.0, 1e-12).iterations for m in METHODS}
        assert int(its["bisection"].min()) == rf.bisection_steps(2.0, 1e-12)
        assert float(its["newton"].mean()) < 15
        assert float(its["chandrupatla"].mean()) < 20


@pytest.mark.parametrize("method", METHODS)
def test_implicit_gradients_match_analytic(method):
    """x = loc + scale * logit(u): gradients in loc, scale and u, reverse and forward mode."""
    with jax.enable_x64(True):
        u = jnp.array([0.05, 0.4, 0.9])
        loc, scale = jnp.asarray(0.2), jnp.asarray(0.7)

        def sample(loc, scale, u):
            return rf.solve_monotone(
                logistic_cdf, (loc, scale), u, -20.0, 20.0, method=method, xtol=1e-12
            )

        logit = jnp.log(u) - jnp.log1p(-u)
        np.testing.assert_allclose(sample(loc, scale, u), loc + scale * logit, atol=1e-10)
        g_loc, g_scale, g_u = jax.grad(lambda a, b, c: jnp.sum(sample(a, b, c)), (0, 1, 2))(
            loc, scale, u
        )
        np.testing.assert_allclose(g_loc, 3.0, rtol=1e-8)
        np.testing.assert_allclose(g_scale, jnp.sum(logit), rtol=1e-8)
        np.testing.assert_allclose(g_u, scale / (u * (1 - u)), rtol=1e-8)
        jf = jax.jacfwd(sample, argnums=1)(loc, scale, u)
        np.testing.assert_allclose(jf, logit, rtol=1e-8)


def test_solve_monotone_jit_vmap_and_errors():
    fn = lambda p, x: logistic_cdf(p, x)  # noqa: E731
    params = (jnp.asarray(0.0), jnp.asarray(1.0))
    u = jnp.array([0.2, 0.7])
    solve = jax.jit(jax.vmap(lambda t: rf.solve_monotone(fn, params, t, -30.0, 30.0, xtol=1e-5)))
    np.testing.assert_allclose(solve(u), jnp.log(u / (1 - u)), atol=1e-4)
    with pytest.raises(ValueError, match="method"):
        rf.solve_monotone(fn, params, u, -1.0, 1.0, method="secant", xtol=1e-3)
    with pytest.raises(ValueError, match="max_iter"):
        jax.jit(lambda lo: rf.solve_monotone(fn, params, u, lo, 1.0, xtol=1e-3))(-1.0)
    with pytest.raises(ValueError, match="xtol"):
        rf.bisection_steps(1.0, 0.0)
    with pytest.raises(ValueError, match="width"):
        rf.bisection_steps(-1.0, 1e-3)
