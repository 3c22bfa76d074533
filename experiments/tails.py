"""Tails, not only log-likelihood: mtaf against maf, nsf and nits on heavy-tailed marginals.

    python experiments/tails.py            # the recorded run (3.3 CPU-minutes)
    python experiments/tails.py --quick    # every code path, tiny budget

Target (5-D, density known): coordinates 0, 2, 4 are independent Student-t with 1.5, 2.5
and 4 degrees of freedom; coordinates 1 and 3 are a correlated Gaussian pair (unit
variances, correlation 0.6). Every flow trains with ``nj.fit`` on the same rows with the
same budget (steps, batch, learning rate, early stopping on validation) and its
constructor's defaults otherwise (``mtaf``: heavy mask and degrees of freedom estimated
from the training rows at data init). Per coordinate: the 0.999 and 0.9999 quantiles of
``--samples`` model samples against the true ones, and Hill's tail index
(``nj.tails.estimate_tail_index``) re-estimated from the samples against the same
estimate on as many true samples; plus the test log-likelihood against the true one.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from scipy import stats

import nitsjax as nj

DFS = {0: 1.5, 2: 2.5, 4: 4.0}  # heavy coordinates and their degrees of freedom
RHO = 0.6  # correlation of the Gaussian pair (coordinates 1, 3)
LEVELS = (0.999, 0.9999)


def draw(rng, n):
    x = np.empty((n, 5))
    for j, df in DFS.items():
        x[:, j] = rng.standard_t(df, n)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    x[:, 1], x[:, 3] = a, RHO * a + np.sqrt(1 - RHO ** 2) * b
    return x.astype(np.float32)


def true_log_prob(x):
    x = np.asarray(x, np.float64)
    lp = sum(stats.t.logpdf(x[:, j], df) for j, df in DFS.items())
    cov = np.array([[1.0, RHO], [RHO, 1.0]])
    return lp + stats.multivariate_normal(np.zeros(2), cov).logpdf(x[:, [1, 3]])


def true_quantile(j, q):
    return stats.t.ppf(q, DFS[j]) if j in DFS else stats.norm.ppf(q)


def models(hidden, layers):
    return {
        "mtaf": nj.flows.mtaf(5, layers=layers, hidden=hidden),
        "maf": nj.flows.maf(5, layers=layers, hidden=hidden),
        "nsf": nj.flows.nsf(5, layers=layers, hidden=hidden),
        "nits": nj.flows.nits(5, hidden=4 * hidden[0], blocks=2),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--samples", type=int, default=200000)
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.steps, args.samples = 500, 20, 2000
    rng = np.random.default_rng(args.seed)
    train, val, test = draw(rng, args.n_train), draw(rng, 2000), draw(rng, 10000)
    ref = draw(rng, args.samples)
    truth_lp = true_log_prob(test)
    hidden, layers = ((16, 16), 2) if args.quick else ((64, 64), 5)
    print(f"train {len(train)} rows, {args.steps} steps, batch 256, lr 1e-3, patience 10; "
          f"{args.samples} samples per model; hidden {hidden}, layers {layers}")
    alpha = np.round(nj.tails.estimate_tail_index(train), 2)
    print(f"estimated from the training rows: tail index {alpha}, heavy "
          f"{nj.tails.is_heavy(train).astype(int)}")
    rows = []
    for name, flow in models(hidden, layers).items():
        t0 = time.time()
        params, hist = nj.fit(flow, flow.init(jax.random.key(0)), train, val,
                              key=jax.random.key(1), steps=args.steps, batch_size=256,
                              learning_rate=1e-3, patience=10, progress=False)
        lp = np.asarray(flow.log_prob(params, test), np.float64)
        xs = np.asarray(flow.sample(params, jax.random.key(2), args.samples), np.float64)
        xs = xs[np.all(np.isfinite(xs), axis=1)]
        rows.append((name, lp, xs, time.time() - t0))
        extra = ""
        if name == "mtaf":
            heavy, df = flow.tails(params)
            extra = f"; heavy {heavy.astype(int)}, df {np.round(df, 2)}"
        print(f"{name}: {time.time() - t0:.0f} s, test LL {lp.mean():.3f}{extra}", flush=True)

    print(f"\nTest log-likelihood (nats, {len(test)} rows: mean +- 2 s.e., median); truth "
          f"{truth_lp.mean():.3f}, median {np.median(truth_lp):.3f}\n")
    print("| model | test LL | gap to truth | median LL | lowest row LL | time (s) |\n"
          "|---|---|---|---|---|---|")
    for name, lp, _, sec in rows:
        se = 2 * lp.std() / np.sqrt(len(lp))
        print(f"| {name} | {lp.mean():.4g} +- {se:.3g} | {truth_lp.mean() - lp.mean():.4g} "
              f"| {np.median(lp):.3f} | {lp.min():.4g} | {sec:.0f} |")
    alpha_ref = nj.tails.estimate_tail_index(ref)
    print("\nUpper quantiles of samples (truth) and Hill's tail index from samples (from as "
          "many true samples)\n")
    head = "| coordinate (truth) | " + " | ".join(n for n, *_ in rows) + " | truth |"
    print(head + "\n|" + "---|" * (len(rows) + 2))
    for j in range(5):
        label = f"t(df={DFS[j]})" if j in DFS else "N(0,1)"
        for q in LEVELS:
            vals = " | ".join(f"{np.quantile(xs[:, j], q):.3g}" for _, _, xs, _ in rows)
            print(f"| x{j} {label}, q{q} | {vals} | {true_quantile(j, q):.3g} |")
        vals = " | ".join(f"{nj.tails.estimate_tail_index(xs[:, j])[0]:.2f}"
                          for _, _, xs, _ in rows)
        print(f"| x{j} {label}, tail index | {vals} | {alpha_ref[j]:.2f} |")


if __name__ == "__main__":
    main()
