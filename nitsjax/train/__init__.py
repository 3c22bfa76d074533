"""Training: ``fit`` (optax, on-device ``lax.scan`` periods, early stopping, orbax
checkpoints, resume), its ``History``, the default optimizer and the losses it minimises.

Modules: ``fit`` (the composition), ``optim`` (default optimizer), ``step`` (compiled
kernels), ``early_stopping``, ``progress``, ``signals``, ``checkpoint``, ``sharding``,
``gaussian`` (the Gaussian floor), ``dequantize``, ``history``. The objectives are
``nitsjax.losses`` (``nll`` is re-exported here).
"""

from nitsjax.losses import nll
from nitsjax.train.early_stopping import EarlyStopping
from nitsjax.train.fit import FitDiverged, FitInterrupted, fit
from nitsjax.train.history import History
from nitsjax.train.optim import default_optimizer, learning_rate_at

__all__ = [
    "Checkpointer",
    "EarlyStopping",
    "FitDiverged",
    "FitInterrupted",
    "History",
    "default_optimizer",
    "fit",
    "learning_rate_at",
    "nll",
]


def __getattr__(name):  # Checkpointer needs orbax (the cli extra): imported on use
    if name == "Checkpointer":
        from nitsjax.train.checkpoint import Checkpointer

        return Checkpointer
    raise AttributeError(f"module 'nitsjax.train' has no attribute {name!r}")
