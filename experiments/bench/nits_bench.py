"""NITS sampling: nitsjax against the original PyTorch implementation (Li & Kluger, ICML
2022, github.com/lihenryhfl/NITS), same model size, same batch, float32, CPU.

Model: an autoregressive NITS on R^d whose conditionals are PNNs ``[1, 16, 16, 1]``
(softmax output layer, no temperature), parameterised by a residual MADE with ``blocks``
residual blocks of ``hidden`` units (the paper's tabular setup: 1024 units, 4 blocks).

Sampling is sequential: coordinate ``i`` needs one MADE pass on ``x_<i`` and one
monotone solve per row. The original solves by bisection to a bracket of 1e-4 on the
data range (``[min, max]`` of the data, as in its ``uci_experiments.py``), in a Python
loop over the ``d`` coordinates that runs the solver on all ``d`` coordinates each time
(its ``Model.sample``; we call its own modules and replicate that loop, since
``Model.sample`` refers to an undefined name ``A``). nitsjax samples with
``flow.sample_batch`` (one jitted ``fori_loop`` over coordinates, safeguarded Newton by
default, tolerance 2^-22 of the unit interval).

Neither model is trained: the original's MADE output layer has PyTorch's default random
init, and nitsjax's zero-initialised output layer is perturbed (N(0, 0.05) added to every
parameter) so its conditionals are not the identity (which would flatter Newton).

Figures: samples/s (median over repeats after a warm-up that includes compilation),
the compile time, solver iterations (mean and max over rows and coordinates) and the
residual ``max |F(x_i | x_<i) - u_i|``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from common import Timer, load_data, median


def nits_task(task: dict) -> dict:
    lib = task["lib"]
    if lib == "nitsjax":
        return _nitsjax(task)
    if lib == "nits-original":
        return _original(task)
    raise ValueError(f"lib: expected 'nitsjax' or 'nits-original', got {lib!r}")


def _time_sampling(flow, params, n, repeats, key):
    """``(last samples, median seconds per call, compile seconds)`` of the jitted
    ``flow.sample_batch`` for ``n`` rows: a first call (compilation included), then
    ``repeats`` timed calls with fresh keys."""
    import jax

    sample = jax.jit(flow.sample_batch, static_argnames=("n",))
    with Timer() as t:
        jax.block_until_ready(sample(params, key, n=n))
    first = t.s
    times = []
    for r in range(repeats):
        with Timer() as t:
            x, _ = jax.block_until_ready(sample(params, jax.random.fold_in(key, r), n=n))
        times.append(t.s)
    per_call = median(times)
    return x, per_call, max(0.0, first - per_call)


# ------------------------------------------------------------------ image NITS
def image_nits_task(task: dict) -> dict:
    """Batched image sampling: ``flow.sample_batch`` of ``image_nits(shape, filters,
    resnets)`` (untrained: the PNN heads start near the uniform CDF), ``batch`` images per
    call, pixel by pixel in one compiled loop. Images/s and sub-pixels/s are medians over
    ``repeats`` calls after a first call that includes compilation."""
    import jax

    from nitsjax.flows.image_nits import image_nits

    flow = image_nits(tuple(task["shape"]), filters=task["filters"], resnets=task["resnets"])
    params = flow.init(jax.random.key(0))
    n = task["batch"]
    x, per_call, compile_s = _time_sampling(flow, params, n, task["repeats"], jax.random.key(1))
    x = np.asarray(x)
    return {"images_per_s": n / per_call, "subpixels_per_s": n * x.shape[1] / per_call,
            "compile_s": compile_s,
            "valid": bool(np.all((x >= 0) & (x <= 255) & (x == np.round(x))))}


# ----------------------------------------------------------------------- nitsjax
def _nitsjax(task: dict) -> dict:
    import jax
    import jax.numpy as jnp

    from nitsjax.flows.nits import nits

    d, hidden, blocks, n = task["dim"], task["hidden"], task["blocks"], task["batch"]
    solver = task.get("solver", "newton")
    arch = tuple(task.get("arch", (16, 16)))
    flow = nits(d, arch=arch, hidden=hidden, blocks=blocks, solver=solver, standardize=None,
                squash="logistic")  # the layout _nitsjax_solver_stats re-solves
    params = flow.init(jax.random.key(0))
    leaves, tdef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [
        leaf + 0.05 * jax.random.normal(k, leaf.shape, leaf.dtype)
        if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
        for leaf, k in zip(leaves, keys, strict=True)
    ]
    params = jax.tree_util.tree_unflatten(tdef, leaves)
    key = jax.random.key(2)
    x, per_call, compile_s = _time_sampling(flow, params, n, task["repeats"], key)
    res = {"samples_per_s": n / per_call, "compile_s": compile_s,
           "solver": solver, "finite": bool(np.all(np.isfinite(np.asarray(x))))}
    res.update(_nitsjax_solver_stats(flow, params, key, n, solver, arch, hidden, blocks, d))
    return res


def _nitsjax_solver_stats(flow, params, key, n, solver, arch, hidden, blocks, d) -> dict:
    """Re-solve every coordinate of a batch of samples with the library's solver and
    report its iterations and residuals. ``theta_i`` depends only on ``x_<i``, so one
    MADE pass on the final samples gives exactly the parameters the sampler used; the
    re-solved points are checked against the sampled ones (``resolve_gap``).

    Assumes the default NITS layout ``chain([logistic_squash(d), autoregressive_nits])``
    (unbounded, no rotation, fixed squash), which is what ``_nitsjax`` builds."""
    import jax
    import jax.numpy as jnp

    try:
        from nitsjax import root_finding
        from nitsjax.bijectors import pnn
        from nitsjax.bijectors.nits import logistic_squash
        from nitsjax.nn.made import MADE

        keys = jax.random.split(key, n)
        u = jax.vmap(lambda k: flow.base.sample(params["base"], k))(keys).astype(jnp.float32)
        x, _ = flow.sample_batch(params, key, n=n)
        inner = params["bijector"]["nits"]
        squash_p, ar_p = inner["squash"], inner["made"]
        squash = logistic_squash(d)
        t = jax.vmap(lambda xi: squash.forward(squash_p, xi)[0])(x)
        made = MADE(dim=d, hidden=(hidden,) * (blocks + 1), num_params=pnn.num_params(arch),
                    out_bias=np.asarray(pnn.identity_params(arch)), degrees="sequential",
                    residual=True)
        theta = jax.vmap(lambda ti: made.apply(ar_p, ti))(t)  # (n, d, P)
        c = pnn.DEFAULT_MONOTONIC_CONST
        xtol = pnn.default_xtol(jnp.float32)
        max_iter = root_finding.bisection_steps(1.0, xtol) + (0 if solver == "bisection" else 8)
        opts = root_finding.SolverOptions(solver, xtol, max_iter, 0.0)

        def solve_one(th, ui):
            p = pnn.prepare(th, arch, c)

            def ev(tt):
                f, lf = pnn.prepared_cdf_and_log_pdf(p, tt, c)
                return f, jnp.exp(lf)

            r = root_finding.run_solver(ev, ui, jnp.zeros(()), jnp.ones(()), opts, x0=ui)
            return r.x, r.iterations, r.residual

        t_re, its, resid = jax.jit(jax.vmap(jax.vmap(solve_one)))(theta, u)
        return {"iters_mean": float(jnp.mean(its)), "iters_max": int(jnp.max(its)),
                "residual_max": float(jnp.max(jnp.abs(resid))), "max_iter": max_iter,
                "resolve_gap": float(jnp.max(jnp.abs(t_re - t)))}
    except Exception as err:  # noqa: BLE001 - diagnostics only
        return {"solver_stats_error": f"{type(err).__name__}: {err}"[:200]}


# ---------------------------------------------------------------------- original
def _original(task: dict) -> dict:
    import torch

    path = task["nits_original"]
    sys.path.insert(0, path)
    from nits.model import NITS  # noqa: PLC0415  (the fetched original)
    from nits.resmade import ResidualMADE  # noqa: PLC0415

    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    if task.get("torch_threads"):
        torch.set_num_threads(int(task["torch_threads"]))
    d, hidden, blocks, n = task["dim"], task["hidden"], task["blocks"], task["batch"]
    x_data = load_data(task["data"]) if task.get("data") else None
    lo, hi = (float(x_data.min()), float(x_data.max())) if x_data is not None else (-3.0, 3.0)
    arch = [d] + list(task.get("arch", (16, 16))) + [1]
    nits_model = NITS(arch=arch, start=lo, end=hi, monotonic_const=1e-5,
                      A_constraint="neg_exp", final_layer_constraint="softmax",
                      softmax_temperature=False)
    mlp = ResidualMADE(input_dim=d, n_blocks=blocks, hidden_dim=hidden,
                       output_dim_multiplier=nits_model.n_params, dropout_probability=0.0)
    mlp.eval()
    prim = nits_model.nits
    P = nits_model.n_params

    def sample(n):
        """The original ``Model.sample`` loop, with its stray ``A.device`` fixed; also
        returns the CDF residual of each solved coordinate."""
        resid = torch.zeros(())
        with torch.no_grad():
            data = torch.zeros((n, d))
            for i in range(d):
                params = mlp(data).reshape(-1, P)  # (n * d, P), as nits_model.sample does
                z = torch.rand((n * d, 1))
                xs = prim.icdf(z, params).reshape(n, d)
                r = (prim.cdf(xs.reshape(-1, 1), params) - z).abs().reshape(n, d)[:, i]
                resid = torch.maximum(resid, r.max())
                data[:, i] = xs[:, i]
        return data, float(resid)

    with Timer() as t:
        sample(n)
    first = t.s
    times = []
    for _ in range(task["repeats"]):
        with Timer() as t:
            x, resid = sample(n)
        times.append(t.s)
    iters = math.ceil(math.log2((hi - lo) / 1e-4))  # its bisection: all rows, fixed count
    return {"samples_per_s": n / median(times), "compile_s": 0.0, "solver": "bisection",
            "iters_mean": float(iters), "iters_max": iters, "residual_max": resid,
            "finite": bool(torch.isfinite(x).all()), "first_call_s": first,
            "threads": torch.get_num_threads(), "versions": {"torch": torch.__version__}}


# ===================================================================== training
# One training step of bounded NITS (PNN [1, 16, 16, 1], residual MADE with ``blocks``
# blocks of ``hidden`` units) on a batch of synth<d>, Adam 1e-3, float32:
# nitsjax: ``flow.log_prob_batch`` + optax Adam under one ``jax.jit`` (raw steps, no fit
# loop); the original: its own ``Model(d, NITS, ResidualMADE)`` with ``torch.optim.Adam``.
# Besides steps/s: the step split into the conditioner alone (MADE forward + backward with
# a fixed cotangent on theta) and the PNN alone (log-density forward + backward in theta,
# theta fixed), the step's FLOPs (XLA cost analysis), compile time and the peak memory of
# the steps (see ``_RssPeak``).


class _RssPeak:
    """Peak resident set size above the level at entry, MiB, sampled every 2 ms in a
    thread while the block runs (the same method for both libraries; it excludes memory
    held before the block, e.g. XLA's compilation, which ``ru_maxrss`` would include)."""

    def __enter__(self):
        import threading

        self._base = _rss_mb()
        self._peak = self._base
        self._stop = threading.Event()

        def watch():
            while not self._stop.is_set():
                self._peak = max(self._peak, _rss_mb())
                self._stop.wait(0.002)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss_mb())
        self.mb = self._peak - self._base


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _train_data(task: dict):
    from common import batches

    d, n = task["dim"], task["batch"]
    x = load_data(f"synth{d}")
    lo, hi = float(x.min()), float(x.max())
    margin = 0.1 * (hi - lo)
    steps = task["warmup"] + task["steps"] * task["repeats"]
    return batches(x, n, steps, seed=0), (lo - margin, hi + margin)


