"""Base distributions: standard normal, uniform box (distrax underneath), Student-t /
Gaussian marginals (``marginal_t``, the mTAF base)."""

from nitsjax.distributions.base import Distribution, standard_normal, uniform
from nitsjax.distributions.marginal_t import marginal_t

__all__ = ["Distribution", "marginal_t", "standard_normal", "uniform"]
