"""Activation normalisation (ActNorm) with data-dependent initialisation.

``z = (x - shift) * exp(-log_scale)`` per dimension, log-det ``-sum(log_scale)``.
``data_init`` sets ``shift`` to the batch mean and ``log_scale`` to the log of the batch
standard deviation, so the layer's output on that batch has zero mean and unit variance
per dimension; afterwards both are ordinary trainable params (Kingma & Dhariwal, "Glow:
Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018, section 3.1).

Params are ``{"shift": (dim,), "log_scale": (dim,)}``, the identity at ``init``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nitsjax.bijectors.base import Bijector, inverse_only
from nitsjax.validation import check_positive_int


def actnorm(dim: int, *, min_std: float = 1e-6) -> Bijector:
    """ActNorm on R^dim; use ``Flow.init(key, x=batch)`` (or ``data_init``) to initialise.

    Args:
      dim: event size.
      min_std: floor on the standard deviation used by ``data_init``. Constant columns
        (max == min in the batch, including a batch of one row) get scale 1, so they
        are only centred; other columns get ``max(std, min_std)``, so near-constant
        columns cannot make the scale zero or the log-det infinite.
    """
    check_positive_int(dim, "dim")
    if not float(min_std) > 0.0:
        raise ValueError(f"actnorm: expected min_std > 0, got min_std={min_std}")
    min_std = float(min_std)

    def init(key):
        return {"shift": jnp.zeros(dim), "log_scale": jnp.zeros(dim)}

    def forward(params, x, context=None, key=None):
        shift = params["shift"].astype(x.dtype)
        log_scale = params["log_scale"].astype(x.dtype)
        return (x - shift) * jnp.exp(-log_scale), -jnp.sum(log_scale)

    def inverse(params, z, context=None, key=None):
        shift = params["shift"].astype(z.dtype)
        log_scale = params["log_scale"].astype(z.dtype)
        return z * jnp.exp(log_scale) + shift, jnp.sum(log_scale)

    def _moments(x, where):
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(
                f"actnorm.{where}: x: expected shape (n, {dim}), got {tuple(x.shape)}"
            )
        if x.shape[0] < 1:
            raise ValueError(f"actnorm.{where}: x: expected at least one row, got 0")
        mean = jnp.mean(x, axis=0)
        std = jnp.std(x, axis=0)
        constant = jnp.max(x, axis=0) == jnp.min(x, axis=0)
        return mean, jnp.where(constant, 1.0, jnp.maximum(std, min_std))  # no log(0)

    def data_init(params, x, context=None):
        """Per-dimension mean and std of ``x`` (n, dim) -> (new params, z (n, dim))."""
        mean, std = _moments(x, "data_init")
        new = {
            "shift": mean.astype(params["shift"].dtype),
            "log_scale": jnp.log(std).astype(params["log_scale"].dtype),
        }
        z, _ = jax.vmap(lambda xi: forward(new, xi))(x)
        return new, z

    def inverse_data_init(params, z, context=None):
        """For the inverted layer (data on the latent side): params whose ``inverse``
        standardises ``z`` (n, dim), i.e. ``log_scale = -log std``, ``shift = -mean / std``
        -> (new params, x = inverse(z) (n, dim))."""
        mean, std = _moments(z, "inverse_data_init")
        new = {
            "shift": (-mean / std).astype(params["shift"].dtype),
            "log_scale": (-jnp.log(std)).astype(params["log_scale"].dtype),
        }
        x, _ = jax.vmap(lambda zi: inverse(new, zi))(z)
        return new, x

    return Bijector(
        init, forward, inverse, data_init, event_size=dim, name="actnorm",
        inverse_data_init=inverse_data_init, conditional_inverse=inverse_only(inverse),
    )