def _time_steps(run_step, xb, task) -> tuple[float, list, float]:
    """Median seconds per step over ``repeats`` blocks of ``steps`` steps (each step timed
    on its own, the result waited for), after ``warmup`` untimed steps; also the median
    CPU seconds per step of the process (all threads), which load inflates less."""
    import time

    w = task["warmup"]
    for i in range(w):
        run_step(xb[i])
    per_block, cpu = [], []
    for r in range(task["repeats"]):
        times = []
        for i in range(task["steps"]):
            c0 = time.process_time()
            with Timer() as t:
                run_step(xb[w + r * task["steps"] + i])
            cpu.append(time.process_time() - c0)
            times.append(t.s)
        per_block.append(median(times))
    return median(per_block), per_block, median(cpu)


def nits_train_task(task: dict) -> dict:
    lib = task["lib"]
    if lib == "nitsjax":
        return _nitsjax_train(task)
    if lib == "nits-original":
        return _original_train(task)
    raise ValueError(f"lib: expected 'nitsjax' or 'nits-original', got {lib!r}")


def _nitsjax_train(task: dict) -> dict:
    import functools

    import jax
    import jax.numpy as jnp
    import optax

    from nitsjax.bijectors import pnn
    from nitsjax.flows.nits import nits

    d, hidden, blocks = task["dim"], task["hidden"], task["blocks"]
    arch = tuple(task.get("arch", (16, 16)))
    xb, bounds = _train_data(task)
    flow = nits(d, arch=arch, hidden=hidden, blocks=blocks, bounds=bounds, standardize=None,
                out_of_support="-inf")
    params = flow.init(jax.random.key(0))
    opt = optax.adam(1e-3)
    state = opt.init(params)

    def loss(p, x):
        return -jnp.mean(flow.log_prob_batch(p, x))

    @functools.partial(jax.jit, donate_argnums=(0, 1))  # updated in place, as torch does
    def step(p, s, x):
        value, grads = jax.value_and_grad(loss)(p, x)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    x0 = jnp.asarray(xb[0])
    with Timer() as t_compile:
        compiled = step.lower(params, state, x0).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    mem = compiled.memory_analysis()
    xla_mb = None
    if mem is not None:
        xla_mb = (mem.temp_size_in_bytes + mem.argument_size_in_bytes
                  + mem.output_size_in_bytes - mem.alias_size_in_bytes) / 2**20
    holder = {"p": params, "s": state}

    def run_step(x):
        holder["p"], holder["s"], v = compiled(holder["p"], holder["s"], jnp.asarray(x))
        jax.block_until_ready(v)

    with Timer() as t_first:
        run_step(xb[0])
    with _RssPeak() as rss:
        sec, blocks_s, cpu_s = _time_steps(run_step, xb, task)

    # the pieces: the conditioner alone and the PNN alone, forward + backward each
    made_params = holder["p"]["bijector"]["nits"]["made"]
    made = _made_module(d, hidden, blocks, arch)
    x_unit = (jnp.asarray(xb[0]) - bounds[0]) / (bounds[1] - bounds[0])
    theta = jax.vmap(lambda xi: made.apply(made_params, xi))(x_unit)
    cot = jax.random.normal(jax.random.key(3), theta.shape, theta.dtype)

    @jax.jit
    def cond_step(mp, x):
        return jax.value_and_grad(
            lambda mp: jnp.sum(jax.vmap(lambda xi: made.apply(mp, xi))(x) * cot))(mp)

    tr = pnn.pnn_transformer(arch, (0.0, 1.0))

    @jax.jit
    def pnn_step(th, x):
        return jax.value_and_grad(
            lambda th: -jnp.mean(jax.vmap(jax.vmap(tr.forward))(th, x)[1]))(th)

    cond_s = _time_fn(cond_step, made_params, x_unit, reps=task["steps"])
    pnn_s = _time_fn(pnn_step, theta, x_unit, reps=task["steps"])
    return {"steps_per_s": 1.0 / sec, "step_ms_blocks": [1e3 * s for s in blocks_s],
            "compile_s": t_compile.s, "first_step_s": t_first.s, "flops_per_step": flops,
            "gflops": flops / sec / 1e9, "cond_ms": 1e3 * cond_s, "pnn_ms": 1e3 * pnn_s,
            "step_ms": 1e3 * sec, "step_cpu_ms": 1e3 * cpu_s, "rss_step_mb": rss.mb,
            "xla_step_mb": xla_mb,
            "loss": float(_last_loss(compiled, holder, xb)),
            "versions": {"jax": jax.__version__}}


