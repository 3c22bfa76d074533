"""Base distributions of a flow, as pure functions over a parameter pytree.

A ``Distribution`` acts on ONE event of shape ``(dim,)``; ``Flow`` vmaps it. Standard
densities wrap distrax, so their maths is distrax's.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import distrax
import jax
import jax.numpy as jnp

Array = jax.Array


class Distribution(NamedTuple):
    """A density on R^dim.

    Attributes:
      dim: event size.
      init: ``key -> params`` (an empty dict for fixed densities).
      log_prob: ``(params, z) -> scalar`` for ``z`` of shape ``(dim,)``.
      sample: ``(params, key) -> (dim,)`` array.
    """

    dim: int
    init: Callable[[jax.Array], Any]
    log_prob: Callable[[Any, Array], Array]
    sample: Callable[[Any, jax.Array], Array]


def _fixed(dim: int, make: Callable[[Any], distrax.Distribution]) -> Distribution:
    """A parameter-free density whose distrax object is built for the dtype at hand."""

    def log_prob(params, z):
        return make(z.dtype).log_prob(z)

    def sample(params, key):
        return make(jnp.float32).sample(seed=key)

    return Distribution(dim, lambda key: {}, log_prob, sample)


def standard_normal(dim: int) -> Distribution:
    """The standard normal N(0, I) on R^dim."""
    _check_dim(dim)

    def make(dtype):
        return distrax.MultivariateNormalDiag(jnp.zeros(dim, dtype), jnp.ones(dim, dtype))

    return _fixed(dim, make)


def uniform(dim: int, low: float = 0.0, high: float = 1.0) -> Distribution:
    """The uniform density on the box [low, high]^dim (the NITS base is uniform(dim))."""
    _check_dim(dim)
    if not high > low:
        raise ValueError(f"uniform(): need low < high, got low={low}, high={high}")

    def make(dtype):
        return distrax.Independent(
            distrax.Uniform(jnp.full(dim, low, dtype), jnp.full(dim, high, dtype)), 1
        )

    return _fixed(dim, make)


def _check_dim(dim) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
