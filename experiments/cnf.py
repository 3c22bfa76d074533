"""Continuous normalizing flow (nj.flows.cnf) against MAF and coupling NSF at the same budget.

    python experiments/cnf.py            # the recorded run
    python experiments/cnf.py --quick    # every code path, tiny budget

Data: the 2-D toys ``moons`` and ``checkerboard`` and the UCI red wine table (d = 11).
Every model is trained by ``nj.fit`` with the same steps, batch size and learning rate
(Adam, early stopping on a validation subsample, best params returned). The CNF trains
with Hutchinson's trace estimator (one Rademacher probe per row) and is evaluated with the
exact trace; its ODE is solved by Tsit5 with rtol = atol = ``--tol``. Reported: test
log-likelihood (nats per row, mean +- 1 s.e.) and training wall time; a figure of the
three densities on each toy (``experiments/results/cnf_toys.png``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import numpy as np

import nitsjax as nj

HERE = pathlib.Path(__file__).resolve().parent
ROOTS = {"wine_red": "winequality-red"}


def data_root() -> pathlib.Path:
    if os.environ.get("NITSJAX_DATA"):
        return pathlib.Path(os.environ["NITSJAX_DATA"])
    for parent in HERE.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    raise SystemExit("red wine: set NITSJAX_DATA to the folder holding winequality-red")


def models(dim, tol, hidden):
    return {
        "cnf": lambda: nj.flows.cnf(dim, hidden=hidden, trace="hutchinson", rtol=tol, atol=tol),
        "maf": lambda: nj.flows.maf(dim, layers=5, hidden=hidden),
        "nsf": lambda: nj.flows.nsf(dim, layers=5, hidden=hidden),
    }


def density_grid(flow, params, lo=-4.0, hi=4.0, m=120):
    g = np.linspace(lo, hi, m, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], -1)
    return np.exp(np.asarray(flow.log_prob(params, pts))).reshape(m, m)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["moons", "checkerboard", "wine_red"])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    if args.quick:
        args.steps, args.hidden = 10, [8]
    rows = ["| data | model | test LL (nats/row, +- 1 s.e.) | test rows | train wall, s |",
            "|---|---|---|---|---|"]
    grids = {}
    for name in args.data:
        kw = {"root": str(data_root() / ROOTS[name])} if name in ROOTS else {}
        train, val, test = nj.data.load(name, **kw)
        if args.quick:
            train, val, test = train[:512], val[:256], test[:256]
        val = val[:2000]
        for mname, make in models(train.shape[1], args.tol, tuple(args.hidden)).items():
            flow = make()
            params = flow.init(jax.random.key(0), train)
            t0 = time.perf_counter()
            params, _ = nj.fit(flow, params, train, val, key=jax.random.key(1),
                               steps=args.steps, batch_size=args.batch_size,
                               learning_rate=args.lr, eval_every=max(args.steps // 5, 1),
                               progress=False, clip_norm=5.0)
            secs = time.perf_counter() - t0
            s = nj.results.summarize(flow.log_prob(params, test))
            rows.append(f"| {name} | {mname} | {s} | {len(test)} | {secs:.0f} |")
            print(rows[-1], flush=True)
            if train.shape[1] == 2:
                grids[(name, mname)] = density_grid(flow, params)
    print("\n".join(rows))
    if grids:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [n for n in args.data if (n, "cnf") in grids]
        cols = ["cnf", "maf", "nsf"]
        fig, axes = plt.subplots(len(names), 3, figsize=(9, 3 * len(names)), squeeze=False)
        for i, n in enumerate(names):
            for j, m in enumerate(cols):
                ax = axes[i, j]
                ax.imshow(grids[(n, m)], origin="lower", extent=(-4, 4, -4, 4), cmap="magma")
                ax.set_title(f"{n}: {m}")
                ax.set_xticks([])
                ax.set_yticks([])
        fig.tight_layout()
        path = pathlib.Path(args.out) / ("cnf_toys_quick.png" if args.quick else "cnf_toys.png")
        fig.savefig(path, dpi=90)
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
