"""Monotone rational-quadratic spline transformer with identity tails.

Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019
(arXiv 1906.04032), section 3.1 and appendix A; the spline itself is Gregory & Delbourgo,
"Piecewise rational quadratic interpolation to monotonic data", IMA J. Numer. Anal. 1982.

On ``[-B, B]`` the map is a monotone rational-quadratic spline through ``K + 1`` knots
``(x_k, y_k)`` with ``x_0 = y_0 = -B`` and ``x_K = y_K = B``; outside it is the identity.
The boundary derivatives are fixed to 1, so the map is C1 everywhere.

Parameters per dimension, ``theta`` of shape ``(3K - 1,)`` (widths and heights as fractions
of ``2B``)::

    theta[:K]        unnormalised bin widths   -> w = min_w + (1 - K min_w) softmax(.)
    theta[K:2K]      unnormalised bin heights  -> h = min_h + (1 - K min_h) softmax(.)
    theta[2K:]       K - 1 interior derivatives -> d = min_d + softplus(. + c)

with ``c = softplus^-1(1 - min_d)``, so ``theta = 0`` is the identity (uniform bins,
all derivatives 1) in any precision, and ``identity_params`` is all zeros.

Inside bin ``k`` with ``xi = (x - x_k) / w_k``, ``s_k = h_k / w_k`` (section 3.1)::

    y = y_k + h_k (s_k xi^2 + d_k xi (1 - xi)) / (s_k + (d_k + d_{k+1} - 2 s_k) xi (1 - xi))

Numerics. Raw parameters are clipped to ``[-PARAM_BOUND, PARAM_BOUND]``. The input fed
to the spline branch is sanitised (set to 0 outside ``[-B, B]``) before any arithmetic,
so neither values nor gradients of the branch not taken can be NaN, whatever the finite
input. The bin is found by a sum of comparisons (no gradient flows through it).
``s_k`` and the derivatives are divided by their maximum before forming the rational
function (the ratio and the log-derivative are invariant to that scale), so large
derivative parameters do not overflow; the denominator is written as a sum of positive
terms, ``s (xi^2 + (1 - xi)^2) + (d_k + d_{k+1}) xi (1 - xi)``. The inverse solves the
quadratic of appendix A in a cancellation-free form: ``xi = 2 s eta / (b + sqrt(disc))``
(the paper's stable formula) when ``b >= 0``, ``xi = (sqrt(disc) - b) / (2 a)`` when
``b < 0``, where the paper's form would subtract nearly equal numbers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Transformer

# Raw parameters are clipped to [-PARAM_BOUND, PARAM_BOUND]. Beyond it softmax bins are
# already at their minimum size (exp(-2000) underflows) and a knot derivative of 1e3 is
# far steeper than any useful spline; the clip keeps float32 values and gradients finite
# for any finite parameter (gradients are zero outside the box).
PARAM_BOUND = 1e3


def _check_args(bins, bound, min_width, min_height, min_derivative):
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins: expected an integer >= 2, got {bins!r}")
    ok = isinstance(bound, (int, float, np.integer, np.floating)) and not isinstance(bound, bool)
    ok = ok and math.isfinite(float(bound)) and float(bound) > 0
    if not ok:
        raise ValueError(f"bound: expected a finite number > 0, got {bound!r}")
    for name, v in (("min_width", min_width), ("min_height", min_height)):
        number = isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
        if not (number and 0.0 < float(v) and float(v) * bins < 1.0):
            raise ValueError(
                f"{name}: expected 0 < {name} < 1 / bins = {1.0 / bins:.4g}, got {v!r}"
            )
    number = isinstance(min_derivative, (int, float, np.floating))
    if not (number and not isinstance(min_derivative, bool) and 0.0 < min_derivative < 1.0):
        raise ValueError(f"min_derivative: expected 0 < min_derivative < 1, got {min_derivative!r}")


def _knots(raw, bins, bound, minimum):
    """Knot positions ``(K + 1,)`` from unnormalised sizes ``(K,)``; ends exactly at +-B."""
    sizes = minimum + (1.0 - minimum * bins) * jax.nn.softmax(raw)
    inner = 2.0 * bound * jnp.cumsum(sizes[:-1]) - bound
    ends = jnp.full((1,), bound, raw.dtype)
    return jnp.concatenate([-ends, inner, ends])


def spline_knots(
    theta,
    bins: int = 8,
    bound: float = 3.0,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
):
    """The spline described by ``theta`` (3 bins - 1,): knot abscissae ``(bins + 1,)``,
    knot ordinates ``(bins + 1,)`` and derivatives at the knots ``(bins + 1,)`` (the two
    boundary derivatives are 1). Same arguments as ``rational_quadratic_transformer``."""
    K = bins
    theta = jnp.clip(theta, -PARAM_BOUND, PARAM_BOUND)
    xk = _knots(theta[:K], K, bound, min_width)
    yk = _knots(theta[K : 2 * K], K, bound, min_height)
    one = jnp.ones((1,), theta.dtype)
    shift = math.log(math.expm1(1.0 - min_derivative))  # softplus(shift) + min_d == 1
    d = jnp.concatenate([one, min_derivative + jax.nn.softplus(theta[2 * K :] + shift), one])
    return xk, yk, d


def rational_quadratic_transformer(
    bins: int = 8,
    bound: float = 3.0,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> Transformer:
    """The rational-quadratic spline transformer of neural spline flows.

    Args:
      bins: number of bins ``K`` (>= 2); ``num_params = 3 K - 1``.
      bound: the spline acts on ``[-bound, bound]``, the identity outside.
      min_width: smallest bin width as a fraction of ``2 * bound`` (``< 1 / bins``).
      min_height: smallest bin height as a fraction of ``2 * bound`` (``< 1 / bins``).
      min_derivative: smallest derivative at an interior knot (in ``(0, 1)``).

    Returns:
      A ``Transformer`` whose ``forward(theta, x)`` returns ``(z, log dz/dx)`` and
      ``inverse(theta, z)`` returns ``(x, log dx/dz)`` for scalar ``x``, ``z`` and
      ``theta`` of shape ``(3 * bins - 1,)``; ``identity_params`` (zeros: uniform bins,
      interior derivatives 1) make the map the identity up to rounding.
    """
    _check_args(bins, bound, min_width, min_height, min_derivative)
    K, B = int(bins), float(bound)
    min_w, min_h, min_d = float(min_width), float(min_height), float(min_derivative)

    def _spline(theta, dtype):
        return spline_knots(theta.astype(dtype), K, B, min_w, min_h, min_d)

    def _bin(knots, d, idx):
        """Left knot, size and the two end derivatives of bin ``idx``."""
        return knots[idx], knots[idx + 1] - knots[idx], d[idx], d[idx + 1]

    def _scaled(s, d0, d1):
        """``s, d0, d1`` divided by their maximum (a constant for autodiff: results are
        invariant to it), and the log of that maximum."""
        m = jax.lax.stop_gradient(jnp.maximum(jnp.maximum(s, d0), d1))
        return s / m, d0 / m, d1 / m, jnp.log(m)

    def _log_deriv(xi, s, log_s, d0, d1, log_m):
        """log dy/dx at ``xi`` (section 3.1) from the scaled ``s, d0, d1``, the log of the
        unscaled slope ``log_s`` and the log of the scale ``log_m``::

            log[s^2 (d1 xi^2 + 2 s t + d0 (1 - xi)^2) / den^2],  t = xi (1 - xi)
        """
        t = xi * (1.0 - xi)
        num = d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi)
        den = s * (xi * xi + (1.0 - xi) * (1.0 - xi)) + (d0 + d1) * t
        return 2.0 * log_s - log_m + jnp.log(num) - 2.0 * jnp.log(den)

    def forward(theta, x):
        xk, yk, d = _spline(theta, x.dtype)
        inside = jnp.abs(x) <= B
        xs = jnp.where(inside, x, jnp.zeros_like(x))  # sanitised before any maths
        idx = jnp.sum(xs >= xk[1:K]).astype(jnp.int32)
        x0, w, d0, d1 = _bin(xk, d, idx)
        y0, h = yk[idx], yk[idx + 1] - yk[idx]
        xi = (xs - x0) / w  # in [0, 1] exactly: rounding is monotone
        s_raw = h / w
        s, d0, d1, log_m = _scaled(s_raw, d0, d1)
        t = xi * (1.0 - xi)
        num = s * xi * xi + d0 * t
        den = s * (xi * xi + (1.0 - xi) * (1.0 - xi)) + (d0 + d1) * t
        y = y0 + h * (num / den)
        ld = _log_deriv(xi, s, jnp.log(s_raw), d0, d1, log_m)
        return jnp.where(inside, y, x), jnp.where(inside, ld, jnp.zeros_like(ld))

    def inverse(theta, z):
        xk, yk, d = _spline(theta, z.dtype)
        inside = jnp.abs(z) <= B
        zs = jnp.where(inside, z, jnp.zeros_like(z))
        idx = jnp.sum(zs >= yk[1:K]).astype(jnp.int32)
        y0, h, d0, d1 = _bin(yk, d, idx)
        x0, w = xk[idx], xk[idx + 1] - xk[idx]
        eta = (zs - y0) / h  # in [0, 1]
        s_raw = h / w
        s, d0, d1, log_m = _scaled(s_raw, d0, d1)
        # a xi^2 + b xi + c = 0 (appendix A, divided by h and by the scale m)
        curv = (d0 - s) + (d1 - s)
        a = (s - d0) + eta * curv
        b = d0 - eta * curv
        c = -s * eta
        disc = b * b - 4.0 * a * c
        pos = disc > 0
        root = jnp.where(pos, jnp.sqrt(jnp.where(pos, disc, jnp.ones_like(disc))), 0.0)
        b_pos = b >= 0
        den_pos = jnp.where(b_pos, b + root, jnp.ones_like(b))
        den_neg = jnp.where(b_pos, jnp.ones_like(a), 2.0 * a)
        den_pos = jnp.where(den_pos > 0, den_pos, jnp.ones_like(den_pos))
        den_neg = jnp.where(den_neg > 0, den_neg, jnp.ones_like(den_neg))
        xi = jnp.where(b_pos, -2.0 * c / den_pos, (root - b) / den_neg)
        # clamp rounding excursions; ``where`` (unlike clip) keeps the gradient at 0 and 1
        xi = jnp.where(xi < 0, jnp.zeros_like(xi), xi)
        xi = jnp.where(xi > 1, jnp.ones_like(xi), xi)
        x = x0 + w * xi
        ld = -_log_deriv(xi, s, jnp.log(s_raw), d0, d1, log_m)
        return jnp.where(inside, x, z), jnp.where(inside, ld, jnp.zeros_like(ld))

    # jitted so that eager (op-by-op) callers dispatch one program; inlined under jit
    return Transformer(3 * K - 1, jax.jit(forward), jax.jit(inverse), jnp.zeros(3 * K - 1))
