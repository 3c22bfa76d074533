"""NITS against MAF at the same budget (steps, batch size, learning rate, seed).

    python experiments/nits_vs_maf.py --data moons magic --steps 1500

Prints a markdown table of test log-likelihoods (mean +- 2 SE, nats per example) and
training time. Data are standardised on the training split (``nj.data.load``); real data
sets are read from ``--root`` (default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

import nitsjax as nj

ROOTS = {"magic": "magic04", "htru2": "htru2", "wine_red": "winequality-red",
         "wine_white": "winequality-white"}


def models(dim):
    return {
        "nits": lambda: nj.flows.nits(dim, hidden=256, blocks=2, arch=(16, 16)),
        "maf": lambda: nj.flows.maf(dim, layers=5, hidden=(128, 128)),
        "nsf_ar": lambda: nj.flows.nsf(dim, layers=5, hidden=(128, 128), autoregressive=True),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["moons", "magic"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared/data"))
    args = ap.parse_args()
    rows = ["| data | model | test LL (mean +- 2 SE) | train time, s |", "|---|---|---|---|"]
    for name in args.data:
        kw = {} if name not in ROOTS else {"root": str(Path(args.root) / ROOTS[name])}
        train, val, test = nj.data.load(name, **kw)
        for mname, make in models(train.shape[1]).items():
            flow = make()
            params = flow.init(jax.random.key(0))
            t0 = time.perf_counter()
            params, _ = nj.fit(flow, params, train, val, key=jax.random.key(1),
                               steps=args.steps, batch_size=args.batch_size,
                               learning_rate=args.lr, progress=False, clip_norm=5.0)
            secs = time.perf_counter() - t0
            s = nj.results.summarize(flow.log_prob(params, test))
            rows.append(f"| {name} | {mname} | {s} | {secs:.0f} |")
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
