"""Tensorizing flow (Ren, Zhao, Khoo & Ying, arXiv 2212.00759) against the same ODE flow with
a Gaussian base at the same budget, and the TT density alone (nitsjax.tt, no training).

    nice -n 10 python -m experiments.tensorizing [--steps 150] [--batch 64]
        [--data-root /work/shared/data] [--wine-columns 4]

Writes a markdown table to stdout and figures experiments/results/tt_<data>.png (2-D).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import nitsjax as nj
from nitsjax.flows.tensorizing import gaussian_cnf, tensorizing_flow


def se(v):
    v = np.asarray(v)
    return v.std(ddof=1) / np.sqrt(len(v))


def run(name, train, test, *, rank, grid, steps, hidden, batch, lr):
    rows = {}
    t0 = time.time()
    tt = nj.tt.fit(train, rank=rank, grid=grid)
    lp = np.asarray(tt.log_prob(test))
    rows["TT density alone"] = (lp.mean(), se(lp), time.time() - t0, 0)
    models = {}
    d = train.shape[1]
    for label, flow in (("tensorizing flow (TT base)", tensorizing_flow(d, tt, hidden=hidden)),
                        ("ODE flow, Gaussian base", gaussian_cnf(d, hidden=hidden))):
        t0 = time.time()
        params = flow.init(jax.random.PRNGKey(0))
        params, _ = nj.fit(flow, params, train, key=jax.random.PRNGKey(1), steps=steps,
                           batch_size=batch, learning_rate=lr, progress=False, patience=None)
        lp = np.asarray(flow.log_prob(params, test))
        rows[label] = (lp.mean(), se(lp), time.time() - t0, steps)
        models[label] = (flow, params)
    return tt, models, rows


def figure(name, train, tt, models, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = train.min(0) - 0.5, train.max(0) + 0.5
    g0, g1 = np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120)
    pts = np.stack(np.meshgrid(g0, g1, indexing="xy"), -1).reshape(-1, 2).astype(np.float32)
    panels = [("data", None), ("TT density", np.asarray(tt.log_prob(pts)))]
    for label, (flow, params) in models.items():
        panels.append((label, np.asarray(flow.log_prob(params, pts))))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (label, lp) in zip(axes, panels):
        if lp is None:
            ax.scatter(train[:2000, 0], train[:2000, 1], s=1)
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
        else:
            ax.imshow(np.exp(lp).reshape(120, 120), origin="lower", aspect="auto",
                      extent=(lo[0], hi[0], lo[1], hi[1]))
        ax.set_title(f"{name}: {label}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--data-root", default="/work/shared/data")
    ap.add_argument("--wine-columns", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    sets = []
    for toy in ("8gaussians", "checkerboard"):
        s = nj.data.toys.load(toy, n_train=3000, n_val=0, n_test=2000, seed=0)
        sets.append((toy, s.train, s.test, dict(rank=8, grid=48)))
    w = nj.data.load("wine_red", root=args.data_root)
    c = args.wine_columns
    mu, sd = w.train[:, :c].mean(0), w.train[:, :c].std(0)
    sets.append((f"wine_red[:, :{c}] (standardised)", (w.train[:, :c] - mu) / sd,
                 (w.test[:, :c] - mu) / sd, dict(rank=6, grid=32)))
    print("| data | model | test LL (nats) | train steps | wall s |")
    print("|---|---|---|---|---|")
    for name, train, test, tt_kw in sets:
        tt, models, rows = run(name, train, test, steps=args.steps, hidden=(32, 32),
                               batch=args.batch, lr=3e-3, **tt_kw)
        for label, (m, s, t, st) in rows.items():
            print(f"| {name} | {label} | {m:.3f} +- {s:.3f} | {st} | {t:.0f} |", flush=True)
        if train.shape[1] == 2:
            figure(name, train, tt, models, f"experiments/results/tt_{name}.png")


if __name__ == "__main__":
    main()
