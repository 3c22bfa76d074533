"""The compiled kernels of ``fit``: a period of optimisation steps in one ``lax.scan``,
the validation NLL (and the validation loss of another objective), and the EMA of the
params.

* ``train_period`` runs ``num_steps`` steps in one dispatch. The minibatch of step ``s`` is
  the ``s % B``-th slice of a permutation of the rows drawn on device for epoch ``s // B``
  (``B = n // batch_size`` batches per epoch; the ragged remainder of each shuffled epoch
  is dropped), so shapes are static and nothing meets the host inside a period.
* With lattice steps (dequantisation, ``nitsjax.train.dequantize``) each minibatch gets
  fresh uniform noise ``(u - 1/2) * step`` from the step's key, on device.
* A step whose loss, gradient or updated params are not all finite is skipped: params,
  optimiser state and EMA keep their values, and the skip is counted (in total and as the
  current run of consecutive skips, for ``FitDiverged``). ``optax.apply_if_finite`` is
  not used: it checks the updates only (not the loss or the updated params), leaves the
  EMA outside its reach, and after ``max_consecutive_errors`` it applies the non-finite
  update; ``fit`` instead never applies one and stops with ``FitDiverged``.
* The EMA is ``optax.ema(decay, debias=True)`` applied to the params after each applied
  step; the averaged params are its bias-corrected value (``ema_params``).

The kernels are jitted with the flow, the loss and the optimizer's ``update`` function
static, so repeated ``fit`` calls of the same shapes reuse the compiled code.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nitsjax.bijectors.anchored import trainable_mask
from nitsjax.train import sharding

Array = jax.Array


class Carry(NamedTuple):
    """The training state a period carries (and a checkpoint holds)."""

    params: Any
    opt_state: Any
    ema: Any  # optax.EmaState, or () without EMA
    step: Array  # int32 scalar: optimisation steps done (skipped ones included)
    consecutive: Array  # int32: current run of skipped steps
    skipped: Array  # int32: skipped steps in total


def init_carry(tx: optax.GradientTransformation, params, use_ema: bool) -> Carry:
    """The state before the first step (run eagerly: it is a handful of zeros)."""
    zero = jnp.zeros((), jnp.int32)
    ema = optax.ema(0.0).init(params) if use_ema else ()
    return Carry(params, tx.init(params), ema, zero, zero, zero)


def all_finite(tree) -> Array:
    """True when every floating leaf of ``tree`` is finite."""
    leaves = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(leaf.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def select(ok, new, old):
    """``new`` where ``ok`` else ``old``, leaf by leaf, in ``old``'s dtypes."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b).astype(b.dtype), new, old)


def keep_frozen(params, new):
    """``new``, except the leaves ``trainable_mask`` marks as constants: those of
    ``params`` (a static choice, made while tracing)."""
    return jax.tree_util.tree_map(lambda t, old, upd: upd if t else old,
                                  trainable_mask(params), params, new)


def ema_params(ema, decay):
    """The bias-corrected moving average of ``optax.ema`` state ``ema`` (needs one or more
    updates)."""
    return jax.tree_util.tree_map(
        lambda e: (e / (1.0 - decay ** ema.count)).astype(e.dtype), ema.ema
    )


