"""Pure-function bijectors (see ``base.py`` for the contract) and their combinators."""

from nitsjax.bijectors.affine import (
    affine_transformer,
    elementwise_affine,
    gated_affine_transformer,
)
from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import Bijector, Transformer, chain, invert, stack
from nitsjax.bijectors.coupling import coupling
from nitsjax.bijectors.permute import permute, random_permutation, reverse

__all__ = [
    "Bijector", "Transformer", "affine_transformer", "chain", "coupling",
    "elementwise_affine", "gated_affine_transformer", "invert", "masked_autoregressive",
    "permute", "random_permutation", "reverse", "stack",
]
