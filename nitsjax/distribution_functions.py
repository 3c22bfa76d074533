"""Distribution functions of triangular flows: conditional CDFs, quantiles, marginals,
censored and missing data, discrete (binned) data.

A flow whose bijector ``x -> z`` is *triangular in the data order* (latent coordinate
``z_pi(i)`` depends on ``x_<=i`` only and increases with ``x_i``) and whose base factorises
over the coordinates (N(0, I) or Uniform[0, 1]^d) models every conditional CDF in closed
form (Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference",
JMLR 2021, section 3.1; Li & Kluger, "Neural Inverse Transform Sampler", ICML 2022)::

    F_i(x_i | x_<i) = G(z_pi(i)),   f_i(x_i | x_<i) = g(z_pi(i)) dz_pi(i)/dx_i

with ``G``, ``g`` the base's one-dimensional CDF and density and ``pi`` a fixed output
permutation (the coordinate reversal that ends a MAF layer). Which flows qualify
(``structure``): every ``nits(...)`` except ``rotate=True``; ``maf``, ``iaf``, ``nsf``
(autoregressive or coupling) and ``realnvp`` with ``layers=1`` and ``linear=None``
(``actnorm`` and any ``standardize`` allowed: the whitening layer is lower triangular with
a positive diagonal, ActNorm and the NITS squash are increasing elementwise maps), all
with ``order=None`` or the identity order. A second autoregressive layer runs in the
reversed order, a permutation or LU layer mixes the order, and ``order=`` (any other
permutation) makes the map triangular in that order, not the data's: those flows are
refused (build the flow on ``x[:, order]`` to get the conditionals in that order).

What each function costs and how exact it is:

- ``cdf``: one forward pass; exact. ``quantile``: one inverse (the flow's own, row by
  row); exact to the inverse's solver tolerance.
- ``marginal_log_prob`` of the first ``k`` coordinates: ``sum_{i<k} log f_i``, the
  per-coordinate log-derivatives ``dz_pi(i)/dx_i`` by forward-mode differentiation (``k``
  JVPs per row); exact to rounding (for ``k = dim`` it is ``log_prob``).
- ``log_prob_discrete``: ``F_i(x_i +- w/2 | x_<i)`` with the prefix held at the observed
  values, by one forward pass per coordinate and side (``2 d`` passes per row, batched):
  exact. The log of the difference is taken in log space on the base's scale
  (``log(Phi(b) - Phi(a))`` from ``log_ndtr``, reflected in the upper tail); where the
  difference is not resolved by the floating-point format (N(0, I) base: a latent
  difference below ``2^12`` ulps; uniform base, NITS: a CDF difference below
  ``sqrt(eps)``, 3.5e-4 in float32, 1.5e-8 in float64), the bin probability is instead
  the 8-node Gauss-Legendre rule of the exact conditional density over the bin, in log
  space (accurate for a density smooth on the scale of the bin; see the tail limit).
- ``log_prob_censored`` and ``impute`` use the model's own conditionals sequentially
  (the GHK simulator; Geweke 1991, Keane 1994): coordinates in data order, an observed
  one contributes ``f_i(x_i | x_<i)``, a censored one ``F_i(b_i | x_<i) - F_i(a_i |
  x_<i)`` and is then drawn from its conditional truncated to ``(a_i, b_i]`` (a missing
  one: ``(-inf, inf)``, factor 1). The product of the factors is an unbiased estimate of
  ``P(lower < X <= upper)`` (observed coordinates as densities); it is deterministic,
  hence exact, when no coordinate before the last is censored. With several censored
  coordinates the probability of the box needs an integral over the earlier ones (even
  when they all come last), so it is estimated with ``num_samples`` particles and a
  standard error (delta method on the log of the mean). ``impute`` draws the missing
  entries exactly (ancestral sampling) when they form a suffix of each row; otherwise it
  resamples ``proposals`` particles by their weights (sampling-importance-resampling,
  consistent as ``proposals`` grows). Each particle costs ``2 d`` forward passes, ``d``
  JVPs and ``d`` inverses (``O(d^2)`` network passes for a MADE-based inverse).

Tail limit (uniform base, i.e. NITS): a per-coordinate density is the derivative of the
conditional CDF, and where that CDF value rounds to exactly 0 or 1 (far in a
conditional's tail: beyond ~5 standard deviations on the upper side in float32, ~8 in
float64) the derivative is lost in the rounding. The functions that use it
(``marginal_log_prob``, observed coordinates in ``log_prob_censored`` and ``impute``,
the tail fallback of ``log_prob_discrete``; sampling given such a prefix as well) then
warn (``RuntimeWarning``) naming the rows; ``log_prob`` of whole rows is exact there.
Flows with a N(0, I) base have no such limit.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr, ndtri

from nitsjax.validation import (
    as_float_array,
    check_context,
    check_data,
    check_finite,
    check_key,
    check_positive_int,
)

Array = jax.Array

#: The flows with exact distribution functions, as said in every refusal.
SUPPORTED = (
    "nits(...) without rotate=True; maf(...), iaf(...), realnvp(...) and nsf(...) "
    "(autoregressive or coupling) with layers=1 and linear=None (actnorm and any "
    "standardize allowed); all with order=None (or the identity order)"
)
_RESOLVED_ULPS = 4096.0  # a latent difference below this many ulps is not resolved
_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(8)


class Structure(NamedTuple):
    """How a triangular flow's latent relates to its conditionals.

    Attributes:
      position: ``position[i]`` is the latent index ``pi(i)`` of data coordinate ``i``.
      base: ``"normal"`` (N(0, I)) or ``"uniform"`` (Uniform[0, 1]^d).
      pad: ``(dim,)`` a point inside the support, used for coordinates that do not matter.
    """

    position: tuple
    base: str
    pad: tuple


class CensoredLogProb(NamedTuple):
    """``log P(lower < X <= upper)`` per row ``(n,)`` and its standard error ``(n,)`` (0
    where the value is exact)."""

    log_prob: Array
    stderr: Array


# --------------------------------------------------------------------------- structure


def _spec_args(spec):
    if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str)):
        return None, {}
    try:
        return spec[0], dict(spec[1])
    except (TypeError, ValueError):
        return None, {}


def _why_not(flow) -> tuple[Optional[Structure], str]:
    """``(structure, "")`` for a qualifying flow, else ``(None, reason)``."""
    name, args = _spec_args(getattr(flow, "spec", None))
    d = flow.dim
    if name is None:
        return None, ("it was not built by a nitsjax.flows constructor (or has preprocessing "
                      "in front), so its structure is unknown")
    order = args.get("order")
    if order is not None and tuple(order) != tuple(range(d)):
        return None, (f"{name}(..., order={list(order)}) models the coordinates in another "
                      f"order, so its conditionals are not those of the data order")
    if name == "nits":
        if args.get("rotate", False):
            return None, "nits(..., rotate=True) mixes the coordinates by a learned rotation"
        bounds = getattr(flow, "bounds", None)
        pad = (0.0,) * d if bounds is None else tuple(0.5 * (bounds[0] + bounds[1]))
        return Structure(tuple(range(d)), "uniform", pad), ""
    if name in ("maf", "iaf", "realnvp", "nsf"):
        if args.get("layers") != 1:
            return None, (f"{name}(..., layers={args.get('layers')}): every layer after the "
                          f"first runs in the reversed order")
        if args.get("linear") is not None:
            return None, (f"{name}(..., linear={args.get('linear')!r}) mixes the order of "
                          f"the coordinates")
        # each layer ends with the coordinate reversal: z_(d-1-i) belongs to x_i
        return Structure(tuple(range(d - 1, -1, -1)), "normal", (0.0,) * d), ""
    return None, f"{name!r} flows are not triangular in the data order"


def structure(flow) -> Structure:
    """The ``Structure`` of a flow with exact distribution functions; raises ``ValueError``
    naming the flows that qualify otherwise (module docstring)."""
    s, why = _why_not(flow)
    if s is None:
        raise ValueError(
            f"flow: distribution functions (cdf, quantile, marginal_log_prob, "
            f"log_prob_censored, impute, log_prob_discrete) need a flow whose map is "
            f"triangular in the data order with a factorised base; this {flow.name!r} "
            f"flow is not: {why}. Supported: {SUPPORTED}"
        )
    return s


def is_triangular(flow) -> bool:
    """Whether ``flow`` supports the distribution functions of this module."""
    return _why_not(flow)[0] is not None


# ------------------------------------------------------------------- base, one-dimensional


def _base_ends(base, dtype):
    if base == "normal":
        return jnp.asarray(-jnp.inf, dtype), jnp.asarray(jnp.inf, dtype)
    return jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype)


def _base_cdf(base, z):
    return ndtr(z) if base == "normal" else jnp.clip(z, 0.0, 1.0)


def _base_log_pdf(base, z):
    if base == "normal":
        return jax.scipy.stats.norm.logpdf(z)
    return jnp.where((z >= 0.0) & (z <= 1.0), 0.0, -jnp.inf).astype(z.dtype)


def _base_quantile(base, u):
    return ndtri(u) if base == "normal" else u


def _log_mass(base, za, zb):
    """``log(G(zb) - G(za))`` for ``za <= zb``, stable in both tails."""
    if base == "uniform":
        za, zb = jnp.clip(za, 0.0, 1.0), jnp.clip(zb, 0.0, 1.0)
        diff = zb - za
        return jnp.log(jnp.where(diff > 0, diff, 0.0))
    flip = za > 0  # upper tail: P = Phi(-za) - Phi(-zb)
    lo, hi = jnp.where(flip, -zb, za), jnp.where(flip, -za, zb)
    log_hi, log_lo = log_ndtr(hi), log_ndtr(lo)
    gap = jnp.where(log_hi > log_lo, log_lo - log_hi, -1.0)  # guard the unused branch
    out = log_hi + jnp.log(-jnp.expm1(gap))
    return jnp.where(log_hi > log_lo, out, -jnp.inf)


def _resolved(base, za, zb):
    """Whether ``G(zb) - G(za)`` is resolved: for N(0, I), a latent difference above
    ``2^12`` ulps of the latents; for the uniform base (NITS: the latent is the CDF value
    itself, with an absolute rounding error of many ulps near 0 and 1), above
    ``sqrt(eps)`` (1.5e-8 in float64, 3.5e-4 in float32)."""
    eps = jnp.finfo(za.dtype).eps
    if base == "uniform":
        return (zb - za) > jnp.sqrt(eps)
    scale = jnp.maximum(1.0, jnp.maximum(jnp.abs(jnp.where(jnp.isfinite(za), za, 0.0)),
                                         jnp.abs(jnp.where(jnp.isfinite(zb), zb, 0.0))))
    return (zb - za) > _RESOLVED_ULPS * eps * scale


def _truncated_draw(base, za, zb, u):
    """A draw from the base's 1-D distribution truncated to ``[za, zb]``, from ``u`` in
    (0, 1), by inversion (reflected in the upper tail of the normal)."""
    if base == "uniform":
        lo, hi = jnp.clip(za, 0.0, 1.0), jnp.clip(zb, 0.0, 1.0)
        return lo + u * (hi - lo)
    flip = za > 0
    lo, hi = jnp.where(flip, -zb, za), jnp.where(flip, -za, zb)
    p_lo, p_hi = ndtr(lo), ndtr(hi)
    z = ndtri(p_lo + u * (p_hi - p_lo))
    z = jnp.where(flip, -z, z)
    return jnp.clip(z, za, zb)


# ------------------------------------------------------------------ per-row primitives


def _forward(flow, params, x, context):
    return flow.bijector.forward(params["bijector"], x, context, None)[0]


def _jvp(flow, params, x, i, context):
    """``(z, dz/dx_i)``, both (d,), at the row ``x`` (d,): one forward-mode pass."""
    tangent = jnp.zeros_like(x).at[i].set(1.0)
    return jax.jvp(lambda r: _forward(flow, params, r, context), (x,), (tangent,))


def _value_and_log_deriv(flow, st, params, x, i, context):
    """``(z_pi(i), log dz_pi(i)/dx_i)`` at the row ``x`` (d,) for coordinate ``i``."""
    z, dz = _jvp(flow, params, x, i, context)
    p = jnp.asarray(st.position)[i]
    return z[p], jnp.log(dz[p])


def _log_density_at(flow, st, params, x, i, v, context):
    """``log f_i(v | x_<i)``."""
    z, log_d = _value_and_log_deriv(flow, st, params, x.at[i].set(v), i, context)
    return _base_log_pdf(st.base, z) + log_d


def _latent_at(flow, st, params, x, values, context):
    """``z_pi(i)(x_<i, values_i)`` for every ``i``: (d,), one pass per coordinate."""
    pos = jnp.asarray(st.position)

    def one(i):
        return _forward(flow, params, x.at[i].set(values[i]), context)[pos[i]]

    return jax.vmap(one)(jnp.arange(flow.dim))


def _cdf_row(flow, st, params, x, context):
    z = _forward(flow, params, x, context)
    return _base_cdf(st.base, z[np.asarray(st.position)])


def _saturated(base, z):
    """True where a uniform-base latent (a CDF value) is exactly 0 or 1 (not resolved)."""
    if base == "normal":
        return jnp.zeros(jnp.shape(z), bool)
    return (z <= 0.0) | (z >= 1.0)


def _warn(saturated, what):
    """Warn when a conditional CDF the result relies on rounds to 0 or 1 (module
    docstring, "Tail limit"); ``saturated`` (n,) flags per row."""
    if isinstance(saturated, jax.core.Tracer):
        return
    rows = np.flatnonzero(np.asarray(saturated))
    if rows.size:
        warnings.warn(
            f"{what}: in {rows.size} row(s) (first: {rows[0]}) a conditional CDF of the "
            f"model rounds to 0 or 1 (far in its tails, beyond its floating-point "
            f"resolution), so the per-coordinate density there, a derivative of that CDF, "
            f"is unreliable for those rows; in float64 (jax.config.update("
            f"'jax_enable_x64', True) and float64 params) the range is wider",
            RuntimeWarning, stacklevel=3,
        )


def _quantile_row(flow, st, params, u, context):
    z = jnp.zeros_like(u).at[np.asarray(st.position)].set(_base_quantile(st.base, u))
    return flow.bijector.inverse(params["bijector"], z, context, None)[0]


def _marginal_row(flow, st, params, x_prefix, context):
    """``(log p(x_<k), saturated)`` for one row ``x_prefix`` (k,)."""
    k = x_prefix.shape[0]
    x = jnp.asarray(st.pad, x_prefix.dtype).at[:k].set(x_prefix)

    def one(i):
        z, log_d = _value_and_log_deriv(flow, st, params, x, i, context)
        return _base_log_pdf(st.base, z) + log_d, _saturated(st.base, z)

    terms, sat = jax.vmap(one)(jnp.arange(k))
    if k == flow.dim:
        return flow.log_prob_single(params, x_prefix, context), jnp.any(sat)
    return jnp.sum(terms), jnp.any(sat)


def _discrete_row(flow, st, params, x, width, context, dense):
    """``(log P_i per coordinate (d,), resolved (d,), saturated)`` for the bins ``x_i +-
    w_i / 2``; with ``dense`` (static), coordinates of width 0 give their log-density."""
    za = _latent_at(flow, st, params, x, x - 0.5 * width, context)
    zb = _latent_at(flow, st, params, x, x + 0.5 * width, context)
    log_p, ok = _log_mass(st.base, za, zb), _resolved(st.base, za, zb)
    sat = jnp.any(_saturated(st.base, za) | _saturated(st.base, zb))
    if dense:
        def one(i):
            z, log_d = _value_and_log_deriv(flow, st, params, x, i, context)
            return _base_log_pdf(st.base, z) + log_d

        log_f = jax.vmap(one)(jnp.arange(flow.dim))
        log_p, ok = jnp.where(width > 0, log_p, log_f), ok | (width == 0)
    return log_p, ok, sat


def _quadrature_row(flow, st, params, x, width, context):
    """``log int_{x_i - w/2}^{x_i + w/2} f_i(s | x_<i) ds`` per coordinate, by the 8-node
    Gauss-Legendre rule in log space."""
    nodes, weights = (jnp.asarray(a, x.dtype) for a in _GAUSS_LEGENDRE)

    def coordinate(i):
        s = x[i] + 0.5 * width[i] * nodes
        lf = jax.vmap(lambda v: _log_density_at(flow, st, params, x, i, v, context))(s)
        return jax.nn.logsumexp(lf + jnp.log(0.5 * width[i] * weights))

    return jax.vmap(coordinate)(jnp.arange(flow.dim))


def _particle(flow, st, params, key, lower, upper, context):
    """One GHK particle for one row: ``(x (d,), log weight, saturated)`` (module
    docstring; ``saturated``: an observed coordinate's CDF rounds to 0 or 1)."""
    d = flow.dim
    observed = lower == upper
    pos = jnp.asarray(st.position)
    low_end, high_end = _base_ends(st.base, lower.dtype)
    keys = jax.random.split(key, d)

    def body(i, carry):
        x, log_w, sat = carry
        a, b = lower[i], upper[i]
        a_ok, b_ok = jnp.isfinite(a), jnp.isfinite(b)
        xa = x.at[i].set(jnp.where(a_ok, a, 0.0))
        z_full, dz = _jvp(flow, params, xa, i, context)  # prefix latents: x_<i's
        za, log_d = z_full[pos[i]], jnp.log(dz[pos[i]])
        sat = sat | (observed[i] & _saturated(st.base, za))  # its density: see "Tail limit"
        za = jnp.where(a_ok, za, low_end)
        zb = _forward(flow, params, x.at[i].set(jnp.where(b_ok, b, 0.0)), context)[pos[i]]
        zb = jnp.where(b_ok, zb, high_end)
        factor = jnp.where(
            observed[i], _base_log_pdf(st.base, za) + log_d, _log_mass(st.base, za, zb)
        )
        u = jax.random.uniform(keys[i], (), lower.dtype, minval=jnp.finfo(lower.dtype).tiny)
        z_new = _truncated_draw(st.base, za, jnp.maximum(za, zb), u)
        x_new = flow.bijector.inverse(params["bijector"], z_full.at[pos[i]].set(z_new),
                                      context, None)[0][i]
        x = x.at[i].set(jnp.where(observed[i], a, x_new))
        return x, log_w + factor, sat

    x0 = jnp.asarray(st.pad, lower.dtype)
    return jax.lax.fori_loop(0, d, body, (x0, jnp.zeros((), lower.dtype), jnp.asarray(False)))


def _particles(flow, params, key, lower, upper, context, num):
    """``num`` particles per row: ``(x (n, num, d), log_w (n, num), saturated (n, num))``;
    rows one after the other (``lax.map``), particles of a row batched."""
    st = structure(flow)
    keys = jax.random.split(key, lower.shape[0])

    def row(args):
        k, lo, hi, c = args
        ks = jax.random.split(k, num)
        return jax.vmap(lambda kk: _particle(flow, st, params, kk, lo, hi, c))(ks)

    if context is None:
        return jax.lax.map(lambda a: row((*a, None)), (keys, lower, upper))
    return jax.lax.map(row, (keys, lower, upper, context))


# --------------------------------------------------------------------- compiled batches


def _rows(fn, flow, params, x, context, *extra):
    st = structure(flow)
    if context is None:
        return jax.vmap(lambda r: fn(flow, st, params, r, *extra, None))(x)
    return jax.vmap(lambda r, c: fn(flow, st, params, r, *extra, c))(x, context)


_cdf_compiled = jax.jit(
    lambda flow, params, x, c: _rows(_cdf_row, flow, params, x, c), static_argnums=0
)
_quantile_compiled = jax.jit(
    lambda flow, params, u, c: _rows(_quantile_row, flow, params, u, c), static_argnums=0
)
_marginal_compiled = jax.jit(
    lambda flow, params, x, c: _rows(_marginal_row, flow, params, x, c), static_argnums=0
)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _discrete_compiled(flow, params, x, width, context, dense):
    st = structure(flow)
    if context is None:
        return jax.vmap(lambda r: _discrete_row(flow, st, params, r, width, None, dense))(x)
    return jax.vmap(lambda r, c: _discrete_row(flow, st, params, r, width, c, dense))(
        x, context)


@functools.partial(jax.jit, static_argnums=0)
def _quadrature_compiled(flow, params, x, width, context):
    st = structure(flow)
    if context is None:
        return jax.vmap(lambda r: _quadrature_row(flow, st, params, r, width, None))(x)
    return jax.vmap(lambda r, c: _quadrature_row(flow, st, params, r, width, c))(x, context)


_particles_compiled = jax.jit(_particles, static_argnums=(0, 6))


def _log_mean_weight(log_w):
    """``log mean(w)`` per row and its standard error by the delta method,
    ``sd(w) / (sqrt(num) mean(w))``, from ``log_w`` (n, num)."""
    log_w = np.asarray(log_w, np.float64)
    num = log_w.shape[1]
    top = np.max(log_w, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.exp(log_w - top)
    mean = w.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean = np.log(mean) + top[:, 0]
        sd = w.std(axis=1, ddof=1) if num > 1 else np.zeros_like(mean)
        se = np.where(mean > 0, sd / (np.sqrt(num) * mean), np.inf)
    return log_mean, se


@functools.partial(jax.jit, static_argnums=2)
def _resample(key, log_w, n):
    """``n`` particle indices per row, drawn by the normalised weights: (n_rows, n)."""
    keys = jax.random.split(key, log_w.shape[0])
    return jax.vmap(lambda k, lw: jax.random.categorical(k, lw, shape=(n,)))(keys, log_w)


# -------------------------------------------------------------------------- public API


def _checked(flow, x, name, context):
    structure(flow)
    x = check_data(x, flow.dim, name)
    context = check_context(context, flow.context_dim, x.shape[0], "context")
    return jnp.asarray(x), context


def cdf(flow, params, x, context=None) -> Array:
    """Conditional CDFs ``F_i(x_i | x_<i)`` of each row of ``x`` (n, dim) -> (n, dim):
    the probability integral transform (uniform on data the model fits). One forward pass.
    """
    x, context = _checked(flow, x, "x", context)
    return _cdf_compiled(flow, params, x, context)


def quantile(flow, params, u, context=None) -> Array:
    """The inverse of ``cdf``: rows ``x`` (n, dim) with ``F_i(x_i | x_<i) = u_i``, for
    ``u`` (n, dim) in the open interval (0, 1) (sampling with given uniforms)."""
    structure(flow)
    u = as_float_array(u, "u")
    if u.ndim != 2 or u.shape[1] != flow.dim or u.shape[0] == 0:
        raise ValueError(f"u: expected shape (n, {flow.dim}) with n >= 1, got {tuple(u.shape)}")
    if not isinstance(u, jax.core.Tracer):
        a = np.asarray(u)
        bad = ~((a > 0) & (a < 1))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"u: expected probabilities in the open interval (0, 1) (0 and 1 map to the "
                f"ends of the support), got {int(bad.sum())} value(s) outside it, first at "
                f"index {idx} = {a[idx]}; clip with np.clip(u, eps, 1 - eps)"
            )
    context = check_context(context, flow.context_dim, u.shape[0], "context")
    return _quantile_compiled(flow, params, jnp.asarray(u), context)


def marginal_log_prob(flow, params, x_prefix, context=None) -> Array:
    """Exact log-density of the first ``k`` coordinates, ``x_prefix`` (n, k) with
    ``1 <= k <= dim`` -> (n,): ``sum_{i<k} log f_i(x_i | x_<i)``."""
    structure(flow)
    x = as_float_array(x_prefix, "x_prefix")
    if x.ndim != 2 or not 1 <= x.shape[1] <= flow.dim or x.shape[0] == 0:
        raise ValueError(
            f"x_prefix: expected shape (n, k) with n >= 1 and 1 <= k <= {flow.dim} (the "
            f"first k coordinates in the model's order), got {tuple(x.shape)}"
        )
    check_finite(x, "x_prefix")
    context = check_context(context, flow.context_dim, x.shape[0], "context")
    value, saturated = _marginal_compiled(flow, params, jnp.asarray(x), context)
    if x.shape[1] < flow.dim:  # the whole row: log_prob, exact in the tails
        _warn(saturated, "marginal_log_prob")
    return value


def _check_width(bin_width, dim, dtype):
    w = np.asarray(bin_width, np.float64)
    ok = w.shape in ((), (dim,)) and np.all(np.isfinite(w)) and np.all(w >= 0)
    if not ok or (w.shape == () and w == 0):
        raise ValueError(
            f"bin_width: expected a finite number > 0, or an array of shape ({dim},) of "
            f"numbers >= 0 (0: a continuous coordinate), got {bin_width!r}"
        )
    return np.broadcast_to(w, (dim,))


def log_prob_discrete(flow, params, x_int, bin_width=1.0, context=None) -> Array:
    """Log-probability of quantised rows ``x_int`` (n, dim) (counts, integer codes; the
    bin centres) -> (n,): ``sum_i log(F_i(x_i + w/2 | x_<i) - F_i(x_i - w/2 | x_<i))``
    with the prefix held at the observed values. Stable in log space (module docstring).

    ``bin_width``: ``w``, a number or one per coordinate (dim,); a width of 0 marks a
    continuous coordinate, whose term is then its log-density ``log f_i(x_i | x_<i)``
    (mixed discrete and continuous columns). The bins ``[x - w/2, x + w/2)`` are those of
    ``nj.fit``'s dequantisation ``x + (u - 1/2) w``: pass the grid values themselves."""
    structure(flow)
    a = np.asarray(x_int)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"x_int: expected an integer or float array, got dtype {a.dtype}")
    dtype = jnp.result_type(float)
    x = jnp.asarray(check_data(a.astype(np.float64), flow.dim, "x_int"), dtype)
    w = _check_width(bin_width, flow.dim, dtype)
    width = jnp.asarray(w, dtype)
    context = check_context(context, flow.context_dim, x.shape[0], "context")
    log_p, ok, saturated = _discrete_compiled(flow, params, x, width, context,
                                              bool(np.any(w == 0)))
    if not bool(jnp.all(ok)):  # the fallback relies on densities: see "Tail limit"
        log_q = _quadrature_compiled(flow, params, x, width, context)
        log_p = jnp.where(ok, log_p, log_q)
        _warn(saturated & ~jnp.all(ok, axis=1), "log_prob_discrete")
    return jnp.sum(log_p, axis=1)


