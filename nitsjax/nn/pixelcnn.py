"""A causal convolutional conditioner for images: PixelCNN++ streams with a per-pixel head.

Salimans, Karpathy, Chen & Kingma, "PixelCNN++: Improving the PixelCNN with Discretized
Logistic Mixture Likelihood and Other Modifications", ICLR 2017 (the architecture); van
den Oord et al., "Conditional Image Generation with PixelCNN Decoders", NeurIPS 2016 (the
two streams without a blind spot); Li & Kluger, "Neural Inverse Transform Sampler", ICML
2022 (its image model is this network with PNN outputs and optional causal attention).

Images are NHWC, ``(n, H, W, C)``, values scaled to about [-1, 1]. Raster order: pixel
``(i, j)`` comes after every pixel of rows ``< i`` and after ``(i, j')`` for ``j' < j``;
within a pixel the channels come in order ``0, 1, ..., C - 1`` (R, then G, then B).

- The *vertical* stream ``u`` sees only rows above: a down-shifted convolution (kernel
  ``(2, 3)`` over the current and the previous row, the result shifted down by one row).
- The *horizontal* stream ``ul`` sees everything before the pixel: down-shifted plus
  down-right-shifted convolutions (kernel ``(2, 2)``), shifted right by one column.
- Gated residual blocks with concat-ELU (``GatedResNet``), the ``u`` stream feeding the
  ``ul`` stream through 1x1 convolutions; an up pass over three resolutions (stride-2
  causal convolutions) and a down pass back (stride-2 causal transposed convolutions) with
  skip connections from every block of the up pass, as in PixelCNN++.
- Optional causal self-attention (``attention=True``): a pixel attends to every strictly
  earlier pixel, keys and values from the input image, the ``ul`` features and position
  channels, queries from ``ul`` and the position channels (as the original NITS code).

``PixelCNN`` then maps the features ``h`` of pixel ``(i, j)`` (which depend only on
earlier pixels) and the values of the earlier channels of the SAME pixel to ``C`` output
vectors (``ChannelHead``): ``out_c = W_c concat_elu(A_c h + B_c x_{<c}) + b_c``, so output
``c`` depends on pixels before ``(i, j)`` and on channels ``< c`` of ``(i, j)`` only (the
channel autoregression of PixelCNN++, with a hidden layer instead of its linear means).
The output layer starts at zero with bias ``out_bias``: a fresh network emits ``out_bias``
everywhere (for NITS, the PNN parameters of a flat CDF).
"""

from __future__ import annotations

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

#: LeCun-normal weights without truncation: a truncated normal per layer makes the
#: compiled init of this many layers slow to build, for no benefit here
KERNEL_INIT = nn.initializers.variance_scaling(1.0, "fan_in", "normal")


def _conv(features, kernel, stride=1):
    return nn.Conv(features, kernel, strides=stride, padding="VALID", kernel_init=KERNEL_INIT)


def _dense(features, **kw):
    return nn.Dense(features, kernel_init=kw.pop("kernel_init", KERNEL_INIT), **kw)


def concat_elu(x: Array) -> Array:
    """``elu([x, -x])`` along the last axis (doubles the channels; PixelCNN++)."""
    return nn.elu(jnp.concatenate([x, -x], axis=-1))


