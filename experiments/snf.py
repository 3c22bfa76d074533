"""Stochastic normalizing flows against the flow alone at the same budget (issue 14, 1).

On the three targets with a known normaliser of ``nitsjax.snf.targets`` (2-D double well,
six well-separated Gaussians, 10-D funnel), the chains of ``configs/experiment/snf_*.yaml``
(RealNVP blocks with Metropolis-Hastings and Langevin layers between and after them) are
trained by the reverse path KL (``nj.snf.fit_reverse``), and so are the same RealNVP blocks
without the stochastic layers, with the same steps, batch, learning rate and seed. Reported:
``log Z`` +- s.e. against the exact value, ESS (fraction of fresh paths), mode coverage.

    nice -n 10 python experiments/snf.py                    # the configs' budget
    nice -n 10 python experiments/snf.py --steps 300        # a quick check

Writes ``experiments/results/snf_samples.png`` (samples over the target's density: flow
alone, SNF per target), ``snf_ess.png`` (batch ESS along training) and ``snf.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nitsjax.app import snf as app  # noqa: E402
from nitsjax.config import compose  # noqa: E402

TARGETS = ("double_well", "gaussian_mixture", "funnel")
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: config)")
    p.add_argument("--batch-size", type=int, default=None, help="paths per step")
    p.add_argument("--n-samples", type=int, default=None, help="fresh paths for the estimates")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="seeds (init, training paths); the figures show the first")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    rows, fits, targets = {}, {}, {}
    start_all = time.perf_counter()
    for name, seed in ((n, s) for n in args.targets for s in args.seeds):
        over = [f"+experiment=snf_{name}", f"seed={seed}"]
        for key, value in (("steps", args.steps), ("batch_size", args.batch_size),
                           ("n_samples", args.n_samples)):
            if value is not None:
                over.append(f"fit.{key}={value}")
        cfg = compose("snf", over)
        app.validate_snf(cfg)
        target = app.build_target(cfg.target)
        targets[name] = (target, cfg)
        for label, stochastic in (("flow", False), ("snf", True)):
            chain = app.build_chain(cfg.chain, cfg.flow, target.dim, stochastic=stochastic)
            fit, seconds = app.fit_chain(chain, target, cfg.fit, seed, progress=False)
            m = app.summary(fit, target, int(cfg.fit.batch_size), seconds)
            m.update(layers=list(chain.names), steps=int(cfg.fit.steps),
                     batch_size=int(cfg.fit.batch_size), seed=seed)
            rows[(name, label, seed)] = m
            if seed == args.seeds[0]:
                fits[(name, label)] = fit
            print(f"{name:17s} {label:4s} seed {seed} log Z {m['log_z']:8.4f} "
                  f"+- {m['log_z_se']:.4f} "
                  f"(exact {target.log_z:.4f}, err {m['log_z_error']:+.4f}) "
                  f"ESS {m['ess_fraction']:.3f}"
                  + (f" modes {m['modes_covered']}/{m['modes']}" if "modes" in m else "")
                  + f"  {seconds:.0f} s", flush=True)
    wall = time.perf_counter() - start_all
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "snf.json").write_text(json.dumps(
        {"wall_seconds": round(wall, 1), "seeds": args.seeds,
         "runs": {f"{n}/{label}/{s}": m for (n, label, s), m in rows.items()}}, indent=2)
        + "\n")
    print("\n| target | method | log Z error (+- s.e.) per seed | ESS fraction per seed | "
          "modes covered | train s |\n|---|---|---|---|---|---|")
    for name in args.targets:
        for label in ("flow", "snf"):
            ms = [rows[(name, label, s)] for s in args.seeds]
            err = ", ".join(f"{m['log_z_error']:+.3f} +- {m['log_z_se']:.3f}" for m in ms)
            ess = ", ".join(f"{m['ess_fraction']:.3f}" for m in ms)
            modes = ", ".join(f"{m['modes_covered']}/{m['modes']}" for m in ms) \
                if "modes" in ms[0] else "-"
            secs = sum(m["train_seconds"] for m in ms) / len(ms)
            print(f"| {name} | {'flow alone' if label == 'flow' else 'SNF'} | {err} | {ess} | "
                  f"{modes} | {secs:.0f} |")

    fig, axes = plt.subplots(2, len(args.targets), figsize=(4 * len(args.targets), 8),
                             squeeze=False)
    for j, name in enumerate(args.targets):
        target, _ = targets[name]
        for i, label in enumerate(("flow", "snf")):
            m = rows[(name, label, args.seeds[0])]
            app.plot_samples(axes[i, j], target, fits[(name, label)].samples,
                             f"{name}, {'flow alone' if label == 'flow' else 'SNF'}: "
                             f"ESS {m['ess_fraction']:.2f}, log Z err {m['log_z_error']:+.2f}")
    fig.tight_layout()
    fig.savefig(args.out / "snf_samples.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(args.targets), figsize=(4.5 * len(args.targets), 3.5),
                             squeeze=False)
    for ax, name in zip(axes[0], args.targets):
        _, cfg = targets[name]
        app.plot_ess(ax, {"flow alone": fits[(name, "flow")].batch_ess,
                          "SNF": fits[(name, "snf")].batch_ess}, int(cfg.fit.batch_size), name)
    fig.tight_layout()
    fig.savefig(args.out / "snf_ess.png", dpi=110)
    plt.close(fig)
    print(f"wall {wall:.0f} s; wrote {args.out / 'snf_samples.png'}, snf_ess.png, snf.json")


if __name__ == "__main__":
    main()
