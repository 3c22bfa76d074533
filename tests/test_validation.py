"""Bad input gets a clear error at the API boundary (``nitsjax.validation``, used by ``Flow``,
the flow constructors and ``fit``).

Every flow registered in ``tests/cases_*.py`` (``FLOWS``) is refused wrong ranks,
dimensions, contexts, NaN/inf, integer/object/string arrays, empty arrays, bad ``n`` and
bad keys, by ``log_prob``, ``sample`` and ``init``, with a message naming the argument,
what was expected and what was given, and BEFORE anything is traced or compiled (the
jitted functions' caches stay empty; params are not even looked at, so ``None`` is
passed). Then: constructors' hyper-parameters, ``fit``'s inputs, the out-of-support /
overflow rule (no NaN for a finite input). Config files: ``test_config.py``; data files
and the safe-loading audit: ``test_data_files.py``.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import collect

from nitsjax import flow as flow_module
from nitsjax.bijectors.base import chain, stack
from nitsjax.bijectors.spline import rational_quadratic_transformer
from nitsjax.flows.affine import iaf, maf, realnvp
from nitsjax.flows.nits import nits
from nitsjax.flows.spline import nsf
from nitsjax.train import fit

FLOWS = collect("FLOWS")
CONDITIONAL = [c for c in FLOWS if c.make().context_dim is not None]


def _compiled_sizes() -> tuple:
    """Sizes of Flow's compiled-function caches (module level, shared by equal flows)."""
    return (flow_module._log_prob_compiled._cache_size(),
            flow_module._sample_compiled._cache_size())


# ------------------------------------------------------------------- log_prob: x
def _bad_x(kind, d):
    """(bad x, exception type, regex the message must match) for a flow on R^d."""
    f32 = np.float32
    nan = np.zeros((3, d), f32)
    nan[1, 0] = np.nan
    inf = np.zeros((3, d), f32)
    inf[2, d - 1] = -np.inf
    table = {
        "rank1": (np.zeros(d, f32), ValueError,
                  rf"x: expected shape \(n, {d}\), got \({d},\); "
                  r"a single event needs x\[None, :\]"),
        "rank3": (np.zeros((2, 3, d), f32), ValueError,
                  rf"x: expected shape \(n, {d}\), got \(2, 3, {d}\)"),
        "scalar": (f32(1.0), ValueError, rf"x: expected shape \(n, {d}\), got \(\)"),
        "wrong_dim": (np.zeros((4, d + 1), f32), ValueError,
                      rf"x: expected shape \(n, {d}\), got \(4, {d + 1}\)"),
        "empty": (np.zeros((0, d), f32), ValueError,
                  rf"x: expected at least one row, got an empty array of shape \(0, {d}\)"),
        "nan": (nan, ValueError,
                r"x: 1 non-finite value\(s\) \(NaN or inf\), first at index \(1, 0\) = nan"),
        "inf": (inf, ValueError,
                rf"x: 1 non-finite value\(s\) \(NaN or inf\), "
                rf"first at index \(2, {d - 1}\) = -inf"),
        "int": (np.ones((4, d), np.int64), TypeError,
                r"x: expected a floating-point array, got dtype int64 \(cast with .*dequantised"),
        "bool": (np.ones((4, d), bool), TypeError,
                 r"x: expected a floating-point array, got dtype bool"),
        "object": (np.array([[object()] * d] * 2, dtype=object), TypeError,
                   r"x: expected a floating-point array, got dtype object"),
        "strings": ([["1.0"] * d] * 2, TypeError,
                    r"x: expected a floating-point array, got dtype <U3"),
        "jax_int": (jnp.ones((4, d), jnp.int32), TypeError,
                    r"x: expected a floating-point array, got dtype int32"),
    }
    return table[kind]


X_KINDS = ["rank1", "rank3", "scalar", "wrong_dim", "empty", "nan", "inf", "int", "bool",
           "object", "strings", "jax_int"]


@pytest.mark.parametrize("case", FLOWS, ids=str)
def test_log_prob_refuses_bad_x_before_compiling(case):
    flow = case.make()
    before = _compiled_sizes()
    for kind in X_KINDS:
        x, exc, pattern = _bad_x(kind, flow.dim)
        with pytest.raises(exc, match=pattern):
            flow.log_prob(None, x)
        if flow.context_dim is not None:  # x is checked before the context
            with pytest.raises(exc, match=pattern):
                flow.log_prob(None, x, np.zeros((4, flow.context_dim), np.float32))
    assert _compiled_sizes() == before


