"""JAX sides of the benchmark: nitsjax (raw jitted step and ``nitsjax.train.fit``) and
FlowJAX (its ``fit_to_data`` and its jitted ``step``).

Every builder returns a ``Model`` (see ``worker.py``) with:

- ``train(xb)``: run ``len(xb)`` optimisation steps on the minibatches ``xb``
  ``(steps, batch, d)`` (numpy), blocking until done;
- ``log_prob(x)`` and ``sample(n)``: one blocking evaluation each;
- optional ``fit(steps)``: the library's own training function for ``steps`` steps.

Optimiser everywhere: Adam, learning rate 1e-3, loss = mean negative log-likelihood.
"""

from __future__ import annotations

import functools
import importlib
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import SPLINE_BOUND

LR = 1e-3


def _block(tree):
    return jax.block_until_ready(tree)


# ----------------------------------------------------------------------- nitsjax
def nitsjax_flow(task: dict):
    """The nitsjax flow of ``task`` (same architecture as the peers); returns (flow, how)."""
    from nitsjax.flows import affine

    d, layers, hidden, bins = task["dim"], task["layers"], tuple(task["hidden"]), task["bins"]
    kind = task["flow"]
    if kind == "maf":
        return affine.maf(d, layers=layers, hidden=hidden), "nitsjax.flows.affine.maf"
    if kind == "realnvp":
        return affine.realnvp(d, layers=layers, hidden=hidden), "nitsjax.flows.affine.realnvp"
    if kind in ("cnf", "cnf_hutchinson"):  # one ODE layer; ``layers`` does not apply
        from nitsjax.flows.cnf import cnf

        trace = "hutchinson" if kind == "cnf_hutchinson" else "exact"
        return cnf(d, hidden=hidden, trace=trace), f"nitsjax.flows.cnf(trace={trace!r})"
    if kind in ("maf_rqs", "nsf"):
        ar = kind == "maf_rqs"
        try:
            spline = importlib.import_module("nitsjax.flows.spline")
            flow = spline.nsf(
                d, layers=layers, hidden=hidden, bins=bins, bound=SPLINE_BOUND,
                autoregressive=ar,
            )
            return flow, f"nitsjax.flows.spline.nsf(autoregressive={ar})"
        except (ImportError, AttributeError, TypeError):
            return _nsf_from_bijectors(d, layers, hidden, bins, ar), "built from bijectors"
    raise ValueError(f"flow: unknown {kind!r}")


def _nsf_from_bijectors(d, layers, hidden, bins, autoregressive):
    """Spline flow assembled from nitsjax bijectors, until ``nitsjax.flows.spline`` lands."""
    from nitsjax.bijectors.autoregressive import masked_autoregressive
    from nitsjax.bijectors.base import chain, stack
    from nitsjax.bijectors.coupling import coupling
    from nitsjax.bijectors.permute import reverse
    from nitsjax.bijectors.spline import rational_quadratic_transformer
    from nitsjax.distributions.base import standard_normal
    from nitsjax.flow import Flow

    t = rational_quadratic_transformer(bins=bins, bound=SPLINE_BOUND)
    if autoregressive:
        layer = masked_autoregressive(t, d, hidden)
    else:
        layer = coupling(t, d, hidden)
    bij = stack(chain([layer, reverse(d)]), layers)
    return Flow(standard_normal(d), bij, d, None, name="nsf")


def build_nitsjax(task: dict, fit_path: bool):
    flow, how = nitsjax_flow(task)
    params = flow.init(jax.random.key(task.get("seed", 0)))
    opt = optax.adam(LR)
    state = SimpleNamespace(params=params, opt_state=opt.init(params))

    # a CNF trained with Hutchinson's estimator draws its probes from a key per step
    keyed = task["flow"] == "cnf_hutchinson"

    def loss(p, x, k=None):
        return -jnp.mean(flow.log_prob_batch(p, x, None, k))

    def step(p, s, x, k=None):
        value, grads = jax.value_and_grad(loss)(p, x, k)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    step_jit = jax.jit(step, donate_argnums=(0, 1))

    def train(xb):
        xs = [jnp.asarray(b) for b in xb]  # minibatches on device before timing starts
        ks = list(jax.random.split(jax.random.key(3), len(xs))) if keyed else [None] * len(xs)
        p, s = state.params, state.opt_state
        for x, k in zip(xs, ks, strict=True):
            p, s, _ = step_jit(p, s, x, k)
        _block(p)
        state.params, state.opt_state = p, s

    lp_jit = jax.jit(flow.log_prob_batch)

    def log_prob(x):
        return _block(lp_jit(state.params, jnp.asarray(x)))

    sample_jit = jax.jit(flow.sample_batch, static_argnames=("n",))

    def sample(n):
        return _block(sample_jit(state.params, jax.random.key(1), n=n))

    model = SimpleNamespace(train=train, log_prob=log_prob, sample=sample, how=how)
    model.xla_flops = lambda x: _xla_flops(step, state.params, state.opt_state, jnp.asarray(x))

    if fit_path:
        from nitsjax.train import fit

        def fit_steps(x_train, steps, period):
            """``nitsjax.train.fit`` for ``steps`` steps, ``period`` steps per dispatch."""
            p, _ = fit(
                flow, state.params, x_train, key=jax.random.key(2), steps=steps,
                batch_size=task["batch"], learning_rate=LR, eval_every=period,
                progress=False,
            )
            _block(p)
            return steps

        model.fit = fit_steps
        model.how = how + " + nitsjax.train.fit"
    return model


