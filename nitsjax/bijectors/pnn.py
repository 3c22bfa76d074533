"""The 1-D probabilistically normalised network (PNN) of NITS, and its transformer.

Li & Kluger, "Neural Inverse Transform Sampler", ICML 2022, section 3. A PNN is a
monotone MLP ``arch = [1, h_1, ..., h_k, 1]`` whose weights are not its own: all of them
are slices of one vector ``theta`` produced per data point by a conditioner.

On the canonical interval ``t in [0, 1]``:

- hidden layer ``l``: ``z_l = A_l h_{l-1} - b_l * mean_j(A_l[:, j])``, ``h_l = sigmoid(z_l)``,
  with positive weights ``A_l = exp(-max(raw, -7))`` (so ``A <= e^7``); for the first layer
  (one input) this is ``A (t - b)``: ``b`` is a location. This is the ``neg_exp``
  constraint and mean-scaled bias of the original code.
- last layer: ``N(t) = sum_m w_m h_k[m]``, ``w = softmax(raw_w / T)`` (positive, summing to
  one) with a positive temperature ``T = exp(clip(raw_T, -7, 7))``.
- ``G(t) = N(t) + c t`` with ``c = monotonic_const > 0`` keeps ``G`` strictly increasing.
- ``F(t) = (G(t) - G(0)) / (G(1) - G(0))``: exactly 0 at 0 and 1 at 1 (clipped to [0, 1]
  against rounding), and ``f(t) = G'(t) / (G(1) - G(0))``.

For ``hidden = (K,)`` and ``c = 0``, ``F`` is exactly the CDF of a mixture of ``K``
logistics (locations ``b``, scales ``1/A``, weights ``w``) truncated to the interval;
with ``c > 0`` it is that mixture plus a uniform component.

The density is an analytic forward-mode derivative carried with a log scale:
``dh/dt = exp(m) v`` with ``max(v) = 1`` per layer, ``log sigmoid'(z) = -|z| - 2
log1p(exp(-|z|))`` and the products with the positive weights in linear space on the
scaled ``v``, so it does not underflow in float32 in the tails (a sigmoid 1000 units into
saturation still has a finite log-slope). The denominator is at least ``c``, so the
normalisation is well conditioned.

Training speed: ``cdf_and_log_pdf`` evaluates ``G`` at ``t``, 0 and 1 and the slope in one
pass (one product of each weight matrix with four vectors) and carries a hand-written JVP
rule: one explicit backward sweep gives ``dF/dtheta``, ``dlog f/dtheta`` and the ``t``
derivatives, the slope path back-propagated as scale-free softmax-like weights. Reverse
mode then costs a few elementwise products with the per-row weights instead of autodiff
through the log-space forward derivative (about 4x less work for ``[1, 16, 16, 1]``).

A data interval ``[A, B]`` maps to the canonical one by ``t = (x - A) / (B - A)``.
``pnn_transformer`` packages this as a ``Transformer`` for autoregressive and coupling
layers; its inverse is a batched bracketing solve with implicit-function gradients
(``nitsjax.root_finding``).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax import root_finding
from nitsjax.bijectors.base import Transformer

Array = jax.Array

RAW_A_MIN = -7.0  # A = exp(-max(raw, -7)) <= e^7, as in the original code
RAW_T_CLIP = 7.0
DEFAULT_MONOTONIC_CONST = 1e-2  # the original NITS default
IDENTITY_SLOPE = 2.0  # slope x spacing of the sigmoid "staircase" at identity params
DEFAULT_XTOL = {4: 2.0**-22, 8: 2.0**-40}  # canonical-interval tolerance by itemsize


def check_arch(hidden) -> tuple[int, ...]:
    """PNN hidden widths ``(h_1, ..., h_k)``: a non-empty sequence of positive ints."""
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        hidden = tuple(hidden)
    except TypeError as err:
        raise ValueError(f"arch: expected a sequence of positive ints, got {hidden!r}") from err
    if not hidden or any(
        isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden
    ):
        raise ValueError(
            f"arch: expected a non-empty sequence of positive ints (PNN hidden widths), "
            f"got {hidden!r}"
        )
    return tuple(int(h) for h in hidden)


def num_params(hidden: Sequence[int]) -> int:
    """Length of ``theta`` for a PNN ``[1, *hidden, 1]``: weights and locations of every
    hidden layer, the softmax logits of the last layer and one temperature."""
    widths = (1,) + tuple(hidden)
    n = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    return n + widths[-1] + 1


class PNNLayer(NamedTuple):
    """One hidden layer, constrained and pre-computed for repeated evaluation:
    ``z = a @ h - shift`` with ``shift = b * mean(a, axis=1)``; also
    ``a = exp(row_max)[:, None] * a_rel`` with ``max(a_rel) = 1`` per row (for callers
    working in log space; the evaluation here does not need them, and under ``jit`` they
    are not computed unless used)."""

    a: Array  # (out, in)
    shift: Array  # (out,)
    row_max: Array  # (out,) max_j log a_ij
    a_rel: Array  # (out, in)


class PNNWeights(NamedTuple):
    """``theta`` unpacked: the hidden layers and the mixture weights of the last layer
    (``w = exp(log_w)``, ``w_rel = exp(log_w - max log_w)``)."""

    layers: tuple
    log_w: Array
    w: Array
    w_rel: Array


def _check_theta(theta: Array, hidden: Sequence[int]) -> tuple[int, ...]:
    """The widths ``(1, *hidden)``; raises when ``theta``'s last axis is not
    ``num_params(hidden)`` long."""
    widths = (1,) + tuple(hidden)
    expected = num_params(hidden)
    if theta.shape[-1] != expected:
        raise ValueError(
            f"theta: expected {expected} PNN parameters for arch {list(widths) + [1]}, "
            f"got shape {theta.shape}"
        )
    return widths


def unpack(theta: Array, hidden: Sequence[int]) -> PNNWeights:
    """Split a ``(num_params(hidden),)`` vector into constrained weights."""
    widths = _check_theta(theta, hidden)
    i = 0
    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        raw = theta[i : i + n_in * n_out].reshape(n_out, n_in)
        i += n_in * n_out
        b = theta[i : i + n_out]
        i += n_out
        log_a = -jnp.maximum(raw, RAW_A_MIN)  # A = exp(-max(raw, -7)) <= e^7
        a = jnp.exp(log_a)
        row_max = jnp.max(log_a, axis=1)
        a_rel = jnp.exp(log_a - row_max[:, None])
        layers.append(PNNLayer(a, b * jnp.mean(a, axis=1), row_max, a_rel))
    raw_w = theta[i : i + widths[-1]]
    inv_temp = jnp.exp(-jnp.clip(theta[i + widths[-1]], -RAW_T_CLIP, RAW_T_CLIP))
    log_w = jax.nn.log_softmax(raw_w * inv_temp)
    w_rel = jnp.exp(log_w - jnp.max(log_w))
    return PNNWeights(tuple(layers), log_w, jnp.exp(log_w), w_rel)


def _log_sigmoid_slope(z: Array) -> Array:
    """``log sigmoid'(z) = -|z| - 2 log1p(exp(-|z|))``, finite however saturated ``z`` is."""
    abs_z = jnp.abs(z)
    return -abs_z - 2.0 * jnp.log1p(jnp.exp(-abs_z))


