"""flax.linen conditioner networks: MLP, MADE, residual MADE."""

from nitsjax.nn.made import MADE, MaskedDense, made_masks
from nitsjax.nn.mlp import MLP

__all__ = ["MADE", "MLP", "MaskedDense", "made_masks"]
