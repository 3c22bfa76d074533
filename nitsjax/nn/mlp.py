"""Plain MLP conditioner (coupling layers), with optional context and a zero-initialised
output layer so that a fresh coupling layer starts at a chosen transformer parameter."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class MLP(nn.Module):
    """``(in,) [+ (context_dim,)] -> (out_dim,)``; the context is concatenated to the input.

    Attributes:
      hidden: hidden widths.
      out_dim: output size.
      out_bias: optional ``(out_dim,)`` initial output (output kernel is zero-initialised
        when this is given).
      dropout: dropout rate on every hidden activation, active only when called with
        ``deterministic=False`` (and a ``"dropout"`` rng).
    """

    hidden: Sequence[int]
    out_dim: int
    out_bias: Optional[np.ndarray] = None
    activation: Callable = nn.relu
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, context=None, deterministic: bool = True):
        h = x if context is None else jnp.concatenate([x, context.astype(x.dtype)], axis=-1)
        for w in self.hidden:
            h = self.activation(nn.Dense(w)(h))
            h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        if self.out_bias is None:
            return nn.Dense(self.out_dim)(h)
        value = jnp.asarray(self.out_bias, jnp.float32)
        return nn.Dense(
            self.out_dim,
            kernel_init=nn.initializers.zeros,
            bias_init=lambda key, shape, dtype=jnp.float32: value.astype(dtype),
        )(h)
