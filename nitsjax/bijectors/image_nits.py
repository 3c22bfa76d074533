"""NITS on 8-bit images: a causal PixelCNN++ conditioner emitting one PNN per sub-pixel.

Li & Kluger, "Neural Inverse Transform Sampler", ICML 2022, section 5 (images): the
conditional of sub-pixel ``(i, j, c)`` given the pixels before ``(i, j)`` (raster order)
and the channels ``< c`` of ``(i, j)`` is a PNN (``nitsjax.bijectors.pnn``) whose
parameters come from ``nitsjax.nn.pixelcnn.PixelCNN`` (Salimans et al., ICLR 2017).

Scale: the 8-bit data scale. Pixel value ``v`` in ``0..255`` is the centre of the bin
``[v - 1/2, v + 1/2]`` (as PixelCNN++), and the continuous model lives on
``[-1/2, 255.5]^D``, the PNNs' canonical interval ``t = (x + 1/2) / 256``.

- Continuous (the bijector): ``u = F(x)`` sub-pixel by sub-pixel, ``log|det| = sum log
  f(x)``: the density of the continuous model; with uniformly dequantised data ``x + u -
  1/2``, ``u ~ U[0, 1)^D``, its expectation is a lower bound on ``log P(x)``
  (Theis et al., ICLR 2016).
- Discrete (``discrete_log_prob``): ``log P(v) = sum log(F(v + 1/2) - F(v - 1/2))``, the
  first bin taking all mass below ``1/2`` and the last all mass above ``254.5`` (here the
  ends of the support, so the bins partition it exactly: the 256 probabilities of a
  sub-pixel sum to one). Where the difference is below ``100 eps`` of the dtype (it can
  lose its relative precision there) the log-mass is ``log f(v) + log(bin width)``, the
  midpoint rule, as PixelCNN++ does; with the default ``monotonic_const`` the PNN density
  keeps every bin above ~4e-5, so float32 never needs it.

The inverse (sampling) runs pixel by pixel inside one ``lax.fori_loop``: at pixel ``p``
the conditioner's features are recomputed on the image so far, then the channels are
solved in order by the PNN transformer's bracketing solver (``nitsjax.root_finding``).

Events are rows of ``D = H * W * C`` values in ``(H, W, C)`` row-major order, or ``(C, H,
W)`` order with ``channels_first`` (CIFAR-10's binary layout).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Bijector
from nitsjax.bijectors.pnn import (
    DEFAULT_MONOTONIC_CONST,
    check_arch,
    identity_params,
    num_params,
    pnn_transformer,
    prepare,
    prepared_cdf_and_log_pdf,
)
from nitsjax.nn.pixelcnn import PixelCNN, init_params
from nitsjax.validation import check_positive_int

Array = jax.Array

LEVELS = 256
LOW, HIGH = -0.5, LEVELS - 0.5  # the continuous support of one sub-pixel
WIDTH = HIGH - LOW


def check_shape(shape) -> tuple[int, int, int]:
    """``(H, W, C)``: three positive ints (a 2-D ``(H, W)`` means one channel)."""
    try:
        dims = tuple(shape)
    except TypeError as err:
        raise ValueError(f"shape: expected (H, W, C) or (H, W), got {shape!r}") from err
    if len(dims) == 2:
        dims = dims + (1,)
    if len(dims) != 3 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in dims
    ):
        raise ValueError(f"shape: expected (H, W, C) of positive ints, e.g. (28, 28, 1), "
                         f"got {shape!r}")
    return tuple(int(v) for v in dims)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageNITS:
    """The parts of image NITS (built by ``image_nits_model``): the conditioner, the PNN
    transformer and the layout. Its functions take params ``{"pixelcnn": ...}`` and batches
    of rows ``(n, D)``."""

    shape: tuple  # (H, W, C)
    channels_first: bool
    net: PixelCNN
    hidden: tuple
    monotonic_const: float
    transformer: object  # nitsjax.bijectors.base.Transformer on [LOW, HIGH]

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    # ------------------------------------------------------------------ layout
    def to_images(self, rows: Array) -> Array:
        """``(n, D)`` rows -> ``(n, H, W, C)``."""
        h, w, c = self.shape
        if self.channels_first:
            return jnp.moveaxis(rows.reshape(-1, c, h, w), 1, -1)
        return rows.reshape(-1, h, w, c)

    def to_rows(self, images: Array) -> Array:
        """``(n, H, W, C)`` -> ``(n, D)`` rows in the event layout."""
        if self.channels_first:
            images = jnp.moveaxis(images, -1, 1)
        return images.reshape(images.shape[0], -1)

    @staticmethod
    def net_input(images: Array) -> Array:
        """The 8-bit scale to the network's [-1, 1]."""
        return 2.0 * (images - LOW) / WIDTH - 1.0

    # ------------------------------------------------------------------ pieces
    def init(self, key) -> dict:
        return {"pixelcnn": init_params(self.net, key, self.shape)}

    def thetas(self, params, rows: Array, key=None) -> Array:
        """PNN parameters of every sub-pixel, ``(n, D, P)`` in the row layout (teacher
        forcing: one conditioner pass). ``key``: dropout on (training)."""
        images = self.to_images(rows)
        kw = {} if key is None else {"rngs": {"dropout": key}}
        out = self.net.apply(
            {"params": params["pixelcnn"]}, self.net_input(images), key is None, **kw
        )  # (n, H, W, C, P)
        n, p = out.shape[0], out.shape[-1]
        if self.channels_first:
            out = jnp.moveaxis(out, 3, 1)
        return out.reshape(n, -1, p)

    def forward_batch(self, params, rows: Array, key=None):
        """``(u, log|det du/dx|)``: ``(n, D)`` conditional CDF values and ``(n,)`` log
        densities of the continuous model (``-inf`` outside ``[-1/2, 255.5]^D``)."""
        th = self.thetas(params, rows, key)
        u, ld = jax.vmap(jax.vmap(self.transformer.forward))(th, rows)
        return u, jnp.sum(ld, axis=-1)

    def discrete_log_prob_batch(self, params, rows: Array, key=None) -> Array:
        """``(n,)`` log-probabilities of integer pixel values ``rows`` ``(n, D)`` (module
        docstring); no input checks (values are rounded and clipped into 0..255)."""
        v = jnp.clip(jnp.round(rows), 0, LEVELS - 1)
        th = self.thetas(params, v, key)
        lm = jax.vmap(jax.vmap(self._log_mass))(th, v)
        return jnp.sum(lm, axis=-1)

    def _log_mass(self, theta: Array, v: Array) -> Array:
        """``log(F(v + 1/2) - F(v - 1/2))`` of one sub-pixel, edges to the ends."""
        c = self.monotonic_const
        p = prepare(theta, self.hidden, c)
        t_lo = (v - 0.5 - LOW) / WIDTH
        t_hi = (v + 0.5 - LOW) / WIDTH
        f_lo = jnp.where(v <= 0, 0.0, prepared_cdf_and_log_pdf(p, t_lo, c)[0])
        f_hi = jnp.where(v >= LEVELS - 1, 1.0, prepared_cdf_and_log_pdf(p, t_hi, c)[0])
        _, log_f_mid = prepared_cdf_and_log_pdf(p, (v - LOW) / WIDTH, c)
        delta = f_hi - f_lo
        floor = 100.0 * jnp.finfo(delta.dtype).eps
        exact = jnp.log(jnp.maximum(delta, floor))
        midpoint = log_f_mid - math.log(LEVELS)  # density on [0, 1] x canonical bin width
        return jnp.where(delta > floor, exact, midpoint)

    def inverse_batch(self, params, z: Array):
        """``(x, log|det dx/dz|)`` for latents ``z`` ``(n, D)`` in [0, 1]: the pixels in
        raster order inside one ``lax.fori_loop`` (channels in order within a pixel)."""
        h, w, c = self.shape
        n = z.shape[0]
        zi = self.to_images(z)  # (n, H, W, C): latent of each sub-pixel
        x0 = jnp.full((n, h, w, c), (LOW + HIGH) / 2, z.dtype)
        ld0 = jnp.zeros((n,), z.dtype)
        inverse = jax.vmap(self.transformer.inverse)
        variables = {"params": params["pixelcnn"]}

        def body(p, carry):
            x, ld = carry
            i, j = p // w, p % w
            feats = self.net.apply(variables, self.net_input(x), True,
                                   method=PixelCNN.features)
            hp = jax.lax.dynamic_index_in_dim(
                jax.lax.dynamic_index_in_dim(feats, i, 1, False), j, 1, False)  # (n, F)
            xp = jax.lax.dynamic_index_in_dim(
                jax.lax.dynamic_index_in_dim(x, i, 1, False), j, 1, False)  # (n, C)
            zp = jax.lax.dynamic_index_in_dim(
                jax.lax.dynamic_index_in_dim(zi, i, 1, False), j, 1, False)
            for ch in range(c):
                theta = self.net.apply(variables, ch, hp, self.net_input(xp),
                                       method=PixelCNN.channel)
                xc, ldc = inverse(theta, zp[:, ch])
                xp = xp.at[:, ch].set(xc)
                ld = ld + ldc
            x = jax.lax.dynamic_update_slice(x, xp[:, None, None, :], (0, i, j, 0))
            return x, ld

        x, ld = jax.lax.fori_loop(0, h * w, body, (x0, ld0))
        return self.to_rows(x), ld

    def bijector(self) -> Bijector:
        """The continuous model as a ``Bijector`` on ``[-1/2, 255.5]^D`` -> ``[0, 1]^D``
        (events ``(D,)``; the networks run on a batch of one)."""

        def forward(params, x, context=None, key=None):
            u, ld = self.forward_batch(params, x[None], key)
            return u[0], ld[0]

        def inverse(params, z, context=None, key=None):
            x, ld = self.inverse_batch(params, z[None])
            return x[0], ld[0]

        return Bijector(self.init, jax.jit(forward), jax.jit(inverse), event_size=self.dim,
                        name="image_nits")


