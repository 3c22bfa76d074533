"""Energy-objective training against maximum likelihood at the same budget.

    python experiments/energy.py            # the recorded run (about 10 minutes on 2 cores)
    python experiments/energy.py --quick    # every code path, tiny budget

Si, Chen, Sahoo, Schiff & Kuleshov (arXiv 2206.06672) train flows by the energy score of
model samples instead of the likelihood, which also trains maps without a density. Here,
on two 2-D toys (moons, 8gaussians) and the red wine table (UCI, 11 standardised
measurements, from ``--root``), with the same steps, batch size and learning rate for
every model:

- an IAF (one-pass, differentiable sampling) trained by the NLL (``loss="nll"``);
- the same IAF trained by the energy objective (``loss="energy"``, beta = 1);
- ``nj.models.generator`` (a non-invertible MLP, no density) trained by the energy
  objective;
- on moons (``--nits``): NITS trained by the energy objective (its samples are
  differentiable through the implicit gradient of the inverse CDF; slower per step).

Reported on the test split: the energy distance (beta = 1, unbiased U-statistic, between
the test rows and as many model samples; mean and standard error over ``--draws`` sample
draws; 0 = same law) and, for the flows, the test log-likelihood (nats per row, in the
standardised units the models see; on the wine table, whose columns are on a lattice,
of the test rows dequantised with ``fit``'s fixed noise, as ``fit`` does for its
validation rows). A figure of samples next to the test data.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np

import nitsjax as nj
from nitsjax.train import dequantize as dq

HERE = pathlib.Path(__file__).parent
ROOTS = {"wine_red": "winequality-red"}


def models(dim: int, quick: bool, nits: bool):
    """``(label, model, loss)`` of every contender."""
    hidden = (16,) if quick else (64, 64)
    out = [
        ("IAF, NLL", nj.flows.iaf(dim, layers=4, hidden=hidden), "nll"),
        ("IAF, energy", nj.flows.iaf(dim, layers=4, hidden=hidden), "energy"),
        ("generator, energy", nj.models.generator(dim, latent_dim=max(dim, 4),
                                                   hidden=(32,) if quick else (128, 128)),
         "energy"),
    ]
    if nits:
        out.append(("NITS, energy", nj.flows.nits(dim, arch=(8, 8), hidden=64, blocks=2),
                    "energy"))
    return out


def energy_distance(model, params, x, key, draws: int, rows: int) -> tuple[float, float]:
    """Mean and standard error over ``draws`` sample draws of the energy distance between
    the first ``rows`` rows of ``x`` and as many samples."""
    x = np.asarray(x[:rows], np.float32)
    vals = []
    for k in jax.random.split(key, draws):
        y = np.asarray(model.sample(params, k, len(x)), np.float32)
        vals.append(float(nj.losses.energy_distance(x, y)))
    vals = np.asarray(vals)
    return float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(draws)) if draws > 1 else 0.0


def run(name: str, a) -> tuple[list[dict], dict]:
    root = None if name not in ROOTS else str(pathlib.Path(a.root) / ROOTS[name])
    train, val, test = nj.data.load(name, root=root)
    if a.quick:
        train, val, test = train[:2000], val[:500], test[:500]
    dim = train.shape[1]
    rows, samples = [], {}
    for label, model, loss in models(dim, a.quick, name in a.nits):
        key = jax.random.key(a.seed)
        params = model.init(key)
        t = time.perf_counter()
        params, h = nj.fit(model, params, train, val, key=jax.random.key(a.seed + 1),
                           loss=loss, steps=a.steps, batch_size=a.batch_size,
                           learning_rate=a.learning_rate, patience=10**6, progress=False)
        seconds = time.perf_counter() - t
        lattice = None
        if h.dequantized:  # the test rows with fit's fixed noise, as its val rows
            lattice = np.zeros(dim)
            for j, s in h.dequantized.items():
                lattice[int(j)] = s
        x_test = dq.with_fixed_noise(test, lattice)
        ed, ed_se = energy_distance(model, params, x_test, jax.random.key(a.seed + 2),
                                    a.draws, a.rows)
        ll = ll_se = ll_median = None
        if hasattr(model, "log_prob"):
            lp = np.asarray(model.log_prob(params, x_test), np.float64)
            ll, ll_se = float(lp.mean()), float(lp.std(ddof=1) / np.sqrt(lp.size))
            ll_median = float(np.median(lp))
        rows.append({"data": name, "model": label, "energy_distance": ed, "ed_se": ed_se,
                     "log_likelihood": ll, "ll_se": ll_se, "ll_median": ll_median,
                     "seconds": seconds,
                     "returned_step": h.returned_step})
        print(f"{name:10s} {label:18s} energy distance {ed:.4f} ± {ed_se:.4f}  log-lik "
              f"{'—' if ll is None else f'{ll:.4g} ± {ll_se:.3g} (median {ll_median:.3f})'}"
              f"  {seconds:.0f} s", flush=True)
        samples[label] = np.asarray(model.sample(params, jax.random.key(a.seed + 3), 2000))
    samples["test data"] = np.asarray(test[:2000])
    return rows, samples


def figure(all_samples: dict, path: pathlib.Path) -> None:
    """One row per 2-D data set (the wine table: its first two columns), one column per
    model, the test data first."""
    from matplotlib.figure import Figure

    names = list(all_samples)
    labels = ["test data"] + list(dict.fromkeys(
        k for n in names for k in all_samples[n] if k != "test data"))
    fig = Figure(figsize=(2.6 * len(labels), 2.6 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), len(labels), squeeze=False)
    for i, name in enumerate(names):
        ref = all_samples[name]["test data"]
        lo, hi = np.percentile(ref[:, :2], [0.5, 99.5], axis=0)
        pad = 0.1 * (hi - lo)
        for j, label in enumerate(labels):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=9)
            if label not in all_samples[name]:
                ax.set_axis_off()
                continue
            s = all_samples[name][label]
            ax.scatter(s[:, 0], s[:, 1], s=1, alpha=0.4, color="C0" if j == 0 else "C1")
            ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
            ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
            if j == 0:
                ax.set_ylabel(name if all_samples[name]["test data"].shape[1] == 2
                              else f"{name} (cols 1-2)", fontsize=9)
    fig.savefig(path, dpi=110)


def table(rows: list[dict]) -> str:
    lines = ["| data | model | test energy distance (↓) | test log-likelihood, mean (↑) | "
             "median | seconds |", "|---|---|---|---|---|---|"]
    for r in rows:
        ll = med = "— (no density)"
        if r["log_likelihood"] is not None:
            ll = f"{r['log_likelihood']:.4g} ± {r['ll_se']:.3g}"
            med = f"{r['ll_median']:.3f}"
        lines.append(f"| {r['data']} | {r['model']} | {r['energy_distance']:.4f} ± "
                     f"{r['ed_se']:.4f} | {ll} | {med} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", default=["moons", "8gaussians", "wine_red"])
    p.add_argument("--root", default="/work/shared/data")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--draws", type=int, default=5, help="sample draws per energy distance")
    p.add_argument("--rows", type=int, default=2000, help="test rows per energy distance")
    p.add_argument("--nits", nargs="*", default=["moons"],
                   help="data sets on which NITS is also trained by the energy objective")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(HERE / "results" / "energy_samples.png"))
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.draws, a.rows = 30, 2, 300
    start = time.perf_counter()
    rows, samples = [], {}
    for name in a.data:
        r, s = run(name, a)
        rows += r
        samples[name] = s
    figure(samples, pathlib.Path(a.out))
    print()
    print(table(rows))
    print(f"\nfigure: {a.out}; total {time.perf_counter() - start:.0f} s (wall clock), "
          f"{time.process_time():.0f} s of CPU")


if __name__ == "__main__":
    main()
