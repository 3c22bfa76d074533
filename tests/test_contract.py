"""Every registered bijector and flow against the contract, in float32 and float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import collect
from contract import check_all, perturbed_params

BIJECTORS = collect("BIJECTORS")
FLOWS = collect("FLOWS")


def _marked(case, *dtypes):
    """``case`` (with each dtype) as pytest params, marked slow where the case says so."""
    if not dtypes:
        return pytest.param(case, id=str(case), marks=[pytest.mark.slow] if case.slow else [])
    return [pytest.param(case, d, id=f"{case}-{d}",
                         marks=[pytest.mark.slow] if d in case.slow else [])
            for d in dtypes]


@pytest.mark.parametrize("case, dtype",
                         [p for c in BIJECTORS for p in _marked(c, "float32", "float64")])
def test_bijector_contract(case, dtype):
    if dtype == "float64":
        with jax.enable_x64(True):
            check_all(case, jnp.float64)
    else:
        check_all(case, jnp.float32)


def _flow_params(case):
    """A flow and its fresh params moved off the identity, so the checks mean something."""
    flow = case.make()
    return flow, perturbed_params(flow, jax.random.key(0), 0.1)


def _context(flow, n, seed=7):
    if flow.context_dim is None:
        return None
    key = jax.random.key(seed)
    return jax.random.normal(key, (n, flow.context_dim))


def _grid(case, flow, m=400):
    """The 2-D integration grid (m * m points), its cell area, and a fixed context."""
    g = np.linspace(case.low, case.high, m)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], -1).astype(np.float32)
    c = None
    if flow.context_dim is not None:
        c = np.full((pts.shape[0], flow.context_dim), 0.3, np.float32)
    return pts, (g[1] - g[0]) ** 2, c


@pytest.mark.parametrize("case", [_marked(c) for c in FLOWS])
def test_flow_sample_log_prob_and_normalisation(case):
    """``sample_and_log_prob`` agrees with ``log_prob`` and ``sample``; in 2-D, the grid
    integral of ``exp(log_prob)`` over a box holding (almost) all the mass is 1 +- 1%.
    (One test per flow, one ``log_prob`` call on samples and grid together: each compiled
    program is built once.)"""
    flow, params = _flow_params(case)
    n = 64
    c = _context(flow, n)
    xs, lp = flow.sample_and_log_prob(params, jax.random.key(1), n, c)
    assert xs.shape == (n, flow.dim) and lp.shape == (n,)
    assert np.all(np.isfinite(xs)) and np.all(np.isfinite(lp))
    xs2 = flow.sample(params, jax.random.key(1), n, c)
    np.testing.assert_allclose(xs2, xs, rtol=1e-5, atol=1e-5)
    pts, cell, cg = _grid(case, flow) if flow.dim == 2 else (xs[:0], 0.0, None)
    both = np.concatenate([np.asarray(xs), pts])
    cb = None if c is None else np.concatenate([np.asarray(c), cg if cg is not None else c[:0]])
    lp_all = np.asarray(flow.log_prob(params, both, cb), np.float64)
    np.testing.assert_allclose(lp_all[:n], lp, rtol=2e-3, atol=2e-3)
    if flow.dim == 2:
        total = np.exp(lp_all[n:]).sum() * cell
        assert abs(total - 1.0) < 0.01, total
