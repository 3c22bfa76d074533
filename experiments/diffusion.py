"""High-order denoising score matching (Lu et al., ICML 2022, arXiv 2206.08265): the
probability-flow ODE test log-likelihood of a VP-SDE score model trained by first-, second-
and third-order DSM at the same budget, next to MAF and NSF trained by ``nj.fit`` for as many
steps.

    nice -n 10 python -m experiments.diffusion            # the recorded run
    nice -n 10 python -m experiments.diffusion --quick    # every code path, tiny budget

Data: ``nj.data.load`` splits of the 2-D toys ``moons`` and ``checkerboard`` and of UCI red
wine (d = 11; the loader's units, as in section 2 of stochastic_continuous.md). Every model
trains for ``--steps`` Adam steps of batch ``--batch-size``, validated every ``steps / 5``
steps on the first 2000 validation rows (best params returned). The diffusion models'
log-likelihood is the exact ODE density (exact trace, Tsit5, rtol = atol = ``--tol``) on the
first ``--test-rows`` test rows (with the paired difference to order 1 on the same rows); the
flows are evaluated on the same rows. Also reported:
the three DSM terms (``loss1``, ``loss2``, ``loss3``, exact trace, fixed draws) on the
validation rows, i.e. how well each order matches the score, its Jacobian and the
gradient of its trace. Figure: samples of each order on the toys
(``experiments/results/diffusion_samples.png``).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np

import nitsjax as nj
from experiments.cnf import ROOTS, data_root  # same data layout as the CNF runs
from nitsjax import diffusion as dm

HERE = pathlib.Path(__file__).resolve().parent


def dsm_terms(fitted: dm.Diffusion, x) -> dict:
    """Mean DSM terms of orders 1-3 (exact trace, the fixed evaluation draws) on rows x."""
    m = fitted.model
    loss = dm.DSMLoss(3, "exact", m.eps, m.sde)
    terms = jax.jit(lambda p, xx: loss.terms(m.score_model, p, xx, None))(fitted.params, x)
    return {k: float(np.mean(v)) for k, v in terms.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["moons", "checkerboard", "wine_red"])
    ap.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--flows", nargs="*", default=["maf", "nsf"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--flow-lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    ap.add_argument("--flow-hidden", type=int, nargs="+", default=[64, 64])
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--test-rows", type=int, default=2000)
    ap.add_argument("--sample-rows", type=int, default=2000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    if args.quick:
        args.steps, args.hidden, args.flow_hidden = 10, [8], [8]
        args.test_rows, args.sample_rows = 64, 64
    rows = ["| data | model | test LL (nats/row, +- 1 s.e.) | minus order 1, paired | "
            "test rows | val loss1 | val loss2 | val loss3 | train wall, s | eval wall, s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    samples = {}
    start = time.perf_counter()
    for name in args.data:
        kw = {"root": str(data_root() / ROOTS[name])} if name in ROOTS else {}
        train, val, test = nj.data.load(name, **kw)
        if args.quick:
            train, val = train[:512], val[:256]
        val, test = val[:2000], test[:args.test_rows]
        fit_kw = dict(steps=args.steps, batch_size=args.batch_size,
                      eval_every=max(args.steps // 5, 1), progress=False)
        first = None
        for order in args.orders:
            t0 = time.perf_counter()
            fitted = dm.fit(train, val, order=order, key=jax.random.key(1),
                            learning_rate=args.lr, hidden=tuple(args.hidden), eps=args.eps,
                            rtol=args.tol, atol=args.tol, **fit_kw)
            t1 = time.perf_counter()
            lp = np.asarray(fitted.log_prob(test), np.float64)
            s = nj.results.summarize(lp)
            t2 = time.perf_counter()
            first = lp if first is None else first
            paired = "" if lp is first else str(nj.results.summarize(lp - first))
            terms = dsm_terms(fitted, val)
            rows.append(f"| {name} | diffusion, order {order} | {s} | {paired} | {len(test)} | "
                        f"{terms['loss1']:.4f} | {terms['loss2']:.4f} | {terms['loss3']:.4f} | "
                        f"{t1 - t0:.0f} | {t2 - t1:.0f} |")
            print(rows[-1], flush=True)
            if train.shape[1] == 2:
                samples[(name, order)] = np.asarray(
                    fitted.sample(jax.random.key(2), args.sample_rows))
        for fname in args.flows:
            make = getattr(nj.flows, fname)
            flow = make(train.shape[1], layers=5, hidden=tuple(args.flow_hidden))
            params = flow.init(jax.random.key(0), train)
            t0 = time.perf_counter()
            params, _ = nj.fit(flow, params, train, val, key=jax.random.key(1),
                               learning_rate=args.flow_lr, clip_norm=5.0, **fit_kw)
            t1 = time.perf_counter()
            s = nj.results.summarize(np.asarray(flow.log_prob(params, test)))
            rows.append(f"| {name} | {fname} | {s} | | {len(test)} | | | | {t1 - t0:.0f} | "
                        f"{time.perf_counter() - t1:.0f} |")
            print(rows[-1], flush=True)
        if train.shape[1] == 2:
            samples[(name, "data")] = np.asarray(test[:args.sample_rows])
    print("\n".join(rows))
    print(f"total wall: {time.perf_counter() - start:.0f} s")
    toys = [n for n in args.data if (n, "data") in samples]
    if toys:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cols = ["data"] + list(args.orders)
        fig, axes = plt.subplots(len(toys), len(cols), figsize=(3 * len(cols), 3 * len(toys)),
                                 squeeze=False)
        for i, n in enumerate(toys):
            lim = np.abs(samples[(n, "data")]).max() * 1.15
            for j, c in enumerate(cols):
                ax = axes[i, j]
                pts = samples[(n, c)]
                ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4)
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
                ax.set_title(f"{n}: " + ("test data" if c == "data" else f"order {c}"))
                ax.set_xticks([])
                ax.set_yticks([])
        fig.tight_layout()
        stem = "diffusion_samples_quick.png" if args.quick else "diffusion_samples.png"
        path = pathlib.Path(args.out) / stem
        fig.savefig(path, dpi=90)
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