def _last_loss(compiled, holder, xb):
    import jax.numpy as jnp

    _, _, v = compiled(holder["p"], holder["s"], jnp.asarray(xb[-1]))
    return v


def _made_module(d, hidden, blocks, arch):
    import numpy as np

    from nitsjax.bijectors import pnn
    from nitsjax.nn.made import MADE

    return MADE(dim=d, hidden=(hidden,) * (blocks + 1), num_params=pnn.num_params(arch),
                out_bias=np.asarray(pnn.identity_params(arch)), degrees="sequential",
                residual=True)


def _time_fn(fn, *args, reps=20) -> float:
    import jax

    jax.block_until_ready(fn(*args))
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        with Timer() as t:
            jax.block_until_ready(fn(*args))
        times.append(t.s)
    return median(times)


def _original_train(task: dict) -> dict:
    import torch

    sys.path.insert(0, task["nits_original"])
    from nits.fc_model import Model  # noqa: PLC0415  (the fetched original)
    from nits.model import NITS  # noqa: PLC0415
    from nits.resmade import ResidualMADE  # noqa: PLC0415

    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    if task.get("torch_threads"):
        torch.set_num_threads(int(task["torch_threads"]))
    d, hidden, blocks = task["dim"], task["hidden"], task["blocks"]
    xb, (lo, hi) = _train_data(task)
    arch = [d] + list(task.get("arch", (16, 16))) + [1]
    nits_model = NITS(arch=arch, start=lo, end=hi, monotonic_const=1e-5,
                      A_constraint="neg_exp", final_layer_constraint="softmax",
                      softmax_temperature=False)
    model = Model(d, nits_model, ResidualMADE, n_blocks=blocks, hidden_dim=hidden,
                  dropout_probability=0.0)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = xb.shape[1]
    last = {}

    def run_step(x):
        x = torch.from_numpy(x)
        loss = -model(x) / n  # Model.forward: the summed log-likelihood
        opt.zero_grad()
        loss.backward()
        opt.step()
        last["loss"] = float(loss.detach())

    with Timer() as t_first:
        run_step(xb[0])
    with _RssPeak() as rss:
        sec, blocks_s, cpu_s = _time_steps(run_step, xb, task)

    x0 = torch.from_numpy(xb[0])
    mlp = model.mlp
    with torch.no_grad():
        theta = mlp(x0)
    cot = torch.randn_like(theta)

    def cond_step():
        mlp.zero_grad()
        (mlp(x0) * cot).sum().backward()

    def pnn_step():
        th = theta.clone().requires_grad_(True)
        (-(nits_model.pdf(x0, th) + 1e-10).log().mean()).backward()

    return {"steps_per_s": 1.0 / sec, "step_ms_blocks": [1e3 * s for s in blocks_s],
            "compile_s": 0.0, "first_step_s": t_first.s, "step_ms": 1e3 * sec,
            "step_cpu_ms": 1e3 * cpu_s,
            "cond_ms": 1e3 * _time_torch(cond_step, task["steps"]),
            "pnn_ms": 1e3 * _time_torch(pnn_step, task["steps"]), "rss_step_mb": rss.mb,
            "loss": last["loss"], "threads": torch.get_num_threads(),
            "versions": {"torch": torch.__version__}}


def _time_torch(fn, reps) -> float:
    fn()
    times = []
    for _ in range(reps):
        with Timer() as t:
            fn()
        times.append(t.s)
    return median(times)
