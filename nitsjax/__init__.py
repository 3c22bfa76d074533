"""nitsjax: exact normalizing flows and the Neural Inverse Transform Sampler in JAX."""

from nitsjax import bijectors, data, distributions, flows, nn, results, root_finding, train
from nitsjax import interop as interop  # distrax adapters (nj.interop.to_distrax)
from nitsjax.flow import Flow
from nitsjax.train import FitDiverged, FitInterrupted, History, fit

__version__ = "0.1.0"
__all__ = [
    "FitDiverged", "FitInterrupted", "Flow", "History", "bijectors", "data", "distributions",
    "fit", "flows", "nn", "results", "root_finding", "train",
]