def _xla_flops(fn, *args):
    """FLOPs of one call of ``fn`` according to XLA's cost analysis (loop bodies may be
    counted once, so scanned layers are under-counted); None when unavailable."""
    try:
        cost = jax.jit(fn).lower(*args).compile().cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0]
        return float(cost["flops"])
    except Exception:  # noqa: BLE001 - diagnostics only
        return None


# ----------------------------------------------------------------------- FlowJAX
def flowjax_flow(task: dict):
    import jax.random as jr
    from flowjax.bijections import Affine, RationalQuadraticSpline
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow, masked_autoregressive_flow

    d, layers, hidden, bins = task["dim"], task["layers"], task["hidden"], task["bins"]
    if len(set(hidden)) != 1:
        raise ValueError(f"hidden: FlowJAX MLPs have equal widths, got {hidden}")
    common = dict(
        base_dist=Normal(jnp.zeros(d)), flow_layers=layers, nn_width=hidden[0],
        nn_depth=len(hidden), invert=True,  # invert=True: one-pass log_prob (MAF)
    )
    key = jr.key(task.get("seed", 0))
    kind = task["flow"]
    spline = RationalQuadraticSpline(knots=bins, interval=SPLINE_BOUND)
    if kind == "maf":
        return masked_autoregressive_flow(key, transformer=Affine(), **common)
    if kind == "maf_rqs":
        return masked_autoregressive_flow(key, transformer=spline, **common)
    if kind == "nsf":
        return coupling_flow(key, transformer=spline, **common)
    if kind == "realnvp":
        return coupling_flow(key, transformer=Affine(), **common)
    raise ValueError(f"flow: unknown {kind!r}")


def build_flowjax(task: dict, fit_path: bool):
    import equinox as eqx
    import jax.random as jr
    import paramax
    from flowjax.train import fit_to_data
    from flowjax.train.losses import MaximumLikelihoodLoss
    from flowjax.train.train_utils import step as fj_step

    dist = flowjax_flow(task)
    opt = optax.adam(LR)
    loss_fn = MaximumLikelihoodLoss()
    params, static = eqx.partition(
        dist, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )
    state = SimpleNamespace(params=params, opt_state=opt.init(params), dist=dist)

    def train(xb):
        xs = [jnp.asarray(b) for b in xb]
        p, s = state.params, state.opt_state
        key = jr.key(3)
        for x in xs:
            key, sub = jr.split(key)
            p, s, _ = fj_step(p, static, x, optimizer=opt, opt_state=s, loss_fn=loss_fn,
                              key=sub)
        _block(p)
        state.params, state.opt_state = p, s
        state.dist = eqx.combine(p, static)

    lp = eqx.filter_jit(lambda dist, x: dist.log_prob(x))

    def log_prob(x):
        return _block(lp(state.dist, jnp.asarray(x)))

    smp = eqx.filter_jit(lambda dist, key, n: dist.sample(key, (n,)))

    def sample(n):
        return _block(smp(state.dist, jr.key(1), n))

    def raw_step(p, s, x):
        value, grads = eqx.filter_value_and_grad(loss_fn)(p, static, x, key=jr.key(0))
        updates, s = opt.update(grads, s, params=p)
        return eqx.apply_updates(p, updates), s, value

    model = SimpleNamespace(train=train, log_prob=log_prob, sample=sample,
                            how="flowjax.train.train_utils.step")
    model.xla_flops = lambda x: _xla_flops(raw_step, state.params, state.opt_state,
                                           jnp.asarray(x))
    if fit_path:
        batch = task["batch"]

        def fit_steps(x_train, steps, period):
            """``fit_to_data`` with the smallest validation split it accepts (one batch;
            it divides by the number of validation batches): ``steps`` rounded up to
            whole epochs."""
            n = x_train.shape[0]
            val_prop = (batch + 1) / n
            per_epoch = (n - round(val_prop * n)) // batch
            epochs = max(1, -(-steps // per_epoch))
            dist, _ = fit_to_data(
                jr.key(2), state.dist, jnp.asarray(x_train), optimizer=opt, loss_fn=loss_fn,
                max_epochs=epochs, max_patience=10**9, batch_size=batch, val_prop=val_prop,
                return_best=False, show_progress=False,
            )
            _block(eqx.filter(dist, eqx.is_inexact_array))
            return epochs * per_epoch

        model.fit = fit_steps
        model.how = "flowjax.train.fit_to_data"
    return model


def matmul_peak(quick: bool) -> dict:
    """XLA float32 matmul throughput, GFLOP/s: a large square product and the MADE-sized
    512x128 @ 128x128 product (each repeated inside one jitted scan)."""
    from common import Timer, median

    out = {}
    shapes = {"large": (2048, 2048, 2048), "made": (512, 128, 128)}
    for name, (m, k, n) in shapes.items():
        reps = 8 if name == "large" else 2000
        a = jax.random.normal(jax.random.key(0), (m, k), jnp.float32)
        b = jax.random.normal(jax.random.key(1), (k, n), jnp.float32) / np.sqrt(k)

        @functools.partial(jax.jit, static_argnums=2)
        def many(a, b, reps):  # k == n: each product feeds the next, so none is elided
            c, _ = jax.lax.scan(lambda c, _: (jnp.tanh(c @ b), None), a, None, length=reps)
            return c

        _block(many(a, b, reps))
        times = []
        for _ in range(3 if quick else 7):
            with Timer() as t:
                _block(many(a, b, reps))
            times.append(t.s)
        out[name] = 2.0 * m * k * n * reps / median(times) / 1e9
    return out