@pytest.mark.parametrize("case", FLOWS, ids=str)
def test_context_errors(case):
    flow = case.make()
    before = _compiled_sizes()
    d, k = flow.dim, flow.context_dim
    x = np.zeros((4, d), np.float32)
    if k is None:
        for ctx in (np.zeros((4, 1), np.float32), np.zeros(3, np.float32)):
            with pytest.raises(ValueError, match=r"context: this flow is unconditional "
                                                 r"\(context_dim=None\) but a context was given"):
                flow.log_prob(None, x, ctx)
            with pytest.raises(ValueError, match="context: this flow is unconditional"):
                flow.sample(None, jax.random.key(0), 4, ctx)
    else:
        bad_nan = np.zeros((4, k), np.float32)
        bad_nan[3, k - 1] = np.nan
        cases = [
            (None, ValueError, rf"context: this flow is conditional \(context_dim={k}\); "
                               rf"pass context of shape \(n, {k}\)"),
            (np.zeros((4, k + 1), np.float32), ValueError,
             rf"context: expected shape \(4, {k}\), got \(4, {k + 1}\)"),
            (np.zeros((5, k), np.float32), ValueError,
             rf"context: expected shape \(4, {k}\), got \(5, {k}\)"),
            (np.zeros(k, np.float32), ValueError,
             rf"context: expected shape \(4, {k}\), got \({k},\)"),
            (bad_nan, ValueError, rf"context: 1 non-finite value\(s\).*\(3, {k - 1}\)"),
            (np.zeros((4, k), np.int32), TypeError,
             r"context: expected a floating-point array, got dtype int32"),
        ]
        for ctx, exc, pattern in cases:
            with pytest.raises(exc, match=pattern):
                flow.log_prob(None, x, ctx)
        # sample: context (k,) is shared by all samples, (n, k) is per sample
        conditional = rf"context: this flow is conditional \(context_dim={k}\)"
        with pytest.raises(ValueError, match=conditional):
            flow.sample(None, jax.random.key(0), 4)
        wide = rf"context: expected shape \(4, {k}\), got \(4, {k + 1}\)"
        with pytest.raises(ValueError, match=wide):
            flow.sample(None, jax.random.key(0), 4, np.zeros(k + 1, np.float32))
        short = rf"context: expected shape \(4, {k}\), got \(3, {k}\)"
        with pytest.raises(ValueError, match=short):
            flow.sample(None, jax.random.key(0), 4, np.zeros((3, k), np.float32))
        with pytest.raises(ValueError, match="context: 1 non-finite"):
            flow.sample(None, jax.random.key(0), 4, bad_nan)
    assert _compiled_sizes() == before


# --------------------------------------------------------------- sample and init
@pytest.mark.parametrize("case", FLOWS, ids=str)
def test_sample_and_init_refuse_bad_n_and_keys(case):
    flow = case.make()
    before = _compiled_sizes()
    ctx = None if flow.context_dim is None else np.zeros(flow.context_dim, np.float32)
    key = jax.random.key(0)
    for n in (0, -3, 2.5, True, "10", None, np.float32(4)):
        expected = rf"n: expected an integer >= 1, got {re.escape(repr(n))}"
        with pytest.raises(ValueError, match=expected):
            flow.sample(None, key, n, ctx)
        with pytest.raises(ValueError, match="n: expected an integer >= 1"):
            flow.sample_and_log_prob(None, key, n, ctx)
    for bad_key in (0, np.zeros(2, np.uint32), "seed", None, jnp.zeros(3, jnp.uint32)):
        key_msg = r"key: expected a PRNG key such as jax.random.key\(0\), got"
        with pytest.raises(TypeError, match=key_msg):
            flow.sample(None, bad_key, 4, ctx)
        with pytest.raises(TypeError, match="key: expected a PRNG key"):
            flow.init(bad_key)
    assert _compiled_sizes() == before
    # a legacy uint32[2] key is a key: accepted (sample with real params is not needed here)
    with pytest.raises(ValueError, match="n: expected"):
        flow.sample(None, jax.random.PRNGKey(0), 0, ctx)


