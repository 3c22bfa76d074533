"""Tail indices of the coordinates of a data set: which marginals are heavy-tailed.

A marginal is heavy-tailed with tail index ``alpha`` when ``P(|X| > t) ~ t^-alpha L(t)``
(``L`` slowly varying); a Student-t with ``nu`` degrees of freedom has ``alpha = nu``, a
Gaussian has no finite tail index (its tails are lighter than any power).

Estimator: Hill's (Hill, "A simple general approach to inference about the tail of a
distribution", Ann. Statist. 1975) on the ``k`` largest absolute deviations from the
coordinate's median (``side="both"``: both tails pooled, so the heavier side dominates;
``"upper"`` / ``"lower"``: one side)::

    alpha_hat = 1 / mean_{i <= k} (log a_(i) - log a_(k+1)),   a = |x - median(x)|

with ``a_(1) >= a_(2) >= ...`` the order statistics and, by default, ``k = max(10,
floor(sqrt(n)))`` (capped at ``n // 2``): a common compromise between the variance of
Hill's estimator (standard error ~ ``alpha / sqrt(k)``) and the bias of a threshold too
low in the body of the distribution.

Heavy or light (``is_heavy``): Hill's estimate on light-tailed data is finite and grows
slowly with ``n``, so a fixed cut-off would call every Gaussian coordinate heavy on small
data. The default compares the estimate with the value Hill's estimator takes on a
Gaussian at the same fraction ``k / n`` of the sample (computed by quadrature,
``gaussian_reference``): a coordinate is heavy when its estimate is below that reference
by more than two standard errors, ``alpha_hat < alpha_gauss (1 - 2 / sqrt(k))`` (about a
2% false-alarm rate on Gaussian data). With little data a moderately heavy marginal
(``alpha`` around 4) is called light: the test has power only where the data can tell.

Laszkiewicz, Lederer, Fischer, "Marginal Tail-Adaptive Normalizing Flows", ICML 2022
(arXiv 2206.10311) estimate every marginal's tail index to choose the base marginals of
mTAF (``nj.flows.mtaf``); their full text was not available while this was written, so
the estimator here is Hill's, as documented above, not necessarily the paper's.

The public functions take ``(n, d)`` arrays and return NumPy arrays; ``hill`` and
``heavy_mask`` are the traceable versions (``mtaf``'s data init runs them under ``jit``).
"""

from __future__ import annotations

import math
import statistics
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.validation import as_float_array, check_finite

SIDES = ("both", "upper", "lower")
MIN_ROWS = 20


