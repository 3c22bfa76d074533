"""nitsjax: exact normalizing flows and the Neural Inverse Transform Sampler in JAX."""

from nitsjax import bijectors, distributions, flows, nn
from nitsjax.flow import Flow

__version__ = "0.1.0"
__all__ = ["Flow", "bijectors", "distributions", "flows", "nn"]