def test_init_checks_the_data_batch_for_data_dependent_layers():
    flow = realnvp(2, layers=1, hidden=(4,), actnorm=True)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 2\), got \(5, 3\)"):
        flow.init(jax.random.key(0), x=np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="x: 1 non-finite"):
        flow.init(jax.random.key(0), x=np.array([[0.0, np.inf]], np.float32))
    with pytest.raises(TypeError, match="x: expected a floating-point array, got dtype int64"):
        flow.init(jax.random.key(0), x=np.zeros((5, 2), np.int64))
    cond = maf(2, layers=1, hidden=(4,), context_dim=3, actnorm=True)
    with pytest.raises(ValueError, match=r"context: expected shape \(5, 3\), got \(5, 2\)"):
        cond.init(jax.random.key(0), x=np.zeros((5, 2), np.float32),
                  context=np.zeros((5, 2), np.float32))


def test_checks_cost_nothing_inside_jit():
    """Under a user's jit the checks see tracers: shape and dtype checks still run (at
    trace time), value checks are skipped, and the compiled program is exactly the
    unchecked one."""
    flow = maf(2, layers=1, hidden=(4,))
    params = flow.init(jax.random.key(0))
    x = jnp.ones((3, 2))
    checked = jax.make_jaxpr(flow.log_prob)(params, x)
    unchecked = jax.make_jaxpr(
        lambda p, v: flow_module._log_prob_compiled(flow, p, v, None))(params, x)
    assert str(checked) == str(unchecked)
    lp = jax.jit(flow.log_prob)(params, x.at[0, 0].set(jnp.nan))  # no host sync, no raise
    assert np.isnan(lp[0]) and np.all(np.isfinite(lp[1:]))  # NaN in, NaN out (not hidden)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 2\), got \(3, 3\)"):
        jax.jit(flow.log_prob)(params, jnp.ones((3, 3)))
    with pytest.raises(TypeError, match="x: expected a floating-point array, got dtype int32"):
        jax.jit(flow.log_prob)(params, jnp.ones((3, 2), jnp.int32))


# ------------------------------------------------------------------- constructors
CONSTRUCTOR_ERRORS = [
    (maf, dict(dim=0), r"dim: expected an integer >= 1, got 0"),
    (maf, dict(dim=2.0), r"dim: expected an integer >= 1, got 2.0"),
    (maf, dict(dim=2, layers=0), r"layers: expected an integer >= 1, got 0"),
    (maf, dict(dim=2, hidden=(16, -4)), r"hidden entry: expected an integer >= 1, got -4"),
    (maf, dict(dim=2, hidden=()), r"hidden: expected at least one hidden layer width, got \(\)"),
    (maf, dict(dim=2, context_dim=0), r"context_dim: expected an integer >= 1, got 0"),
    (maf, dict(dim=2, dropout=1.0), r"dropout: expected 0 <= dropout < 1, got 1.0"),
    (maf, dict(dim=2, degrees="radnom"),
     r"degrees: expected 'sequential' or 'random', got 'radnom'"),
    (maf, dict(dim=2, residual=True, hidden=(8, 16)), r"hidden: residual=True needs equal hidden"),
    (maf, dict(dim=2, linear="full"), r"linear: expected one of"),
    (iaf, dict(dim=2, layers=-1), r"layers: expected an integer >= 1, got -1"),
    (realnvp, dict(dim=1), r"dim >= 2, got dim=1"),
    (realnvp, dict(dim=2, hidden=[0]), r"hidden entry: expected an integer >= 1, got 0"),
    (realnvp, dict(dim=2, actnorm="yes"), r"actnorm: expected True or False, got 'yes'"),
    (nsf, dict(dim=2, bins=1), r"bins: expected an integer >= 2, got 1"),
    (nsf, dict(dim=2, bound=0.0), r"bound: expected a finite number > 0, got 0.0"),
    (nsf, dict(dim=2, bound=-1.0), r"bound: expected a finite number > 0, got -1.0"),
    (nsf, dict(dim=2, bound=float("inf")), r"bound: expected a finite number > 0, got inf"),
    (nsf, dict(dim=2, layers=0), r"layers: expected an integer >= 1, got 0"),
    (nsf, dict(dim=2, min_width=0.5, bins=4), r"min_width: expected 0 < min_width < 1 / bins"),
    (nsf, dict(dim=1), r"dim: coupling spline layers need dim >= 2, got dim=1"),
    (nits, dict(dim=2, bounds=(1.0, 1.0)), r"bounds: expected A < B in every dimension, "
                                          r"dimension 0 has A=1.0, B=1.0"),
    (nits, dict(dim=2, bounds=(2.0, 1.0)), r"bounds: expected A < B.*A=2.0, B=1.0"),
    (nits, dict(dim=2, bounds=([0.0, 0.0], [1.0, -1.0])),
     r"bounds: .*dimension 1 has A=0.0, B=-1.0"),
    (nits, dict(dim=2, bounds=(0.0, float("inf"))), r"bounds: expected finite bounds"),
    (nits, dict(dim=2, arch=(-3,)), r"arch: expected a non-empty sequence of positive ints"),
    (nits, dict(dim=2, arch=()), r"arch: expected a non-empty sequence of positive ints"),
    (nits, dict(dim=2, hidden=0), r"hidden entry: expected an integer >= 1, got 0"),
    (nits, dict(dim=2, blocks=-1), r"blocks: expected an integer >= 0, got -1"),
    (nits, dict(dim=2, solver="secant"), r"solver: expected one of .*got 'secant'"),
    (nits, dict(dim=2, squash_scale=0.0), r"squash_scale: expected finite values > 0, got 0.0"),
    (nits, dict(dim=2, out_of_support="clip"), r"out_of_support: expected 'error' or '-inf'"),
    (rational_quadratic_transformer, dict(bins=1), r"bins: expected an integer >= 2, got 1"),
    (rational_quadratic_transformer, dict(bins=4, bound=-2.0),
     r"bound: expected a finite number > 0"),
    (lambda **kw: stack(realnvp(2, layers=1, hidden=(4,)).bijector, **kw), dict(num=0),
     r"stack\(\) needs num >= 1 layers, got num=0"),
    (lambda **kw: chain(**kw), dict(bijectors=[]), r"chain\(\) needs at least one bijector"),
]


