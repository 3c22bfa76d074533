"""Masked autoencoder for distribution estimation (MADE) and its residual form.

Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution
Estimation", ICML 2015. The residual variant (pre-activation blocks whose last layer is
zero-initialised) follows Nash & Durkan, "Autoregressive Energy Machines", ICML 2019, as
used by neural spline flows and NITS.

``MADE(...)(x, context)`` maps ``x`` of shape ``(dim,)`` to ``(dim, num_params)`` where row
``i`` depends only on ``x[:i]`` (and the context). Row 0 depends on the context alone.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


def hidden_degrees(dim: int, width: int, kind: str, seed: int) -> np.ndarray:
    """Degrees in [0, dim-1] of one hidden layer: ``sequential`` cycles, ``random`` draws.

    A unit of degree m sees inputs 0..m-1; degree-0 units see only the context.
    """
    if kind == "sequential":
        return np.arange(width) % dim
    if kind == "random":
        return np.random.RandomState(seed).randint(0, dim, size=width)
    raise ValueError(f"degrees: expected 'sequential' or 'random', got {kind!r}")


def made_masks(
    dim: int, hidden: Sequence[int], num_params: int, kind: str, seed: int = 0, tied: bool = False
):
    """Masks ``[input->h1, h1->h2, ..., hk->output]`` as float arrays (in, out).

    ``tied=True`` gives every hidden layer the same degrees (needed by residual blocks,
    whose skip connections add layers unit by unit)."""
    in_deg = np.arange(1, dim + 1)
    degs = [hidden_degrees(dim, w, kind, seed + (0 if tied else i)) for i, w in enumerate(hidden)]
    masks = [(degs[0][None, :] >= in_deg[:, None])]
    for a, b in zip(degs[:-1], degs[1:]):
        masks.append(b[None, :] >= a[:, None])
    out_deg = np.repeat(np.arange(dim), num_params)  # row i may see degrees <= i
    masks.append(degs[-1][:, None] <= out_deg[None, :])
    return [m.astype(np.float32) for m in masks]


class MaskedDense(nn.Module):
    """Dense layer whose kernel is multiplied by a fixed 0/1 mask of shape (in, out)."""

    mask: np.ndarray
    zero_init: bool = False
    bias_init_value: Optional[np.ndarray] = None

    @nn.compact
    def __call__(self, x):
        n_in, n_out = self.mask.shape
        k_init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        kernel = self.param("kernel", k_init, (n_in, n_out))
        if self.bias_init_value is not None:
            value = jnp.asarray(self.bias_init_value, jnp.float32)
            b_init = lambda key, shape, dtype=jnp.float32: value.astype(dtype)  # noqa: E731
        else:
            b_init = nn.initializers.zeros
        bias = self.param("bias", b_init, (n_out,))
        return x @ (kernel * jnp.asarray(self.mask, kernel.dtype)) + bias


class MADE(nn.Module):
    """Autoregressive conditioner: ``(dim,) [+ (context_dim,)] -> (dim, num_params)``.

    Attributes:
      dim: event size.
      hidden: hidden widths; with ``residual=True`` all widths must be equal and each
        entry after the first adds one residual block.
      num_params: outputs per dimension (the transformer's parameter count).
      out_bias: ``(num_params,)`` value of each output row at initialisation (the output
        layer is zero-initialised, so the map starts exactly there).
      degrees: ``"sequential"`` or ``"random"`` hidden degrees.
      residual: residual blocks (two masked layers each, second zero-initialised).
      dropout: dropout rate inside residual blocks / between hidden layers.
      seed: seed of random degrees.
    """

    dim: int
    hidden: Sequence[int]
    num_params: int
    out_bias: Optional[np.ndarray] = None
    degrees: str = "sequential"
    residual: bool = False
    dropout: float = 0.0
    activation: Callable = nn.relu
    seed: int = 0

    @nn.compact
    def __call__(self, x, context=None, deterministic: bool = True):
        hidden = list(self.hidden)
        if self.residual and len(set(hidden)) != 1:
            raise ValueError(f"residual MADE needs equal hidden widths, got {hidden}")
        masks = made_masks(
            self.dim, hidden, self.num_params, self.degrees, self.seed, tied=self.residual
        )
        h = MaskedDense(masks[0])(x)
        if context is not None:
            h = h + nn.Dense(hidden[0], use_bias=False)(context)
        if self.residual:
            for m in masks[1:-1]:
                r = self.activation(h)
                r = MaskedDense(m)(r)
                r = self.activation(r)
                r = nn.Dropout(self.dropout)(r, deterministic=deterministic)
                r = MaskedDense(m, zero_init=True)(r)
                h = h + r
            h = self.activation(h)
        else:
            h = self.activation(h)
            for m in masks[1:-1]:
                h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
                h = self.activation(MaskedDense(m)(h))
        bias = None
        if self.out_bias is not None:
            bias = np.tile(np.asarray(self.out_bias, np.float32), self.dim)
        out = MaskedDense(masks[-1], zero_init=True, bias_init_value=bias)(h)
        return out.reshape(self.dim, self.num_params)