def _check_bounds(flow, lower, upper):
    lo = as_float_array(lower, "lower")
    hi = as_float_array(upper, "upper")
    for name, v in (("lower", lo), ("upper", hi)):
        if v.ndim != 2 or v.shape[1] != flow.dim or v.shape[0] == 0:
            raise ValueError(
                f"{name}: expected shape (n, {flow.dim}) with n >= 1, got {tuple(v.shape)}"
            )
    if lo.shape != hi.shape:
        raise ValueError(f"lower, upper: expected the same shape, got {tuple(lo.shape)} and "
                         f"{tuple(hi.shape)}")
    a, b = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    for name, v in (("lower", a), ("upper", b)):
        if np.isnan(v).any():
            idx = tuple(int(i) for i in np.argwhere(np.isnan(v))[0])
            raise ValueError(f"{name}: NaN at index {idx}; use -inf / inf for an open end")
    checks = (
        (a > b, "lower > upper", "each coordinate needs lower <= upper"),
        ((a == b) & ~np.isfinite(a), "an observed coordinate (lower == upper) is infinite",
         "observed values must be finite"),
        (np.isposinf(a) | np.isneginf(b), "an empty interval (lower = inf or upper = -inf)",
         "use a finite bound"),
    )
    for bad, what, fix in checks:
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            raise ValueError(
                f"lower, upper: {what} at row {i}, coordinate {j} (lower={a[i, j]}, "
                f"upper={b[i, j]}); {fix}"
            )
    lo = jnp.asarray(lo)
    return lo, jnp.asarray(hi, lo.dtype), a == b


