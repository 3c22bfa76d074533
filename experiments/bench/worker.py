"""One measurement in one fresh process: ``python worker.py '<task json>'``.

Prints ``BENCH_RESULT {json}`` as its last line (see ``common.emit``). Imports only the
library it measures, so peak RSS and thread pools are its own.

Task kinds:

- ``train``: figures of one (library, flow, data set): time of the first step (JAX:
  tracing + compilation + one step), wall time from building the flow to ``wall_steps``
  steps done, steady-state steps/s (median over ``repeats`` blocks of ``steady_steps``),
  log_prob and sampling throughput (rows/s, median over repeats), peak RSS.
  Libraries ``nitsjax-fit`` and ``flowjax-fit`` time the libraries' own training
  functions (``nitsjax.train.fit``, FlowJAX ``fit_to_data``) instead of a per-step loop.
- ``matmul``: XLA float32 matmul GFLOP/s (the machine's reachable peak).
- ``nits``: NITS sampling throughput (see ``nits_bench.py``).
- ``nits_train``: NITS training steps/s, its conditioner / PNN split, FLOPs and memory
  (see ``nits_bench.py``).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Timer, batches, emit, load_data, matmul_flops_per_step, median  # noqa: E402


def _build(task: dict):
    lib = task["lib"]
    base, _, variant = lib.partition("-")
    if base == "nitsjax":
        from libs_jax import build_nitsjax

        return build_nitsjax(task, fit_path=variant == "fit")
    if base == "flowjax":
        from libs_jax import build_flowjax

        return build_flowjax(task, fit_path=variant == "fit")
    if base in ("zuko", "nflows"):
        from libs_torch import build_torch

        return build_torch(task, base)
    raise ValueError(f"lib: unknown {lib!r}")


def _versions(lib: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    names = {"nitsjax": ["nitsjax", "jax"], "flowjax": ["flowjax", "jax", "equinox"],
             "zuko": ["zuko", "torch"], "nflows": ["nflows", "torch"]}[lib.split("-")[0]]
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "?"
    return out


def train_task(task: dict) -> dict:
    t_start = time.perf_counter()
    x = load_data(task["data"])
    task = dict(task, dim=int(x.shape[1]))
    lib = task["lib"]
    fit_variant = lib.endswith("-fit")
    wall_steps, steady, reps = task["wall_steps"], task["steady_steps"], task["repeats"]
    res = {"versions": _versions(lib), "dim": task["dim"]}
    model = _build(task)
    res["how"] = model.how
    if fit_variant:
        # first call: compilation + wall_steps steps of the library's training function
        with Timer() as t_first:
            done = model.fit(x, wall_steps, steady)
        res["wall_s"] = time.perf_counter() - t_start
        res["wall_steps"] = done
        model.fit(x, steady, steady)  # warm-up: compiles the steady-state period length
        times, counts = [], []
        for _ in range(reps):
            with Timer() as t:
                n = model.fit(x, steady, steady)
            times.append(t.s)
            counts.append(n)
        rate = median([c / s for c, s in zip(counts, times, strict=True)])
        res["steps_per_s"] = rate
        res["first_call_s"] = t_first.s
        res["compile_s"] = max(0.0, t_first.s - done / rate)
        return res

    xb = batches(x, task["batch"], max(wall_steps, 1) + reps * steady, seed=0)
    with Timer() as t:
        model.train(xb[:1])
    res["first_step_s"] = t.s
    model.train(xb[1:wall_steps])
    res["wall_s"] = time.perf_counter() - t_start
    res["wall_steps"] = wall_steps
    times = []
    for r in range(reps):
        chunk = xb[wall_steps + r * steady: wall_steps + (r + 1) * steady]
        with Timer() as t:
            model.train(chunk)
        times.append(t.s)
    res["steps_per_s"] = steady / median(times)
    res["compile_s"] = max(0.0, res["first_step_s"] - 1.0 / res["steps_per_s"])
    res["flops_per_step"] = matmul_flops_per_step(task)
    res["gflops"] = res["flops_per_step"] * res["steps_per_s"] / 1e9
    if task.get("xla_flops"):
        res["xla_flops_per_step"] = model.xla_flops(xb[0])

    if task.get("lp_n"):
        n = task["lp_n"]
        xe = x[(np.arange(n) % x.shape[0])]
        model.log_prob(xe)  # compile / warm up
        times = []
        for _ in range(reps):
            with Timer() as t:
                model.log_prob(xe)
            times.append(t.s)
        res["logprob_per_s"] = n / median(times)
    if task.get("sample_n"):
        n = task["sample_n"]
        model.sample(n)
        times = []
        for _ in range(reps):
            with Timer() as t:
                model.sample(n)
            times.append(t.s)
        res["sample_per_s"] = n / median(times)
    return res


def main(argv):
    task = json.loads(argv[1])
    if task.get("nitsjax_path"):  # another checkout's nitsjax (e.g. before a change)
        sys.path.insert(0, task["nitsjax_path"])
    kind = task["kind"]
    if kind == "train":
        res = train_task(task)
    elif kind == "matmul":
        from libs_jax import matmul_peak

        res = matmul_peak(task.get("quick", False))
    elif kind == "nits":
        from nits_bench import nits_task

        res = nits_task(task)
    elif kind == "image_nits":
        from nits_bench import image_nits_task

        res = image_nits_task(task)
    elif kind == "nits_train":
        from nits_bench import nits_train_task

        res = nits_train_task(task)
    else:
        raise ValueError(f"kind: unknown {kind!r}")
    emit(res)


if __name__ == "__main__":
    main(sys.argv)