def _scaled_matvec(a: Array, v: Array) -> Array:
    """``a @ v`` for a positive ``a`` and a ``v`` scaled so that ``max(v) = 1``: the sum is
    at least one weight of ``a``, so it underflows only where a weight itself does
    (``raw > 87``); such a sum is floored at the smallest normal (finite logs)."""
    s = jnp.sum(a * v, axis=-1)  # tiny matvec: fuses better than dot
    return jnp.maximum(s, jnp.finfo(s.dtype).tiny)


def _g(w: PNNWeights, t: Array, c: float, with_log_deriv: bool):
    """``G(t)`` (and ``log G'(t)``) for scalar ``t``, the derivative carried forward as
    ``dh/dt = exp(m) v`` with ``max(v) = 1`` (a log-scale ``m`` per layer), so that it does
    not underflow where the sigmoids saturate: ``log sigmoid'(z) = -|z| - 2 log1p(exp(-|z|))``
    and the matrix-vector products stay in linear space on the scaled ``v``."""
    h = t[None]
    m = jnp.zeros((), t.dtype)
    v = jnp.ones((1,), t.dtype)
    for layer in w.layers:
        z = jnp.sum(layer.a * h, axis=-1) - layer.shift
        h = jax.nn.sigmoid(z)
        if with_log_deriv:
            lv = _log_sigmoid_slope(z) + jnp.log(_scaled_matvec(layer.a, v))
            top = jax.lax.stop_gradient(jnp.max(lv))
            m, v = m + top, jnp.exp(lv - top)
    g = jnp.dot(w.w, h) + c * t
    if not with_log_deriv:
        return g, None
    log_dn = m + jax.nn.logsumexp(w.log_w + jnp.log(v))
    log_dg = jnp.logaddexp(log_dn, math.log(c)) if c > 0 else log_dn
    return g, log_dg


