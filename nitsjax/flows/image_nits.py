"""``image_nits``: NITS on 8-bit images with a PixelCNN++ conditioner, as a ``Flow``.

Li & Kluger, "Neural Inverse Transform Sampler", ICML 2022 (the image experiments);
Salimans et al., "PixelCNN++", ICLR 2017 (the conditioner and the discretised
likelihood). The maths is in ``nitsjax.bijectors.image_nits``; this module is the user
API:

    flow = nj.flows.image_nits((28, 28, 1), filters=32, resnets=2)
    params = flow.init(jax.random.key(0))
    lp = flow.log_prob(params, x)            # x: (n, 28, 28, 1) or (n, 784), values 0..255
    bpd = flow.bits_per_dim(params, x)       # discrete; dequantized=True: the other way
    xs = flow.sample(params, key, 16)        # (16, 784) integer pixel values

``fit`` trains it by the discrete log-likelihood on the raw 8-bit values (it does not
dequantise a flow whose ``discrete`` attribute is true); ``dequantized_nll`` is the loss
of the dequantised continuous variant (``fit(..., loss=dequantized_nll)``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import chain
from nitsjax.bijectors.image_nits import LEVELS, LOW, ImageNITS, image_nits_model
from nitsjax.bijectors.pnn import DEFAULT_MONOTONIC_CONST
from nitsjax.distributions.base import uniform
from nitsjax.flow import Flow, nan_to_neginf
from nitsjax.flows.common import flow_spec
from nitsjax.validation import check_key

#: the fixed key of the dequantisation noise when none is given (evaluation)
EVAL_NOISE_SEED = 0


@dataclasses.dataclass(frozen=True, eq=False)
class ImageNITSFlow(Flow):
    """A ``Flow`` over 8-bit images of ``shape = (H, W, C)``: a probability mass function
    on ``{0, ..., 255}^D`` (``D = H W C``), with its continuous NITS model underneath.

    Inputs: rows ``(n, D)`` in the event layout (``(H, W, C)`` row-major, or ``(C, H, W)``
    when ``model.channels_first``), or images ``(n, H, W, C)``.

    - ``log_prob`` / ``log_prob_batch``: ``log P(x)`` in nats of integer values 0..255
      (the discretised likelihood; what ``fit`` trains and evaluates);
    - ``log_density``: the continuous model's density on ``[-1/2, 255.5]^D``;
    - ``log_prob_dequantized``: the density at ``x + u - 1/2``, ``u ~ U[0, 1)^D`` (one
      draw; a lower bound on ``log P(x)`` in expectation);
    - ``bits_per_dim``: ``-log P(x) / (D ln 2)``, or the dequantised one;
    - ``sample`` / ``sample_and_log_prob``: integer-valued images (rows) and their
      ``log P``, drawn pixel by pixel in one compiled loop.
    """

    model: Optional[ImageNITS] = None
    discrete = True  # class attribute: fit does not dequantise ("auto") this flow's data
    convolutional = True  # fit steps it one dispatch a step on CPU (train.step.stepwise)

    # ------------------------------------------------------------------ traceable
    def log_prob_batch(self, params, x, context=None, key=None):
        """``(n,)`` discrete log-probabilities of rows ``x`` ``(n, D)`` (no input checks;
        values are rounded and clipped to 0..255). ``key``: dropout (training)."""
        return self.model.discrete_log_prob_batch(params["bijector"]["image_nits"], x, key)

    def log_density_batch(self, params, x, key=None):
        """``(n,)`` log-densities of the continuous model at rows ``x`` ``(n, D)``."""
        _, ld = self.model.forward_batch(params["bijector"]["image_nits"], x, key)
        return nan_to_neginf(ld)

    def log_prob_dequantized_batch(self, params, x, noise_key, key=None):
        """``(n,)`` log-densities at ``x + u - 1/2`` with ``u ~ U[0, 1)`` from
        ``noise_key``: the dequantised continuous variant (nats, 8-bit scale)."""
        u = jax.random.uniform(noise_key, x.shape, x.dtype)
        return self.log_density_batch(params, x + u - 0.5, key)

    def sample_batch(self, params, key, n, context=None):
        """``n`` images as rows ``(n, D)`` of integer values (float dtype) and their
        discrete log-probabilities ``(n,)``: continuous samples rounded to the bin they
        fall in, which has exactly the discrete model's distribution."""
        dtype = jnp.result_type(float)
        z = jax.random.uniform(key, (n, self.dim), dtype)
        x, _ = self.model.inverse_batch(params["bijector"]["image_nits"], z)
        x = jnp.clip(jnp.round(x), 0, LEVELS - 1)
        return x, self.log_prob_batch(params, x)

    # ---------------------------------------------------------------- checked API
    def as_rows(self, x, name: str = "x", integers: bool = True) -> np.ndarray:
        """Rows ``(n, D)`` from rows or images ``(n, H, W, C)``, checked: finite, within
        the 8-bit range, and integer-valued when ``integers``."""
        a = np.asarray(x)
        if a.ndim == 4 and a.shape[1:] == tuple(self.model.shape):
            a = np.asarray(self.model.to_rows(jnp.asarray(a)))
        if a.ndim != 2 or a.shape[1] != self.dim:
            h, w, c = self.model.shape
            raise ValueError(f"{name}: expected rows (n, {self.dim}) or images (n, {h}, {w}, "
                             f"{c}), got shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one row, got shape {a.shape}")
        a = a.astype(np.float32) if not np.issubdtype(a.dtype, np.floating) else a
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: contains NaN or inf")
        fractional = bool(np.any(a != np.round(a)))
        if integers and (fractional or a.min() < 0 or a.max() > LEVELS - 1):
            raise ValueError(
                f"{name}: image NITS gives probabilities of integer pixel values "
                f"0..{LEVELS - 1} (got values in [{a.min()}, {a.max()}]"
                f"{', not all integers' if fractional else ''}); "
                f"pass the raw 8-bit values (e.g. load(..., dequantize=False)), or use "
                f"log_density for dequantised values in [{LOW}, {LEVELS + LOW}]"
            )
        return a

    def log_prob(self, params, x, context=None):
        """``log P(x)`` ``(n,)`` in nats of 8-bit images, rows ``(n, D)`` or images ``(n, H,
        W, C)`` of integer values 0..255."""
        return super().log_prob(params, self.as_rows(x), context)

    def log_density(self, params, x):
        """Log-density ``(n,)`` of the continuous model at rows or images ``x`` with values
        in ``[-1/2, 255.5]`` (dequantised pixels), on the 8-bit scale."""
        return _log_density_compiled(self, params, jnp.asarray(self.as_rows(x, integers=False)))

    def log_prob_dequantized(self, params, x, key=None):
        """Log-density ``(n,)`` at the dequantised ``x + u - 1/2`` of integer images ``x``,
        one draw of ``u ~ U[0, 1)^D`` from ``key`` (default: a fixed key)."""
        key = jax.random.key(EVAL_NOISE_SEED) if key is None else key
        check_key(key, "key")
        return _dequantized_compiled(self, params, jnp.asarray(self.as_rows(x)), key)

    def bits_per_dim(self, params, x, *, dequantized: bool = False, key=None):
        """Bits per dimension ``(n,)`` of integer images ``x``: ``-log P(x) / (D ln 2)``
        (discrete, default), or ``-log p(x + u - 1/2) / (D ln 2)`` (``dequantized``)."""
        lp = (self.log_prob_dequantized(params, x, key) if dequantized
              else self.log_prob(params, x))
        return -lp / (self.dim * math.log(2.0))

    def to_images(self, rows) -> jax.Array:
        """Rows ``(n, D)`` as images ``(n, H, W, C)``."""
        return self.model.to_images(jnp.asarray(rows))