def default_k(n: int) -> int:
    """The default number of order statistics: ``max(10, floor(sqrt(n)))``, at most
    ``n // 2``."""
    return int(min(max(10, math.isqrt(int(n))), n // 2))


def _check(x, k, side):
    x = as_float_array(x, "x")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"x: expected shape (n, d) (or (n,)), got {tuple(x.shape)}")
    n = int(x.shape[0])
    if n < MIN_ROWS:
        raise ValueError(
            f"x: tail indices need at least {MIN_ROWS} rows, got {n}; pass more data"
        )
    check_finite(x, "x")
    if side not in SIDES:
        raise ValueError(f"side: expected one of {SIDES}, got {side!r}")
    if k is None:
        k = default_k(n)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k < n:
        raise ValueError(f"k: expected an integer with 2 <= k < n = {n}, got {k!r}")
    return x, int(k)


def hill(x: jax.Array, k: int, side: str = "both") -> jax.Array:
    """Hill's estimate of each column's tail index, traceable: ``x`` (n, d) -> (d,).

    ``k`` (static) order statistics of the deviations from the median (module docstring).
    """
    return _hill(x, k, side, jnp)


def _hill(x, k, side, xp):
    """``hill`` with the array module ``xp`` (``jax.numpy`` under ``jit``, NumPy on the
    host, where it needs no compilation)."""
    med = xp.median(x, axis=0)
    dev = x - med
    if side == "both":
        a = xp.abs(dev)
    elif side == "upper":
        a = xp.maximum(dev, 0.0)
    else:
        a = xp.maximum(-dev, 0.0)
    top = -xp.sort(-a, axis=0)[: k + 1]  # descending, (k + 1, d)
    tiny = xp.finfo(x.dtype).tiny
    logs = xp.log(xp.maximum(top, tiny))
    excess = xp.mean(logs[:k] - logs[k], axis=0)
    return 1.0 / xp.maximum(excess, tiny)


def gaussian_reference(n: int, k: Optional[int] = None) -> float:
    """The tail index Hill's estimator (``side="both"``) reports, in expectation to first
    order, on a Gaussian sample of ``n`` rows with ``k`` order statistics: ``1 / E[log(|Z|
    / u) | |Z| > u]`` with ``u`` the ``1 - k / (2 n)`` quantile of ``Z ~ N(0, 1)``."""
    k = default_k(n) if k is None else int(k)
    p = k / float(n)
    u = statistics.NormalDist().inv_cdf(1.0 - p / 2.0)  # host maths: static under jit
    z = np.linspace(u, u + 12.0, 20001)
    dens = np.exp(-0.5 * z * z)
    integrand = np.log(z / u) * dens
    num = np.sum((integrand[1:] + integrand[:-1]) * np.diff(z)) / 2.0
    den = np.sum((dens[1:] + dens[:-1]) * np.diff(z)) / 2.0
    return float(den / num)


def heavy_threshold(n: int, k: Optional[int] = None) -> float:
    """The default cut-off of ``is_heavy``: ``gaussian_reference(n, k) (1 - 2 / sqrt(k))``."""
    k = default_k(n) if k is None else int(k)
    return gaussian_reference(n, k) * (1.0 - 2.0 / math.sqrt(k))


def heavy_mask(x: jax.Array, k: int, threshold: Optional[float] = None) -> jax.Array:
    """``hill(x, k) < threshold`` (default ``heavy_threshold``), traceable: (n, d) -> (d,)
    bools."""
    if threshold is None:
        threshold = heavy_threshold(x.shape[0], k)
    return hill(x, k) < threshold


def estimate_tail_index(x, *, k: Optional[int] = None, side: str = "both") -> np.ndarray:
    """Hill's estimate of the tail index of every column of ``x``.

    Args:
      x: data, ``(n, d)`` (or ``(n,)``), finite, ``n >= 20``.
      k: number of order statistics, ``2 <= k < n``; default ``max(10, floor(sqrt(n)))``.
      side: ``"both"`` (default: both tails pooled), ``"upper"`` or ``"lower"``.

    Returns:
      ``(d,)`` float64 estimates: small (1 to 4) for heavy tails (Student-t: its degrees
      of freedom), large for light ones (a Gaussian gives ``gaussian_reference(n, k)``,
      about 7 to 11 for ``n`` from 1e3 to 1e5).
    """
    x, k = _check(x, k, side)
    return _hill(np.asarray(x, np.float64), k, side, np)


def is_heavy(x, *, k: Optional[int] = None, threshold: Optional[float] = None) -> np.ndarray:
    """Which columns of ``x`` (n, d) are heavy-tailed -> ``(d,)`` bools.

    A column is heavy when its tail index (``estimate_tail_index``, both tails) is below
    ``threshold``; by default ``heavy_threshold(n, k)``, two standard errors below what a
    Gaussian of the same size gives (module docstring). Pass a number (e.g. ``5.0``) to
    use a fixed cut-off instead.
    """
    x, k = _check(x, k, "both")
    if threshold is not None and not (isinstance(threshold, (int, float, np.floating))
                                      and not isinstance(threshold, bool) and threshold > 0):
        raise ValueError(f"threshold: expected a tail index > 0 or None, got {threshold!r}")
    cut = heavy_threshold(x.shape[0], k) if threshold is None else float(threshold)
    return estimate_tail_index(x, k=k) < cut
