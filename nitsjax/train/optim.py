"""The default optimizer of ``fit``: clipped AdamW with warm-up and cosine decay, in optax.

``default_optimizer(learning_rate, steps=...)`` is

    optax.inject_hyperparams(
        chain(clip_by_global_norm(clip_norm), adamw(schedule, weight_decay=weight_decay)))

with the schedule "linear warm-up over ``warmup_steps``, then constant or cosine decay to
``final_lr_fraction * learning_rate`` at ``steps``" (Loshchilov & Hutter, ICLR 2017 and
2019). Every number (peak rate, schedule lengths, clipping norm, weight decay) is an
``inject_hyperparams`` hyper-parameter, i.e. an array in the optimiser state, and every
default optimizer shares one ``update`` function. ``fit`` compiles its training kernel per
``update`` function, so calls that differ only in these numbers reuse the compiled kernel
(a learning-rate sweep compiles once). optax's own schedule builders
(``warmup_cosine_decay_schedule``, ``linear_schedule``) test their step counts in Python
(``if transition_steps <= 0``), so they cannot take step counts held as arrays; the
schedule below is the same formula written with ``jnp``.

Without clipping the threshold is ``inf`` (the global norm is still computed: one fused
reduction, no measurable cost), and ``weight_decay=0`` adds ``0 * params``: plain Adam.
One state structure for all settings is what lets them share the compiled kernel.

As in every optax schedule, the step count is that of applied updates: a step ``fit``
skips (non-finite loss, gradient or params) leaves the optimiser state, and so the
schedule, where it was.
"""

from __future__ import annotations

import hashlib
import math

import jax
import jax.numpy as jnp
import optax

SCHEDULES = ("constant", "cosine")

#: Placeholder values: ``default_optimizer``'s ``init`` replaces them with the real ones.
_PLACEHOLDERS = dict(learning_rate=0.0, warmup_steps=0.0, decay_steps=1.0,
                     final_lr_fraction=0.0, cosine=0.0, clip_norm=math.inf, weight_decay=0.0)


def learning_rate_at(hp, step):
    """The learning rate of (0-based) ``step``: linear warm-up over ``warmup`` steps, then
    constant (``cosine == 0``) or cosine decay (``cosine == 1``) from ``lr`` to
    ``lr * final_fraction`` at step ``decay_end``. All entries of ``hp`` may be traced.

    ``hp``: a dict with keys ``lr``, ``warmup``, ``decay_end``, ``final_fraction``,
    ``cosine``. During warm-up step ``s`` uses ``lr * (s + 1) / warmup`` (the first step
    already moves)."""
    s = jnp.asarray(step, jnp.float32)
    warmup = hp["warmup"]
    warm = jnp.where(warmup > 0, jnp.minimum(1.0, (s + 1.0) / jnp.maximum(warmup, 1.0)), 1.0)
    span = jnp.maximum(hp["decay_end"] - warmup, 1.0)
    t = jnp.clip((s - warmup) / span, 0.0, 1.0)
    end = hp["final_fraction"]
    decay = end + (1.0 - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * t))
    return hp["lr"] * warm * jnp.where(hp["cosine"] > 0, decay, 1.0)


def _schedule_hp(h) -> dict:
    return {"lr": h["learning_rate"], "warmup": h["warmup_steps"], "decay_end": h["decay_steps"],
            "final_fraction": h["final_lr_fraction"], "cosine": h["cosine"]}


def _clipped_adamw(learning_rate, warmup_steps, decay_steps, final_lr_fraction, cosine,
                   clip_norm, weight_decay) -> optax.GradientTransformation:
    hp = _schedule_hp(dict(learning_rate=learning_rate, warmup_steps=warmup_steps,
                           decay_steps=decay_steps, final_lr_fraction=final_lr_fraction,
                           cosine=cosine))
    return optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.adamw(lambda count: learning_rate_at(hp, count), weight_decay=weight_decay),
    )


