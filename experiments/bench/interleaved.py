"""Noise-robust A/B of nitsjax against FlowJAX in ONE process: their jitted log_prob,
sampling and training step are called alternately, so both see the same machine load.

    python experiments/bench/interleaved.py --flows maf,maf_rqs --rounds 15

Use it on a shared machine, where the per-process figures of ``run.py`` drift with the
load; peak RSS and compile times are not meaningful here (one process), use ``run.py``.
Prints the median milliseconds per call and nitsjax's speed-up (theirs / ours).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from common import load_data  # noqa: E402
from libs_jax import LR, flowjax_flow, nitsjax_flow  # noqa: E402


def calls(kind: str, data: str, n: int, batch: int):
    x = jnp.asarray(load_data(data)[:n])
    xb = x[:batch]
    task = dict(flow=kind, dim=int(x.shape[1]), layers=5, hidden=[128, 128], bins=8)
    opt = optax.adam(LR)

    flow, _ = nitsjax_flow(task)
    p = flow.init(jax.random.key(0))
    s = opt.init(p)

    def nj_step(p, s, x):
        v, g = jax.value_and_grad(lambda q: -jnp.mean(flow.log_prob_batch(q, x)))(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, v

    dist = flowjax_flow(task)
    q, static = eqx.partition(dist, eqx.is_inexact_array)
    r = opt.init(q)

    def fj_step(q, r, x):
        v, g = jax.value_and_grad(lambda w: -jnp.mean(eqx.combine(w, static).log_prob(x)))(q)
        u, r = opt.update(g, r, q)
        return eqx.apply_updates(q, u), r, v

    nj_lp, nj_smp, nj_st = (jax.jit(flow.log_prob_batch),
                            jax.jit(flow.sample_batch, static_argnames=("n",)), jax.jit(nj_step))
    fj_lp = jax.jit(lambda w, x: eqx.combine(w, static).log_prob(x))
    fj_smp = jax.jit(lambda w, k: eqx.combine(w, static).sample(k, (n,)))
    fj_st = jax.jit(fj_step)
    key = jax.random.key(1)
    return {
        ("log_prob", "nitsjax"): lambda: nj_lp(p, x),
        ("log_prob", "flowjax"): lambda: fj_lp(q, x),
        ("sample", "nitsjax"): lambda: nj_smp(p, key, n=n),
        ("sample", "flowjax"): lambda: fj_smp(q, key),
        ("train step", "nitsjax"): lambda: nj_st(p, s, xb),
        ("train step", "flowjax"): lambda: fj_st(q, r, xb),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", default="maf,maf_rqs")
    ap.add_argument("--data", default="synth6")
    ap.add_argument("--n", type=int, default=4096, help="rows for log_prob and sampling")
    ap.add_argument("--batch", type=int, default=512, help="training batch")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    print(f"| flow | figure | nitsjax ms | FlowJAX ms | speed-up |  ({args.data}, "
          f"n={args.n}, batch {args.batch}, load {os.getloadavg()[0]:.1f})")
    print("|---|---|---|---|---|")
    for kind in args.flows.split(","):
        fns = calls(kind, args.data, args.n, args.batch)
        for f in fns.values():
            jax.block_until_ready(f())
        times = {k: [] for k in fns}
        for _ in range(args.rounds):
            for k, f in fns.items():
                t = time.perf_counter()
                jax.block_until_ready(f())
                times[k].append(time.perf_counter() - t)
        med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        for fig in ("train step", "log_prob", "sample"):
            a, b = med[(fig, "nitsjax")], med[(fig, "flowjax")]
            print(f"| {kind} | {fig} | {a:.2f} | {b:.2f} | x{b / a:.2f} |")


if __name__ == "__main__":
    main()
