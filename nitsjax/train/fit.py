"""``fit``: training of a ``Flow`` (or another model) with optax, on device: maximum
likelihood by default, or another objective (``loss="crps"``, ``"energy"``, a callable).

One call trains, evaluates, early-stops, checkpoints and resumes::

    params, history = nj.fit(flow, params, x_train, x_val, key=jax.random.key(0),
                             steps=5000, batch_size=256, checkpoint_dir="runs/maf")

``fit`` composes small parts, each testable alone:

* ``nitsjax.train.optim``: the default optimizer (clip, AdamW, warm-up and cosine
  schedule, as ``optax.inject_hyperparams``); any ``optax.GradientTransformation`` can be
  passed as ``optimizer=`` instead;
* ``nitsjax.train.step``: the compiled kernels, one jitted ``lax.scan`` over
  ``eval_every`` steps per dispatch (non-finite steps skipped, EMA with ``optax.ema``) and
  the batched validation NLL;
* ``nitsjax.train.early_stopping``, ``progress``, ``signals``, ``checkpoint`` (orbax,
  resume), ``sharding`` (data parallel), ``gaussian`` (the Gaussian floor) and
  ``dequantize`` (integer-valued columns).

Before training ``fit`` checks every argument, reports constant, collinear and
integer-valued columns of the training split (``nitsjax.data.columns``), initialises the
flow's data-dependent layers from it when they are fresh, and evaluates the validation
NLL at step 0. SIGINT/SIGTERM during ``fit`` end the running period, checkpoint it and
raise ``FitInterrupted``; the same call again resumes and ends with exactly the params of
an uninterrupted run (the RNG stream is a pure function of the saved key and the step).
"""

from __future__ import annotations

import inspect
import logging
import math
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nitsjax import losses
from nitsjax.flow import Flow
from nitsjax.train import dequantize as dq
from nitsjax.train import optim, sharding
from nitsjax.train.checkpoint import Checkpointer, check_writable
from nitsjax.train.early_stopping import EarlyStopping
from nitsjax.train.gaussian import gaussian_floor
from nitsjax.train.history import History
from nitsjax.train.loop import Run
from nitsjax.train.optim import SCHEDULES, learning_rate_at  # noqa: F401 - re-exported
from nitsjax.train.progress import Progress
from nitsjax.train.signals import stop_on_signals
from nitsjax.train.step import compiled_cache_sizes, run_period, train_period_jit  # noqa: F401
from nitsjax.validation import check_context, check_data, check_key, check_positive_int

log = logging.getLogger(__name__)

#: ``eval_every=None``: evaluate once per epoch of the training split, at most this many
#: steps apart.
MAX_EVAL_EVERY = 250
#: Data-dependent init uses at most this many training rows (all of them, below).
DATA_INIT_ROWS = 100_000
#: The arguments that build the default optimizer (refused together with ``optimizer=``).
OPTIMIZER_ARGS = ("learning_rate", "schedule", "warmup_steps", "final_lr_fraction",
                  "clip_norm", "weight_decay")


class FitDiverged(RuntimeError):
    """Training stopped after too many consecutive non-finite steps.

    Attributes: ``params`` (the last finite params, best-on-validation if available),
    ``history``, ``step`` and ``checkpoint_dir`` (holding the last good checkpoint, if any).
    """

    def __init__(self, message, params=None, history=None, step=None, checkpoint_dir=None):
        super().__init__(message)
        self.params, self.history, self.step = params, history, step
        self.checkpoint_dir = checkpoint_dir


class FitInterrupted(KeyboardInterrupt):
    """``fit`` received SIGINT or SIGTERM; the state was checkpointed (if a directory was
    given) and the run can be resumed by repeating the call. Carries ``params``,
    ``history``, ``step``, ``signum`` and ``checkpoint_dir``."""

    def __init__(self, message, params=None, history=None, step=None, signum=None,
                 checkpoint_dir=None):
        super().__init__(message)
        self.params, self.history, self.step = params, history, step
        self.signum, self.checkpoint_dir = signum, checkpoint_dir


# ------------------------------------------------------------------ input checking
def _check_float(v, name, *, low=None, high=None, low_open=False, high_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v!r}")
    if low is not None and (v < low or (low_open and v == low)):
        rel = ">" if low_open else ">="
        raise ValueError(f"{name}: expected a number {rel} {low}, got {v!r}")
    if high is not None and (v > high or (high_open and v == high)):
        rel = "<" if high_open else "<="
        raise ValueError(f"{name}: expected a number {rel} {high}, got {v!r}")
    return v


