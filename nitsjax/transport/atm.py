"""Adaptive transport maps (ATM): fitting a monotone triangular map by maximum likelihood
with a greedily grown, cross-validated set of multi-indices per component.

Baptista, Marzouk, Zahm, "On the representation and learning of monotone triangular
transport maps", arXiv 2009.10303, section 5 (the ATM algorithm). For samples ``x^i``
of the target and a standard normal reference the negative log-likelihood separates
over the components,

    L(S) = sum_k L_k(S_k),   L_k = (1/n) sum_i [ S_k(x^i)^2 / 2 - log d_k S_k(x^i) ],

so each component is fitted alone. For component ``k``:

1. start from the constant term ``{0}``;
2. given the current downward-closed set ``A``, compute ``dL_k / dc_alpha`` at
   ``c_alpha = 0`` for every ``alpha`` of the reduced margin of ``A`` (the multi-indices
   not in ``A`` all of whose backward neighbours ``alpha - e_j`` are in ``A``), add the one
   with the largest magnitude and refit all coefficients (Newton's method with an
   eigenvalue-modified Hessian and a backtracking line search, warm-started);
3. repeat up to ``max_terms`` terms; the number of terms is chosen on the
   ``folds``-fold cross-validated ``L_k`` (or ``L_k`` on ``x_val`` when given) by the
   one-standard-error rule (``select_terms``; the paper takes the argmin), and the
   final map is the path on all training rows cut at that size.

The data are standardised per coordinate first (mean and standard deviation of
``x_train``), so the basis sees unit-scale values; the returned flow holds that
standardisation and its densities are in the data's units.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.transport import basis as B
from nitsjax.transport.map import Component, TransportFlow, atm_flow
from nitsjax.validation import check_data

log = logging.getLogger("nitsjax.transport")


@dataclasses.dataclass
class ATMInfo:
    """What ``fit_atm`` selected and how it scored.

    Attributes:
      multi_indices: per component ``k``, the selected multi-indices, an int array
        ``(terms_k, k + 1)`` over the variables ``x_1..x_k`` (in the data's coordinates).
      terms: number of terms per component.
      scores: per component, the held-out ``L_k`` (mean negative log-likelihood of the
        standardised data, nats, up to a constant) for 1, 2, ... terms: over every row of
        ``x_train`` held out once (cross-validation) or over ``x_val``; the selected count
        follows the one-standard-error rule (``select_terms``).
      selection: ``"cv"`` (k-fold cross-validation) or ``"validation"`` (``x_val``).
      train_log_likelihood, val_log_likelihood: mean log-likelihood of the fitted flow
        (data units; None without ``x_val``).
      seconds: wall time of the fit.
    """

    multi_indices: list
    terms: list
    scores: list
    selection: str
    train_log_likelihood: float
    val_log_likelihood: Optional[float]
    seconds: float


# ----------------------------------------------------------------------- compiled parts
@functools.partial(jax.jit, static_argnums=0)
def _features(comp: Component, x, k, index):
    """Features of component ``k`` for every row of ``x`` (n, d) and terms ``index`` (M, d)."""
    return jax.vmap(lambda r: comp.features(r, k, index))(x)


def _row_losses(comp, feats, c):
    s, log_ds = jax.vmap(lambda f0, dq, de, xk: comp.value((f0, dq, de, xk), c))(*feats)
    return 0.5 * s * s - log_ds


def _loss(comp, feats, c):
    return jnp.mean(_row_losses(comp, feats, c))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _newton(comp: Component, feats, c, mask, max_iter: int = 50):
    """Minimise ``_loss`` over the coefficients where ``mask`` is 1 (the others stay 0)."""
    m = mask.astype(c.dtype)
    size = c.shape[0]
    eye = jnp.eye(size, dtype=c.dtype)
    loss = lambda v: _loss(comp, feats, v * m)  # noqa: E731

    def direction(v):
        g = jax.grad(loss)(v) * m
        h = jax.hessian(loss)(v) * m[:, None] * m[None, :] + eye * (1 - m)
        w, q = jnp.linalg.eigh(h)
        floor = 1e-8 * jnp.maximum(jnp.max(jnp.abs(w)), 1.0)
        w = jnp.maximum(jnp.abs(w), floor)
        return -(q @ ((q.T @ g) / w)) * m, g

    def cond(s):
        it, _, _, done = s
        return (it < max_iter) & ~done

    def body(s):
        it, v, f, _ = s
        step, g = direction(v)
        slope = g @ step

        def ls_cond(t):
            a, f_new = t
            return (f_new > f + 1e-4 * a * slope) & (a > 1e-6)

        def ls_body(t):
            a = 0.5 * t[0]
            return a, loss(v + a * step)

        a, f_new = jax.lax.while_loop(ls_cond, ls_body, (jnp.ones((), c.dtype),
                                                          loss(v + step)))
        ok = jnp.isfinite(f_new) & (f_new <= f)
        v_new = jnp.where(ok, v + a * step, v)
        f_new = jnp.where(ok, f_new, f)
        eps = jnp.finfo(c.dtype).eps
        done = ~ok | (f - f_new <= 4 * eps * (1 + jnp.abs(f))) | (jnp.max(jnp.abs(g)) < 1e-7)
        return it + 1, v_new, f_new, done

    _, v, f, _ = jax.lax.while_loop(cond, body, (0, c * m, loss(c * m), jnp.asarray(False)))
    return v, f


@functools.partial(jax.jit, static_argnums=0)
def _margin_gradient(comp: Component, feats, cand_feats, c):
    """``|dL/dc|`` of the candidate terms at zero coefficients."""
    both = tuple(jnp.concatenate([a, b], axis=-1) if a.ndim > 1 else a
                 for a, b in zip(feats, cand_feats))
    full = jnp.concatenate([c, jnp.zeros(cand_feats[0].shape[-1], c.dtype)])
    g = jax.grad(lambda v: _loss(comp, both, v))(full)
    return jnp.abs(g[c.shape[0]:])


@functools.partial(jax.jit, static_argnums=0)
def _eval_losses(comp: Component, feats, c):
    return _row_losses(comp, feats, c)


# -------------------------------------------------------------------- multi-index sets
def reduced_margin(active: list, k: int, max_degree: int) -> list:
    """The multi-indices (tuples of length ``d``, zero beyond ``k``) not in ``active``
    whose every backward neighbour ``alpha - e_j`` (``alpha_j > 0``) is in ``active``."""
    s = set(active)
    out = []
    for a in active:
        for j in range(k + 1):
            b = list(a)
            b[j] += 1
            b = tuple(b)
            if b in s or b[j] > max_degree or b in out:
                continue
            if all(b[i] == 0 or tuple(b[:i]) + (b[i] - 1,) + tuple(b[i + 1:]) in s
                   for i in range(len(b))):
                out.append(b)
    return out


def _padded(indices: list, size: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    arr = np.zeros((size, d), np.int32)
    mask = np.zeros(size, np.float32)
    if indices:
        arr[: len(indices)] = np.asarray(indices, np.int32)
        mask[: len(indices)] = 1.0
    return arr, mask


def _greedy_path(comp, x_fit, x_held, k, max_terms, max_degree, dtype):
    """Grow component ``k`` greedily on ``x_fit`` up to ``max_terms`` terms. Returns the
    path of multi-indices (in order of addition), the coefficients at each size and the
    held-out per-row losses at each size (None without ``x_held``)."""
    d = x_fit.shape[1]
    active = [tuple([0] * d)]
    cand_size = max_terms * d + 1  # one shape for every component: compiled once
    coefs, held = [], []
    c = jnp.zeros(max_terms, dtype)
    while True:
        idx, mask = _padded(active, max_terms, d)
        feats = _features(comp, x_fit, k, jnp.asarray(idx))
        c, _ = _newton(comp, feats, c, jnp.asarray(mask))
        coefs.append(np.asarray(c))
        if x_held is not None:
            hf = _features(comp, x_held, k, jnp.asarray(idx))
            held.append(np.asarray(_eval_losses(comp, hf, c), np.float64))
        if len(active) >= max_terms:
            break
        cands = reduced_margin(active, k, max_degree)
        if not cands:
            break
        cidx, cmask = _padded(cands, cand_size, d)
        cfeats = _features(comp, x_fit, k, jnp.asarray(cidx))
        score = np.asarray(_margin_gradient(comp, feats, cfeats, c)) * cmask
        active.append(cands[int(np.argmax(score))])
    return active, coefs, (held if x_held is not None else None)


def _check_inputs(x_train, x_val, max_terms, folds, max_degree, quadrature):
    if np.ndim(x_train) != 2:
        raise ValueError(f"x_train: expected a 2-D array (n, d), got shape "
                         f"{np.shape(x_train)}; a single column needs x[:, None]")
    x = check_data(x_train, np.shape(x_train)[1], "x_train")
    x = np.asarray(x, np.float64)
    n, d = x.shape
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds: expected an integer >= 2, got {folds!r}")
    if x_val is None and n < folds:
        raise ValueError(f"x_train: {n} rows are fewer than folds={folds}; pass more rows, "
                         f"fewer folds or x_val")
    if n < 2:
        raise ValueError(f"x_train: expected at least 2 rows, got {n}")
    constant = np.flatnonzero(np.ptp(x, axis=0) == 0)
    if constant.size:
        raise ValueError(f"x_train: column(s) {constant.tolist()} are constant (a density "
                         f"has no finite maximum likelihood there); drop them")
    xv = None
    if x_val is not None:
        xv = np.asarray(check_data(x_val, d, "x_val"), np.float64)
    if max_terms is not None and (isinstance(max_terms, bool) or not isinstance(
            max_terms, (int, np.integer)) or max_terms < 2):
        raise ValueError(f"max_terms: expected None or an integer >= 2, got {max_terms!r}")
    for name, v, lo in (("max_degree", max_degree, 1), ("quadrature", quadrature, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
    return x, xv


def select_terms(rows: np.ndarray) -> int:
    """The number of terms from held-out per-row losses ``rows`` (sizes, m) (row ``t``:
    ``t + 1`` terms): the smallest size whose mean loss exceeds the best size's by at
    most one standard error of the paired per-row differences (the one-standard-error
    rule; the paper takes the argmin, which on small samples keeps terms whose gain is
    noise and shows spurious dependencies in ``active_variables``)."""
    mean = rows.mean(axis=1)
    best = int(np.argmin(mean))
    diff = rows - rows[best]
    se = diff.std(axis=1, ddof=1) / np.sqrt(rows.shape[1]) if rows.shape[1] > 1 else 0 * mean
    return int(np.flatnonzero(mean - mean[best] <= se)[0]) + 1


def default_max_terms(n: int) -> int:
    """``max_terms=None``: ``ceil(sqrt(n))`` clipped to [3, 40] (more rows support more
    terms; cross-validation picks how many are used)."""
    return int(min(40, max(3, math.ceil(math.sqrt(n)))))


def fit_atm(
    x_train,
    x_val=None,
    *,
    max_terms: Optional[int] = None,
    basis: str = "hermite",
    rectifier: str = "softplus",
    folds: int = 5,
    max_degree: int = 8,
    quadrature: int = 16,
    seed: int = 0,
    progress: bool = True,
):
    """Fit a monotone triangular map to ``x_train`` with the ATM algorithm.

    Args:
      x_train: (n, d) training rows.
      x_val: optional (m, d) held-out rows; when given, the number of terms of each
        component is chosen by its likelihood on them (one greedy path per component
        instead of ``folds + 1``), else by ``folds``-fold cross-validation on ``x_train``.
      max_terms: largest number of terms per component (default
        ``default_max_terms(n)``).
      basis: ``"hermite"`` (Hermite functions with linear terms) or ``"polynomial"``.
      rectifier: ``"softplus"``, ``"exp"`` or ``"elu"`` (``nitsjax.transport.basis``).
      folds: cross-validation folds (>= 2; ``x_train`` needs at least that many rows).
      max_degree: largest 1-D degree in a multi-index.
      quadrature: Gauss–Legendre nodes of each component's integral.
      seed: seed of the fold assignment.
      progress: log one line per component (logger ``nitsjax.transport``) and show a
        tqdm bar over the components.

    Returns:
      ``(flow, params, info)``: a ``TransportFlow`` (standard normal base; ``log_prob``,
      ``sample``, ``sample_and_log_prob``, ``conditional_log_prob``,
      ``conditional_sample``), its params and an ``ATMInfo``.
    """
    B.check_basis(basis)
    B.check_rectifier(rectifier)
    x, xv = _check_inputs(x_train, x_val, max_terms, folds, max_degree, quadrature)
    start = time.perf_counter()
    n, d = x.shape
    terms_cap = default_max_terms(n) if max_terms is None else int(max_terms)
    dtype = jnp.result_type(float)
    flow = atm_flow(d, terms=terms_cap, basis=basis, rectifier=rectifier,
                    max_degree=max_degree, quadrature=quadrature)
    params = flow.init(jax.random.key(seed), jnp.asarray(x, dtype))
    std = params["bijector"]["standardize"]
    y = np.asarray(_standardize(flow, std, jnp.asarray(x, dtype)))
    yv = None if xv is None else np.asarray(_standardize(flow, std, jnp.asarray(xv, dtype)))
    comp = flow.component
    fold_of = np.random.default_rng(seed).permutation(n) % folds

    coef = np.zeros((d, terms_cap), np.float32)
    index = np.zeros((d, terms_cap, d), np.int32)
    chosen, counts, scores = [], [], []
    bar = _bar(d, progress)
    for k in range(d):
        t0 = time.perf_counter()
        if yv is not None:
            path, cs, held = _greedy_path(comp, jnp.asarray(y), jnp.asarray(yv), k, terms_cap,
                                          max_degree, dtype)
            rows = np.stack(held)  # (sizes, m)
        else:
            path, cs, _ = _greedy_path(comp, jnp.asarray(y), None, k, terms_cap, max_degree,
                                       dtype)
            rows = np.full((len(cs), n), np.nan)
            for f in range(folds):
                tr, te = y[fold_of != f], y[fold_of == f]
                _, _, held = _greedy_path(comp, jnp.asarray(tr), jnp.asarray(te), k,
                                          terms_cap, max_degree, dtype)
                held = held[: len(cs)] + [held[-1]] * (len(cs) - len(held))
                rows[:, fold_of == f] = np.stack(held)
        m = select_terms(rows)
        curve = rows.mean(axis=1)
        best = m - 1
        index[k, :m] = np.asarray(path[:m])
        coef[k] = np.asarray(cs[best])
        chosen.append(np.asarray(path[:m], np.int64)[:, : k + 1])
        counts.append(m)
        scores.append(curve[: len(cs)])
        if progress:
            log.info(f"atm component {k + 1}/{d}: {m} terms (held-out L_k {curve[best]:.4f}), "
                     f"depends on {sorted(_active(chosen[-1], k))}, "
                     f"{time.perf_counter() - t0:.1f}s")
        bar.update(1)
    bar.close()
    params = {"bijector": {"standardize": std,
                           "atm": {"coef": jnp.asarray(coef, dtype),
                                   "index": jnp.asarray(index)}},
              "base": params["base"]}
    train_ll = float(np.mean(np.asarray(flow.log_prob(params, x))))
    val_ll = None if xv is None else float(np.mean(np.asarray(flow.log_prob(params, xv))))
    info = ATMInfo(chosen, counts, scores, "validation" if xv is not None else "cv",
                   train_ll, val_ll, time.perf_counter() - start)
    return flow, params, info


@functools.partial(jax.jit, static_argnums=0)
def _standardize(flow: TransportFlow, std_params, x):
    layer = flow.bijector_parts["standardize"]
    return jax.vmap(lambda r: layer.forward(std_params, r)[0])(x)


def _bar(total: int, enabled: bool):
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="atm components", disable=not enabled, leave=False)
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        class _Null:
            def update(self, _):
                pass

            def close(self):
                pass

        return _Null()


def _active(indices: np.ndarray, k: int) -> set:
    return {j for j in range(k) if np.any(indices[:, j] > 0)}


def active_variables(info: ATMInfo) -> list:
    """For each component ``k`` (0-based), the set of ``j < k`` whose variable its
    selected multi-indices involve: ``x_k`` is modelled as conditionally independent of
    the others given these (structure learning; the paper's section 6)."""
    if not isinstance(info, ATMInfo):
        raise TypeError(f"info: expected the ATMInfo returned by fit_atm, got "
                        f"{type(info).__name__}")
    return [_active(np.asarray(a), k) for k, a in enumerate(info.multi_indices)]


__all__ = ["ATMInfo", "TransportFlow", "active_variables", "default_max_terms", "fit_atm",
           "reduced_margin"]
