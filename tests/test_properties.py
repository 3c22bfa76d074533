"""Property-based numerical robustness of every registered bijector (issue "Reliability").

For every ``BijectorCase`` in ``tests/cases_*.py`` (``BIJECTORS``), hypothesis draws
random parameters (the initialisation plus noise of a random scale, or exactly the
initialisation, where spline knots sit on a regular grid) and float32 inputs from a
mixture of: the case's own domain, very large values (|x| up to 1e4, far outside any
standardised data), the spline intervals' ends and knots and their float32 neighbours,
zeros, tiny and subnormal numbers. Then, row by row:

* forward: ``z`` and ``log|det|`` finite, and the gradients of ``sum(z) + log|det|``
  with respect to ``x`` and to every parameter finite;
* inverse at ``z``: ``x`` and ``log|det|`` finite (gradients through the inverse, e.g.
  the NITS sampler's, are tested by the bijectors' own test files: compiling them for
  every case would double this file's time);
* the one exception is the documented support rule: a row outside a bounded bijector's
  support (bounded NITS) gets ``log|det| = -inf`` with a finite, clipped ``z`` (never
  NaN); its gradients are not used (training skips such steps).

Inputs beyond ~1e15 may overflow float32 inside affine maps; ``Flow.log_prob`` reports
those rows as ``-inf`` (see ``test_validation.test_no_nan_for_any_finite_input``).

One compiled function per case (forward, inverse and both gradients, vmapped over a fixed
batch), reused by every example, keeps the file fast.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import collect
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

BIJECTORS = collect("BIJECTORS")
ROWS = 6
F32 = np.float32


def _special_values():
    """Interval ends and knots of the registered splines (bounds 1, 1.5, 2, 2.5, 3 with
    4-8 bins: the knots of identity params), with float32 neighbours, plus 0 and tiny."""
    vals = {0.0, 1e-38, -1e-38, 1e-45, -1e-45, 0.5, 1.0}
    for bound in (1.0, 1.5, 2.0, 2.5, 3.0):
        for bins in (4, 5, 6, 8):
            for k in range(bins + 1):
                vals.add(-bound + 2.0 * bound * k / bins)
    out = set()
    for v in vals:
        v = F32(v)
        out.update({float(v), float(np.nextafter(v, F32(np.inf))),
                    float(np.nextafter(v, F32(-np.inf)))})
    return sorted(out)


SPECIAL = _special_values()


def _value(case):
    inside = st.floats(float(F32(case.low)), float(F32(case.high)), width=32)
    large = st.builds(lambda e, s: float(F32(s * 10.0 ** e)),
                      st.floats(1.0, 4.0), st.sampled_from([-1.0, 1.0]))
    return st.one_of(inside, large, st.sampled_from(SPECIAL))


@functools.cache
def _probe(index: int):
    """(bijector, jitted probe) of case ``index``; the probe maps (params, x, c) to every
    quantity checked, for a batch of rows."""
    case = BIJECTORS[index]
    bij = case.make()

    def one(params, x, c):
        def fwd_obj(p, xi):
            z, ld = bij.forward(p, xi, c)
            return jnp.sum(z) + ld

        z, ld = bij.forward(params, x, c)
        gp, gx = jax.grad(fwd_obj, argnums=(0, 1), allow_int=True)(params, x)  # int: index
        x2, ld2 = bij.inverse(params, z, c)
        return dict(z=z, ld=ld, gx=gx, gp=gp, x2=x2, ld2=ld2)

    axes = (None, 0, None if case.context_dim is None else 0)
    return bij, jax.jit(jax.vmap(one, in_axes=axes))


def _rows_finite(tree) -> np.ndarray:
    """Per row: every leaf finite (leaves have a leading batch axis)."""
    ok = np.ones(ROWS, bool)
    for leaf in jax.tree_util.tree_leaves(tree):
        if leaf.dtype == jax.dtypes.float0:  # the gradient of an integer param
            continue
        a = np.asarray(leaf).reshape(ROWS, -1)
        ok &= np.isfinite(a).all(axis=1)
    return ok


def check_case(index, params, x, c):
    _, probe = _probe(index)
    r = jax.device_get(probe(params, x, c))
    ld = np.asarray(r["ld"])
    assert not np.isnan(ld).any() and not np.isnan(np.asarray(r["z"])).any(), (x, ld)
    outside = np.isneginf(ld)  # the support rule of bounded bijectors
    if outside.any():
        assert _rows_finite(r["z"])[outside].all(), "z must be finite (clipped) outside"
    inside = ~outside
    for name in ("z", "ld", "gx", "gp", "x2", "ld2"):
        ok = _rows_finite(r[name])
        bad = np.flatnonzero(inside & ~ok)
        assert not bad.size, f"{name} not finite for rows {x[bad]} (case {BIJECTORS[index]})"


@functools.cache
def _param_maker(index: int):
    """Jitted ``(key, scale) -> init(key) + scale * noise`` for case ``index``, compiled
    once (the scale is traced, so every example reuses it)."""
    bij, _ = _probe(index)

    @jax.jit
    def make(key, scale):
        params = bij.init(key)
        leaves, tree = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.fold_in(key, 1), max(len(leaves), 1))
        new = [leaf + (scale * jax.random.normal(k, leaf.shape, leaf.dtype)).astype(leaf.dtype)
               if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
               for leaf, k in zip(leaves, keys[: len(leaves)], strict=True)]
        return jax.tree_util.tree_unflatten(tree, new)

    return make


def _params(index, seed, scale):
    return _param_maker(index)(jax.random.key(seed), jnp.float32(scale))


#: Known defects the property finds (strict xfail: the test fails once they are fixed,
#: so the entry is removed then).
KNOWN: dict = {}
#: Compile-heavy cases (root finding, PNN, convolutions, quadrature, fixed points): run
#: with the slow tests (make test-all).
SLOW = ("nits_", "pnn_", "image_nits", "triangular_map", "tail_preserving", "elf_",
        "cnf_")


def _cases():
    out = []
    for i, c in enumerate(BIJECTORS):
        marks = []
        if c.name in KNOWN:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[c.name]))
        if c.name.startswith(SLOW):
            marks.append(pytest.mark.slow)
        out.append(pytest.param(i, id=c.name, marks=marks))
    return out


@pytest.mark.parametrize("index", _cases())
def test_finite_outputs_and_gradients(index):
    case = BIJECTORS[index]
    n = ROWS * case.dim
    knots = [SPECIAL[(7 * i) % len(SPECIAL)] for i in range(n)]  # ends, knots, neighbours
    huge = [(-1.0) ** i * 10.0 ** (4 - (i % 3)) for i in range(n)]  # +-1e4, 1e3, 1e2

    @settings(max_examples=6, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure prints its example
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @example(seed=0, scale=0.0, values=knots, ctx_scale=1.0)  # identity params: grid knots
    @example(seed=1, scale=1.0, values=huge, ctx_scale=1.0)
    @given(
        seed=st.integers(0, 2**16),
        scale=st.sampled_from([0.0, 0.3, 1.0, 2.0]),
        values=st.lists(_value(case), min_size=n, max_size=n),
        ctx_scale=st.sampled_from([0.0, 1.0, 100.0]),
    )
    def prop(seed, scale, values, ctx_scale):
        x = jnp.asarray(np.asarray(values, F32).reshape(ROWS, case.dim))
        c = None
        if case.context_dim is not None:
            c = ctx_scale * jax.random.normal(jax.random.key(seed + 1), (ROWS, case.context_dim))
        check_case(index, _params(index, seed, scale), x, c)

    prop()