@pytest.mark.parametrize(
    "ctor, kwargs, pattern", CONSTRUCTOR_ERRORS,
    ids=[f"{getattr(c, '__name__', 'f')}-{'-'.join(map(str, k))}"
         for c, k, _ in CONSTRUCTOR_ERRORS],
)
def test_constructor_hyperparameters(ctor, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ctor(**kwargs)


# ---------------------------------------------------------------------------- fit
@pytest.fixture(scope="module")
def small():
    flow = maf(2, layers=1, hidden=(4,))
    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    return flow, x


FIT_ERRORS = [
    (dict(flow="maf"), TypeError, r"flow: expected a nitsjax Flow or model .* got str"),
    (dict(train=np.zeros((64, 2), np.int64)), TypeError,
     r"train: expected a floating-point array, got dtype int64"),
    (dict(train=np.zeros((0, 2), np.float32)), ValueError, r"train: expected at least one row"),
    (dict(train=np.zeros(64, np.float32)), ValueError,
     r"train: expected shape \(n, 2\), got \(64,\)"),
    (dict(train=np.full((64, 2), np.inf, np.float32)), ValueError, r"train: 128 non-finite"),
    (dict(train=np.zeros((10, 2), np.float32)), ValueError,
     r"batch_size: 32 is larger than the number of training rows n=10; pass batch_size <= 10"),
    (dict(val=np.zeros((8, 3), np.float32)), ValueError,
     r"val: expected shape \(n, 2\), got \(8, 3\)"),
    (dict(val=np.zeros((8, 2), np.float16).astype(object)), TypeError,
     r"val: expected a floating-point array"),
    (dict(val_context=np.zeros((8, 1), np.float32)), ValueError, r"val_context: given without val"),
    (dict(batch_size=0), ValueError, r"batch_size: expected an integer >= 1, got 0"),
    (dict(steps=2.5), ValueError, r"steps: expected an integer >= 1, got 2.5"),
    (dict(learning_rate=float("nan")), ValueError,
     r"learning_rate: expected a finite number, got nan"),
    (dict(clip_norm=0.0), ValueError, r"clip_norm: expected a number > 0.0, got 0.0"),
    (dict(key=42), TypeError, r"key: expected a PRNG key"),
    (dict(loss="bogus"), ValueError, r"loss: unknown loss 'bogus'"),
    (dict(loss=3), TypeError, r"loss: expected a loss name"),
    (dict(eval_every=0), ValueError, r"eval_every: expected an integer >= 1, got 0"),
]


@pytest.mark.parametrize("override, exc, pattern", FIT_ERRORS,
                         ids=[next(iter(o)) + str(i) for i, (o, _, _) in enumerate(FIT_ERRORS)])
def test_fit_refuses_bad_input_before_training(small, override, exc, pattern):
    from nitsjax.train.fit import compiled_cache_sizes

    flow, x = small
    kw = dict(flow=flow, params=None, train=x, val=None, key=jax.random.key(0), steps=10,
              batch_size=32, learning_rate=1e-3, progress=False)
    kw.update(override)
    before = compiled_cache_sizes()
    with pytest.raises(exc, match=pattern):
        fit(**kw)
    assert compiled_cache_sizes() == before


# ------------------------------------------------------- out of support, overflow
def _perturbed(flow, scale=0.3):
    params = flow.init(jax.random.key(0))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [a + scale * jax.random.normal(k, a.shape, a.dtype)
              if jnp.issubdtype(a.dtype, jnp.floating) else a
              for a, k in zip(leaves, keys, strict=True)]
    return jax.tree_util.tree_unflatten(tree, leaves)


F32_MAX = float(np.finfo(np.float32).max)
EXTREME_ROWS = np.array([
    [0.0, 0.0],
    [2.0, -2.0],  # the spline interval's ends exactly
    [2.0000002, -2.0000002],  # one ulp outside
    [1e4, -1e4],
    [1e30, -1e30],
    [F32_MAX, -F32_MAX],
    [1e-45, -1e-38],  # subnormal and tiny
], np.float32)
MODERATE = 4  # rows before this index must be finite for an unbounded flow


@pytest.mark.parametrize("make", [
    pytest.param(lambda: maf(2, layers=2, hidden=(8,)), id="maf"),
    pytest.param(lambda: realnvp(2, layers=2, hidden=(8,)), id="realnvp"),
    pytest.param(lambda: nsf(2, layers=2, hidden=(8,), bins=4, bound=2.0), id="nsf_coupling"),
    pytest.param(lambda: nits(2, arch=(4,), hidden=16, blocks=1), id="nits_unbounded"),
])
def test_no_nan_for_any_finite_input(make):
    """The rule: a finite input gets a finite log-density, or -inf when the computation
    overflows float32 (density numerically zero); never NaN. Splines are the identity
    outside [-bound, bound], unbounded NITS has all of R^d as support."""
    flow = make()
    lp = np.asarray(flow.log_prob(_perturbed(flow), EXTREME_ROWS))
    assert not np.isnan(lp).any(), lp
    assert np.isfinite(lp[:MODERATE]).all(), lp
    assert np.isfinite(lp[-1]), lp
    assert (lp[MODERATE:] < np.maximum(lp[0], lp[1])).all() or not np.isfinite(lp[MODERATE:]).all()


def test_bounded_nits_out_of_support_rule():
    """Bounded NITS: a row outside [A, B] is an error naming the row (default) or an
    explicit -inf (out_of_support="-inf"); never NaN, whatever the row."""
    rows = np.array([[0.0, 0.5], [2.9, -2.9], [3.5, 0.0], [1e30, -F32_MAX]], np.float32)
    strict = nits(2, arch=(4,), hidden=16, blocks=1, bounds=(-3.0, 3.0))
    params = _perturbed(strict)
    with pytest.raises(ValueError, match=r"x: 2 row\(s\) lie outside the bounded NITS support "
                                         r"\(first: row 2; dimension 0 = 3.5 is outside"):
        strict.log_prob(params, rows)
    assert np.isfinite(np.asarray(strict.log_prob(params, rows[:2]))).all()
    lenient = nits(2, arch=(4,), hidden=16, blocks=1, bounds=(-3.0, 3.0), out_of_support="-inf")
    lp = np.asarray(lenient.log_prob(params, rows))
    assert np.isfinite(lp[:2]).all() and np.isneginf(lp[2:]).all(), lp