def train_period(flow, loss, update, learning_rate_of, num_steps, batch_size, carry, ema_decay,
                 data, key, mesh=None, n=None, unroll=False, active=None):
    """``num_steps`` optimisation steps in one ``lax.scan``; returns ``(carry, metrics)``.

    Args:
      flow, loss: as in ``fit`` (static).
      num_steps: the scan's length (static).
      active: None (every step runs) or a traced int ``<= num_steps``: only the first
        ``active`` steps update the state, the rest pass it through (computed, then
        discarded by a select: no host sync, no branch). ``fit`` runs every period this
        way, so one compiled program serves a run's full periods and its shorter last one.
      update: the optimizer's ``update`` function (static).
      learning_rate_of: ``opt_state -> learning rate`` (static;
        ``nitsjax.train.optim.learning_rate_reader``).
      carry: a ``Carry``; ``carry.ema == ()`` turns the EMA off.
      ema_decay: traced scalar (ignored without EMA).
      data: ``(x, context, lattice)``: rows, contexts or None, and per-column
        dequantisation steps ``(dim,)`` or None.
      key: the run's key; shuffling, dropout and noise streams are folded from it.
      mesh, n: data parallel (``nitsjax.train.sharding``): rows of ``x`` sharded over the
        mesh's ``"data"`` axis, padded; ``n`` real rows. Each minibatch is gathered
        sharded along its batch axis, params stay replicated, GSPMD adds the all-reduce.

    ``metrics``: ``train_nll`` (mean loss over the applied steps), ``skipped``,
    ``max_consecutive`` (longest run of skips seen) and ``lr`` (of the last update).
    """
    x, ctx, lattice = data
    n = x.shape[0] if n is None else n
    per_epoch = n // batch_size
    k_shuffle, k_dropout, k_noise = jax.random.split(key, 3)
    use_ema = len(carry.ema) > 0

    def permutation(step):
        return jax.random.permutation(jax.random.fold_in(k_shuffle, step // per_epoch), n)

    def take(a, idx):
        if a is None:
            return None
        if mesh is None:
            return jnp.take(a, idx, axis=0)
        return sharding.gather_rows(a, idx, mesh)

    def body(state, on):
        c, perm = state
        step = c.step
        j = step % per_epoch
        perm = jax.lax.cond(j == 0, lambda: permutation(step), lambda: perm)
        idx = jax.lax.dynamic_slice_in_dim(perm, j * batch_size, batch_size)
        xb, cb = take(x, idx), take(ctx, idx)
        if lattice is not None:
            u = jax.random.uniform(jax.random.fold_in(k_noise, step), xb.shape, xb.dtype)
            xb = xb + (u - 0.5) * lattice.astype(xb.dtype)  # bins centred on the grid
        k_step = jax.random.fold_in(k_dropout, step)
        value, grads = jax.value_and_grad(lambda p: loss(flow, p, xb, cb, k_step))(c.params)
        updates, opt_new = update(grads, c.opt_state, c.params)
        # data-initialised constants (``anchored``'s "frozen" params) never move, whatever
        # the optimizer does (weight decay included)
        new = keep_frozen(c.params, optax.apply_updates(c.params, updates))
        ok = jnp.isfinite(value) & all_finite(grads) & all_finite(new)
        applied = ok & on
        params = select(applied, new, c.params)
        opt_state = select(applied, opt_new, c.opt_state)
        ema = c.ema
        if use_ema:
            _, ema_new = optax.ema(ema_decay).update(new, c.ema)
            ema = select(applied, ema_new, c.ema)
        consecutive = jnp.where(on, jnp.where(ok, 0, c.consecutive + 1), c.consecutive)
        skipped = c.skipped + jnp.where(on & ~ok, 1, 0).astype(jnp.int32)
        c = Carry(params, opt_state, ema, step + on.astype(step.dtype), consecutive, skipped)
        return (c, perm), (value, applied, consecutive, on)

    ons = (jnp.ones((num_steps,), bool) if active is None
           else jnp.arange(num_steps) < jnp.asarray(active))
    state = (carry, permutation(carry.step))
    if unroll:  # traced step by step: no compiled loop at all (a scan of length 1 is one)
        outs = []
        for i in range(num_steps):
            state, out = body(state, ons[i])
            outs.append(out)
        values, oks, runs, ons = (jnp.stack(v) for v in zip(*outs, strict=True))
        carry = state[0]
    else:
        (carry, _), (values, oks, runs, ons) = jax.lax.scan(body, state, ons)
    good = jnp.sum(oks)
    train = jnp.where(good > 0, jnp.sum(jnp.where(oks, values, 0.0)) / jnp.maximum(good, 1),
                      jnp.nan)
    metrics = {"train_nll": train, "skipped": jnp.sum(ons) - good,
               "max_consecutive": jnp.max(jnp.where(ons, runs, 0)),
               "lr": learning_rate_of(carry.opt_state)}
    return carry, metrics


train_period_jit = jax.jit(
    train_period,
    static_argnames=("flow", "loss", "update", "learning_rate_of", "num_steps", "batch_size",
                     "mesh", "n", "unroll"),
)


def stepwise(flow) -> bool:
    """Whether a period runs as one dispatch per step (and an evaluation as one per batch)
    instead of one compiled ``lax.scan``: for models that declare ``convolutional = True``
    on the CPU backend, where XLA runs a convolution (and its gradient) many times slower
    inside a compiled loop than at top level (jax-ml/jax#12868; image NITS on 28x28,
    batch 16, 2 cores: 18 s a step in a scan, 0.65 s at top level). Dispatch stays
    asynchronous: the host waits once per period, as with the scan."""
    return bool(getattr(flow, "convolutional", False)) and jax.default_backend() == "cpu"


def run_period(*, flow, num_steps, carry, length=None, **kwargs):
    """``train_period_jit`` for ``num_steps`` steps, as one scan or (``stepwise(flow)``) as
    ``num_steps`` unrolled one-step calls whose metrics are combined as the scan's are.
    The two give the same steps: minibatches and noise follow the step counter.

    ``length`` (>= ``num_steps``): the scan's length; the steps past ``num_steps`` stay
    idle (``train_period``'s ``active``). ``fit`` passes its period, so a run's shorter
    last period reuses the program of the full ones instead of compiling its own."""
    if not stepwise(flow):
        if length is None:
            return train_period_jit(flow=flow, num_steps=num_steps, carry=carry, **kwargs)
        if length < num_steps:
            raise ValueError(f"run_period: length={length} is below num_steps={num_steps}")
        return train_period_jit(flow=flow, num_steps=length, carry=carry,
                                active=jnp.asarray(num_steps, jnp.int32), **kwargs)
    ms = []
    for _ in range(num_steps):
        carry, m = train_period_jit(flow=flow, num_steps=1, carry=carry, unroll=True, **kwargs)
        ms.append(m)
    return carry, _combine_jit(ms)


@jax.jit
def _combine_jit(ms):
    """The metrics of one-step periods ``ms`` as those of one period of ``len(ms)`` steps."""
    values = jnp.stack([m["train_nll"] for m in ms])
    oks = jnp.stack([m["skipped"] for m in ms]) == 0
    good = jnp.sum(oks)
    train = jnp.where(good > 0, jnp.sum(jnp.where(oks, values, 0.0)) / jnp.maximum(good, 1),
                      jnp.nan)
    return {"train_nll": train, "skipped": len(ms) - good,
            "max_consecutive": jnp.max(jnp.stack([m["max_consecutive"] for m in ms])),
            "lr": ms[-1]["lr"]}


def eval_nll(flow, params, xs, cs, mask):
    """Mean NLL over the rows where ``mask``; ``xs`` (batches, batch, dim), scanned."""

    def body(total, inputs):
        xb, cb, mb = inputs
        lp = flow.log_prob_batch(params, xb, cb, None)
        return total + jnp.sum(jnp.where(mb, -lp, 0.0)), None

    total, _ = jax.lax.scan(body, jnp.zeros((), xs.dtype), (xs, cs, mask))
    return total / jnp.sum(mask)


eval_nll_jit = jax.jit(eval_nll, static_argnames=("flow",))


def evaluate_nll(flow, params, xs, cs, mask) -> Array:
    """``eval_nll_jit``, or with ``stepwise(flow)`` one dispatch per batch."""
    if not stepwise(flow):
        return eval_nll_jit(flow, params, xs, cs, mask)
    total = sum(_nll_sum_jit(flow, params, xs[i], None if cs is None else cs[i], mask[i])
                for i in range(xs.shape[0]))
    return total / jnp.sum(mask)


@functools.partial(jax.jit, static_argnames=("flow",))
def _nll_sum_jit(flow, params, xb, cb, mb):
    return jnp.sum(jnp.where(mb, -flow.log_prob_batch(params, xb, cb, None), 0.0))


def eval_loss(flow, loss, params, xs, cs):
    """Mean of ``loss`` (evaluation mode: ``key=None``) over full batches ``xs``
    ``(batches, batch, dim)``, scanned."""

    def body(total, inputs):
        xb, cb = inputs
        return total + loss(flow, params, xb, cb, None), None

    total, _ = jax.lax.scan(body, jnp.zeros((), xs.dtype), (xs, cs))
    return total / xs.shape[0]


eval_loss_jit = jax.jit(eval_loss, static_argnames=("flow", "loss"))


def evaluate_loss(flow, loss, params, xs, cs) -> Array:
    """``eval_loss_jit``, or with ``stepwise(flow)`` one dispatch per batch."""
    if not stepwise(flow):
        return eval_loss_jit(flow, loss, params, xs, cs)
    total = sum(_loss_jit(flow, loss, params, xs[i], None if cs is None else cs[i])
                for i in range(xs.shape[0]))
    return total / xs.shape[0]


@functools.partial(jax.jit, static_argnames=("flow", "loss"))
def _loss_jit(flow, loss, params, xb, cb):
    return loss(flow, params, xb, cb, None)
ema_params_jit = jax.jit(ema_params)


def compiled_cache_sizes() -> dict:
    """Number of compiled variants of the training and evaluation kernels (for tests
    and diagnostics: repeated ``fit`` calls of the same shapes must not add any)."""
    return {"train": train_period_jit._cache_size(), "eval": eval_nll_jit._cache_size(),
            "eval_loss": eval_loss_jit._cache_size()}