class PreparedPNN(NamedTuple):
    """Everything about one PNN that does not depend on ``t``: constrained weights, ``G(0)``
    and ``log(G(1) - G(0))``. Built once per solve, reused at every iteration."""

    weights: PNNWeights
    g0: Array
    scale: Array  # G(1) - G(0)
    log_scale: Array


def prepare(theta: Array, hidden: Sequence[int], c: float) -> PreparedPNN:
    w = unpack(theta, hidden)
    ends = jnp.array([0.0, 1.0], theta.dtype)
    g_ends = jax.vmap(lambda t: _g(w, t, c, False)[0])(ends)
    scale = g_ends[1] - g_ends[0]
    return PreparedPNN(w, g_ends[0], scale, jnp.log(scale))


def prepared_cdf_and_log_pdf(p: PreparedPNN, t: Array, c: float):
    """``(F(t), log f(t))`` for scalar ``t`` in [0, 1]."""
    g, log_dg = _g(p.weights, t, c, True)
    return _normalise(p, g, t), log_dg - p.log_scale


def _normalise(p: PreparedPNN, g: Array, t: Array) -> Array:
    """``(G(t) - G(0)) / (G(1) - G(0))``, exactly 0 at ``t <= 0`` and 1 at ``t >= 1``
    (``G(1)`` is computed in a batch, so the ratio can miss 1 by an ulp; ``dF/dtheta`` is
    zero at the ends anyway)."""
    f = jnp.clip((g - p.g0) / p.scale, 0.0, 1.0)
    return jnp.where(t >= 1, jnp.ones_like(f), jnp.where(t <= 0, jnp.zeros_like(f), f))


# --------------------------------------------------------------- the fused training pass
#
# ``cdf_and_log_pdf`` evaluates the PNN at t, 0 and 1 in one pass (G(0) and G(1) share the
# weights and every product with them), and differentiates by hand: its JVP rule computes
# the sensitivities dF/dtheta, dF/dt, dlogf/dtheta and dlogf/dt by one explicit backward
# sweep through that pass, so that reverse mode (training) costs a few elementwise
# products with the per-row weights instead of the autodiff of the log-space forward
# derivative. The derivative path is back-propagated in log space and scale-free:
# ``r_l = d log f / d log(dh_l/dt)`` are softmax-like weights in [0, 1], so the sweep does
# not under- or overflow where the forward pass does not. ``_cdf_and_log_pdf_plain`` is
# the same forward pass without the rule (the tests differentiate it by autodiff).


