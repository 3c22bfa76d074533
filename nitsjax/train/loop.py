"""The host side of one ``fit`` call: the training state between dispatches, evaluation,
best params, the history and checkpoints (resume included).

``Run`` holds what ``fit`` keeps between compiled periods (``nitsjax.train.step``): the
device ``Carry``, the run's key, the best params on validation, the early-stopping
counters and the ``History``. ``evaluate`` scores the current params on the validation
batches and appends the history record; ``save`` checkpoints everything a resumed run
needs to continue bit for bit; ``resume`` restores it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from nitsjax.train import optim, sharding
from nitsjax.train.checkpoint import Checkpointer, restore_run
from nitsjax.train.early_stopping import EarlyStopping
from nitsjax.train.history import History
from nitsjax.train.step import Carry, ema_params_jit, evaluate_loss, evaluate_nll, init_carry

log = logging.getLogger("nitsjax.train.fit")


class Run:
    """State and bookkeeping of one training run.

    Args:
      flow: the flow (static in the compiled kernels).
      tx: the optax transformation.
      params: the initial params.
      key: the run's PRNG key (replaced by the saved one on resume).
      ema_decay: EMA decay, or None for no EMA.
      stopper: the ``EarlyStopping`` state (``patience=None`` without validation).
      ckpt: a ``Checkpointer`` or None.
      fingerprint: what a checkpoint must match to be resumed (``restore_run``).
      offset: subtracted from every NLL (``sum log step`` of dequantised columns).
      callback: ``fit``'s callback, or None.
      loss: the objective when it is not the NLL (then every record also has
        ``train_loss`` and ``val_loss``, and early stopping and the best params follow
        ``val_loss``); None for the NLL.
      density: whether the model has a density (``val_nll`` is evaluated).
    """

    def __init__(self, flow, tx, params, key, ema_decay: float | None,
                 stopper: EarlyStopping, ckpt: Checkpointer | None, fingerprint: dict,
                 offset: float = 0.0, callback: Callable[[dict], Any] | None = None,
                 loss: Callable | None = None, density: bool = True):
        self.flow, self.tx, self.key = flow, tx, key
        self.loss, self.density = loss, density
        self.use_ema = ema_decay is not None
        self.ema_decay = jnp.float32(0.0 if ema_decay is None else ema_decay)
        self.stopper, self.ckpt, self.fingerprint = stopper, ckpt, fingerprint
        self.offset, self.callback = offset, callback
        self.carry = init_carry(tx, params, self.use_ema)
        self.history = History()
        self.best_params = None
        self.elapsed_before = 0.0
        self.val_data = None  # padded batches (xs, contexts, mask) of the NLL kernel
        self.val_loss_data = None  # (full batches, the remainder) of the loss kernel

    @property
    def step(self) -> int:
        return int(self.carry.step)

    def reset(self, params) -> None:
        """Start from ``params`` (e.g. after data-dependent init)."""
        self.carry = init_carry(self.tx, params, self.use_ema)

    # ------------------------------------------------------------- checkpoints
    def state_tree(self) -> dict:
        c = self.carry
        return {
            "params": c.params, "opt_state": c.opt_state, "ema": c.ema,
            "best_params": c.params if self.best_params is None else self.best_params,
            "key": jax.random.key_data(self.key),
            "counters": {"consecutive": c.consecutive, "skipped": c.skipped},
        }

    def resume(self) -> bool:
        """Restore the latest checkpoint, if any; True when the run resumed."""
        if self.ckpt is None:
            return False
        restored = restore_run(self.ckpt, self.state_tree(), self.fingerprint)
        if restored is None:
            return False
        state, meta = restored
        self.key = jax.random.wrap_key_data(state["key"], impl=meta["key_impl"])
        opt_state = state["opt_state"]
        if optim.is_default(self.tx):  # this call's hyper-parameters apply, as documented
            opt_state = optim.with_hyperparameters(opt_state, self.carry.opt_state.hyperparams)
        self.carry = Carry(state["params"], opt_state, state["ema"],
                           jnp.asarray(meta["step"], jnp.int32),
                           state["counters"]["consecutive"], state["counters"]["skipped"])
        self.history = History.from_json(meta["history"])
        if self.history.best_step is not None:
            self.best_params = state["best_params"]
        self.stopper.best = math.inf if meta["best_val"] is None else meta["best_val"]
        self.stopper.bad, self.elapsed_before = meta["bad_evals"], meta["elapsed"]
        log.info("fit: resuming from step %d in %s", meta["step"], self.ckpt.directory)
        return True

    def save(self, elapsed: float) -> None:
        """Checkpoint the state (not written when the params are not finite)."""
        if self.ckpt is None:
            return
        step = self.step
        meta = {
            "step": step,
            "best_val": self.stopper.best if math.isfinite(self.stopper.best) else None,
            "bad_evals": self.stopper.bad, "elapsed": elapsed, "config": self.fingerprint,
            "key_impl": str(jax.random.key_impl(self.key)),
            "history": self.history.to_json(),
        }
        if not self.ckpt.save(step, self.state_tree(), meta, self.history):
            log.warning("fit: params at step %d are not finite; checkpoint not written", step)

    def replicate(self, mesh) -> None:
        """Place the state replicated on every device of ``mesh`` (data parallel)."""
        self.carry, self.best_params, self.key, self.ema_decay = sharding.replicate(
            (self.carry, self.best_params, self.key, self.ema_decay), mesh)

    # -------------------------------------------------------------- evaluation
    def current_params(self):
        """The params to evaluate now: the bias-corrected EMA once it has an update."""
        if self.use_ema and int(self.carry.ema.count) > 0:
            return ema_params_jit(self.carry.ema, self.ema_decay)
        return self.carry.params

    def final_params(self, restore_best: bool):
        if restore_best and self.best_params is not None:
            return self.best_params
        return self.current_params()

    def evaluate(self, metrics: dict | None, elapsed: float) -> dict:
        """Validation NLL (with ``val_data``; and the validation loss of a non-NLL
        objective), best params, early stopping, the history
        record of the current step (``metrics`` of the period just run, None at step 0)
        and the callback; returns the record."""
        h, step = self.history, self.step
        val_nll = val_loss = None
        if self.val_data is not None:
            params = self.current_params()
            if self.density:
                val_nll = float(evaluate_nll(self.flow, params, *self.val_data)) - self.offset
            if self.loss is not None:
                val_loss = self._val_loss(params)
            monitored = val_nll if self.loss is None else val_loss
            if self.stopper.update(monitored):
                self.best_params = params
                h.best_step, h.best_val_nll, h.best_val_loss = step, val_nll, val_loss
        m = metrics
        train = None if m is None else float(m["train_nll"])
        record = {
            "step": step,
            "train_nll": None if train is None or self.loss is not None else train - self.offset,
            "val_nll": val_nll,
            "lr": None if m is None else float(m["lr"]),
            "time": elapsed,
            "skipped": 0 if m is None else int(m["skipped"]),
            "skipped_total": int(self.carry.skipped),
        }
        if self.loss is not None:
            record.update(train_loss=train, val_loss=val_loss)
        h.append(record)
        if self.stopper.stop:
            h.stopped = "early_stopping"
        if self.callback is not None and self.callback(dict(record)) is True:
            h.stopped = h.stopped or "callback"
        return record

    def _val_loss(self, params) -> float:
        """The loss on the validation rows: the mean over full batches and the remainder,
        weighted by their rows."""
        (xs, cs), rest = self.val_loss_data
        total, rows = 0.0, 0
        if xs is not None:
            rows = xs.shape[0] * xs.shape[1]
            total = float(evaluate_loss(self.flow, self.loss, params, xs, cs)) * rows
        if rest is not None:
            xr, cr = rest
            total += float(evaluate_loss(self.flow, self.loss, params, xr[None],
                                         None if cr is None else cr[None])) * xr.shape[0]
            rows += xr.shape[0]
        return total / rows
