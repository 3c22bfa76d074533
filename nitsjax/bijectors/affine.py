"""Affine transformers and the elementwise affine bijector.

``affine_transformer()``: z = (x - shift) * exp(-log_scale), the MAF transformer
(Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation",
NeurIPS 2017, eq. 4). The log-scale is softly bounded, ``B * tanh(raw / B)``, so no
input or parameter gives an infinite or zero scale.

``gated_affine_transformer()``: y = (s * x + (1 - s) * m) / s0 with s = sigmoid(raw), the
numerically stable IAF update (Kingma et al., "Improved Variational Inference with Inverse
Autoregressive Flow", NeurIPS 2016, eq. 14).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nitsjax.bijectors.base import Bijector, Transformer, elementwise

LOG_SCALE_BOUND = 5.0


def _log_scale(raw):
    return LOG_SCALE_BOUND * jnp.tanh(raw / LOG_SCALE_BOUND)


def affine_transformer() -> Transformer:
    """theta = (shift, raw_log_scale); identity at theta = (0, 0)."""

    def forward(theta, x):
        shift, ls = theta[0], _log_scale(theta[1])
        return (x - shift) * jnp.exp(-ls), -ls

    def inverse(theta, z):
        shift, ls = theta[0], _log_scale(theta[1])
        return z * jnp.exp(ls) + shift, ls

    return Transformer(2, forward, inverse, jnp.zeros(2))


GATE_INIT = 3.0  # sigmoid(3) = 0.95: the initial gate leans on the identity path
GATE_BOUND = 8.0  # the gate logit is softly bounded: s >= sigmoid(-8) = 3e-4, never 0


def _gate(raw):
    return GATE_BOUND * jnp.tanh(raw / GATE_BOUND)


def _gated(theta, dtype):
    """``(gain, offset, log gain)`` with ``y = gain x + offset``: ``gain = s / s0``,
    ``offset = (1 - s) m / s0``. ``log gain`` is a difference of log-sigmoids, exactly 0
    at ``identity_params``, so a fresh layer is exactly the identity."""
    m, g = theta[0], _gate(theta[1])
    g0 = _gate(jnp.asarray(GATE_INIT, dtype))
    log_gain = jax.nn.log_sigmoid(g) - jax.nn.log_sigmoid(g0)
    return jnp.exp(log_gain), (1 - jax.nn.sigmoid(g)) * m / jax.nn.sigmoid(g0), log_gain


def gated_affine_transformer() -> Transformer:
    """theta = (m, raw_gate); y = (s x + (1 - s) m) / s0 with s = sigmoid(g),
    g = 8 tanh(raw_gate / 8) (so the inverse's 1 / s stays finite for any raw_gate) and
    s0 = the gate at ``identity_params`` (about 0.95). Dividing by the constant s0 makes a
    fresh layer exactly the identity, so a fresh flow starts exactly at its standardising
    layer's Gaussian. ``log dy/dx = log s - log s0``."""

    def forward(theta, x):
        gain, offset, log_gain = _gated(theta, x.dtype)
        return gain * x + offset, log_gain

    def inverse(theta, y):
        gain, offset, log_gain = _gated(theta, y.dtype)
        return (y - offset) / gain, -log_gain

    return Transformer(2, forward, inverse, jnp.array([0.0, GATE_INIT]))


def elementwise_affine(dim: int) -> Bijector:
    """Learned per-dimension ``affine_transformer``: params ``{"theta": (dim, 2)}`` (shift,
    raw log-scale), starting at the identity."""
    return elementwise(affine_transformer(), dim, learn=True, name="elementwise_affine")
