"""Training objectives for ``nj.fit``: ``nll`` (maximum likelihood, the default) and the
others registered here. A loss is ``loss(model, params, x, context, key) -> scalar``.

``x`` is a minibatch ``(batch, dim)``, ``context`` ``(batch, context_dim)`` or ``None``.
``key`` is a PRNG key during training (dropout and the loss's own randomness: quantile
levels, model samples) and ``None`` at evaluation: then the model runs without dropout
and a loss that needs randomness uses a fixed key (``EVAL_KEY``), so validation scores
are comparable across evaluations.

Losses are pure and traceable; ``fit`` jits them with the model as a static argument, so
a loss must be a hashable callable (a module-level function, not a fresh lambda per
call, if repeated ``fit`` calls are to reuse compiled code). A loss may carry a
``check(model)`` attribute that raises ``ValueError`` when the model cannot be trained
by it (``fit`` calls it before any work).

Names: ``nj.fit(..., loss="nll")`` looks the name up in ``nitsjax.registry`` (kind
``"loss"``); ``train.loss=<name>`` on the command line does the same.
"""

from __future__ import annotations

from typing import Callable

import jax

from nitsjax import registry
from nitsjax.losses.energy import (
    EnergyLoss,
    energy,
    energy_distance,
    energy_score,
    sliced_energy_score,
)
from nitsjax.losses.likelihood import nll
from nitsjax.losses.objective import objective
from nitsjax.losses.quantile import crps, pinball

KIND = "loss"
#: the seed of the fixed key losses use at evaluation (``key=None``)
EVAL_SEED = 0

registry.register("nll", nll, KIND)
registry.register("energy", energy, KIND)
registry.register("crps", crps, KIND)
registry.register("objective", objective, KIND)


def eval_key(key):
    """``key``, or the fixed evaluation key when it is None."""
    return jax.random.key(EVAL_SEED) if key is None else key


def resolve(loss) -> Callable:
    """The loss function of ``loss``: a registered name (``"nll"``, ...) or a callable."""
    if isinstance(loss, str):
        try:
            return registry.get(loss, KIND)
        except KeyError:
            raise ValueError(
                f"loss: unknown loss {loss!r}; expected one of {registry.names(KIND)} or a "
                "callable (model, params, x, context, key) -> scalar"
            ) from None
    if not callable(loss):
        raise TypeError(
            f"loss: expected a loss name {registry.names(KIND)} or a callable "
            f"(model, params, x, context, key) -> scalar, got {type(loss).__name__}"
        )
    return loss


def name_of(loss: Callable) -> str:
    """The registered name of ``loss``, else its ``__name__``."""
    for name in registry.names(KIND):
        if registry.get(name, KIND) is loss:
            return name
    return getattr(loss, "__name__", type(loss).__name__)


def check(loss: Callable, model) -> None:
    """``loss.check(model)`` when the loss defines it (a ``ValueError`` naming what the
    model lacks and which models qualify)."""
    checker = getattr(loss, "check", None)
    if checker is not None:
        checker(model)


__all__ = ["EVAL_SEED", "EnergyLoss", "check", "crps", "energy", "energy_distance",
           "energy_score", "eval_key", "name_of", "nll", "pinball", "resolve",
           "sliced_energy_score", "objective"]
