"""Masked autoregressive layer: any transformer, conditioned by a MADE.

forward (data -> latent): z_i = tau(x_i; theta_i(x_<i)), one network pass (MAF).
inverse (latent -> data): d sequential passes in ``lax.fori_loop``; pass i solves only
coordinate i, so a costly transformer inverse (splines, NITS bisection) is paid d times,
not d^2. ``invert`` of this layer is IAF: cheap to sample, sequential to evaluate.

Papamakarios, Pavlakou, Murray, NeurIPS 2017 (MAF); Kingma et al., NeurIPS 2016 (IAF);
Durkan et al., NeurIPS 2019 (autoregressive neural spline flow).
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Bijector, Transformer, transform_elementwise
from nitsjax.nn.made import MADE


def masked_autoregressive(
    transformer: Transformer,
    dim: int,
    hidden: Sequence[int] = (128, 128),
    *,
    context_dim: Optional[int] = None,
    residual: bool = False,
    degrees: str = "sequential",
    dropout: float = 0.0,
    seed: int = 0,
) -> Bijector:
    """An autoregressive bijector on R^dim with a MADE conditioner.

    Args:
      transformer: the elementwise map (affine, spline, PNN, ...).
      dim: event size.
      hidden: MADE hidden widths (equal widths when ``residual``).
      context_dim: size of the conditioning input, or None.
      residual: residual MADE blocks.
      degrees: ``"sequential"`` or ``"random"`` hidden-unit degrees.
      dropout: dropout rate, active only when a ``key`` is passed to forward.
      seed: seed for random degrees.
    """
    # checked here, at construction, not later inside MADE.init (under tracing)
    if degrees not in ("sequential", "random"):
        raise ValueError(f"degrees: expected 'sequential' or 'random', got {degrees!r}")
    if residual and len(set(hidden)) > 1:
        raise ValueError(
            f"hidden: residual=True needs equal hidden widths, got {tuple(hidden)}"
        )
    made = MADE(
        dim=dim,
        hidden=tuple(hidden),
        num_params=transformer.num_params,
        out_bias=np.asarray(transformer.identity_params),
        degrees=degrees,
        residual=residual,
        dropout=dropout,
        seed=seed,
    )

    def theta_of(params, x, context, key):
        if key is None:
            return made.apply(params, x, context)
        return made.apply(params, x, context, deterministic=False, rngs={"dropout": key})

    def init(key):
        ctx = None if context_dim is None else jnp.zeros(context_dim)
        return made.init(key, jnp.zeros(dim), ctx)

    def forward(params, x, context=None, key=None):
        theta = theta_of(params, x, context, key).astype(x.dtype)
        return transform_elementwise(transformer, theta, x, inverse=False)

    def inverse(params, z, context=None, key=None):
        def body(i, carry):
            x, total = carry
            theta_i = theta_of(params, x, context, key)[i].astype(z.dtype)
            xi, ld = transformer.inverse(theta_i, z[i])
            return x.at[i].set(xi), total + ld

        return jax.lax.fori_loop(0, dim, body, (jnp.zeros_like(z), jnp.zeros((), z.dtype)))

    def conditional_inverse(params, x, z, context=None, key=None):
        """Teacher forcing: ``x_i = tau^-1(z_i; theta_i(x_<i))`` with ``theta`` from one
        conditioner pass on the given row ``x``."""
        theta = theta_of(params, x, context, key).astype(z.dtype)
        return transform_elementwise(transformer, theta, z, inverse=True)[0]

    return Bijector(init, forward, inverse, event_size=dim, name="made",
                    conditional_inverse=conditional_inverse)
