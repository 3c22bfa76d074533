"""Ready-made flows: ``maf``, ``iaf``, ``realnvp`` (more arrive with their bijectors)."""

from nitsjax.flow import Flow
from nitsjax.flows.affine import iaf, maf, realnvp

__all__ = ["Flow", "iaf", "maf", "realnvp"]
