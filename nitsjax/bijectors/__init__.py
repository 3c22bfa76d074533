"""Pure-function bijectors (see ``base.py`` for the contract) and their combinators."""

from nitsjax.bijectors import base
from nitsjax.bijectors.actnorm import actnorm
from nitsjax.bijectors.affine import (
    affine_transformer,
    elementwise_affine,
    gated_affine_transformer,
)
from nitsjax.bijectors.anchored import anchored, trainable_mask
from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import (
    Bijector,
    Transformer,
    chain,
    invert,
    needs_data_init,
    stack,
)
from nitsjax.bijectors.cnf import cnf
from nitsjax.bijectors.coupling import coupling
from nitsjax.bijectors.elementwise import (
    logistic_transformer,
    logit,
    sigmoid,
    tanh,
    tanh_transformer,
)
from nitsjax.bijectors.linear import lu_linear
from nitsjax.bijectors.nits import (
    autoregressive_nits,
    logistic_squash,
    nits_bijector,
    normal_cdf_transformer,
    normal_squash,
    rotation,
    support_from_data,
)
from nitsjax.bijectors.permute import permute, random_permutation, reverse
from nitsjax.bijectors.pnn import pnn_transformer
from nitsjax.bijectors.spline import rational_quadratic_transformer
from nitsjax.bijectors.standardize import whiten

# the function of base.py, not the submodule of the same name imported above
elementwise = base.elementwise

__all__ = [
    "Bijector", "Transformer", "actnorm", "cnf", "affine_transformer", "anchored",
    "autoregressive_nits", "chain", "coupling", "elementwise", "elementwise_affine",
    "gated_affine_transformer", "invert", "logistic_squash", "logistic_transformer", "logit",
    "lu_linear", "masked_autoregressive", "needs_data_init", "nits_bijector",
    "normal_cdf_transformer", "normal_squash", "permute", "pnn_transformer",
    "random_permutation", "rational_quadratic_transformer", "reverse", "rotation", "sigmoid",
    "stack", "support_from_data", "tanh", "tanh_transformer", "trainable_mask", "whiten",
]