class _Pass(NamedTuple):
    """Intermediates of ``_fused_forward``; per hidden layer ``l`` (lists):
    ``a`` (out, in) weights, ``mask`` where ``raw > -7``, ``b`` locations, ``h`` the
    activations at (t, 0, 1) (3, out), ``v`` the scaled slope ``dh/dt / exp(m)`` (out,),
    ``y`` the scaled pre-slope ``a @ v_prev`` (out,; layers after the first)."""

    a: list
    mask: list
    b: list
    h: list
    v: list
    y: list
    pts: Array
    log_w: Array
    w: Array
    q: Array  # d log N'(t) / d log(dh_k/dt): softmax(log w + log v_k)
    g: Array  # G at (t, 0, 1)
    log_dn: Array
    log_dg: Array
    scale: Array


def _split(theta: Array, hidden: Sequence[int]):
    widths = _check_theta(theta, hidden)
    i, layers = 0, []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        raw = theta[i : i + n_in * n_out].reshape(n_out, n_in)
        i += n_in * n_out
        layers.append((raw, theta[i : i + n_out]))
        i += n_out
    return layers, theta[i : i + widths[-1]], theta[i + widths[-1]]


def _fused_forward(theta: Array, t: Array, hidden: Sequence[int], c: float) -> _Pass:
    layers, raw_w, raw_t = _split(theta, hidden)
    zero = jnp.zeros_like(t)
    pts = jnp.stack([t, zero, zero + 1])
    tiny = jnp.finfo(t.dtype).tiny
    out = _Pass([], [], [], [], [], [], pts, *([None] * 7))
    m = jnp.zeros((), t.dtype)
    for li, (raw, b) in enumerate(layers):
        log_a = -jnp.maximum(raw, RAW_A_MIN)  # A = exp(-max(raw, -7)) <= e^7
        a = jnp.exp(log_a)
        if li == 0:  # one input: z = A (t - b)
            z = a[:, 0] * (pts[:, None] - b)
            lv = log_a[:, 0] + _log_sigmoid_slope(z[0])
            y = None
        else:
            st = jnp.concatenate([h, v[None]], 0)  # noqa: F821 - set by the previous layer
            prod = jnp.einsum("oi,pi->po", a, st)  # the three points and the slope at once
            z = prod[:3] - b * jnp.mean(a, axis=1)
            y = jnp.maximum(prod[3], tiny)
            lv = _log_sigmoid_slope(z[0]) + jnp.log(y)
        h = jax.nn.sigmoid(z)
        top = jax.lax.stop_gradient(jnp.max(lv))
        m, v = m + top, jnp.exp(lv - top)
        for field, value in zip(("a", "mask", "b", "h", "v", "y"),
                                (a, raw > RAW_A_MIN, b, h, v, y)):
            getattr(out, field).append(value)
    inv_temp = jnp.exp(-jnp.clip(raw_t, -RAW_T_CLIP, RAW_T_CLIP))
    log_w = jax.nn.log_softmax(raw_w * inv_temp)
    w = jnp.exp(log_w)
    g = h @ w + c * pts
    log_q = log_w + jnp.log(v)
    lse = jax.nn.logsumexp(log_q)
    log_dn = m + lse
    log_dg = jnp.logaddexp(log_dn, math.log(c)) if c > 0 else log_dn
    return out._replace(log_w=log_w, w=w, q=jnp.exp(log_q - lse), g=g, log_dn=log_dn,
                        log_dg=log_dg, scale=g[2] - g[1])


def _outputs(fp: _Pass, t: Array):
    f = jnp.clip((fp.g[0] - fp.g[1]) / fp.scale, 0.0, 1.0)
    f = jnp.where(t >= 1, jnp.ones_like(f), jnp.where(t <= 0, jnp.zeros_like(f), f))
    return f, fp.log_dg - jnp.log(fp.scale)


