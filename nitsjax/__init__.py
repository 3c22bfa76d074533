"""nitsjax: exact normalizing flows and the Neural Inverse Transform Sampler in JAX.

The library core: importing it loads no application package (hydra, omegaconf,
matplotlib); the command line and its configs are ``nitsjax.cli`` (the ``cli`` extra)."""

from nitsjax import (
    bijectors,
    data,
    diagnostics,
    diffusion,
    distribution_functions,
    distributions,
    flows,
    interop,
    losses,
    models,
    nn,
    ode,
    ordering,
    rd,
    registry,
    results,
    root_finding,
    snf,
    spread,
    tails,
    train,
    transport,
    tt,
)
from nitsjax.flow import Flow
from nitsjax.train import FitDiverged, FitInterrupted, History, fit

__version__ = "0.1.0"
__all__ = [
    "FitDiverged", "FitInterrupted", "Flow", "History", "bijectors", "data",
    "distribution_functions", "distributions", "fit", "flows", "interop", "losses", "models",
    "nn", "ode", "ordering", "rd", "registry", "results", "root_finding", "snf", "tails",
    "train", "transport", "tt", "diagnostics", "spread",
    "diffusion",
]
