"""Base distributions: standard normal, uniform box (distrax underneath)."""

from nitsjax.distributions.base import Distribution, standard_normal, uniform

__all__ = ["Distribution", "standard_normal", "uniform"]