def _sweep(fp: _Pass, theta: Array, gn: Array, kappa, raw_t: Array):
    """One backward sweep: ``(d/dtheta, d/dt)`` of ``sum_p gn[p] N(p) + kappa log N'(t)``
    (points p = t, 0, 1; ``kappa`` None: no derivative path)."""
    k = len(fp.a)
    grads = []
    gh = gn[:, None] * fp.w[None, :]  # d/dh_k at the three points
    r = None if kappa is None else kappa * fp.q  # d/d log(dh_l/dt)
    for li in range(k - 1, -1, -1):
        a, mask, b, h = fp.a[li], fp.mask[li], fp.b[li], fp.h[li]
        gz = gh * h * (1.0 - h)
        if r is not None:
            gz = gz.at[0].add(r * (1.0 - 2.0 * h[0]))  # log sigmoid'(z)' = 1 - 2 sigmoid(z)
        if li == 0:
            ga = jnp.sum(gz * (fp.pts[:, None] - b), axis=0)
            g_log_a = ga * a[:, 0] + (0.0 if r is None else r)
            grads += [jnp.where(mask[:, 0], -g_log_a, 0.0), -jnp.sum(gz, axis=0) * a[:, 0]]
            g_t = jnp.dot(gz[0], a[:, 0])
            break
        h_prev, v_prev = fp.h[li - 1], fp.v[li - 1]
        e = (jnp.zeros_like(fp.y[li]) if r is None
             else jnp.where(fp.y[li] > jnp.finfo(h.dtype).tiny, r / fp.y[li], 0.0))
        gz_sum = jnp.sum(gz, axis=0)
        n_in = a.shape[1]
        # d/dA as outer products (elementwise: no batched dot with a contraction of 3)
        ga = (gz[0][:, None] * h_prev[0] + gz[1][:, None] * h_prev[1]
              + gz[2][:, None] * h_prev[2] + e[:, None] * v_prev
              - (gz_sum * b / n_in)[:, None])
        grads += [jnp.where(mask, -ga * a, 0.0).ravel(), -gz_sum * jnp.mean(a, axis=1)]
        back = jnp.einsum("oi,po->pi", a, jnp.concatenate([gz, e[None]], 0))
        gh = back[:3]
        if r is not None:
            r = v_prev * back[3]
    # output layer: logits = raw_w / T, log w = log_softmax(logits)
    n_pts = fp.h[-1] @ fp.w  # N at the three points
    g_logits = jnp.sum(gn[:, None] * fp.w * (fp.h[-1] - n_pts[:, None]), axis=0)
    if r is not None:
        g_logits = g_logits + kappa * (fp.q - fp.w)
    inv_temp = jnp.exp(-jnp.clip(raw_t, -RAW_T_CLIP, RAW_T_CLIP))
    raw_w = theta[-1 - fp.w.shape[0] : -1]
    inside = jnp.abs(raw_t) < RAW_T_CLIP
    g_raw_t = jnp.where(inside, -inv_temp * jnp.dot(g_logits, raw_w), 0.0)
    # assemble in theta's layout: per layer (weights, locations), then logits, temperature
    pieces = []
    for li in range(k):
        pieces += grads[2 * (k - 1 - li) : 2 * (k - 1 - li) + 2]
    pieces += [g_logits * inv_temp, g_raw_t[None]]
    return jnp.concatenate(pieces), g_t


def _cdf_and_log_pdf_plain(theta, t, hidden, c):
    return _outputs(_fused_forward(theta, t, hidden, c), t)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _cdf_and_log_pdf(theta, t, hidden, c):
    return _cdf_and_log_pdf_plain(theta, t, hidden, c)