def down_shift(x: Array) -> Array:
    """Shift ``(n, H, W, F)`` down by one row (row 0 becomes zeros)."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x: Array) -> Array:
    """Shift ``(n, H, W, F)`` right by one column (column 0 becomes zeros)."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class DownShiftedConv(nn.Module):
    """Convolution whose output at row ``i`` sees input rows ``i - kh + 1 .. i`` only and
    columns centred on ``j``: zero padding above and on both sides, none below.
    ``(n, H, W, F_in) -> (n, ceil(H / s), ceil(W / s), features)`` for stride ``s``."""

    features: int
    kernel: tuple = (2, 3)
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel
        x = jnp.pad(x, ((0, 0), (kh - 1, 0), ((kw - 1) // 2, (kw - 1) // 2), (0, 0)))
        return _conv(self.features, (kh, kw), self.stride)(x)


class DownRightShiftedConv(nn.Module):
    """Convolution whose output at ``(i, j)`` sees rows ``i - kh + 1 .. i`` and columns
    ``j - kw + 1 .. j`` only (padding above and on the left)."""

    features: int
    kernel: tuple = (2, 2)
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel
        x = jnp.pad(x, ((0, 0), (kh - 1, 0), (kw - 1, 0), (0, 0)))
        return _conv(self.features, (kh, kw), self.stride)(x)


class DownShiftedDeconv(nn.Module):
    """Stride-2 transposed convolution, kernel ``(2, 3)``: coarse row ``i`` goes to fine
    rows ``2i, 2i + 1`` and coarse column ``j`` to ``2j - 1 .. 2j + 1``; cropped to
    ``out_hw`` (the fine map of the up pass). Keeps the vertical stream causal."""

    features: int
    out_hw: tuple

    @nn.compact
    def __call__(self, x):
        y = nn.ConvTranspose(self.features, (2, 3), strides=(2, 2), padding="VALID",
                             kernel_init=KERNEL_INIT)(x)
        h, w = self.out_hw
        return y[:, :h, 1 : 1 + w]


class DownRightShiftedDeconv(nn.Module):
    """Stride-2 transposed convolution, kernel ``(2, 2)``: coarse ``(i, j)`` goes to the
    fine ``2 x 2`` block at ``(2i, 2j)``; cropped to ``out_hw``."""

    features: int
    out_hw: tuple

    @nn.compact
    def __call__(self, x):
        y = nn.ConvTranspose(self.features, (2, 2), strides=(2, 2), padding="VALID",
                             kernel_init=KERNEL_INIT)(x)
        h, w = self.out_hw
        return y[:, :h, :w]


class GatedResNet(nn.Module):
    """``x + a * sigmoid(b)`` with ``[a, b] = conv(concat_elu(conv(concat_elu(x)) +
    nin(concat_elu(skip))))`` (PixelCNN++ eq. in section 2.4); ``conv`` is causal of
    the given kind (``"down"``: ``DownShiftedConv``, ``"down_right"``, or ``"nin"``: 1x1).
    ``(n, H, W, F) -> (n, H, W, F)``."""

    kind: str = "down"
    dropout: float = 0.0

    def _conv(self, features):
        if self.kind == "down":
            return DownShiftedConv(features, (2, 3))
        if self.kind == "down_right":
            return DownRightShiftedConv(features, (2, 2))
        return _dense(features)

    @nn.compact
    def __call__(self, x, skip: Optional[Array] = None, deterministic: bool = True):
        f = x.shape[-1]
        h = self._conv(f)(concat_elu(x))
        if skip is not None:
            h = h + _dense(f)(concat_elu(skip))
        h = concat_elu(h)
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        a, b = jnp.split(self._conv(2 * f)(h), 2, axis=-1)
        return x + a * jax.nn.sigmoid(b)


def positions(n: int, h: int, w: int, dtype) -> Array:
    """Two channels of row and column coordinates in [-1/2, 1/2): ``(n, H, W, 2)``."""
    rows = (jnp.arange(h, dtype=dtype) - h / 2) / h
    cols = (jnp.arange(w, dtype=dtype) - w / 2) / w
    grid = jnp.stack(jnp.meshgrid(rows, cols, indexing="ij"), axis=-1)
    return jnp.broadcast_to(grid, (n, h, w, 2))


class CausalSelfAttention(nn.Module):
    """Single-head attention of every pixel over the STRICTLY earlier pixels (raster
    order), as in the NITS code's attention block: keys and values from ``[x, ul, pos]``
    (``x`` at an earlier pixel is allowed), queries from ``[ul, pos]``; the result enters
    ``ul`` through a gated residual block. The first pixel attends to nothing (zeros).
    ``(n, H, W, F) -> (n, H, W, F)``; memory ``O(n (HW)^2)``."""

    key_size: int = 16
    dropout: float = 0.0

    @nn.compact
    def __call__(self, ul, x, deterministic: bool = True):
        n, h, w, f = ul.shape
        pos = positions(n, h, w, ul.dtype)
        kv_in = jnp.concatenate([x, ul, pos], axis=-1)
        q_in = jnp.concatenate([ul, pos], axis=-1)
        keys = _dense(self.key_size)(concat_elu(kv_in)).reshape(n, h * w, -1)
        values = _dense(max(f // 2, 1))(concat_elu(kv_in)).reshape(n, h * w, -1)
        queries = _dense(self.key_size)(concat_elu(q_in)).reshape(n, h * w, -1)
        logits = jnp.einsum("nqk,npk->nqp", queries, keys) / math.sqrt(self.key_size)
        mask = jnp.tril(jnp.ones((h * w, h * w), bool), k=-1)  # key p < query q
        logits = jnp.where(mask, logits, -jnp.inf)
        top = jnp.max(jnp.where(mask, logits, -1e30), axis=-1, keepdims=True)
        weights = jnp.where(mask, jnp.exp(logits - top), 0.0)
        weights = weights / jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1e-30)
        att = jnp.einsum("nqp,npv->nqv", weights, values).reshape(n, h, w, -1)
        return GatedResNet("nin", self.dropout)(ul, att, deterministic)


def _levels(h: int, w: int, stages: int) -> int:
    """Resolutions used: at most ``stages``, halving while both sides stay >= 2."""
    levels = 1
    while levels < stages and min(h, w) >= 2:
        h, w = -(-h // 2), -(-w // 2)
        levels += 1
    return levels


class PixelCNNFeatures(nn.Module):
    """The PixelCNN++ body: ``(n, H, W, C)`` image -> ``(n, H, W, filters)`` features where
    the features of pixel ``(i, j)`` depend only on the pixels before it (raster order).

    Attributes:
      filters: channels of both streams (PixelCNN++: 160; NITS' CIFAR-10 model: 160).
      resnets: gated residual blocks per resolution in the up pass (the down pass has one
        more at the two coarser resolutions, as PixelCNN++; paper: 5).
      attention: causal self-attention at full resolution after the down pass.
      dropout: dropout rate inside the residual blocks (PixelCNN++: 0.5 on CIFAR-10).
      stages: number of resolutions (3 in PixelCNN++: full, 1/2, 1/4).
    """

    filters: int = 32
    resnets: int = 2
    attention: bool = False
    dropout: float = 0.0
    stages: int = 3

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        n, h, w, _ = x.shape
        f, det = self.filters, deterministic
        xin = jnp.concatenate([x, jnp.ones((n, h, w, 1), x.dtype)], axis=-1)  # marks borders
        u = down_shift(DownShiftedConv(f, (2, 3))(xin))
        ul = down_shift(DownShiftedConv(f, (1, 3))(xin)) + right_shift(
            DownRightShiftedConv(f, (2, 1))(xin)
        )
        us, uls, sizes = [u], [ul], [(h, w)]
        levels = _levels(h, w, self.stages)
        for level in range(levels):  # up pass
            for _ in range(self.resnets):
                u = GatedResNet("down", self.dropout)(u, None, det)
                ul = GatedResNet("down_right", self.dropout)(ul, u, det)
                us.append(u)
                uls.append(ul)
            if level < levels - 1:
                u = DownShiftedConv(f, (2, 3), stride=2)(u)
                ul = DownRightShiftedConv(f, (2, 2), stride=2)(ul)
                us.append(u)
                uls.append(ul)
                sizes.append(u.shape[1:3])
        u, ul = us.pop(), uls.pop()
        for level in range(levels):  # down pass
            for _ in range(self.resnets + (1 if level > 0 else 0)):
                u = GatedResNet("down", self.dropout)(u, us.pop(), det)
                ul = GatedResNet("down_right", self.dropout)(
                    ul, jnp.concatenate([u, uls.pop()], axis=-1), det
                )
            if level < levels - 1:
                sizes.pop()
                u = DownShiftedDeconv(f, sizes[-1])(u)
                ul = DownRightShiftedDeconv(f, sizes[-1])(ul)
        assert not us and not uls
        if self.attention:
            ul = CausalSelfAttention(dropout=self.dropout)(ul, x, det)
        return nn.elu(ul)


class ChannelHead(nn.Module):
    """Per-pixel outputs with channel autoregression: features ``h`` ``(..., F)`` and the
    pixel's own values ``x`` ``(..., C)`` -> ``(..., C, out_dim)`` where output ``c`` uses
    ``x[..., :c]`` only. ``channels`` selects which outputs to compute (default all)."""

    channels: int
    out_dim: int
    hidden: int
    out_bias: Optional[np.ndarray] = None

    def setup(self):
        bias = np.zeros(self.out_dim, np.float32) if self.out_bias is None else self.out_bias
        value = jnp.asarray(bias, jnp.float32)
        self.from_h = [_dense(self.hidden) for _ in range(self.channels)]
        self.from_x = [_dense(self.hidden, use_bias=False) for _ in range(1, self.channels)]
        self.out = [
            nn.Dense(
                self.out_dim,
                kernel_init=nn.initializers.zeros,
                bias_init=lambda key, shape, dtype=jnp.float32: value.astype(dtype),
            )
            for _ in range(self.channels)
        ]

    def channel(self, c: int, h: Array, x: Array) -> Array:
        """Output ``c`` ``(..., out_dim)`` from ``h`` and ``x[..., :c]``."""
        g = self.from_h[c](h)
        if c > 0:
            g = g + self.from_x[c - 1](x[..., :c])
        return self.out[c](concat_elu(g))

    def __call__(self, h, x):
        return jnp.stack([self.channel(c, h, x) for c in range(self.channels)], axis=-2)


class PixelCNN(nn.Module):
    """Causal conditioner: image ``(n, H, W, C)`` (values about [-1, 1]) ->
    ``(n, H, W, C, out_dim)``, output ``(i, j, c)`` a function of the pixels before
    ``(i, j)`` and of channels ``< c`` of ``(i, j)`` (module docstring).

    Methods for sampling pixel by pixel: ``features(x)`` -> ``(n, H, W, filters)`` and
    ``channel(c, h, x_pixel)`` -> ``(n, out_dim)`` for one pixel's features ``h`` ``(n,
    filters)`` and values ``x_pixel`` ``(n, C)``.
    """

    channels: int
    out_dim: int
    filters: int = 32
    resnets: int = 2
    attention: bool = False
    dropout: float = 0.0
    stages: int = 3
    out_bias: Optional[np.ndarray] = None

    def setup(self):
        self.body = PixelCNNFeatures(
            self.filters, self.resnets, self.attention, self.dropout, self.stages
        )
        self.head = ChannelHead(self.channels, self.out_dim, self.filters, self.out_bias)

    def features(self, x, deterministic: bool = True):
        return self.body(x, deterministic)

    def channel(self, c: int, h, x_pixel):
        return self.head.channel(c, h, x_pixel)

    def __call__(self, x, deterministic: bool = True):
        return self.head(self.body(x, deterministic), x)


def init_params(net: PixelCNN, key, shape) -> dict:
    """The ``params`` collection of ``net`` for images of ``shape = (H, W, C)``.

    Kernels are LeCun-normal (standard deviation ``1 / sqrt(fan_in)``), biases zero, the
    head's output layers zero with bias ``out_bias`` (as the modules' own initialisers),
    but drawn in ONE random call: flax's per-layer draws make the compiled ``net.init`` of
    this many layers take tens of seconds to build on a CPU."""
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    tree = jax.eval_shape(net.init, jax.random.key(0), x)["params"]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)

    def role(path):
        names = [getattr(k, "key", str(k)) for k in path]
        output = len(names) >= 2 and names[0] == "head" and names[1].startswith("out_")
        return names[-1], output

    sizes = [leaf.size for path, leaf in leaves if role(path) == ("kernel", False)]
    noise = jax.random.normal(key, (sum(sizes),), jnp.float32)
    bias = np.zeros(net.out_dim, np.float32) if net.out_bias is None else net.out_bias
    out, start = [], 0
    for path, leaf in leaves:
        kind, output = role(path)
        if kind == "kernel" and not output:
            fan_in = math.prod(leaf.shape[:-1])
            out.append(noise[start : start + leaf.size].reshape(leaf.shape) / math.sqrt(fan_in))
            start += leaf.size
        elif kind == "bias" and output:
            out.append(jnp.asarray(bias, jnp.float32).reshape(leaf.shape))
        else:
            out.append(jnp.zeros(leaf.shape, leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, out)