def log_prob_censored(
    flow, params, lower, upper, context=None, *, key=None, num_samples: int = 1000
) -> CensoredLogProb:
    """``log P(lower < X <= upper)`` per row, observed coordinates (``lower == upper``)
    as density factors, the others interval-censored (``-inf`` / ``inf`` for open ends).

    Exact (``stderr`` 0) when only the last coordinate of each row is censored; otherwise
    the GHK estimate from ``num_samples`` particles drawn with ``key`` (module
    docstring). Returns ``CensoredLogProb(log_prob (n,), stderr (n,))``.
    """
    structure(flow)
    lo, hi, observed = _check_bounds(flow, lower, upper)
    context = check_context(context, flow.context_dim, lo.shape[0], "context")
    exact = bool(observed[:, :-1].all())
    if exact:  # one particle: its weight does not depend on the draw
        _, log_w, sat = _particles_compiled(flow, params, jax.random.key(0), lo, hi, context, 1)
        _warn(jnp.any(sat, axis=1), "log_prob_censored")
        log_p = jnp.asarray(log_w[:, 0])
        return CensoredLogProb(log_p, jnp.zeros_like(log_p))
    if key is None:
        i, j = (int(k) for k in np.argwhere(~observed[:, :-1])[0])
        raise ValueError(
            f"key: row {i} has coordinate {j} censored before the last one, so "
            f"log_prob_censored estimates the probability by importance sampling; pass "
            f"key=jax.random.key(...) (and num_samples=... for its accuracy)"
        )
    check_key(key, "key")
    num = check_positive_int(num_samples, "num_samples", minimum=2)
    _, log_w, sat = _particles_compiled(flow, params, key, lo, hi, context, num)
    _warn(jnp.any(sat, axis=1), "log_prob_censored")
    log_p, se = _log_mean_weight(log_w)
    return CensoredLogProb(jnp.asarray(log_p, lo.dtype), jnp.asarray(se, lo.dtype))