@_cdf_and_log_pdf.defjvp
def _cdf_and_log_pdf_jvp(hidden, c, primals, tangents):
    theta, t = primals
    d_theta, d_t = tangents
    fp = _fused_forward(theta, t, hidden, c)
    f, log_f = _outputs(fp, t)
    raw_t = theta[-1]
    inv_s = 1.0 / fp.scale
    # log f = log G'(t) - log(G(1) - G(0))
    kappa = jnp.exp(fp.log_dn - fp.log_dg)
    zero = jnp.zeros_like(inv_s)
    s_log_f, t_log_f = _sweep(fp, theta, jnp.stack([zero, inv_s, -inv_s]), kappa, raw_t)
    # F = (G(t) - G(0)) / (G(1) - G(0)), flat (zero derivative) where it is clipped
    ratio = (fp.g[0] - fp.g[1]) * inv_s
    live = (t > 0) & (t < 1) & (ratio > 0) & (ratio < 1)
    s_f, t_f = _sweep(fp, theta, jnp.stack([inv_s, (ratio - 1) * inv_s, -ratio * inv_s]),
                      None, raw_t)
    s_f = jnp.where(live, s_f, 0.0)
    t_f = jnp.where(live, t_f + c * inv_s, 0.0)
    d_f = jnp.dot(s_f, d_theta) + t_f * d_t
    d_log_f = jnp.dot(s_log_f, d_theta) + t_log_f * d_t
    return (f, log_f), (d_f, d_log_f)


def cdf_and_log_pdf(
    theta: Array, t: Array, hidden: Sequence[int], monotonic_const: float = DEFAULT_MONOTONIC_CONST
):
    """``(F(t), log f(t))`` of the PNN on the canonical interval, scalar ``t`` in [0, 1].

    ``f`` is the exact derivative of ``F`` (analytic forward mode, carried in log space).
    One fused pass evaluates ``G`` at ``t``, 0 and 1; derivatives in ``theta`` and ``t``
    (any order of forward and reverse mode) come from a hand-written JVP rule."""
    return _cdf_and_log_pdf(theta, t, tuple(hidden), float(monotonic_const))


def cdf(theta, t, hidden, monotonic_const=DEFAULT_MONOTONIC_CONST):
    """``F(t)`` on the canonical interval, scalar ``t``."""
    return cdf_and_log_pdf(theta, t, hidden, monotonic_const)[0]


def log_pdf(theta, t, hidden, monotonic_const=DEFAULT_MONOTONIC_CONST):
    """``log f(t)`` on the canonical interval, scalar ``t``."""
    return cdf_and_log_pdf(theta, t, hidden, monotonic_const)[1]


def identity_params(hidden: Sequence[int]) -> np.ndarray:
    """A ``theta`` whose CDF is close to the uniform one, ``F(t) ~ t`` on [0, 1].

    Every hidden layer is an evenly spaced staircase of sigmoids of the previous layer's
    sum (first layer: of ``t``) whose locations overhang the input range by one spacing
    (so the ends are not thinned), with slope ``IDENTITY_SLOPE / spacing``; the output
    weights are equal. For widths >= 4 the density lies within a few percent of 1
    (e.g. [0.96, 1.01] for arch (16, 16)); narrower layers are cruder.
    """
    widths = (1,) + tuple(hidden)
    parts = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        span = float(n_in) if n_in > 1 else 1.0  # range of the layer's input sum
        if n_out == 1:
            spacing, locs = span, np.array([0.5 * span])
        else:
            overhang = min(1.0, (n_out - 2) / 2.0)  # in spacings, on each side
            spacing = span / (n_out - 1 - 2 * overhang)
            locs = (np.arange(n_out) - overhang) * spacing
        slope = IDENTITY_SLOPE / spacing
        parts.append(np.full(n_in * n_out, -math.log(slope)))  # z = slope * (sum - loc)
        parts.append(locs)
    parts.append(np.zeros(widths[-1]))
    parts.append(np.zeros(1))
    theta = np.concatenate(parts).astype(np.float32)
    assert theta.size == num_params(hidden)
    return theta