_log_density_compiled = jax.jit(
    lambda flow, params, x: flow.log_density_batch(params, x), static_argnums=0
)
_dequantized_compiled = jax.jit(
    lambda flow, params, x, key: flow.log_prob_dequantized_batch(params, x, key),
    static_argnums=0,
)


def dequantized_nll(flow, params, x, context=None, key=None):
    """Loss of the dequantised continuous variant: mean ``-log p(x + u - 1/2)`` with fresh
    noise per step (from ``key``; a fixed draw at evaluation, ``key=None``). Use as
    ``fit(flow, params, x_uint8, loss=dequantized_nll)``."""
    if key is None:
        noise = jax.random.key(EVAL_NOISE_SEED)
        return -jnp.mean(flow.log_prob_dequantized_batch(params, x, noise))
    k_noise, k_drop = jax.random.split(key)
    return -jnp.mean(flow.log_prob_dequantized_batch(params, x, k_noise, k_drop))


def image_nits(
    shape: Sequence[int],
    *,
    filters: int = 32,
    resnets: int = 2,
    attention: bool = False,
    arch: Sequence[int] = (16, 16),
    dropout: float = 0.0,
    monotonic_const: float = DEFAULT_MONOTONIC_CONST,
    solver: str = "newton",
    tol: Optional[float] = None,
    channels_first: bool = False,
    stages: int = 3,
) -> ImageNITSFlow:
    """NITS over 8-bit images of ``shape = (H, W, C)`` (``(H, W)``: one channel), with a
    PixelCNN++ conditioner (``nitsjax.nn.pixelcnn``) and the discretised likelihood.

    ``log_prob`` takes rows ``(n, H*W*C)`` in ``(H, W, C)`` row-major order (or ``(C, H,
    W)`` with ``channels_first``) or images ``(n, H, W, C)``, integer values 0..255, and
    returns ``log P(x)`` in nats; see ``ImageNITSFlow`` for the continuous density, the
    dequantised variant, bits/dim and sampling. Params: ``{"bijector": {"image_nits":
    {"pixelcnn": ...}}, "base": {}}``.

    Args:
      shape: image shape ``(H, W, C)``.
      filters: channels of the conditioner's streams (paper, CIFAR-10: 160). The default
        32 with ``resnets=2`` (about 0.4 M parameters) trains MNIST on a CPU.
      resnets: gated residual blocks per resolution (paper: 5).
      attention: causal self-attention after the down pass (the NITS code's option).
      arch: PNN hidden widths.
      dropout: dropout rate in the residual blocks (PixelCNN++: 0.5 on CIFAR-10).
      monotonic_const: the PNN's ``c``.
      solver, tol: sampling solver (``"newton"``, ``"chandrupatla"``, ``"bisection"``) and
        its tolerance in pixel units.
      channels_first: rows are in ``(C, H, W)`` order (CIFAR-10's binary layout).
      stages: resolutions of the conditioner (3: full, 1/2, 1/4, as PixelCNN++).
    """
    spec = flow_spec("image_nits", locals())
    model = image_nits_model(
        shape, filters=filters, resnets=resnets, attention=attention, dropout=dropout,
        arch=arch, monotonic_const=monotonic_const, solver=solver, tol=tol,
        channels_first=channels_first, stages=stages,
    )
    bij = chain({"image_nits": model.bijector()}, name="flow")
    return ImageNITSFlow(uniform(model.dim), bij, model.dim, None, name="image_nits",
                         spec=spec, model=model)
