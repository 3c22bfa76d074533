"""Coupling layer: any transformer, conditioned on the other half by an MLP.

x = [x_a, x_b] with x_a the first ``split`` coordinates; z_a = x_a and
z_b = tau(x_b; theta(x_a)). Both directions take one network pass.

Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017 (affine);
Durkan et al., "Neural Spline Flows", NeurIPS 2019 (spline).
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Bijector, Transformer, transform_elementwise
from nitsjax.nn.mlp import MLP


def coupling(
    transformer: Transformer,
    dim: int,
    hidden: Sequence[int] = (128, 128),
    *,
    context_dim: Optional[int] = None,
    split: Optional[int] = None,
    dropout: float = 0.0,
) -> Bijector:
    """A coupling bijector on R^dim (dim >= 2): the last ``dim - split`` coordinates are
    transformed given the first ``split`` (default ``dim // 2``).

    ``dropout`` is the rate on the MLP's hidden activations, active only when a ``key`` is
    passed to forward/inverse (as in ``masked_autoregressive``); with ``key=None`` the
    layer is deterministic. For a given key, inverse undoes forward exactly (the same mask
    is drawn, since the conditioner sees the same untouched half)."""
    if dim < 2:
        raise ValueError(f"coupling layers need dim >= 2, got dim={dim}; use maf or nits")
    split = dim // 2 if split is None else split
    if not 1 <= split < dim:
        raise ValueError(f"split: expected 1 <= split < dim={dim}, got {split}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout: expected 0 <= dropout < 1, got {dropout}")
    n_out = dim - split
    k = transformer.num_params
    mlp = MLP(
        hidden=tuple(hidden),
        out_dim=n_out * k,
        out_bias=np.tile(np.asarray(transformer.identity_params, np.float32), n_out),
        dropout=float(dropout),
    )

    def init(key):
        ctx = None if context_dim is None else jnp.zeros(context_dim)
        return mlp.init(key, jnp.zeros(split), ctx)

    def _theta(params, xa, context, key):
        if key is None:
            return mlp.apply(params, xa, context)
        return mlp.apply(params, xa, context, deterministic=False, rngs={"dropout": key})

    def _apply(params, x, context, key, inverse):
        xa, xb = x[:split], x[split:]
        theta = _theta(params, xa, context, key).reshape(n_out, k).astype(x.dtype)
        yb, ld = transform_elementwise(transformer, theta, xb, inverse=inverse)
        return jnp.concatenate([xa, yb]), ld

    def forward(params, x, context=None, key=None):
        return _apply(params, x, context, key, inverse=False)

    def inverse(params, z, context=None, key=None):
        return _apply(params, z, context, key, inverse=True)

    def conditional_inverse(params, x, z, context=None, key=None):
        """``theta`` from the given ``x_a``; the untouched half is its own inverse."""
        theta = _theta(params, x[:split], context, key).reshape(n_out, k).astype(z.dtype)
        yb, _ = transform_elementwise(transformer, theta, z[split:], inverse=True)
        return jnp.concatenate([z[:split], yb])

    return Bijector(init, forward, inverse, event_size=dim, name="coupling",
                    conditional_inverse=conditional_inverse)
