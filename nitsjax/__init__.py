"""nitsjax: exact normalizing flows and the Neural Inverse Transform Sampler in JAX."""

from nitsjax import bijectors, data, distributions, flows, nn, results
from nitsjax.flow import Flow

__version__ = "0.1.0"
__all__ = ["Flow", "bijectors", "data", "distributions", "flows", "nn", "results"]