def _typed_key(key):
    check_key(key, "key")
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    return key


def _optimizer(optimizer, steps, given: dict) -> optax.GradientTransformation:
    """``optimizer`` as given, or the default one built from the learning-rate arguments
    (``given``: their values in this call); refuses both at once."""
    defaults = inspect.signature(fit).parameters
    if optimizer is not None:
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(f"optimizer: expected an optax.GradientTransformation (e.g. "
                            f"optax.adam(1e-3)) or None, got {type(optimizer).__name__}")
        clash = [k for k in OPTIMIZER_ARGS if given[k] != defaults[k].default]
        if clash:
            raise ValueError(
                f"optimizer: given together with {', '.join(clash)}, which only build the "
                f"default optimizer; put them into the optax transformation instead (e.g. "
                f"optax.chain(optax.clip_by_global_norm(1.0), optax.adamw("
                f"optax.warmup_cosine_decay_schedule(0.0, 1e-3, 100, {steps}), "
                f"weight_decay=1e-4))) or drop optimizer="
            )
        return optimizer
    lr = _check_float(given["learning_rate"], "learning_rate", low=0.0, low_open=True)
    clip = given["clip_norm"]
    if given["schedule"] not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {given['schedule']!r}")
    return optim.default_optimizer(
        lr, steps=steps, schedule=given["schedule"],
        warmup_steps=check_positive_int(given["warmup_steps"], "warmup_steps", minimum=0),
        final_lr_fraction=_check_float(given["final_lr_fraction"], "final_lr_fraction",
                                       low=0.0, high=1.0),
        clip_norm=None if clip is None else _check_float(clip, "clip_norm", low=0.0,
                                                         low_open=True),
        weight_decay=_check_float(given["weight_decay"], "weight_decay", low=0.0),
    )


