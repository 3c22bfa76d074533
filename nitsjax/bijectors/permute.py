"""Permutations: reverse and fixed random. Volume preserving (log-det 0), no params."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Bijector, inverse_only


def permute(perm, *, name: str = "permute") -> Bijector:
    """z = x[perm] for a fixed permutation ``perm`` of range(dim)."""
    perm = np.asarray(perm)
    if sorted(perm.tolist()) != list(range(perm.size)):
        raise ValueError(f"permute: expected a permutation of range({perm.size}), got {perm}")
    inv = np.argsort(perm)

    def forward(params, x, context=None, key=None):
        return x[perm], jnp.zeros((), x.dtype)

    def inverse(params, z, context=None, key=None):
        return z[inv], jnp.zeros((), z.dtype)

    return Bijector(lambda key: {}, forward, inverse, event_size=int(perm.size), name=name,
                    conditional_inverse=inverse_only(inverse))


def reverse(dim: int) -> Bijector:
    """Reverse the order of coordinates."""
    return permute(np.arange(dim)[::-1], name="reverse")


def random_permutation(dim: int, seed: int = 0) -> Bijector:
    """A fixed permutation drawn once from ``seed`` (not a learned parameter)."""
    return permute(np.random.RandomState(seed).permutation(dim))
