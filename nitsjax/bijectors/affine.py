"""Affine transformers and the elementwise affine bijector.

``affine_transformer()``: z = (x - shift) * exp(-log_scale), the MAF transformer
(Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation",
NeurIPS 2017, eq. 4). The log-scale is softly bounded, ``B * tanh(raw / B)``, so no
input or parameter gives an infinite or zero scale.

``gated_affine_transformer()``: y = s * x + (1 - s) * m with s = sigmoid(raw), the
numerically stable IAF update (Kingma et al., "Improved Variational Inference with Inverse
Autoregressive Flow", NeurIPS 2016, eq. 14).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nitsjax.bijectors.base import Bijector, Transformer

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


GATE_INIT = 3.0  # sigmoid(3) = 0.95: a fresh gated layer is close to the identity
GATE_BOUND = 8.0  # the gate logit is softly bounded: s >= sigmoid(-8) = 3e-4, never 0


def _gate(raw):
    return GATE_BOUND * jnp.tanh(raw / GATE_BOUND)


def gated_affine_transformer() -> Transformer:
    """theta = (m, raw_gate); y = s x + (1 - s) m, s = sigmoid(g), log dy/dx = log s, with
    g = 8 tanh(raw_gate / 8) so the inverse's 1 / s stays finite for any raw_gate."""

    def forward(theta, x):
        m, g = theta[0], _gate(theta[1])
        s = jax.nn.sigmoid(g)
        return s * x + (1 - s) * m, jax.nn.log_sigmoid(g)

    def inverse(theta, y):
        m, g = theta[0], _gate(theta[1])
        s = jax.nn.sigmoid(g)
        return (y - (1 - s) * m) / s, -jax.nn.log_sigmoid(g)

    return Transformer(2, forward, inverse, jnp.array([0.0, GATE_INIT]))


def elementwise_affine(dim: int) -> Bijector:
    """Learned per-dimension z = (x - shift) * exp(-log_scale); params start at identity."""

    t = affine_transformer()

    def init(key):
        return {"shift": jnp.zeros(dim), "log_scale": jnp.zeros(dim)}

    def _theta(params):
        return jnp.stack([params["shift"], params["log_scale"]], axis=-1)

    def forward(params, x, context=None, key=None):
        z, ld = jax.vmap(t.forward)(_theta(params).astype(x.dtype), x)
        return z, jnp.sum(ld)

    def inverse(params, z, context=None, key=None):
        x, ld = jax.vmap(t.inverse)(_theta(params).astype(z.dtype), z)
        return x, jnp.sum(ld)

    return Bijector(init, forward, inverse)