#: The one transformation behind every default optimizer (its ``update`` is shared).
_DEFAULT = optax.inject_hyperparams(_clipped_adamw, hyperparam_dtype=jnp.float32)(**_PLACEHOLDERS)


def hyperparameters(learning_rate: float, *, steps: int, schedule: str = "constant",
                    warmup_steps: int = 0, final_lr_fraction: float = 0.0,
                    clip_norm: float | None = None, weight_decay: float = 0.0) -> dict:
    """The default optimizer's hyper-parameters as float32 arrays (the values its state
    holds); arguments as for ``default_optimizer``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    values = dict(learning_rate=learning_rate, warmup_steps=warmup_steps, decay_steps=steps,
                  final_lr_fraction=final_lr_fraction,
                  cosine=1.0 if schedule == "cosine" else 0.0,
                  clip_norm=math.inf if clip_norm is None else clip_norm,
                  weight_decay=weight_decay)
    return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}


def default_optimizer(learning_rate: float = 1e-3, *, steps: int, schedule: str = "constant",
                      warmup_steps: int = 0, final_lr_fraction: float = 0.0,
                      clip_norm: float | None = None,
                      weight_decay: float = 0.0) -> optax.GradientTransformation:
    """``fit``'s optimizer: clip by global norm, AdamW, warm-up then constant or cosine
    learning rate; an ordinary ``optax.GradientTransformation``.

    Args:
      learning_rate: peak learning rate.
      steps: the step at which the cosine decay ends.
      schedule: ``"constant"`` or ``"cosine"`` (to ``final_lr_fraction * learning_rate``).
      warmup_steps: linear warm-up steps (0: none).
      final_lr_fraction: end of the cosine decay, as a fraction of ``learning_rate``.
      clip_norm: global gradient-norm threshold (None: no clipping).
      weight_decay: decoupled weight decay (AdamW, Loshchilov & Hutter 2019); 0: Adam.
    """
    values = hyperparameters(learning_rate, steps=steps, schedule=schedule,
                             warmup_steps=warmup_steps, final_lr_fraction=final_lr_fraction,
                             clip_norm=clip_norm, weight_decay=weight_decay)

    def init(params):
        return with_hyperparameters(_DEFAULT.init(params), values)

    return optax.GradientTransformation(init, _DEFAULT.update)


def is_default(tx: optax.GradientTransformation) -> bool:
    """True for an optimizer made by ``default_optimizer``."""
    return tx.update is _DEFAULT.update


def with_hyperparameters(state, values: dict):
    """The default optimizer's ``state`` holding the hyper-parameters ``values`` (the
    documented way to change ``inject_hyperparams`` values: replace them in the state)."""
    return state._replace(hyperparams={**state.hyperparams, **values})


def _scheduled_learning_rate(state) -> jax.Array:
    return learning_rate_at(_schedule_hp(state.hyperparams), jnp.maximum(state.count - 1, 0))


def _injected_learning_rate(state) -> jax.Array:
    found = optax.tree_utils.tree_get_all_with_path(state, "learning_rate")
    if found:
        return jnp.asarray(found[0][1], jnp.float32)
    return jnp.float32(jnp.nan)


def learning_rate_reader(tx: optax.GradientTransformation):
    """A function ``state -> learning rate of the last update`` for ``tx``'s state: the
    schedule of a default optimizer at its step, else an ``inject_hyperparams``
    ``learning_rate`` found in the state, else NaN (traceable; one of two module-level
    functions, so it can be a static argument of a jitted function)."""
    return _scheduled_learning_rate if is_default(tx) else _injected_learning_rate


def describe(tx: optax.GradientTransformation, state) -> str:
    """What a checkpoint records of the optimizer: ``"default"``, or ``"custom"`` with a
    hash of the state's tree structure (a resumed run must have the same structure)."""
    if is_default(tx):
        return "default"
    text = str(jax.tree_util.tree_structure(state))
    return "custom " + hashlib.sha1(text.encode()).hexdigest()[:12]