def _check_mask(flow, x, mask):
    x = as_float_array(x, "x")
    if x.ndim != 2 or x.shape[1] != flow.dim or x.shape[0] == 0:
        raise ValueError(f"x: expected shape (n, {flow.dim}) with n >= 1, got {tuple(x.shape)}")
    m = np.asarray(mask)
    if m.shape != tuple(x.shape):
        raise ValueError(
            f"mask: expected a boolean array of the shape of x, {tuple(x.shape)} (True = "
            f"missing), got shape {m.shape}"
        )
    if m.dtype != bool:
        raise TypeError(f"mask: expected a boolean array (True = missing), got dtype {m.dtype}")
    a = np.asarray(x)
    bad = ~np.isfinite(a) & ~m
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"x: a non-finite value at index {idx} = {a[idx]} that the mask says is observed; "
            f"mark it missing (mask[{idx[0]}, {idx[1]}] = True)"
        )
    return a, m


def impute(
    flow, params, key, x, mask, n: int, context=None, *, proposals: int = 1000
) -> Array:
    """``n`` draws of the missing entries of ``x`` (rows, dim) given the observed ones:
    ``mask`` (rows, dim) is True where an entry is missing (its value in ``x`` is ignored,
    NaN allowed). Returns (n, rows, dim): ``x`` with the missing entries filled.

    Exact when the missing entries of every row form a suffix (ancestral sampling);
    otherwise sampling-importance-resampling of ``proposals`` particles per row drawn
    from the model's own conditionals (module docstring)."""
    structure(flow)
    check_key(key, "key")
    a, m = _check_mask(flow, x, mask)
    n = check_positive_int(n, "n")
    proposals = check_positive_int(proposals, "proposals")
    context = check_context(context, flow.context_dim, a.shape[0], "context")
    dtype = jnp.result_type(float) if a.dtype == np.float64 else a.dtype
    lo = jnp.asarray(np.where(m, -np.inf, a), dtype)
    hi = jnp.asarray(np.where(m, np.inf, a), dtype)
    # exact iff no observed entry follows a missing one in any row
    exact = not bool((np.cumsum(m, axis=1) > 0)[~m].any())
    k1, k2 = jax.random.split(key)
    x, log_w, sat = _particles_compiled(flow, params, k1, lo, hi, context,
                                        n if exact else proposals)
    _warn(jnp.any(sat, axis=1), "impute")
    if not exact:  # sampling-importance-resampling
        x = jnp.take_along_axis(x, _resample(k2, log_w, n)[:, :, None], axis=1)
    return jnp.swapaxes(x, 0, 1)


def importance_particles(flow, params, key, lower, upper, num: int, context=None):
    """The estimator behind ``log_prob_censored`` and ``impute``: ``num`` GHK particles
    per row, ``(x (n, num, dim), log_weights (n, num))``. ``log_weights`` are the log of
    the unbiased estimate of ``P(lower < X <= upper)`` per particle; their effective
    sample size ``exp(2 logsumexp(lw) - logsumexp(2 lw))`` measures the estimator's
    reliability."""
    structure(flow)
    check_key(key, "key")
    lo, hi, _ = _check_bounds(flow, lower, upper)
    num = check_positive_int(num, "num")
    context = check_context(context, flow.context_dim, lo.shape[0], "context")
    x, log_w, sat = _particles_compiled(flow, params, key, lo, hi, context, num)
    _warn(jnp.any(sat, axis=1), "importance_particles")
    return x, log_w