def default_xtol(dtype) -> float:
    """Default solver tolerance on the canonical interval: 2^-22 in float32, 2^-40 in
    float64 (bisection then needs 22 / 40 halvings)."""
    return DEFAULT_XTOL.get(jnp.dtype(dtype).itemsize, 2.0**-22)


def inverse_cdf(
    theta: Array,
    u: Array,
    hidden: Sequence[int],
    monotonic_const: float = DEFAULT_MONOTONIC_CONST,
    *,
    solver: str = "newton",
    xtol: Optional[float] = None,
    ftol: Optional[float] = None,
    max_iter: Optional[int] = None,
) -> Array:
    """``t`` in [0, 1] with ``F(t) = u`` (scalar ``u``, clipped to [0, 1]).

    Differentiable in ``theta`` and ``u`` by the implicit function theorem. ``xtol`` is on
    the canonical interval (default ``default_xtol(dtype)``); ``max_iter`` defaults to
    ``ceil(log2(1 / xtol))`` (plus a small allowance for the hybrid solvers). The hybrid
    solvers also stop once ``|F(t) - u| <= ftol`` (default ``4 eps``: ``F`` itself is not
    resolved more finely, and where the density is low no ``t`` does better).
    """
    dtype = u.dtype
    xtol = default_xtol(dtype) if xtol is None else float(xtol)
    ftol = 4.0 * float(jnp.finfo(dtype).eps) if ftol is None else float(ftol)
    c = monotonic_const
    u = jnp.clip(u, 0.0, 1.0)

    def cdf_fn(th, t):
        return cdf(th, t, hidden, c)

    def evaluator(th):
        p = prepare(th, hidden, c)

        def ev(t):
            f, lf = prepared_cdf_and_log_pdf(p, t, c)
            return f, jnp.exp(lf)

        return ev

    return root_finding.solve_monotone(
        cdf_fn,
        theta,
        u,
        jnp.zeros((), dtype),
        jnp.ones((), dtype),
        method=solver,
        xtol=xtol,
        max_iter=max_iter if max_iter is not None else _max_iter(solver, xtol),
        ftol=ftol,
        x0=u,  # F is near the identity at initialisation: the uniform guess
        evaluator=evaluator,
    )


def _max_iter(solver: str, xtol: float) -> int:
    n = root_finding.bisection_steps(1.0, xtol)
    return n if solver == "bisection" else n + 8


def check_bounds_pair(bounds, name: str = "bounds") -> tuple[float, float]:
    """A scalar interval ``(A, B)`` with finite ``A < B``."""
    try:
        lo, hi = (float(v) for v in bounds)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a pair of floats (A, B), got {bounds!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name}: expected finite A < B, got ({lo}, {hi})")
    return lo, hi


