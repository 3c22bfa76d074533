"""Training: ``fit`` (optax, on-device ``lax.scan`` periods, early stopping, orbax
checkpoints, resume), its ``History`` and the losses it minimises."""

from nitsjax.train.checkpoint import Checkpointer
from nitsjax.train.fit import FitDiverged, FitInterrupted, fit, learning_rate_at
from nitsjax.train.history import History
from nitsjax.train.losses import nll

__all__ = [
    "Checkpointer",
    "FitDiverged",
    "FitInterrupted",
    "History",
    "fit",
    "learning_rate_at",
    "nll",
]
