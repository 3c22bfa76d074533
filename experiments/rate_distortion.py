"""Rate-distortion sandwich bounds (Yang & Mandt, ICLR 2022) with ``nj.rd``.

    nice -n 10 python experiments/rate_distortion.py            # the recorded run
    nice -n 10 python experiments/rate_distortion.py --quick    # every code path, tiny
    nice -n 10 python experiments/rate_distortion.py --sources gaussian2d banana

Sources (distortion: squared error summed over coordinates, per sample; rates in nats):

- ``gaussian2d``: N(0, diag(1, 0.25)); R(D) by reverse water-filling (``nj.rd.gaussian_rd``).
- ``gaussian5d``: N(0, diag(2, 1, 0.5, 0.25, 0.1)), same closed form.
- ``banana``: z ~ N(0, diag(1, 0.1)), x = (z_1, z_2 + 0.5 z_1^2 - 0.5): a 2-D
  banana (in the spirit of the paper's banana source, not its exact parameters).
- ``mnist``: dequantised MNIST in [0, 1), flattened (784 coordinates), a subsample of the
  training images (``--mnist-n``).

For each: the upper bound (beta-VAE, MAF latent prior) at every lambda, the lower bound
(dual with an MLP ``-log u``) at every lambda, both with standard errors; against the truth
where it is known. Figures ``experiments/results/rd_<source>.png``; a markdown table on
stdout (pasted into ``experiments/results/latent_manifold.md``).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

import nitsjax as nj

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
GAUSS2 = np.array([1.0, 0.25])
GAUSS5 = np.array([2.0, 1.0, 0.5, 0.25, 0.1])


def banana(n, rng):
    z = rng.normal(size=(n, 2)) * np.sqrt([1.0, 0.1])
    return np.stack([z[:, 0], z[:, 1] + 0.5 * z[:, 0] ** 2 - 0.5], axis=1)


def mnist(n, seed, root):
    splits, _ = nj.data.images.load_mnist(pathlib.Path(root) / "mnist", seed=seed)
    rng = np.random.default_rng(seed)
    return splits.train[rng.choice(len(splits.train), n, replace=False)]


# name -> (sampler(rng), variances or None, upper lambdas, lower lambdas, upper kwargs,
# lower kwargs)
def sources(quick: bool, mnist_n: int, root: str):
    s_up = dict(steps=60 if quick else 2000)
    s_lo = dict(steps=20 if quick else 600, k=64 if quick else 512,
                eval_batches=4 if quick else 32)
    lams = [0.5, 1.0, 2.0, 4.0, 8.0]
    return {
        "gaussian2d": (lambda rng: rng.normal(size=(20000, 2)) * np.sqrt(GAUSS2), GAUSS2,
                       lams, lams, s_up, s_lo),
        "gaussian5d": (lambda rng: rng.normal(size=(20000, 5)) * np.sqrt(GAUSS5), GAUSS5,
                       lams, lams, s_up, s_lo),
        "banana": (lambda rng: banana(20000, rng), None, lams + [16.0], lams + [16.0],
                   s_up, s_lo),
        # the lower bound's intercept never exceeds log k (module docstring of nj.rd): on
        # MNIST, where D is tens, only small slopes give a line above 0
        "mnist": (lambda rng: mnist(500 if quick else mnist_n, 0, root), None,
                  [1.0] if quick else [0.1, 0.5, 2.0, 8.0, 32.0],
                  [0.1] if quick else [0.02, 0.05, 0.1, 0.2],
                  dict(s_up, latent_dim=32, hidden=(256, 256), batch_size=128,
                       steps=60 if quick else 3000),
                  dict(s_lo, hidden=(256,), eval_starts=64,
                       steps=20 if quick else 300)),
    }


def run(name, sampler, var, up_lambdas, lo_lambdas, up_kw, lo_kw, seed):
    rng = np.random.default_rng(seed)
    x = sampler(rng).astype(np.float32)
    t0 = time.time()
    ub = nj.rd.upper_bound(x, up_lambdas, seed=seed, **up_kw)
    t_up = time.time() - t0
    t0 = time.time()
    lb = nj.rd.lower_bound(x, lo_lambdas, seed=seed, **lo_kw)
    t_lo = time.time() - t0
    truth = None if var is None else (lambda d: nj.rd.gaussian_rd(var, d))
    nj.rd.plot(ub, lb, truth=truth, title=f"{name}: n={len(x)}, dim={x.shape[1]}",
               path=RESULTS / f"rd_{name}.png")
    print(f"\n### {name} (n = {len(x)}, dim = {x.shape[1]}; upper {t_up:.0f} s, lower "
          f"{t_lo:.0f} s wall)\n")
    print(f"upper: {up_kw}; lower: {lo_kw}\n")
    extra = truth is not None
    print("| lambda | upper D | upper R | lower bound at that D |"
          + (" R(D) | R(D + 2 se) |" if extra else ""))
    print("|---|---|---|---|" + ("---|---|" if extra else ""))
    for i, lam in enumerate(up_lambdas):
        d, se = ub.distortion[i], ub.distortion_se[i]
        row = (f"| {lam:g} | {d:.4g} +- {se:.2g} | {ub.rate[i]:.4g} +- {ub.rate_se[i]:.2g} | "
               f"{lb.rate(d):.4g} |")
        if extra:
            row += f" {truth(d):.4g} | {truth(d + 2 * se):.4g} |"
        print(row)
    print("\n| lambda | lower intercept |" + (" best intercept (truth) |" if extra else ""))
    print("|---|---|" + ("---|" if extra else ""))
    for i, lam in enumerate(lo_lambdas):
        row = f"| {lam:g} | {lb.intercepts[i]:.4g} +- {lb.intercept_se[i]:.2g} |"
        if extra:
            dl = np.minimum(1 / (2 * lam), var).sum()
            row += f" {truth(dl) + lam * dl:.4g} |"
        print(row)
    return ub, lb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget, every code path")
    parser.add_argument("--sources", nargs="*", default=["gaussian2d", "gaussian5d", "banana",
                                                         "mnist"])
    parser.add_argument("--mnist-n", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="/work/shared/data", help="folder holding mnist/")
    args = parser.parse_args(argv)
    table = sources(args.quick, args.mnist_n, args.root)
    for name in args.sources:
        if name not in table:
            parser.error(f"--sources: unknown source {name!r}; choose from {sorted(table)}")
    t0 = time.time()
    for name in args.sources:
        run(name, *table[name], seed=args.seed)
    print(f"\ntotal wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
