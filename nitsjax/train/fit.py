"""``fit``: maximum-likelihood training of a ``Flow`` with optax, on device.

One call trains, evaluates, early-stops, checkpoints and resumes::

    params, history = nj.fit(flow, params, x_train, x_val, key=jax.random.key(0),
                             steps=5000, batch_size=256, learning_rate=1e-3,
                             patience=10, checkpoint_dir="runs/maf")

How it runs (DESIGN.md, performance habits):

* The training (and validation) arrays are moved to the device once. Each dispatch is one
  jitted ``lax.scan`` over ``eval_every`` optimisation steps; the minibatch of step ``s`` is
  the ``s % B``-th slice of a permutation of the rows drawn on device for epoch ``s // B``
  (``B = n // batch_size`` batches per epoch, the ragged remainder of each shuffled epoch is
  dropped), so shapes are static and nothing is synchronised with the host inside a period.
* Hyper-parameters (learning rate, schedule lengths, clipping norm, weight decay, EMA
  decay) are traced arguments, and the compiled functions are cached on (flow, loss,
  shapes), so repeated ``fit`` calls of the same shapes do not recompile.
* Optimiser: ``clip_by_global_norm -> Adam -> decoupled weight decay`` (AdamW when
  ``weight_decay > 0``; Loshchilov & Hutter 2019), scaled by a learning rate that is
  constant or cosine-decayed (Loshchilov & Hutter 2017), with optional linear warm-up.
  The schedule is a function of the global step, skipped steps included.
* A step whose loss, gradient or updated params are not all finite is skipped: params,
  optimiser state and EMA keep their previous values, and the skip is counted. After
  ``max_consecutive_nonfinite`` skipped steps in a row, ``fit`` raises ``FitDiverged``
  without writing a checkpoint, so the last good one is intact.
* Every ``eval_every`` steps: validation NLL (batched, padded to static shapes),
  early stopping with ``patience`` evaluations, a history record and an orbax checkpoint.
* SIGINT/SIGTERM during ``fit`` set a flag; at the end of the running period the state is
  evaluated and checkpointed as usual and ``FitInterrupted`` (a ``KeyboardInterrupt``) is
  raised. Running the same call again resumes from the checkpoint, reproducing the
  uninterrupted run exactly: the RNG stream is a pure function of the saved key and the
  step count.
* ``data_parallel=True``: the same program over a ``"data"`` mesh of all devices, rows
  and minibatches split along the mesh, params replicated (``nitsjax.train.sharding``).
  Drawing each period's permutations before the step loop instead of under the per-step
  ``cond`` made no measurable difference either, so the epoch permutation stays lazy.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nitsjax.flow import Flow
from nitsjax.train import sharding
from nitsjax.train.checkpoint import Checkpointer, check_writable
from nitsjax.train.history import History
from nitsjax.train.losses import nll
from nitsjax.validation import check_context, check_data, check_key, check_positive_int

log = logging.getLogger(__name__)

Array = jax.Array

SCHEDULES = ("constant", "cosine")


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


# ------------------------------------------------------------------- jitted kernels
class _Carry(NamedTuple):
    params: Any
    opt_state: Any
    ema: Any  # () without EMA
    step: Array  # int32 scalar: optimisation steps done
    consecutive: Array  # int32: current run of skipped steps
    skipped: Array  # int32: skipped steps in total


def _optimizer(hp) -> optax.GradientTransformation:
    """Clip by global norm, Adam moments, decoupled weight decay; lr applied separately.

    ``hp`` values may be tracers: the state structure does not depend on them. Without
    clipping the threshold is ``inf``: the global norm is still computed, which costs
    nothing measurable (one reduction fused into the update; skipping it under a
    ``lax.cond`` or a static flag changed steps/s by less than the noise, on a MAF of
    2x32 and of 2x128 units), and switching clipping on or off does not recompile."""
    return optax.chain(
        optax.clip_by_global_norm(hp["clip_norm"]),
        optax.scale_by_adam(),
        optax.add_decayed_weights(hp["weight_decay"]),
    )


def learning_rate_at(hp, step):
    """The learning rate of (0-based) ``step``: linear warm-up over ``warmup`` steps, then
    constant (``cosine == 0``) or cosine decay (``cosine == 1``) from ``lr`` to
    ``lr * final_fraction`` at step ``decay_end``. All entries of ``hp`` may be traced."""
    s = jnp.asarray(step, jnp.float32)
    warmup = hp["warmup"]
    warm = jnp.where(warmup > 0, jnp.minimum(1.0, (s + 1.0) / jnp.maximum(warmup, 1.0)), 1.0)
    span = jnp.maximum(hp["decay_end"] - warmup, 1.0)
    t = jnp.clip((s - warmup) / span, 0.0, 1.0)
    end = hp["final_fraction"]
    decay = end + (1.0 - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * t))
    return hp["lr"] * warm * jnp.where(hp["cosine"] > 0, decay, 1.0)


def _all_finite(tree) -> Array:
    leaves = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(leaf.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(ok, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def _train_period(flow, loss, num_steps, batch_size, use_ema, carry, hp, data, key,
                  mesh=None, n=None):
    """``num_steps`` optimisation steps in one ``lax.scan``; returns (carry, metrics).

    With a ``mesh`` (data parallel, ``nitsjax.train.sharding``) the rows of ``data`` are
    sharded over its ``"data"`` axis (padded: ``n`` is the number of real rows), each
    minibatch is gathered sharded along its batch axis and params stay replicated; GSPMD
    adds the gradient all-reduce."""
    x, ctx = data
    n = x.shape[0] if n is None else n
    per_epoch = n // batch_size
    k_shuffle, k_dropout = jax.random.split(key)
    tx = _optimizer(hp)

    def permutation(step):
        return jax.random.permutation(jax.random.fold_in(k_shuffle, step // per_epoch), n)

    def take(a, idx):
        if a is None:
            return None
        if mesh is None:
            return jnp.take(a, idx, axis=0)
        return sharding.gather_rows(a, idx, mesh)

    def body(state, _):
        c, perm = state
        step = c.step
        j = step % per_epoch
        perm = jax.lax.cond(j == 0, lambda: permutation(step), lambda: perm)
        idx = jax.lax.dynamic_slice_in_dim(perm, j * batch_size, batch_size)
        xb, cb = take(x, idx), take(ctx, idx)
        k_step = jax.random.fold_in(k_dropout, step)
        value, grads = jax.value_and_grad(lambda p: loss(flow, p, xb, cb, k_step))(c.params)
        updates, opt_new = tx.update(grads, c.opt_state, c.params)
        lr = learning_rate_at(hp, step)
        new = jax.tree_util.tree_map(lambda p, u: p - (lr * u).astype(p.dtype), c.params, updates)
        ok = jnp.isfinite(value) & _all_finite(grads) & _all_finite(new)
        params = _select(ok, new, c.params)
        opt_state = _select(ok, opt_new, c.opt_state)
        if use_ema:
            d = hp["ema_decay"]
            ema_new = jax.tree_util.tree_map(
                lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), c.ema, new
            )
            ema = _select(ok, ema_new, c.ema)
        else:
            ema = c.ema
        consecutive = jnp.where(ok, 0, c.consecutive + 1)
        skipped = c.skipped + jnp.where(ok, 0, 1).astype(jnp.int32)
        c = _Carry(params, opt_state, ema, step + 1, consecutive, skipped)
        return (c, perm), (value, ok, consecutive, lr)

    (carry, _), (values, oks, runs, lrs) = jax.lax.scan(
        body, (carry, permutation(carry.step)), None, length=num_steps
    )
    good = jnp.sum(oks)
    train = jnp.where(good > 0, jnp.sum(jnp.where(oks, values, 0.0)) / jnp.maximum(good, 1),
                      jnp.nan)
    metrics = {
        "train_nll": train,
        "skipped": num_steps - good,
        "max_consecutive": jnp.max(runs),
        "lr": lrs[-1],
    }
    return carry, metrics


@functools.partial(jax.jit, static_argnames=("use_ema",))
def _initial_carry(params, hp, use_ema):
    zero = jnp.zeros((), jnp.int32)
    return _Carry(params, _optimizer(hp).init(params), params if use_ema else (), zero, zero,
                  zero)


_train_period_jit = jax.jit(
    _train_period,
    static_argnames=("flow", "loss", "num_steps", "batch_size", "use_ema", "mesh", "n"),
)


def _eval_nll(flow, params, xs, cs, mask):
    """Mean NLL over the rows where ``mask``; ``xs`` (batches, batch, dim), scanned."""

    def body(total, inputs):
        xb, cb, mb = inputs
        lp = flow.log_prob_batch(params, xb, cb, None)
        return total + jnp.sum(jnp.where(mb, -lp, 0.0)), None

    total, _ = jax.lax.scan(body, jnp.zeros((), xs.dtype), (xs, cs, mask))
    return total / jnp.sum(mask)


_eval_nll_jit = jax.jit(_eval_nll, static_argnames=("flow",))


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


@contextlib.contextmanager
def _stop_on_signals():
    """Install SIGINT/SIGTERM handlers that record the signal; restore on exit.

    A second SIGINT raises ``KeyboardInterrupt`` at once. Outside the main thread signals
    cannot be caught and nothing is installed."""
    flag = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["signum"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["signum"] = signum

    previous = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        previous[s] = signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


# ------------------------------------------------------------------------- fit
def fit(
    flow: Flow,
    params,
    train,
    val=None,
    *,
    key: jax.Array,
    steps: int,
    batch_size: int,
    learning_rate: float,
    patience: int | None = None,
    checkpoint_dir=None,
    context=None,
    val_context=None,
    eval_every: int = 100,
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
    loss: Callable = nll,
    callback: Callable[[dict], Any] | None = None,
    progress: bool = True,
    data_parallel: bool | int = False,
):
    """Train ``flow`` from ``params`` by minimising ``loss`` (default: mean NLL).

    Args:
      flow: a ``nitsjax.Flow``.
      params: initial params (``flow.init(key)``). When ``checkpoint_dir`` holds a
        checkpoint of this run, they only give the structure and the run resumes.
      train: training data ``(n, dim)``; ``context`` its ``(n, context_dim)`` contexts for
        a conditional flow.
      val: optional validation data ``(m, dim)`` with ``val_context``. Its NLL is computed
        every ``eval_every`` steps in batches of ``eval_batch_size`` rows.
      key: PRNG key; it determines the shuffling and dropout streams. A resumed run uses
        the key saved in the checkpoint.
      steps: total number of optimisation steps (including those of resumed runs).
      batch_size: minibatch rows; must be <= n (``ValueError`` naming both otherwise:
        nothing is silently clamped). Each epoch is reshuffled and its last
        ``n % batch_size`` rows are dropped.
      learning_rate: peak learning rate (> 0).
      patience: stop when the validation NLL has not improved by more than ``min_delta``
        for this many consecutive evaluations (needs ``val``).
      checkpoint_dir: directory for orbax checkpoints and ``history.jsonl``; checked for
        writability before training. If it already holds a checkpoint, training resumes
        from it (params, optimiser state, EMA, step, key, best params, patience counter,
        history), so a resumed run ends with the same params as an uninterrupted one.
      eval_every: optimisation steps per dispatch, evaluation, history record and
        checkpoint.
      schedule: ``"constant"`` or ``"cosine"`` (decays to ``final_lr_fraction *
        learning_rate`` at ``steps``), after ``warmup_steps`` of linear warm-up.
      clip_norm: global gradient-norm clipping threshold (None: no clipping).
      weight_decay: decoupled weight decay (AdamW); 0 gives plain Adam.
      ema_decay: if set (e.g. 0.999), keep an exponential moving average of the params
        and evaluate, early-stop and return the EMA params.
      restore_best: with ``val``, return the params of the best validation evaluation
        (otherwise the final ones).
      max_consecutive_nonfinite: raise ``FitDiverged`` after this many skipped
        (non-finite) steps in a row.
      loss: ``loss(flow, params, x_batch, context_batch, key) -> scalar``; see
        ``nitsjax.train.losses``. ``val_nll`` is always the NLL.
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

    Returns:
      ``(params, history)``: the trained (best, or EMA) params and a ``History``.

    Raises:
      FitDiverged: too many consecutive non-finite steps (the last good checkpoint is
        intact). FitInterrupted: SIGINT/SIGTERM arrived; state checkpointed first.
    """
    # --------------------------------------------------- checks, before any work
    if not isinstance(flow, Flow):
        raise TypeError(f"flow: expected a nitsjax Flow, got {type(flow).__name__}")
    key = _typed_key(key)
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    eval_every = check_positive_int(eval_every, "eval_every")
    eval_batch_size = check_positive_int(eval_batch_size, "eval_batch_size")
    warmup_steps = check_positive_int(warmup_steps, "warmup_steps", minimum=0)
    max_consecutive_nonfinite = check_positive_int(
        max_consecutive_nonfinite, "max_consecutive_nonfinite"
    )
    learning_rate = _check_float(learning_rate, "learning_rate", low=0.0, low_open=True)
    weight_decay = _check_float(weight_decay, "weight_decay", low=0.0)
    final_lr_fraction = _check_float(final_lr_fraction, "final_lr_fraction", low=0.0, high=1.0)
    min_delta = _check_float(min_delta, "min_delta", low=0.0)
    if clip_norm is not None:
        clip_norm = _check_float(clip_norm, "clip_norm", low=0.0, low_open=True)
    if ema_decay is not None:
        ema_decay = _check_float(ema_decay, "ema_decay", low=0.0, high=1.0, low_open=True,
                                 high_open=True)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    if not callable(loss):
        raise TypeError(f"loss: expected a callable (flow, params, x, context, key) -> "
                        f"scalar, got {type(loss).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable or None, got {type(callback).__name__}")

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
        if patience is not None:
            raise ValueError("patience: early stopping needs validation data; pass val=...")
    else:
        val = check_data(val, flow.dim, "val")
        val_context = check_context(val_context, flow.context_dim, val.shape[0], "val_context")
    if patience is not None:
        patience = check_positive_int(patience, "patience")
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
    ckpt = Checkpointer(check_writable(checkpoint_dir)) if checkpoint_dir is not None else None

    # ---------------------------------------------------------- device state
    use_ema = ema_decay is not None
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    hp = {
        "lr": f32(learning_rate),
        "warmup": f32(warmup_steps),
        "decay_end": f32(steps),
        "final_fraction": f32(final_lr_fraction),
        "cosine": f32(1.0 if schedule == "cosine" else 0.0),
        "clip_norm": f32(np.inf if clip_norm is None else clip_norm),
        "weight_decay": f32(weight_decay),
        "ema_decay": f32(0.0 if ema_decay is None else ema_decay),
    }
    if mesh is None:
        data = (jnp.asarray(train), None if context is None else jnp.asarray(context))
    else:
        ndev = len(devices)
        data = tuple(None if a is None else sharding.put_rows(sharding.pad_rows(a, ndev), mesh)
                     for a in (train, context))
        params, hp, key = sharding.replicate((params, hp, key), mesh)
    if val is not None:
        eb = min(eval_batch_size, val.shape[0])
        if mesh is not None:  # evaluation batches split over the devices too
            eb = -(-eb // len(devices)) * len(devices)
        val_data = _pad_batches(val, val_context, eb)
        if mesh is not None:
            val_data = tuple(None if a is None else sharding.put_rows(np.asarray(a), mesh, 1)
                             for a in val_data)

    carry = _initial_carry(params, hp, use_ema=use_ema)
    if mesh is not None:
        carry = sharding.replicate(carry, mesh)
    history = History()
    best_params = None
    best_val, bad_evals, elapsed_before = math.inf, 0, 0.0
    fingerprint = {
        "flow": flow.name, "dim": flow.dim, "context_dim": flow.context_dim,
        "n_train": int(n), "batch_size": batch_size, "ema": use_ema, "val": val is not None,
    }

    def state_tree(c, best):
        return {
            "params": c.params,
            "opt_state": c.opt_state,
            "ema": c.ema,
            "best_params": (c.ema if use_ema else c.params) if best is None else best,
            "key": jax.random.key_data(key),
            "counters": {"consecutive": c.consecutive, "skipped": c.skipped},
        }

    # ---------------------------------------------------------------- resume
    if ckpt is not None:
        try:
            restored = ckpt.restore(state_tree(carry, None))
        except Exception as err:  # noqa: BLE001 - re-raised with the argument's name
            ckpt.close()
            raise ValueError(
                f"checkpoint_dir: could not restore the checkpoint in {ckpt.directory} into "
                f"params of this flow ({type(err).__name__}: {err}); use a new checkpoint_dir "
                f"to start afresh"
            ) from err
        if restored is not None:
            state, meta = restored
            diff = {k: (meta["config"].get(k), v) for k, v in fingerprint.items()
                    if meta["config"].get(k) != v}
            if diff:
                ckpt.close()
                raise ValueError(
                    f"checkpoint_dir: {ckpt.directory} holds a run with a different setup "
                    f"(saved vs now: {diff}); use a new checkpoint_dir to start afresh"
                )
            key = jax.random.wrap_key_data(state["key"], impl=meta["key_impl"])
            carry = _Carry(
                state["params"], state["opt_state"], state["ema"],
                jnp.asarray(meta["step"], jnp.int32),
                state["counters"]["consecutive"], state["counters"]["skipped"],
            )
            history = History.from_json(meta["history"])
            best_val = math.inf if meta["best_val"] is None else meta["best_val"]
            best_params = state["best_params"] if history.best_step is not None else None
            if mesh is not None:
                carry, best_params, key = sharding.replicate((carry, best_params, key), mesh)
            bad_evals = meta["bad_evals"]
            elapsed_before = meta["elapsed"]
            log.info("fit: resuming from step %d in %s", meta["step"], ckpt.directory)

    step = int(carry.step)
    key_impl = str(jax.random.key_impl(key))

    def final_params():
        current = carry.ema if use_ema else carry.params
        if val is not None and restore_best and best_params is not None:
            return best_params
        return current

    def save():
        if ckpt is None:
            return False
        meta = {
            "step": step, "best_val": None if not math.isfinite(best_val) else best_val,
            "bad_evals": bad_evals, "elapsed": elapsed, "config": fingerprint,
            "key_impl": key_impl, "history": history.to_json(),
        }
        ok = ckpt.save(step, state_tree(carry, best_params), meta, history)
        if not ok:
            log.warning("fit: params at step %d are not finite; checkpoint not written", step)
        return ok

    if history.stopped is not None or step >= steps:
        if ckpt is not None:
            ckpt.close()
        return final_params(), history

    # ---------------------------------------------------------------- train
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=step, disable=not progress, desc="fit", unit="step")
    t0 = time.perf_counter()
    elapsed = elapsed_before
    try:
        with _stop_on_signals() as flag:
            while step < steps:
                num = min(eval_every, steps - step)
                start = step
                carry, m = _train_period_jit(
                    flow=flow, loss=loss, num_steps=num, batch_size=batch_size,
                    use_ema=use_ema, carry=carry, hp=hp, data=data, key=key,
                    mesh=mesh, n=None if mesh is None else n,
                )
                m = jax.device_get(m)
                step += num
                if int(m["max_consecutive"]) >= max_consecutive_nonfinite:
                    last = ckpt.latest_step() if ckpt is not None else None
                    where = (f"the last good checkpoint (step {last}) in {ckpt.directory} is "
                             f"intact" if last is not None else "no checkpoint was written")
                    raise FitDiverged(
                        f"fit: training diverged: {int(m['max_consecutive'])} consecutive "
                        f"steps between steps {start} and {step} had a non-finite loss, "
                        f"gradient or parameter update (limit max_consecutive_nonfinite="
                        f"{max_consecutive_nonfinite}); {where}. Try a lower learning_rate, "
                        f"clip_norm, warmup_steps, or check the data for extreme values.",
                        params=final_params(), history=history, step=step,
                        checkpoint_dir=None if ckpt is None else ckpt.directory,
                    )
                eval_params = carry.ema if use_ema else carry.params
                val_nll = None
                if val is not None:
                    val_nll = float(_eval_nll_jit(flow, eval_params, *val_data))
                    if math.isfinite(val_nll) and val_nll < best_val - min_delta:
                        best_val, bad_evals = val_nll, 0
                        best_params = eval_params
                        history.best_step, history.best_val_nll = step, val_nll
                    else:
                        bad_evals += 1
                elapsed = elapsed_before + time.perf_counter() - t0
                record = {
                    "step": step,
                    "train_nll": float(m["train_nll"]),
                    "val_nll": val_nll,
                    "lr": float(m["lr"]),
                    "time": elapsed,
                    "skipped": int(m["skipped"]),
                    "skipped_total": int(carry.skipped),
                }
                history.append(record)
                if patience is not None and bad_evals >= patience:
                    history.stopped = "early_stopping"
                if callback is not None and callback(dict(record)) is True:
                    history.stopped = history.stopped or "callback"
                save()
                bar.update(num)
                bar.set_postfix(
                    {k: f"{v:.4f}" for k, v in
                     (("train", record["train_nll"]), ("val", val_nll)) if v is not None}
                )
                if history.stopped is not None:
                    log.info("fit: stopped at step %d (%s)", step, history.stopped)
                    break
                if flag["signum"] is not None:
                    name = signal.Signals(flag["signum"]).name
                    where = (f"checkpoint saved in {ckpt.directory}; run the same call to "
                             f"resume" if ckpt is not None else "no checkpoint_dir was given")
                    raise FitInterrupted(
                        f"fit: {name} received; stopped at step {step} ({where})",
                        params=final_params(), history=history, step=step,
                        signum=flag["signum"],
                        checkpoint_dir=None if ckpt is None else ckpt.directory,
                    )
    finally:
        bar.close()
        if ckpt is not None:
            ckpt.close()
    return final_params(), history


def compiled_cache_sizes() -> dict:
    """Number of compiled variants of the training and evaluation kernels (for tests
    and diagnostics: repeated ``fit`` calls of the same shapes must not add any)."""
    return {"train": _train_period_jit._cache_size(), "eval": _eval_nll_jit._cache_size()}