def pnn_transformer(
    arch: Sequence[int] = (16, 16),
    bounds=(0.0, 1.0),
    *,
    tails: Optional[str] = None,
    monotonic_const: float = DEFAULT_MONOTONIC_CONST,
    solver: str = "newton",
    tol: Optional[float] = None,
) -> Transformer:
    """The PNN as an elementwise ``Transformer`` on the interval ``bounds = (A, B)``.

    Args:
      arch: hidden widths ``(h_1, ..., h_k)`` of the PNN ``[1, h_1, ..., h_k, 1]``.
      bounds: the support ``(A, B)``.
      tails: ``None``: ``z = F(x)`` in [0, 1] (the NITS layer: data to uniform latent).
        A point outside ``[A, B]`` gets ``z`` clipped to 0 or 1 and log-det ``-inf``
        (explicit, never NaN); a latent outside [0, 1] is clipped into it.
        ``"linear"``: ``z = A + (B - A) F(x)`` on ``[A, B]`` and the identity outside, a
        bijection of R usable inside coupling and autoregressive flows (like the linear
        tails of neural spline flows).
      monotonic_const: ``c`` in ``G(t) = N(t) + c t`` (canonical units, must be > 0).
      solver: ``"newton"`` (default, safeguarded), ``"chandrupatla"`` or ``"bisection"``.
      tol: solver tolerance in data units (default ``(B - A) * default_xtol(dtype)``);
        bisection uses ``ceil(log2((B - A) / tol))`` iterations.

    ``identity_params`` gives ``F(t) ~ t``: the identity map (``tails="linear"``) or the
    uniform CDF (``tails=None``), up to a density within a few percent of flat.
    """
    hidden = check_arch(arch)
    lo, hi = check_bounds_pair(bounds)
    if tails not in (None, "linear"):
        raise ValueError(f"tails: expected None or 'linear', got {tails!r}")
    if not (isinstance(monotonic_const, (int, float)) and monotonic_const > 0):
        raise ValueError(f"monotonic_const: expected a float > 0, got {monotonic_const!r}")
    c = float(monotonic_const)
    root_finding.check_method(solver, "solver")
    width = hi - lo
    log_width = math.log(width)
    if tol is not None and not (float(tol) > 0 and math.isfinite(float(tol))):
        raise ValueError(f"tol: expected a positive float, got {tol!r}")
    xtol = None if tol is None else float(tol) / width

    def forward(theta, x):
        t = (x - lo) / width
        inside = (t >= 0) & (t <= 1)
        f, log_f = cdf_and_log_pdf(theta, jnp.clip(t, 0.0, 1.0), hidden, c)
        if tails is None:
            return f, jnp.where(inside, log_f - log_width, -jnp.inf)
        return jnp.where(inside, lo + width * f, x), jnp.where(inside, log_f, 0.0)

    def inverse(theta, z):
        if tails is None:
            t = inverse_cdf(theta, z, hidden, c, solver=solver, xtol=xtol)
            return lo + width * t, log_width - log_pdf(theta, t, hidden, c)
        inside = (z >= lo) & (z <= hi)
        u = jnp.clip((z - lo) / width, 0.0, 1.0)
        t = inverse_cdf(theta, u, hidden, c, solver=solver, xtol=xtol)
        x = jnp.where(inside, lo + width * t, z)
        return x, jnp.where(inside, -log_pdf(theta, t, hidden, c), 0.0)

    # jit: eager (op-by-op) callers compile the whole map once; inside an outer jit it inlines
    return Transformer(
        num_params(hidden), jax.jit(forward), jax.jit(inverse), jnp.asarray(identity_params(hidden))
    )


def logistic_mixture_params(
    weights, locs, scales, bounds=(0.0, 1.0)
) -> np.ndarray:
    """``theta`` of a ``[1, K, 1]`` PNN on ``bounds`` equal to a mixture of ``K`` logistics
    (weights, locations and scales in data units), truncated to ``bounds`` and, with
    ``monotonic_const = c > 0``, mixed with a uniform component.

    The scales must satisfy ``scale >= (B - A) e^-7`` (the weight constraint ``A <= e^7``).
    """
    lo, hi = check_bounds_pair(bounds)
    width = hi - lo
    weights = np.asarray(weights, np.float64)
    locs = np.asarray(locs, np.float64)
    scales = np.asarray(scales, np.float64)
    k = weights.size
    if locs.shape != (k,) or scales.shape != (k,) or np.any(weights <= 0) or np.any(scales <= 0):
        raise ValueError(
            "logistic_mixture_params: expected K positive weights, K locations and K positive "
            f"scales, got shapes {weights.shape}, {locs.shape}, {scales.shape}"
        )
    slope = width / scales  # canonical slope A_k
    raw_a = -np.log(slope)
    if np.any(raw_a < RAW_A_MIN):
        raise ValueError(f"scales: must be >= (B - A) * e^-7 = {width * math.exp(RAW_A_MIN)}")
    b = (locs - lo) / width
    raw_w = np.log(weights / weights.sum())
    return np.concatenate([raw_a, b, raw_w, [0.0]]).astype(np.float32)