def image_nits_model(
    shape,
    *,
    filters: int = 32,
    resnets: int = 2,
    attention: bool = False,
    dropout: float = 0.0,
    arch: Sequence[int] = (16, 16),
    monotonic_const: float = DEFAULT_MONOTONIC_CONST,
    solver: str = "newton",
    tol: Optional[float] = None,
    channels_first: bool = False,
    stages: int = 3,
) -> ImageNITS:
    """Image NITS parts for images of ``shape = (H, W, C)`` (see ``ImageNITS``).

    Args:
      filters, resnets, attention, dropout, stages: the ``PixelCNN`` conditioner.
      arch: PNN hidden widths (each sub-pixel's conditional is a PNN ``[1, *arch, 1]``).
      monotonic_const: the PNN's ``c`` (density floor ``c / (1 + c)`` on the unit interval).
      solver, tol: sampling solver and tolerance in pixel units (default ``256 * 2^-22`` in
        float32).
      channels_first: rows are in ``(C, H, W)`` order.
    """
    shape = check_shape(shape)
    check_positive_int(filters, "filters")
    check_positive_int(resnets, "resnets")
    check_positive_int(stages, "stages")
    if not isinstance(attention, bool):
        raise ValueError(f"attention: expected True or False, got {attention!r}")
    if not isinstance(channels_first, bool):
        raise ValueError(f"channels_first: expected True or False, got {channels_first!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout: expected 0 <= dropout < 1, got {dropout}")
    hidden = check_arch(arch)
    transformer = pnn_transformer(hidden, (LOW, HIGH), monotonic_const=monotonic_const,
                                  solver=solver, tol=tol)
    net = PixelCNN(
        shape[2], num_params(hidden), filters=filters, resnets=resnets, attention=attention,
        dropout=float(dropout), stages=stages, out_bias=identity_params(hidden),
    )
    return ImageNITS(shape, channels_first, net, hidden, float(monotonic_const), transformer)