def _pad_batches(x, c, batch):
    """Split rows into ``ceil(n / batch)`` batches (on the host), padding with copies of
    row 0; returns device arrays ``(batches, batch, ...)`` and the validity mask."""
    n = x.shape[0]
    nb = -(-n // batch)
    pad = nb * batch - n

    def padded(a):
        a = np.asarray(a)
        if pad:
            a = np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
        return jnp.asarray(a.reshape((nb, batch) + a.shape[1:]))

    mask = jnp.asarray((np.arange(nb * batch) < n).reshape(nb, batch))
    return padded(x), None if c is None else padded(c), mask


def default_eval_every(n: int, batch_size: int) -> int:
    """``eval_every=None``: once per epoch of ``n`` rows (``n // batch_size`` steps), at
    most ``MAX_EVAL_EVERY`` steps apart."""
    return max(1, min(n // batch_size, MAX_EVAL_EVERY))


def _given(dequantize) -> bool:
    """Whether ``dequantize`` asks for dequantisation explicitly (not "auto", not off)."""
    if isinstance(dequantize, str):
        return dequantize != "auto"
    return dequantize is not False and dequantize is not None


def _column_steps(train, dequantize, dim):
    """Report the training columns (``nitsjax.data.columns``) and resolve ``dequantize``."""
    from nitsjax.data.columns import describe_columns

    report = describe_columns(train)
    if report.ok:
        log.info("fit: %s", report)
    else:
        log.warning("fit: %s", report)
    steps = dq.resolve(dequantize, np.asarray(report.steps), dim)
    if steps is not None:
        cols = {int(j): float(steps[j]) for j in np.flatnonzero(steps > 0)}
        log.info("fit: dequantising column(s) %s (column: step) with uniform noise; every "
                 "NLL reported is a bound on the NLL of the discrete data", cols)
    return steps


# ------------------------------------------------------------------------- fit
def fit(
    flow: Flow,
    params,
    train,
    val=None,
    *,
    key: jax.Array,
    steps: int = 5000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    patience: int | None = 20,
    checkpoint_dir=None,
    context=None,
    val_context=None,
    eval_every: int | None = None,
    eval_batch_size: int = 1024,
    schedule: str = "constant",
    warmup_steps: int = 0,
    final_lr_fraction: float = 0.0,
    clip_norm: float | None = None,
    weight_decay: float = 0.0,
    ema_decay: float | None = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    max_consecutive_nonfinite: int = 20,
    loss: str | Callable = "nll",
    callback: Callable[[dict], Any] | None = None,
    progress: bool = True,
    data_parallel: bool | int = False,
    data_init: bool = True,
    dequantize: Any = "auto",
    spread: float | None = None,
    diagnostics_every: int | None = None,
):
    """Train ``flow`` from ``params`` by minimising ``loss`` (default: mean NLL).

    Args:
      flow: a ``nitsjax.Flow``, or another model (``nitsjax.models``): any hashable object
        with ``name``, ``dim``, ``context_dim`` and ``init``, and what its loss needs
        (``log_prob_batch`` for the NLL; see ``nitsjax.losses``).
      params: initial params (``flow.init(key)``). When ``checkpoint_dir`` holds a
        checkpoint of this run, they only give the structure and the run resumes.
      train: training data ``(n, dim)``; ``context`` its ``(n, context_dim)`` contexts for
        a conditional flow.
      val: optional validation data ``(m, dim)`` with ``val_context``: evaluated at step 0
        (before any update) and every ``eval_every`` steps, in batches of
        ``eval_batch_size`` rows; early stopping and restore-best use it.
      key: PRNG key; it determines the shuffling, dropout and dequantisation streams. A
        resumed run uses the key saved in the checkpoint.
      steps: total number of optimisation steps (including those of resumed runs).
      batch_size: minibatch rows; must be <= n (``ValueError`` naming both otherwise:
        nothing is silently clamped). Each epoch is reshuffled and its last
        ``n % batch_size`` rows are dropped.
      learning_rate: peak learning rate (> 0) of the default optimizer.
      optimizer: any ``optax.GradientTransformation`` (e.g. ``optax.sgd(1e-2)``), used as
        given; then ``learning_rate``, ``schedule``, ``warmup_steps``,
        ``final_lr_fraction``, ``clip_norm`` and ``weight_decay`` must not be passed. The
        training kernel compiles per transformation object: reuse the same object to
        reuse compiled code across calls. None (default): clip by global norm, AdamW,
        warm-up then constant or cosine schedule (``nitsjax.train.optim``); calls that
        differ only in those numbers share one compiled kernel.
      patience: stop when the validation NLL has not improved by more than ``min_delta``
        for this many evaluations in a row (``None``: never). Needs ``val``; without it
        training runs all ``steps``.
      checkpoint_dir: directory for orbax checkpoints and ``history.jsonl`` (needs the
        ``cli`` extra: ``pip install "nitsjax[cli]"``); checked for writability before
        training. If it already holds a checkpoint, training resumes from it (params,
        optimiser state, EMA, step, key, best params, patience counter, history), so a
        resumed run ends with the same params as an uninterrupted one.
      eval_every: optimisation steps per dispatch, evaluation, history record and
        checkpoint. None (default): once per epoch of the training split, at most 250
        steps apart (``min(n // batch_size, 250)``), so that small data sets are
        validated at least once per pass over them.
      schedule: ``"constant"`` or ``"cosine"`` (decays to ``final_lr_fraction *
        learning_rate`` at ``steps``), after ``warmup_steps`` of linear warm-up.
      clip_norm: global gradient-norm clipping threshold (None: no clipping).
      weight_decay: decoupled weight decay (AdamW, Loshchilov & Hutter 2019); 0 gives
        plain Adam. For small tables (hundreds of rows) try ``weight_decay=1e-4`` to
        ``1e-3`` with the constructors' ``dropout=0.1`` (dropout is active in ``fit``,
        which passes a key to the loss); the step-0 evaluation, early stopping and
        restore-best guard against overfitting in any case.
      ema_decay: if set (e.g. 0.999), keep an exponential moving average of the params
        (``optax.ema``, bias-corrected) and evaluate, early-stop and return it.
      restore_best: with ``val``, return the params of the best validation evaluation,
        step 0 included (otherwise the final ones).
      max_consecutive_nonfinite: raise ``FitDiverged`` after this many skipped
        (non-finite) steps in a row.
      loss: the objective: a registered name (``"nll"``, the default; the others are
        listed by ``nitsjax.registry.names("loss")``) or a callable ``loss(flow, params,
        x_batch, context_batch, key) -> scalar`` (``nitsjax.losses``). A loss that the
        model cannot be trained by is refused before any work, naming the models that
        qualify. With another objective than the NLL each record also holds
        ``train_loss`` and ``val_loss``, and early stopping and restore-best follow
        ``val_loss``; ``val_nll`` is still reported when the model has a density.
      callback: called with each history record (before it is checkpointed); returning
        ``True`` stops training (``history.stopped == "callback"``).
      progress: show a tqdm progress bar.
      data_parallel: ``True`` trains data-parallel on all devices of ``jax.devices()``
        (after ``jax.distributed.initialize()``: those of every process), an int ``k`` on
        the first ``k`` of them; ``False`` (default) on the default device. The training
        rows are sharded over a ``"data"`` mesh axis, each minibatch is split along its
        batch axis (``batch_size`` must be divisible by the device count), params and
        optimiser state are replicated (``nitsjax.train.sharding``). Same minibatches and
        results as one device up to the order of floating-point sums; checkpoints are
        interchangeable between the two.
      data_init: when the flow has data-dependent layers (whitening, ActNorm) still at
        their fresh values, initialise them from the training split (up to 100,000 rows)
        before training, and log it. A resumed run never re-initialises.
      dequantize: integer-valued (lattice) columns. ``"auto"`` (default): the columns
        ``nitsjax.data.columns.lattice_steps`` finds in the training split; ``True``: the
        same, an error if there is none; an array ``(dim,)``: these steps (0: none);
        ``False``: off. Each training step adds fresh uniform noise ``(u - 1/2) * step``,
        ``u ~ U[0, 1)``, to those columns (bins centred on the grid); validation uses one
        fixed draw. Every NLL
        reported (train, validation, Gaussian floor) is then the variational bound on the
        discrete data, ``-log P(x) <= -log p(x + (u - 1/2) * step) - sum_j log step_j``
        (``history.dequantized`` = ``{column: step}``). A flow of discrete data (its
        ``discrete`` attribute is true, e.g. ``image_nits``) is not dequantised by ``"auto"``.
      spread: a noise scale ``sigma > 0`` (data units) for data with degenerate support
        (on a manifold, duplicated rows): train by the spread divergence (Zhang et al.,
        ICML 2020, ``nitsjax.spread``), i.e. maximum likelihood of the noise-convolved
        flow ``q * N(0, sigma^2 I)`` on noise-convolved data ``x + sigma * eps`` (fresh
        noise each step). ``log (q * N)(y)`` is intractable and estimated with
        ``nitsjax.spread.SPREAD_SAMPLES`` importance samples, the noise kernel as proposal
        (``nitsjax.spread.SpreadNLL``: a stochastic upper bound on the spread NLL). The
        flow still models the noiseless data. Records then have ``train_loss`` and
        ``val_loss`` (the spread NLL; early stopping follows it) and ``val_nll`` (the
        plain NLL). Only with ``loss="nll"``; None (default): plain maximum likelihood.
      diagnostics_every: with ``val``, every this many steps (at the first evaluation at
        least that many steps after the last, and at step 0) compute
        ``nitsjax.diagnostics.memorisation(flow, params, train, val)`` (Yang & E, arXiv
        2212.11481) and add its ``generalisation_gap``, ``nn_ratio`` and
        ``copy_fraction`` to the history record (``None`` in the other records). Host
        work (sampling, nearest neighbours), so keep it a multiple of ``eval_every``.

    Returns:
      ``(params, history)``: the trained params and a ``History``. ``history.returned``
      says which params were returned (``"best"``, ``"final"`` or ``"initial"``: the
      step-0 params) and ``history.returned_step`` from which step;
      ``history.gaussian_val_nll`` is the validation NLL of the full-covariance Gaussian
      fitted to the training rows (``nitsjax.train.gaussian``); a warning is logged when
      the returned params score worse.

    Raises:
      FitDiverged: too many consecutive non-finite steps (the last good checkpoint is
        intact). FitInterrupted: SIGINT/SIGTERM arrived; state checkpointed first.
    """
    # --------------------------------------------------- checks, before any work
    _check_model(flow)
    key = _typed_key(key)
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    if eval_every is not None:
        eval_every = check_positive_int(eval_every, "eval_every")
    eval_batch_size = check_positive_int(eval_batch_size, "eval_batch_size")
    max_consecutive_nonfinite = check_positive_int(
        max_consecutive_nonfinite, "max_consecutive_nonfinite"
    )
    tx = _optimizer(optimizer, steps, dict(
        learning_rate=learning_rate, schedule=schedule, warmup_steps=warmup_steps,
        final_lr_fraction=final_lr_fraction, clip_norm=clip_norm, weight_decay=weight_decay))
    min_delta = _check_float(min_delta, "min_delta", low=0.0)
    if ema_decay is not None:
        ema_decay = _check_float(ema_decay, "ema_decay", low=0.0, high=1.0, low_open=True,
                                 high_open=True)
    loss = losses.resolve(loss)
    if spread is not None:
        from nitsjax.spread import SpreadNLL, check_sigma

        if loss is not losses.nll:
            raise ValueError(f"spread: trains by the spread NLL, so it needs loss='nll', got "
                             f"loss={losses.name_of(loss)!r}; drop one of them")
        loss = SpreadNLL(check_sigma(spread, "spread"))
    losses.check(loss, flow)
    density = callable(getattr(flow, "log_prob_batch", None))
    other = None if loss is losses.nll else loss  # another objective than the NLL
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable or None, got {type(callback).__name__}")
    if not isinstance(data_init, bool):
        raise ValueError(f"data_init: expected True or False, got {data_init!r}")

    train = check_data(train, flow.dim, "train")
    n = train.shape[0]
    context = check_context(context, flow.context_dim, n, "context")
    if batch_size > n:
        raise ValueError(
            f"batch_size: {batch_size} is larger than the number of training rows n={n}; "
            f"pass batch_size <= {n}"
        )
    if val is None:
        if val_context is not None:
            raise ValueError("val_context: given without val data")
    else:
        val = check_data(val, flow.dim, "val")
        val_context = check_context(val_context, flow.context_dim, val.shape[0], "val_context")
    if patience is not None:
        patience = check_positive_int(patience, "patience")
    if diagnostics_every is not None:
        diagnostics_every = check_positive_int(diagnostics_every, "diagnostics_every")
        if val is None or not density or context is not None:
            raise ValueError("diagnostics_every: the memorisation diagnostics need val data "
                             "and an unconditional model with a density; pass val= or drop "
                             "diagnostics_every")
        diagnose = _Diagnostics(flow, train, val, diagnostics_every)
    devices = sharding.resolve_devices(data_parallel)
    mesh = None
    if devices is not None:
        mesh = sharding.data_mesh(devices)
        if batch_size % len(devices):
            raise ValueError(
                f"batch_size: data_parallel over {len(devices)} devices needs a batch size "
                f"divisible by {len(devices)}, got {batch_size}; pass e.g. batch_size="
                f"{max(len(devices), batch_size - batch_size % len(devices))}"
            )
    if checkpoint_dir is not None:
        check_writable(checkpoint_dir)
    if getattr(flow, "discrete", False) and not _given(dequantize):
        # the model puts mass on the integer values themselves (image_nits): constant,
        # collinear and lattice columns are what it models, not a problem to report
        log.info("fit: %s models discrete values; no column is dequantised", flow.name)
        lattice = None
    else:
        lattice = _column_steps(train, dequantize, flow.dim)  # also reports odd columns
    eval_every = eval_every or default_eval_every(n, batch_size)

    # ------------------------------------------------------ state, resumed or fresh
    use_ema = ema_decay is not None
    fingerprint = {
        "flow": flow.name, "dim": flow.dim, "context_dim": flow.context_dim,
        "loss": losses.name_of(loss),
        "n_train": int(n), "batch_size": batch_size, "ema": use_ema, "val": val is not None,
        "optimizer": optim.describe(tx, jax.eval_shape(tx.init, params)),
        "dequantize": None if lattice is None else [float(s) for s in lattice],
    }
    ckpt = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    try:
        run = Run(flow, tx, params, key, ema_decay,
                  EarlyStopping(patience if val is not None else None, min_delta), ckpt,
                  fingerprint, offset=dq.log_volume(lattice), callback=callback,
                  loss=other, density=density)
        if not run.resume() and data_init and _needs_data_init(flow, params):
            rows = min(n, DATA_INIT_ROWS)
            run.reset(flow.data_init(params, dq.with_fixed_noise(train[:rows], lattice),
                                     None if context is None else context[:rows]))
            run.history.data_initialized = True
            log.info("fit: initialised the flow's data-dependent layers from %d training "
                     "rows", rows)
        run.history.loss = losses.name_of(loss)
        run.history.dequantized = (None if lattice is None else
                                   {int(j): float(lattice[j]) for j in np.flatnonzero(lattice)})
        if val is not None:
            val = dq.with_fixed_noise(val, lattice)
            if density:
                run.history.gaussian_val_nll = gaussian_floor(
                    dq.with_fixed_noise(train, lattice), val) - run.offset
        data, run.val_data = _on_devices(train, context, lattice, val, val_context,
                                         eval_batch_size, mesh)
        if val is not None and other is not None:
            run.val_loss_data = _loss_batches(val, val_context, eval_batch_size)
        if mesh is not None:
            run.replicate(mesh)

        # ---------------------------------------------------------------- train
        step, t0 = run.step, time.perf_counter()
        with stop_on_signals() as flag, Progress(steps, step, progress) as bar:
            if step == 0 and val is not None and not run.history.records:
                run.evaluate(None, run.elapsed_before)  # step 0 competes for the best
                if diagnostics_every is not None:
                    diagnose(run)
            while step < steps and run.history.stopped is None:
                num = min(eval_every, steps - step)
                run.carry, m = run_period(
                    flow=flow, loss=loss, update=tx.update,
                    learning_rate_of=optim.learning_rate_reader(tx), num_steps=num,
                    length=eval_every,
                    batch_size=batch_size, carry=run.carry, ema_decay=run.ema_decay,
                    data=data, key=run.key, mesh=mesh, n=None if mesh is None else n,
                )
                m = jax.device_get(m)
                step += num
                if int(m["max_consecutive"]) >= max_consecutive_nonfinite:
                    raise _diverged(m, step - num, step, max_consecutive_nonfinite, ckpt,
                                    run.final_params(restore_best), run.history)
                elapsed = run.elapsed_before + time.perf_counter() - t0
                record = run.evaluate(m, elapsed)
                if diagnostics_every is not None:
                    diagnose(run)
                run.save(elapsed)
                bar.update(num, record)
                if run.history.stopped is not None:
                    log.info("fit: stopped at step %d (%s)", step, run.history.stopped)
                elif flag["signum"] is not None:
                    raise _interrupted(flag["signum"], step, ckpt,
                                       run.final_params(restore_best), run.history)
    finally:
        if ckpt is not None:
            ckpt.close()
    best = restore_best and run.best_params is not None
    _report_returned(run.history, best, step, compare=other is None)
    return run.final_params(restore_best), run.history


class _Diagnostics:
    """``fit(diagnostics_every=)``: adds the memorisation diagnostics to the last history
    record when due (a fixed key per step: the run's own RNG stream is untouched)."""

    def __init__(self, flow, train, val, every: int):
        self.flow, self.every = flow, every
        self.train, self.val = np.asarray(train), np.asarray(val)

    def __call__(self, run) -> None:
        from nitsjax import diagnostics

        records = run.history.records
        done = [r["step"] for r in records[:-1] if r.get("copy_fraction") is not None]
        record = records[-1]
        due = not done or record["step"] - done[-1] >= self.every
        values = dict.fromkeys(diagnostics.RECORD_KEYS)
        if due:
            key = jax.random.fold_in(jax.random.key(0), record["step"])
            got = diagnostics.memorisation(self.flow, run.current_params(), self.train,
                                           self.val, key=key)
            values = {k: got[k] for k in diagnostics.RECORD_KEYS}
            log.info("fit: step %d memorisation diagnostics %s", record["step"],
                     {k: round(v, 4) for k, v in values.items()})
        record.update(values)


def _check_model(model) -> None:
    """A ``TypeError`` unless ``model`` has what ``fit`` uses of every model."""
    missing = [a for a in ("name", "dim", "context_dim", "init") if not hasattr(model, a)]
    if missing:
        raise TypeError(
            f"flow: expected a nitsjax Flow or model (nitsjax.flows, nitsjax.models), got "
            f"{type(model).__name__} without {', '.join(missing)}"
        )
    try:
        hash(model)
    except TypeError:
        raise TypeError(f"flow: {type(model).__name__} is not hashable; fit compiles its "
                        "kernels with the model as a static argument") from None


def _loss_batches(val, val_context, batch: int):
    """The validation rows for a loss kernel: ``(xs, cs)`` full batches ``(batches,
    batch, ...)`` (None when there are fewer rows than ``batch``) and the remainder
    ``(x, c)`` (None when there is none); unpadded, so a batch mean is a mean over rows."""
    n = val.shape[0]
    batch = min(batch, n)
    full = n // batch * batch

    def split(a):
        return None if a is None else jnp.asarray(a[:full]).reshape((-1, batch) + a.shape[1:])

    rest = None
    if full < n:
        rest = (jnp.asarray(val[full:]),
                None if val_context is None else jnp.asarray(val_context[full:]))
    return (split(val), split(val_context)), rest


def _needs_data_init(flow, params) -> bool:
    """``flow.needs_data_init(params)`` (False for flows without that method)."""
    needs = getattr(flow, "needs_data_init", None)
    return needs is not None and bool(needs(params))


def _on_devices(train, context, lattice, val, val_context, eval_batch_size, mesh):
    """The training arrays ``(x, context, lattice)`` and the padded validation batches
    ``(xs, contexts, mask)`` (None without ``val``) on the device, or split over ``mesh``."""
    lattice = None if lattice is None else jnp.asarray(lattice, train.dtype)
    if mesh is None:
        data = (jnp.asarray(train), None if context is None else jnp.asarray(context), lattice)
    else:
        ndev = mesh.devices.size
        data = tuple(None if a is None else sharding.put_rows(sharding.pad_rows(a, ndev), mesh)
                     for a in (train, context))
        data = (*data, sharding.replicate(lattice, mesh))
    if val is None:
        return data, None
    eb = min(eval_batch_size, val.shape[0])
    if mesh is not None:  # evaluation batches split over the devices too
        eb = -(-eb // mesh.devices.size) * mesh.devices.size
    val_data = _pad_batches(val, val_context, eb)
    if mesh is not None:
        val_data = tuple(None if a is None else sharding.put_rows(np.asarray(a), mesh, 1)
                         for a in val_data)
    return data, val_data


def _diverged(m, start, step, limit, ckpt, params, history) -> FitDiverged:
    last = ckpt.latest_step() if ckpt is not None else None
    where = (f"the last good checkpoint (step {last}) in {ckpt.directory} is intact"
             if last is not None else "no checkpoint was written")
    return FitDiverged(
        f"fit: training diverged: {int(m['max_consecutive'])} consecutive steps between "
        f"steps {start} and {step} had a non-finite loss, gradient or parameter update "
        f"(limit max_consecutive_nonfinite={limit}); {where}. Try a lower learning_rate, "
        f"clip_norm, warmup_steps, or check the data for extreme values.",
        params=params, history=history, step=step,
        checkpoint_dir=None if ckpt is None else ckpt.directory,
    )


def _interrupted(signum, step, ckpt, params, history) -> FitInterrupted:
    name = signal.Signals(signum).name
    where = (f"checkpoint saved in {ckpt.directory}; run the same call to resume"
             if ckpt is not None else "no checkpoint_dir was given")
    return FitInterrupted(
        f"fit: {name} received; stopped at step {step} ({where})",
        params=params, history=history, step=step, signum=signum,
        checkpoint_dir=None if ckpt is None else ckpt.directory,
    )


def _report_returned(history: History, best: bool, step: int, compare: bool = True) -> None:
    """Record and log which params ``fit`` returns; warn (``compare``: trained by the NLL)
    when they score worse on validation than the Gaussian fitted to the training rows."""
    if best:
        history.returned_step = history.best_step
        history.returned = "initial" if history.best_step == 0 else "best"
        returned_val = history.best_val_nll
    else:
        history.returned, history.returned_step = "final", step
        returned_val = history.records[-1]["val_nll"] if history.records else None
    floor = history.gaussian_val_nll
    text = f"fit: returning the {history.returned} params (step {history.returned_step})"
    if returned_val is not None and floor is not None and compare:
        text += f": validation NLL {returned_val:.4f}, Gaussian fitted to train {floor:.4f}"
        if not returned_val <= floor + 1e-6 * max(1.0, abs(floor)):
            log.warning(
                "%s. The returned params score worse on validation than the full-covariance "
                "Gaussian fitted to the training rows: build the flow with "
                "standardize='whiten' where it offers it (it starts at that Gaussian), keep "
                "restore_best=True, "
                "or regularise (fewer or smaller layers, weight_decay=, dropout=).", text)
            return
    log.info(text)
