"""Variable ordering for triangular flows: the KL gap under the suggested, identity and
worst orders.

    python experiments/ordering.py            # the recorded run (3.3 CPU-minutes)
    python experiments/ordering.py --quick    # every code path, tiny budget

Target (3-D, density known): ``u ~ N(0, 1)``, ``v = sin(2.5 u) + 0.15 e1`` (a non-monotone
function of ``u`` plus noise) and ``w = 0.5 u + sqrt(0.75) e2``, stored as columns
``(v, w, u)``, so the identity order models ``v`` first and must recover ``u`` from ``v``
(a multi-valued relation). Its entropy is ``H = 3/2 log(2 pi e) + log 0.15 + 1/2 log
0.75``. For every one of the 6 orders, a one-layer (triangular) flow, ``maf(3,
layers=1, order=...)`` (affine conditionals) and ``nsf(3, layers=1,
autoregressive=True, linear=None, order=...)`` (spline conditionals), trains with
``nj.fit`` (same budget for all); the KL gap is the test NLL minus ``H`` (an estimate of
``KL(p || model)``). ``nj.ordering.suggest(train, val)`` picks the order without training
a flow.
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import numpy as np

import nitsjax as nj

NOISE_V, VAR_W = 0.15, 0.75
ENTROPY = 1.5 * np.log(2 * np.pi * np.e) + np.log(NOISE_V) + 0.5 * np.log(VAR_W)


def draw(rng, n):
    u = rng.standard_normal(n)
    v = np.sin(2.5 * u) + NOISE_V * rng.standard_normal(n)
    w = 0.5 * u + np.sqrt(VAR_W) * rng.standard_normal(n)
    return np.column_stack([v, w, u]).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.steps = 300, 10
    rng = np.random.default_rng(args.seed)
    train, val, test = draw(rng, args.n_train), draw(rng, 1000), draw(rng, 10000)
    t0 = time.time()
    suggested = tuple(int(i) for i in nj.ordering.suggest(train, val))
    t_suggest = time.time() - t0
    by_variance = tuple(int(i) for i in nj.ordering.suggest(train, method="variance"))
    hidden = (16,) if args.quick else (64, 64)
    print(f"train {len(train)} rows, {args.steps} steps, batch 256, lr 1e-3, patience 10, "
          f"hidden {hidden}; true entropy {ENTROPY:.3f} nats")
    print(f"suggest(greedy) -> {list(suggested)} in {t_suggest:.2f} s; "
          f"suggest(variance) -> {list(by_variance)}")
    makers = {
        "maf(layers=1)": lambda o: nj.flows.maf(3, layers=1, hidden=hidden, order=o),
        "nsf(layers=1, autoregressive)": lambda o: nj.flows.nsf(
            3, layers=1, hidden=hidden, autoregressive=True, linear=None, order=o),
    }
    gaps = {}
    for name, make in makers.items():
        for order in itertools.permutations(range(3)):
            flow = make(order)
            params, _ = nj.fit(flow, flow.init(jax.random.key(0)), train, val,
                               key=jax.random.key(1), steps=args.steps, batch_size=256,
                               learning_rate=1e-3, patience=10, progress=False)
            nll = -float(np.mean(np.asarray(flow.log_prob(params, test), np.float64)))
            gaps[name, order] = nll - ENTROPY
            print(f"{name} order {list(order)}: KL gap {nll - ENTROPY:.3f}", flush=True)
    print("\n| flow | suggested " + f"{list(suggested)} | identity [0, 1, 2] | by variance "
          f"{list(by_variance)} | worst order | best order |\n|---|---|---|---|---|---|")
    for name in makers:
        g = {o: v for (n, o), v in gaps.items() if n == name}
        worst, best = max(g, key=g.get), min(g, key=g.get)
        print(f"| {name} | {g[suggested]:.3f} | {g[(0, 1, 2)]:.3f} | {g[by_variance]:.3f} | "
              f"{g[worst]:.3f} {list(worst)} | {g[best]:.3f} {list(best)} |")
    print(f"\n(total {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
