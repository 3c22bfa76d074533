"""Ready-made flows: ``maf``, ``iaf``, ``realnvp``, ``nsf`` and ``nits``."""

from nitsjax.flow import Flow
from nitsjax.flows.affine import iaf, maf, realnvp
from nitsjax.flows.nits import NITSFlow, nits
from nitsjax.flows.spline import nsf

__all__ = ["Flow", "NITSFlow", "iaf", "maf", "nits", "nsf", "realnvp"]
