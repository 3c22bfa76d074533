"""Bisection vs safeguarded Newton vs Chandrupatla for inverting NITS PNN CDFs.

For random PNNs (one parameter vector per target, as in NITS sampling, at increasing
distances from the identity parameters, i.e. increasingly steep CDFs) it prints, per
solver and dtype: mean / max iterations, max |F(x) - u| and the best-of-repeats CPU
time (process_time; robust to a loaded machine) of a jitted batched solve; then the
wall time of sampling a small NITS flow with each solver.

    .venv/bin/python experiments/nits_solvers.py [--n 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax import root_finding as rf
from nitsjax.bijectors import pnn
from nitsjax.flows.nits import nits

SOLVERS = ("bisection", "newton", "chandrupatla")


def solve_stats(hidden, scale, dtype, n, repeats, solver):
    c = pnn.DEFAULT_MONOTONIC_CONST
    xtol = pnn.default_xtol(dtype)
    max_iter = pnn._max_iter(solver, xtol)
    base = jnp.asarray(pnn.identity_params(hidden), dtype)
    thetas = base + scale * jax.random.normal(jax.random.key(0), (n, base.size), dtype)
    u = jax.random.uniform(jax.random.key(1), (n,), dtype)
    options = rf.SolverOptions(solver, xtol, max_iter, 4.0 * float(jnp.finfo(dtype).eps))

    def one(theta, target):
        p = pnn.prepare(theta, hidden, c)

        def ev(t):
            f, lf = pnn.prepared_cdf_and_log_pdf(p, t, c)
            return f, jnp.exp(lf)

        r = rf.run_solver(ev, target, 0.0, 1.0, options, x0=target)
        return r.x, r.iterations, ev(r.x)[0] - target

    run = jax.jit(jax.vmap(one))
    x, its, res = jax.block_until_ready(run(thetas, u))
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        jax.block_until_ready(run(thetas, u))
        times.append(time.process_time() - t0)
    return dict(
        mean_it=float(jnp.mean(its.astype(jnp.float32))),
        max_it=int(jnp.max(its)),
        bound=max_iter,
        max_res=float(jnp.max(jnp.abs(res))),
        ms=1e3 * float(np.min(times)),
    )


def flow_sample_times(n, repeats):
    out = {}
    for solver in SOLVERS:
        flow = nits(6, arch=(16, 16), hidden=128, blocks=2, solver=solver)
        params = flow.init(jax.random.key(0))
        params = jax.tree_util.tree_map(
            lambda a: a + 0.05 * jax.random.normal(jax.random.key(3), a.shape, a.dtype), params
        )
        jax.block_until_ready(flow.sample(params, jax.random.key(1), n))
        times = []
        for i in range(repeats):
            t0 = time.process_time()
            jax.block_until_ready(flow.sample(params, jax.random.key(2 + i), n))
            times.append(time.process_time() - t0)
        out[solver] = 1e3 * float(np.min(times))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--arch", type=int, nargs="+", default=[16, 16])
    args = ap.parse_args()
    hidden = tuple(args.arch)
    print(f"PNN arch [1, {', '.join(map(str, hidden))}, 1], {args.n} targets, one PNN each")
    header = f"{'dtype':8} {'scale':>5} {'solver':13} {'mean it':>8} {'max it':>7} {'bound':>6} " \
             f"{'max|F(x)-u|':>12} {'ms':>9}"
    print(header)
    print("-" * len(header))
    for dtype in ("float32", "float64"):
        with jax.enable_x64(dtype == "float64"):
            for scale in (0.0, 1.0, 2.0, 4.0):
                for solver in SOLVERS:
                    s = solve_stats(hidden, scale, jnp.dtype(dtype), args.n, args.repeats, solver)
                    print(f"{dtype:8} {scale:5.1f} {solver:13} {s['mean_it']:8.2f} "
                          f"{s['max_it']:7d} {s['bound']:6d} {s['max_res']:12.2e} {s['ms']:9.2f}")
    n = min(args.n, 2000)
    print(f"\nNITS flow (dim 6, arch (16, 16), residual MADE 128 x 2 blocks), sample {n}:")
    for solver, ms in flow_sample_times(n, args.repeats).items():
        print(f"  {solver:13} {ms:9.2f} ms")


if __name__ == "__main__":
    main()
