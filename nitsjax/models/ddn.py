"""Deconvolutional density network (Chen, Islam, Gao & Wang, "Deconvolutional Density
Network: Modeling Free-Form Conditional Distributions", AAAI 2022, arXiv 2105.14367).

A conditional density ``p(y | x)`` for a 1-D or 2-D target ``y``: the box of ``y`` values
is cut into ``bins`` equal bins per axis (a ``bins x bins`` grid for 2-D ``y``); an MLP
maps ``x`` to a small seed feature map, and transposed convolutions (deconvolutions,
stride 2) upsample it to one logit per bin, so neighbouring bins share parameters at every
scale (the paper's hierarchical smoothness, which lets many narrow bins be learned from
few rows). A softmax over the bins gives their probabilities and the density is constant
within each bin::

    log p(y | x) = log softmax(logits(x))[bin(y)] - log(bin volume)

and zero (``-inf``) outside the box. The last deconvolution starts at zero, so a fresh
model is the uniform density on the box.

The box (``y_bounds``) is either given or, with ``y_bounds=None``, set by data init from
the training targets: their range widened by ``margin`` (a fraction of the range, 10% by
default) on each side, so the model is scale-free. The inputs ``x`` are standardised by
their training mean and standard deviation (``nitsjax.models.conditional``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.models.conditional import ConditionalModel, _check_dims, hidden_layers
from nitsjax.validation import check_hidden, check_positive_int

#: rows named in an out-of-range error
_SHOW = 10


class _DDNNet(nn.Module):
    """x (n, x_dim) -> bin logits (n, bins) or (n, bins, bins)."""

    y_dim: int
    bins: int
    hidden: tuple
    channels: tuple
    kernel: int
    dropout: float

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        h = hidden_layers(x, self.hidden, self.dropout, deterministic)
        side = self.bins // 2 ** len(self.channels)
        seed = (side,) * self.y_dim + (self.channels[0],)
        h = nn.Dense(math.prod(seed))(h).reshape((x.shape[0],) + seed)
        outs = self.channels[1:] + (1,)
        for i, c in enumerate(outs):
            last = i == len(outs) - 1
            h = nn.ConvTranspose(
                c, (self.kernel,) * self.y_dim, strides=(2,) * self.y_dim, padding="SAME",
                kernel_init=nn.initializers.zeros if last else nn.initializers.lecun_normal(),
            )(nn.elu(h))
        return h[..., 0]


@dataclasses.dataclass(frozen=True)
class DDN(ConditionalModel):
    """A deconvolutional density network; build it with ``ddn(...)`` (module docstring).

    ``params = {"net": ..., "frozen": {"x_shift", "x_scale", "lower", "upper", "ready"}}``
    with ``lower``/``upper`` (y_dim,) the box of ``y``.
    """

    bins: int = 64
    y_bounds: Optional[tuple] = None
    hidden: tuple = (64, 64)
    channels: tuple = (32, 16)
    kernel: int = 5
    dropout: float = 0.0
    margin: float = 0.1

    name = "ddn"

    def _net(self):
        return _DDNNet(self.y_dim, self.bins, self.hidden, self.channels, self.kernel,
                       self.dropout)

    def _init_frozen(self):
        if self.y_bounds is None:  # placeholders until data init
            lo, hi = jnp.zeros(self.y_dim), jnp.ones(self.y_dim)
        else:
            lo = jnp.asarray([b[0] for b in self.y_bounds], jnp.result_type(float))
            hi = jnp.asarray([b[1] for b in self.y_bounds], jnp.result_type(float))
        return {"lower": lo, "upper": hi}

    def _data_init_frozen(self, frozen, y):
        if self.y_bounds is not None:
            return {}
        lo, hi = jnp.min(y, axis=0), jnp.max(y, axis=0)
        span = hi - lo
        pad = jnp.where(span > 0, self.margin * span, 0.5 * jnp.maximum(jnp.abs(lo), 1.0))
        return {"lower": lo - pad, "upper": hi + pad}

    # ------------------------------------------------------------- pure functions
    def log_bin_probs(self, params, x, key=None) -> jax.Array:
        """Log-probabilities of the bins given ``x`` (n, x_dim): (n, bins) for 1-D ``y``,
        (n, bins, bins) for 2-D (axis 1: bins of y_1, axis 2: bins of y_2)."""
        logits = self._apply(params, x, key)
        n = x.shape[0]
        return jax.nn.log_softmax(logits.reshape(n, -1), axis=-1).reshape(logits.shape)

    def log_bin_volume(self, params) -> jax.Array:
        """``log`` of the volume of one bin (a scalar)."""
        f = params["frozen"]
        return jnp.sum(jnp.log((f["upper"] - f["lower"]) / self.bins))

    def log_prob_batch(self, params, y, x, key=None) -> jax.Array:
        """``log p(y | x)``, ``y`` (n, y_dim), ``x`` (n, x_dim) -> (n,); ``-inf`` outside
        the box. Unchecked and traceable; with ``key`` in training mode (dropout)."""
        f = params["frozen"]
        n = y.shape[0]
        logp = self.log_bin_probs(params, x, key).reshape(n, -1)
        u = (y - f["lower"]) / (f["upper"] - f["lower"])  # position in the box, [0, 1]
        inside = jnp.all((u >= 0) & (u <= 1), axis=-1)
        idx = jnp.clip(jnp.floor(jnp.where(inside[:, None], u, 0.0) * self.bins), 0,
                       self.bins - 1).astype(jnp.int32)
        flat = idx[:, 0] if self.y_dim == 1 else idx[:, 0] * self.bins + idx[:, 1]
        lp = jnp.take_along_axis(logp, flat[:, None], axis=-1)[:, 0]
        return jnp.where(inside, lp - self.log_bin_volume(params), -jnp.inf)

    def sample_per_row(self, params, key, x, n: int) -> jax.Array:
        """``n`` draws for each row of ``x`` (m, x_dim) -> (n, m, y_dim): a bin drawn by
        its probability, then a uniform point within it. Unchecked and traceable."""
        f = params["frozen"]
        m = x.shape[0]
        k_bin, k_u = jax.random.split(key)
        logp = self.log_bin_probs(params, x).reshape(m, -1)
        flat = jax.random.categorical(k_bin, logp, shape=(n, m))
        idx = jnp.stack(jnp.unravel_index(flat, (self.bins,) * self.y_dim), axis=-1)
        u = jax.random.uniform(k_u, (n, m, self.y_dim), dtype=f["lower"].dtype)
        return f["lower"] + (idx + u) * (f["upper"] - f["lower"]) / self.bins

    # ---------------------------------------------------------------- checked API
    def bin_probs(self, params, x) -> jax.Array:
        """Bin probabilities given ``x`` (n, x_dim): (n, bins) or (n, bins, bins)."""
        x = self._check_pair(np.zeros((np.shape(x)[0], self.y_dim), np.float32), x)[1]
        self._check_ready(params)
        return jnp.exp(_log_bin_probs_compiled(self, params, x))

    def bin_edges(self, params) -> jax.Array:
        """Edges of the bins along each axis of ``y``: (y_dim, bins + 1)."""
        f = params["frozen"]
        t = jnp.linspace(0.0, 1.0, self.bins + 1)
        return f["lower"][:, None] + t[None] * (f["upper"] - f["lower"])[:, None]

    def _check_support(self, params, y, lp) -> None:
        bad = np.flatnonzero(np.isneginf(lp))
        if bad.size == 0:
            return
        lo = np.asarray(params["frozen"]["lower"]).tolist()
        hi = np.asarray(params["frozen"]["upper"]).tolist()
        rows = ", ".join(f"{int(i)} ({y[i].tolist()})" for i in bad[:_SHOW])
        more = f" and {bad.size - _SHOW} more" if bad.size > _SHOW else ""
        raise ValueError(
            f"y: {bad.size} row(s) outside the ddn's bin range [{lo}, {hi}] have density "
            f"zero: rows {rows}{more}; build the model with wider bounds, "
            f"ddn(..., y_bounds=...), or a larger margin= when the bounds come from the "
            "training targets (log_prob_batch returns -inf for such rows)"
        )


def ddn(
    x_dim: int,
    y_dim: int,
    *,
    bins: int = 64,
    y_bounds: Optional[Sequence[Any]] = None,
    hidden: Sequence[int] = (64, 64),
    channels: Sequence[int] = (32, 16),
    kernel: int = 5,
    dropout: float = 0.0,
    margin: float = 0.1,
) -> DDN:
    """A deconvolutional density network for ``p(y | x)`` (Chen et al., AAAI 2022).

    Args:
      x_dim: size of the conditioning input ``x``.
      y_dim: size of the target ``y``: 1 or 2.
      bins: bins per axis of ``y`` (2-D: a ``bins x bins`` grid); a multiple of
        ``2 ** len(channels)``.
      y_bounds: the box of ``y``: ``(lower, upper)`` for 1-D ``y``, ``((lower_1,
        upper_1), (lower_2, upper_2))`` for 2-D; rows outside it have density zero. None:
        set by data init from the training targets' range widened by ``margin``.
      hidden: widths of the MLP from ``x`` to the seed feature map.
      channels: channels of the seed map (``channels[0]``, with ``bins / 2**len(channels)``
        cells per axis) and of each stride-2 deconvolution after it; the last one
        outputs the logits.
      kernel: deconvolution kernel size per axis.
      dropout: dropout rate after each hidden layer (training only).
      margin: fraction of the training targets' range added on each side when
        ``y_bounds`` is None.
    """
    x_dim, y_dim = _check_dims(x_dim, y_dim, allowed=(1, 2))
    bins = check_positive_int(bins, "bins", minimum=2)
    hidden = check_hidden(hidden, "hidden")
    channels = check_hidden(channels, "channels")
    kernel = check_positive_int(kernel, "kernel")
    if bins % 2 ** len(channels):
        raise ValueError(
            f"bins: {bins} is not a multiple of 2**len(channels) = {2 ** len(channels)} "
            f"(each of the {len(channels)} deconvolutions doubles the resolution); pick "
            f"bins={max(1, bins // 2 ** len(channels)) * 2 ** len(channels)} or fewer channels"
        )
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout: expected a rate in [0, 1), got {dropout!r}")
    if not float(margin) >= 0.0:
        raise ValueError(f"margin: expected a fraction >= 0, got {margin!r}")
    return DDN(x_dim, y_dim, bins=bins, y_bounds=_check_bounds(y_bounds, y_dim),
               hidden=hidden, channels=channels, kernel=kernel, dropout=float(dropout),
               margin=float(margin))


def _check_bounds(y_bounds, y_dim: int) -> Optional[tuple]:
    """``y_bounds`` as ``((lower, upper), ...)`` per axis, each lower < upper, finite."""
    if y_bounds is None:
        return None
    b = np.asarray(y_bounds, dtype=object)
    if y_dim == 1 and b.shape == (2,):
        b = b[None]
    form = "(lower, upper)" if y_dim == 1 else "((lower_1, upper_1), (lower_2, upper_2))"
    try:
        b = np.asarray(b.tolist(), np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"y_bounds: expected numbers {form}, got {y_bounds!r}") from None
    if b.shape != (y_dim, 2):
        raise ValueError(f"y_bounds: expected {form} for y_dim={y_dim}, got {y_bounds!r}")
    if not np.isfinite(b).all() or not (b[:, 0] < b[:, 1]).all():
        axis = int(np.flatnonzero(~(np.isfinite(b).all(1) & (b[:, 0] < b[:, 1])))[0])
        raise ValueError(
            f"y_bounds: axis {axis} has lower={b[axis, 0]} and upper={b[axis, 1]}; expected "
            "finite bounds with lower < upper (or y_bounds=None to set them from the "
            "training targets)"
        )
    return tuple((float(lo), float(hi)) for lo, hi in b)


_log_bin_probs_compiled = jax.jit(lambda m, p, x: m.log_bin_probs(p, x), static_argnums=0)


__all__ = ["DDN", "ddn"]
