"""Memorisation diagnostics (Yang & E, arXiv 2212.11481) on 200 rows of red wine.

A MAF (3 layers, 64 x 64) is trained far past its early-stopping point (no patience,
final params returned) with ``fit(diagnostics_every=)``, next to the same run stopped
early (restore-best);
``nitsjax.diagnostics.memorisation`` scores both on the held-out test split.

    nice -n 10 python -m experiments.memorisation [--steps 8000] [--lr 3e-4]

Writes experiments/results/memorisation_curve.png and prints the markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

import nitsjax as nj
from nitsjax import plots

OUT = Path(__file__).parent / "results"


def main(steps: int = 8000, rows: int = 200, lr: float = 3e-4, dequantize="auto",
         tag: str = ""):
    t0 = time.time()
    d = nj.data.load("wine_red", root="/work/shared/data")
    train, val, test = d.train[:rows], d.val[:rows], d.test
    flow = nj.flows.maf(d.train.shape[1], layers=3, hidden=(64, 64))
    params0 = flow.init(jax.random.key(0))
    common = dict(key=jax.random.key(1), batch_size=100, eval_every=100, progress=False,
                  learning_rate=lr, dequantize=dequantize)
    long_params, long_h = nj.fit(flow, params0, train, val, steps=steps, patience=None,
                                 restore_best=False, diagnostics_every=500, **common)
    early_params, early_h = nj.fit(flow, params0, train, val, steps=steps, patience=10,
                                   **common)
    rows_out = []
    for name, p, h in (("early-stopped", early_params, early_h),
                       ("trained past early stopping", long_params, long_h)):
        m = nj.diagnostics.memorisation(flow, p, train, test, samples=1000,
                                        key=jax.random.key(2))
        rows_out.append((name, h.returned_step, m))

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    plots.plot_history(long_h)  # checks the records draw
    steps_ = np.array(long_h["step"], float)
    for key, label in (("train_nll", "train NLL"), ("val_nll", "validation NLL")):
        v = np.array([np.nan if a is None else a for a in long_h[key]], float)
        ax1.plot(steps_, v, label=label)
    best = early_h.returned_step
    ax1.axvline(best, color="0.4", ls="--", label=f"early-stopping point (step {best})")
    ax1.set_yscale("symlog"), ax1.set_xlabel("step"), ax1.set_ylabel("NLL (nats, symlog)")
    ax1.legend()
    ax1.set_title(f"MAF on {rows} rows of red wine")
    keep = [i for i, g in enumerate(long_h["generalisation_gap"]) if g is not None]
    for key, label in (("nn_ratio", "NN distance ratio (train / held-out)"),
                       ("copy_fraction", "near-copy fraction of samples")):
        ax2.plot(steps_[keep], [long_h[key][i] for i in keep], marker="o", label=label)
    ax2.axvline(best, color="0.4", ls="--")
    ax2.set_xlabel("step"), ax2.legend(), ax2.set_title("memorisation diagnostics (validation)")
    OUT.mkdir(exist_ok=True)
    fig.savefig(OUT / f"memorisation_curve{tag}.png", dpi=110)
    plots.plot_history(long_h, OUT / f"memorisation_training_curve{tag}.png",
                       title=f"MAF on {rows} rows of red wine, trained past early stopping")

    print("| run | params of step | train LL | test LL | gap | NN ratio | near-copies | "
          "chance near-copies |")
    print("|---|---|---|---|---|---|---|---|")
    for name, step, m in rows_out:
        print(f"| {name} | {step} | {m['train_log_likelihood']:.2f} | "
              f"{m['test_log_likelihood']:.2f} | {m['generalisation_gap']:.2f} | "
              f"{m['nn_ratio']:.3f} | {m['copy_fraction']:.3f} | "
              f"{m['test_copy_fraction']:.3f} |")
    print(f"wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--no-dequantize", action="store_true",
                    help="train on the raw lattice values (exact rows to memorise)")
    args = ap.parse_args()
    main(args.steps, lr=args.lr, dequantize=False if args.no_dequantize else "auto",
         tag="_raw" if args.no_dequantize else "")
