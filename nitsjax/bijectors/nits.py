"""Autoregressive NITS as a bijector: data to the uniform latent by conditional CDFs.

Li & Kluger, "Neural Inverse Transform Sampler", ICML 2022. A residual MADE conditioner
produces, from ``t_<i`` (and an optional context), the parameters of a 1-D PNN for every
coordinate ``i`` (``nitsjax.bijectors.pnn``); then

    forward:  u_i = F_i(t_i | t_<i),   log|det du/dt| = sum_i log f_i(t_i | t_<i)
    inverse:  d sequential passes, pass i solves F_i(t_i | t_<i) = u_i for t_i only

so ``log p(t) = sum_i log f_i(t_i | t_<i)`` against the ``Uniform[0, 1]^d`` base.

The PNNs live on the canonical cube ``[0, 1]^d``; a fixed map in front takes the data
there (layers run in this order, data side first):

- optional learned rotation ``z = Q^T x``, ``Q`` from the QR decomposition of a free
  matrix (orthogonal, so no Jacobian term), as in the original code's ``rotate=True``;
- bounded support (``bounds=(A, B)``, scalars or per-dimension arrays): the affine map
  ``t = (x - A) / (B - A)``. A point with any coordinate outside ``[A, B]`` (after the
  rotation, if any) gets log-density ``-inf`` and latent clipped into [0, 1]: an explicit,
  documented rule, never NaN. (``nitsjax.flows.nits.nits`` raises instead by default.)
- unbounded support (default): the elementwise logistic squash ``t = sigmoid((x - loc) /
  scale)`` or (``squash="normal"``) the Gaussian CDF ``t = Phi((x - loc) / scale)``, fixed
  or learned, so the support is all of R^d and no test point is lost. With the PNNs at
  their identity initialisation the model is a product of logistics (or of Gaussians).

Bounds should come from the training data only, with a margin: ``support_from_data``
(the original code used min/max over train, validation and test; that leaks the test set).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import Bijector, Transformer, chain, elementwise, inverse_only
from nitsjax.bijectors.elementwise import logistic_transformer
from nitsjax.bijectors.pnn import DEFAULT_MONOTONIC_CONST, check_arch, pnn_transformer
from nitsjax.validation import as_float_array, check_finite, check_positive_int

Array = jax.Array


# ----------------------------------------------------------------------------- support


def support_from_data(x_train, margin: float = 0.1, *, rotation_invariant: bool = False):
    """Per-dimension bounds ``(low, high)`` from TRAINING data, widened by a margin.

    ``low = min - margin * range`` and ``high = max + margin * range`` per column (a
    constant column gets a range of 1). With ``rotation_invariant=True`` every dimension
    gets ``[-R, R]`` with ``R = (1 + margin) * max ||x||``, which contains every rotation of
    the training data (use it with ``rotate=True``).

    Args:
      x_train: ``(n, dim)`` training data. Never include validation or test rows.
      margin: fraction of the range added on each side (>= 0).

    Returns:
      ``(low, high)``, two float NumPy arrays of shape ``(dim,)``.
    """
    x = np.asarray(as_float_array(x_train, "x_train"), np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x_train: expected shape (n, dim) with n >= 1, got {x.shape}")
    check_finite(x, "x_train")
    margin = float(margin)
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin: expected a finite float >= 0, got {margin}")
    if rotation_invariant:
        r = (1.0 + margin) * float(np.max(np.linalg.norm(x, axis=1)))
        r = r if r > 0 else 1.0
        return np.full(x.shape[1], -r), np.full(x.shape[1], r)
    lo, hi = x.min(0), x.max(0)
    rng = np.where(hi > lo, hi - lo, 1.0)
    return lo - margin * rng, hi + margin * rng


def check_bounds(bounds, dim: int, name: str = "bounds"):
    """``(A, B)`` as two float64 arrays of shape ``(dim,)``, finite, ``A < B``."""
    try:
        lo, hi = bounds
        lo = np.broadcast_to(np.asarray(lo, np.float64), (dim,)).copy()
        hi = np.broadcast_to(np.asarray(hi, np.float64), (dim,)).copy()
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{name}: expected (A, B) with A, B floats or arrays of shape ({dim},), got "
            f"{bounds!r}"
        ) from err
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"{name}: expected finite bounds, got low={lo}, high={hi}")
    if np.any(lo >= hi):
        i = int(np.argmax(lo >= hi))
        raise ValueError(f"{name}: expected A < B in every dimension, dimension {i} has "
                         f"A={lo[i]}, B={hi[i]}")
    return lo, hi


# ------------------------------------------------------------------ fixed front layers


def rotation(dim: int) -> Bijector:
    """Learned rotation ``z = Q^T x`` with ``Q`` the orthogonal factor of a free matrix
    (``jnp.linalg.qr``); ``|det Q| = 1`` so the log-det is 0. The free matrix starts as a
    standard normal draw, as in the original code."""
    check_positive_int(dim, "dim")

    def init(key):
        return {"matrix": jax.random.normal(key, (dim, dim))}

    def _q(params, dtype):
        return jnp.linalg.qr(params["matrix"].astype(dtype))[0]

    def forward(params, x, context=None, key=None):
        return x @ _q(params, x.dtype), jnp.zeros((), x.dtype)

    def inverse(params, z, context=None, key=None):
        return _q(params, z.dtype) @ z, jnp.zeros((), z.dtype)

    return Bijector(init, forward, inverse, event_size=dim, name="rotation")


def unit_box(low, high) -> Bijector:
    """Fixed affine map of the box ``[low, high]`` onto ``[0, 1]^dim`` (no params)."""
    low = np.asarray(low, np.float64)
    high = np.asarray(high, np.float64)
    width = high - low
    log_det = float(-np.sum(np.log(width)))

    def forward(params, x, context=None, key=None):
        return (x - low.astype(x.dtype)) / width.astype(x.dtype), jnp.asarray(log_det, x.dtype)

    def inverse(params, t, context=None, key=None):
        return low.astype(t.dtype) + width.astype(t.dtype) * t, jnp.asarray(-log_det, t.dtype)

    return Bijector(lambda key: {}, forward, inverse, event_size=low.size, name="unit_box",
                    conditional_inverse=inverse_only(inverse))


def _squash(dim: int, loc, scale, learn: bool, transformer: Transformer) -> Bijector:
    """``elementwise(transformer)`` with ``theta = (loc, log scale)`` per dimension, fixed
    or learned (params ``{"theta": (dim, 2)}``): ``t = cdf((x - loc) / scale)``."""
    check_positive_int(dim, "dim")
    loc0 = np.broadcast_to(np.asarray(loc, np.float64), (dim,)).astype(np.float32)
    scale0 = np.broadcast_to(np.asarray(scale, np.float64), (dim,))
    if not np.all(np.isfinite(loc0)):
        raise ValueError(f"squash_loc: expected finite values, got {loc!r}")
    if not (np.all(np.isfinite(scale0)) and np.all(scale0 > 0)):
        raise ValueError(f"squash_scale: expected finite values > 0, got {scale!r}")
    theta = np.stack([loc0, np.log(scale0).astype(np.float32)], axis=-1)
    return elementwise(transformer, dim, theta=theta, learn=learn, name="squash")


def normal_cdf_transformer() -> Transformer:
    """The scalar ``t = Phi((x - loc) / scale)``, ``theta = (loc, log_scale)``: log-det
    ``log phi(y) - log_scale`` (exact in the tails); the inverse is ``ndtri`` with ``t``
    clamped into the open interval ``[tiny, 1 - ulp]`` so it stays finite."""

    def forward(theta, x):
        loc, log_scale = theta[0], theta[1]
        y = (x - loc) * jnp.exp(-log_scale)
        return jax.scipy.special.ndtr(y), jax.scipy.stats.norm.logpdf(y) - log_scale

    def inverse(theta, t):
        loc, log_scale = theta[0], theta[1]
        lo = jnp.finfo(t.dtype).tiny
        hi = jnp.nextafter(jnp.asarray(1.0, t.dtype), jnp.asarray(0.0, t.dtype))
        y = jax.scipy.special.ndtri(jnp.clip(t, lo, hi))
        return loc + jnp.exp(log_scale) * y, log_scale - jax.scipy.stats.norm.logpdf(y)

    return Transformer(2, forward, inverse, jnp.zeros(2))


def logistic_squash(dim: int, loc=0.0, scale=1.0, *, learn: bool = False) -> Bijector:
    """Elementwise ``t = sigmoid((x - loc) / scale)``: R^dim onto (0, 1)^dim.

    ``elementwise(logistic_transformer())`` (``nitsjax.bijectors.elementwise``, the same
    scalar map as ``sigmoid``): ``log dt/dx = log_sigmoid(y) + log_sigmoid(-y) - log
    scale`` with ``y = (x - loc) / scale``, exact in the tails (no underflow). Where ``t``
    rounds to 0 or 1 (|y| beyond ~16 in float32) the log-det stays exact; the inverse
    clamps ``t`` by ``sigmoid``'s domain rule, so samples are finite (|y| <= 16.7 in
    float32).

    ``learn=True`` makes ``loc`` and ``log(scale)`` per-dimension parameters (``{"theta":
    (dim, 2)}``) starting at the given values; otherwise they are fixed.
    """
    return _squash(dim, loc, scale, learn, logistic_transformer())


def normal_squash(dim: int, loc=0.0, scale=1.0, *, learn: bool = False) -> Bijector:
    """Elementwise Gaussian CDF ``t = Phi((x - loc) / scale)``: R^dim onto (0, 1)^dim.

    ``log dt/dx = log phi(y) - log scale`` with ``y = (x - loc) / scale``, computed exactly
    (``jax.scipy.stats.norm.logpdf``); the inverse is ``ndtri`` with ``t`` clamped into
    the open interval as in ``logistic_squash``. After a whitening layer
    (``nitsjax.bijectors.whiten``) and with the PNNs at their identity initialisation,
    NITS with this squash is the full-covariance Gaussian fitted to the data.

    Float32 tails: ``Phi(y)`` rounds to 1 above ``y ~ 5.3`` (to 0 only below ``y ~ -13``,
    where it underflows). The log-det stays exact there, so the density beyond is the
    Gaussian tail times the PNN density at ``t = 1`` (a finite, possibly different value
    than the PNN's density just inside), and ``|y| <= ~5.3`` on the upper side for
    samples. The logistic squash rounds only at ``|y| ~ 16.6``; in float64 ``Phi``
    rounds to 1 above ``y ~ 8.3``. Before rounding, the upper tail loses precision in
    float32 (``t`` near 1 has a spacing of 6e-8): the round trip ``x -> t -> x`` is
    accurate to ~1e-6 at ``y = 2`` but only ~2e-3 at ``y = 4.4``; the log-density of the
    forward pass is not affected (``log phi(y)`` is computed from ``y``).

    ``learn=True`` makes ``loc`` and ``log(scale)`` per-dimension parameters starting at
    the given values; otherwise they are fixed.
    """
    return _squash(dim, loc, scale, learn, normal_cdf_transformer())


_SQUASHES = {"logistic": logistic_squash, "normal": normal_squash}


def check_squash(squash) -> str:
    """``squash``: ``"logistic"`` or ``"normal"``."""
    if squash not in _SQUASHES:
        raise ValueError(
            f"squash: expected 'logistic' (sigmoid) or 'normal' (Gaussian CDF), got {squash!r}"
        )
    return squash


# ---------------------------------------------------------------------- the NITS layer


def autoregressive_nits(
    dim: int,
    *,
    arch: Sequence[int] = (16, 16),
    hidden: int = 1024,
    blocks: int = 4,
    context_dim: Optional[int] = None,
    dropout: float = 0.0,
    monotonic_const: float = DEFAULT_MONOTONIC_CONST,
    solver: str = "newton",
    tol: Optional[float] = None,
    degrees: str = "sequential",
    seed: int = 0,
) -> Bijector:
    """NITS on the unit cube: ``[0, 1]^dim -> [0, 1]^dim``, forward = conditional CDFs.

    A residual MADE (``hidden`` units, ``blocks`` residual blocks whose last layers start
    at zero, ``dropout`` inside the blocks; Nash & Durkan 2019, the NITS default is 1024
    units and 4 blocks) maps ``t_<i`` (and the context) to the PNN parameters of
    coordinate ``i``; its output layer starts at zero with bias = the PNN identity
    parameters, so a fresh layer is (close to) the identity on the cube.

    Args:
      arch: PNN hidden widths.
      solver, tol: inverse (sampling) solver and its tolerance on the unit interval
        (default 2^-22 in float32, 2^-40 in float64).
      monotonic_const: ``c`` of the PNN (floor of the density: ``f >= c / (1 + c)``).
    """
    check_positive_int(dim, "dim")
    check_positive_int(hidden, "hidden")
    check_positive_int(blocks, "blocks", minimum=0)
    transformer = pnn_transformer(
        check_arch(arch), (0.0, 1.0), monotonic_const=monotonic_const, solver=solver, tol=tol
    )
    return masked_autoregressive(
        transformer,
        dim,
        (hidden,) * (blocks + 1),
        context_dim=context_dim,
        residual=True,
        degrees=degrees,
        dropout=dropout,
        seed=seed,
    )


def nits_bijector(
    dim: int,
    *,
    arch: Sequence[int] = (16, 16),
    hidden: int = 1024,
    blocks: int = 4,
    context_dim: Optional[int] = None,
    dropout: float = 0.0,
    bounds=None,
    squash_loc=0.0,
    squash_scale=1.0,
    learn_squash: bool = False,
    squash: str = "normal",
    rotate: bool = False,
    monotonic_const: float = DEFAULT_MONOTONIC_CONST,
    solver: str = "newton",
    tol: Optional[float] = None,
    degrees: str = "sequential",
    seed: int = 0,
) -> Bijector:
    """The full NITS bijector R^dim (or a box) -> [0, 1]^dim, base ``Uniform[0, 1]^dim``.

    ``chain([rotation (if rotate), unit_box(bounds) or the squash, autoregressive_nits])``.
    Params are named by layer: ``{"rotation" (if rotate), "squash" or "unit_box",
    "made"}`` (the last holds the MADE conditioner's params).
    ``bounds=None`` (default) is the unbounded form; ``bounds=(A, B)`` (scalars or arrays
    of shape ``(dim,)``, see ``support_from_data``) the bounded one, where ``tol`` is a
    fraction of each dimension's width. See the module docstring for the support rules.
    ``squash`` selects the unbounded squash: ``"logistic"`` (``logistic_squash``) or
    ``"normal"`` (``normal_squash``, the Gaussian CDF); ``squash_loc``, ``squash_scale``
    and ``learn_squash`` are its arguments.
    """
    check_positive_int(dim, "dim")
    make_squash = _SQUASHES[check_squash(squash)]
    layers = []
    if rotate:
        layers.append(rotation(dim))
    if bounds is None:
        layers.append(make_squash(dim, squash_loc, squash_scale, learn=learn_squash))
    else:
        lo, hi = check_bounds(bounds, dim)
        layers.append(unit_box(lo, hi))
    layers.append(
        autoregressive_nits(
            dim, arch=arch, hidden=hidden, blocks=blocks, context_dim=context_dim,
            dropout=dropout, monotonic_const=monotonic_const, solver=solver, tol=tol,
            degrees=degrees, seed=seed,
        )
    )
    bij = chain(layers, name="nits")
    # jit: eager (op-by-op) callers compile the whole layer once; inside an outer jit it inlines
    return bij._replace(forward=jax.jit(bij.forward), inverse=jax.jit(bij.inverse))
