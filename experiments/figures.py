"""Figures of a set of trained runs (the pieces are ``nitsjax.plots``).

    python experiments/figures.py outputs/reduced --out experiments/results

Writes, for the run folders found under the given paths (``config.yaml`` + ``params.npz``):

* ``toys_density_grid.png``: every 2-D toy, data histogram (top) over the learned density
  (bottom), one column per toy (the best run per toy by test log-likelihood);
* ``samples_<data>.png``: samples against test data, pairwise marginals of the first four
  dimensions, for each tabular data set (its best run);
* ``images_<data>_<model>.png``: sample grids next to real images (MNIST), and for the
  BSDS300 patches the 8x8 patch with its dropped pixel restored (minus the sum of the 63);
* ``training_curves_<group>.png``: validation NLL against steps, one panel per data set,
  one line per model.

PNGs are written at a low resolution (small files for the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import find_runs, model_key  # noqa: E402

from nitsjax import experiment as ex  # noqa: E402
from nitsjax import plots  # noqa: E402

DPI = 60
TOY_ORDER = ["moons", "8gaussians", "checkerboard", "pinwheel", "2spirals", "rings", "circles",
             "swissroll"]


def _save(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    print(f"figure: {path} ({path.stat().st_size // 1024} KB)")
    return path


def _runs_by_data(paths) -> dict[str, list[tuple[Path, dict, object]]]:
    """data name -> [(run folder, metrics, config)] of finished runs with params."""
    from omegaconf import OmegaConf

    out = defaultdict(list)
    for r in find_runs(paths):
        m = json.loads((r / "metrics.json").read_text())
        if m.get("test_log_likelihood") is None or not (r / "params.npz").is_file():
            continue
        out[m["data"]].append((r, m, OmegaConf.load(r / "config.yaml")))
    return out


def _best(runs):
    return max(runs, key=lambda t: t[1]["test_log_likelihood"])


def toy_grid(runs_by_data, out: Path, grid: int = 100) -> Path | None:
    toys = [t for t in TOY_ORDER if t in runs_by_data] + sorted(
        t for t, rs in runs_by_data.items() if rs[0][1]["dim"] == 2 and t not in TOY_ORDER)
    if not toys:
        return None
    fig = Figure(figsize=(1.9 * len(toys), 4.0), layout="constrained")
    axes = np.array(fig.subplots(2, len(toys), squeeze=False))
    for j, name in enumerate(toys):
        run_dir, m, _ = _best(runs_by_data[name])
        run = ex.load_run(run_dir)
        data = run.load_data()
        test = data.to_original(data.test)
        lim = plots._limits(test)
        axes[0, j].hist2d(test[:, 0], test[:, 1], bins=grid // 2, range=lim.tolist(),
                          cmap="viridis")
        _, _, dens = plots.density_grid(run.log_prob, lim, grid)
        axes[1, j].imshow(dens, origin="lower", extent=(*lim[0], *lim[1]), aspect="auto",
                          cmap="viridis")
        axes[0, j].set_title(name, fontsize=9)
        axes[1, j].set_xlabel(f"{model_key(run.cfg.model)}: {m['test_log_likelihood']:.2f}",
                              fontsize=8)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("data (test)")
    axes[1, 0].set_ylabel("model density")
    fig.suptitle("2-D toys: test data (top) and learned density (bottom); "
                 "model: test log-likelihood", fontsize=9)
    return _save(fig, out / "toys_density_grid.png")


def tabular_samples(runs_by_data, out: Path, n: int = 1000) -> list[Path]:
    written = []
    for name, runs in sorted(runs_by_data.items()):
        run_dir, m, cfg = _best(runs)
        if m["dim"] <= 2 or cfg.data.get("image_shape") or name in ("mnist", "cifar10"):
            continue
        run = ex.load_run(run_dir)
        data = run.load_data()
        s = run.sample(jax.random.key(0), n)
        fig = plots.plot_samples(s, data.to_original(data.test), None, max_dims=4,
                                 max_points=n, title=f"{model_key(run.cfg.model)} samples")
        fig.suptitle(f"{name}: {model_key(run.cfg.model)} samples (colour) vs test data "
                     f"(grey), first {min(4, m['dim'])} of {m['dim']} dims", fontsize=9)
        written.append(_save(fig, out / f"samples_{name}.png"))
    return written


def image_samples(runs_by_data, out: Path, n: int = 64, n_pixelwise: int = 16) -> list[Path]:
    """Sample grids next to real images; image models of the 8-bit values (``image_nits``,
    sampled pixel by pixel: ``n_pixelwise`` samples, a 4 x 4 grid) are shown on [0, 1]."""
    written = []
    for name, runs in sorted(runs_by_data.items()):
        for run_dir, _, cfg in runs:
            shape = cfg.data.get("image_shape")
            patches = name == "bsds300_images"
            if shape is None and not patches:
                continue
            run = ex.load_run(run_dir)
            data = run.load_data()
            pixelwise = ex.takes_image_shape(cfg.model)
            k = n_pixelwise if pixelwise else n
            s = run.sample(jax.random.key(0), k)
            real = data.to_original(data.test)[:k]
            if pixelwise:
                s, real = s / 255.0, real / 255.0
            grid = {"rows": 4, "cols": 4} if pixelwise else {}
            if patches:  # restore the dropped pixel: patches had their mean removed
                s = np.concatenate([s, -s.sum(1, keepdims=True)], 1)
                real = np.concatenate([real, -real.sum(1, keepdims=True)], 1)
                shape = (8, 8)
            fig = plots.plot_image_samples(np.clip(s, -1, 1) if patches else np.clip(s, 0, 1),
                                           tuple(shape), real, None,
                                           title=f"{model_key(cfg.model)} samples", **grid)
            written.append(_save(fig, out / f"images_{name}_{model_key(cfg.model)}.png", dpi=70))
    return written


def training_curves(runs_by_data, out: Path, group: str, names: list[str]) -> Path | None:
    names = [n for n in names if n in runs_by_data]
    if not names:
        return None
    fig = Figure(figsize=(3.2 * len(names), 2.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names, strict=True):
        for run_dir, _, cfg in sorted(runs_by_data[name], key=lambda t: model_key(t[2].model)):
            recs = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().split("\n")
                    if line.strip()]
            steps = [r["step"] for r in recs if r.get("val_nll") is not None]
            val = [r["val_nll"] for r in recs if r.get("val_nll") is not None]
            ax.plot(steps, val, marker="o", ms=2, label=model_key(cfg.model))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        lo = min(min(ln.get_ydata()) for ln in ax.lines)
        hi = np.percentile(np.concatenate([ln.get_ydata() for ln in ax.lines]), 90)
        ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9))
        ax.legend(fontsize=7)
    axes[0].set_ylabel("validation NLL (nats)", fontsize=8)
    return _save(fig, out / f"training_curves_{group}.png")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders or folders holding them")
    ap.add_argument("--out", default="experiments/results", help="folder for the PNGs")
    ap.add_argument("--images-only", action="store_true",
                    help="only the sample grids of image runs (images_<data>_<model>.png)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    by_data = _runs_by_data(args.runs)
    if args.images_only:
        image_samples(by_data, out)
        return 0
    toy_grid(by_data, out)
    tabular_samples(by_data, out)
    image_samples(by_data, out)
    tabular = sorted(d for d, rs in by_data.items() if rs[0][1]["dim"] > 2
                     and d not in ("mnist", "cifar10", "bsds300_images"))
    training_curves(by_data, out, "tabular", tabular)
    training_curves(by_data, out, "images", ["bsds300_images", "mnist"])
    training_curves(by_data, out, "toys", [t for t in TOY_ORDER if t in by_data][:4])
    return 0


if __name__ == "__main__":
    sys.exit(main())
