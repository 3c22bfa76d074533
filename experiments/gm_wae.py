"""Gaussian-mixture WAE on MNIST (Gaujac, Feige, Barber, arXiv 1806.04465) against the same
model trained as a GM-VAE by the ELBO, at the same budget.

    nice -n 10 python experiments/gm_wae.py            # the recorded run
    nice -n 10 python experiments/gm_wae.py --quick    # every code path, tiny budget

Data: MNIST through ``nitsjax.data.images.read_mnist`` (``../shared/data`` or
``NITSJAX_DATA``), pixels scaled to [0, 1] (no dequantisation: the WAE cost is the squared
error), a random subsample of the training images (and labels, used only for the purity
score), 500 held-out training images for validation, test images for every score.

Both models: ``nj.models.gm_wae(784, K=10, latent_dim=8, hidden=(128, 128))``, trained by
``nj.fit(..., loss="objective")`` with the same steps, batch size and learning rate (best
validation objective returned). Reported on the test images: mean squared reconstruction
error per image (``reconstruct``: decoder at the posterior mean of the most probable
component), the entropy of the average ``q_D(k|x)`` against log K (log K: every
component used equally; 0: one component), the mean entropy of ``q_D(k|x)`` per image
(0: each image assigned to one component), the number of components that are the argmax
of at least 1 % of images, and the label purity of the components (images assigned to
their argmax component; each component counts its most frequent digit; 1/10 = chance).
Figures: ``gm_wae_reconstructions.png`` (data above, reconstructions below, both models),
``gm_wae_samples.png`` and ``gm_vae_samples.png`` (one row per component k).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import time

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nitsjax as nj  # noqa: E402
from nitsjax.data.images import read_mnist  # noqa: E402

HEADING = "## 2. Gaussian-mixture WAE"
RESULTS = pathlib.Path(__file__).parent / "results"
_HERE = pathlib.Path(__file__).resolve().parents[1]
#: ../shared/data from the project root (a checkout or a worktree one level further down)
ROOT = next((p for p in (_HERE.parent / "shared" / "data", _HERE.parent.parent / "shared" / "data")
             if p.exists()), None)


def scores(model, params, x, labels) -> dict:
    q = np.asarray(model.q_k(params, x))
    rec = np.asarray(model.reconstruct(params, x))
    qbar = q.mean(0)
    assign = q.argmax(1)
    purity = sum(np.bincount(labels[assign == k], minlength=10).max()
                 for k in range(model.K) if np.any(assign == k)) / len(x)
    return {
        "recon_sq_error": float(np.mean(np.sum((rec - x) ** 2, 1))),
        "entropy_mean_q": float(-np.sum(qbar * np.log(np.maximum(qbar, 1e-12)))),
        "mean_entropy_q": float(np.mean(-np.sum(q * np.log(np.maximum(q, 1e-12)), 1))),
        "components_used": int(np.sum(np.bincount(assign, minlength=model.K) >= 0.01 * len(x))),
        "purity": float(purity),
    }


def sample_grid(model, params, key, cols, path, title):
    rows = [np.asarray(model.sample(params, k, cols, component=c))
            for c, k in enumerate(jax.random.split(key, model.K))]
    img = np.concatenate([np.concatenate([r.reshape(-1, 28, 28)[j] for j in range(cols)], 1)
                          for r in rows], 0)
    fig, ax = plt.subplots(figsize=(cols * 0.6, model.K * 0.6 + 0.4))
    ax.imshow(np.clip(img, 0, 1), cmap="gray")
    ax.set_yticks(np.arange(model.K) * 28 + 14, [f"k={k}" for k in range(model.K)])
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def recon_figure(x, recs: dict, path):
    n = len(x)
    fig, axes = plt.subplots(1 + len(recs), 1, figsize=(n * 0.6, 0.8 * (1 + len(recs)) + 0.3))
    for ax, (name, a) in zip(axes, [("data", x)] + list(recs.items())):
        ax.imshow(np.clip(np.concatenate(list(a.reshape(-1, 28, 28)), 1), 0, 1), cmap="gray")
        ax.set_axis_off()
        ax.set_title(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lam", type=float, default=100.0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--learn-prior", action="store_true",
                    help="only the GM-WAE with learn_prior=True (same data, seeds, budget); "
                         "prints its row, writes gm_wae_learned_prior_samples.png")
    args = ap.parse_args()
    n_train, steps = (600, 30) if args.quick else (args.n_train, args.steps)
    batch, lr, n_test = args.batch, 1e-3, (300 if args.quick else 2000)

    d = read_mnist(ROOT)
    rng = np.random.default_rng(0)
    idx = rng.permutation(60000)
    x_all = d["train_images"].reshape(-1, 784).astype(np.float32) / 255.0
    train, val = x_all[idx[:n_train]], x_all[idx[n_train:n_train + 500]]
    t_idx = rng.permutation(10000)[:n_test]
    test = d["test_images"].reshape(-1, 784).astype(np.float32)[t_idx] / 255.0
    test_labels = d["test_labels"][t_idx].astype(int)

    common = dict(K=10, latent_dim=8, hidden=(args.hidden, args.hidden))
    models = {"GM-WAE": nj.models.gm_wae(784, objective="wae", lam=args.lam, **common),
              "GM-VAE (ELBO)": nj.models.gm_wae(784, objective="elbo", **common)}
    if args.learn_prior:  # the GM-WAE's seeds (i = 0), its prior learned
        models = {"GM-WAE, learned prior": nj.models.gm_wae(
            784, objective="wae", lam=args.lam, learn_prior=True, **common)}
    out, trained = {}, {}
    for i, (name, m) in enumerate(models.items()):
        t0 = time.perf_counter()
        p = m.init(jax.random.key(i))
        p, h = nj.fit(m, p, train, val, loss="objective", steps=steps, batch_size=batch,
                      learning_rate=lr, eval_every=max(10, steps // 10), patience=None,
                      key=jax.random.key(10 + i), progress=False, dequantize=False)
        secs = time.perf_counter() - t0
        trained[name] = p
        out[name] = {**scores(m, p, test, test_labels), "seconds": secs,
                     "best_step": h.best_step}
        print(name, out[name], flush=True)

    if args.quick:
        return
    if args.learn_prior:
        name = next(iter(models))
        sample_grid(models[name], trained[name], jax.random.key(7), 10,
                    RESULTS / "gm_wae_learned_prior_samples.png",
                    "GM-WAE, learned prior: row k: z ~ N(mu_k, sigma_k^2)")
        s = out[name]
        p = trained[name]["prior"]
        dist = np.linalg.norm(np.asarray(p["means"])[:, None] - np.asarray(p["means"])[None],
                              axis=-1)
        print(f"| {name} | {s['recon_sq_error']:.2f} | {s['entropy_mean_q']:.3f} | "
              f"{s['mean_entropy_q']:.3f} | {s['components_used']} | {s['purity']:.3f} | "
              f"{s['seconds']:.0f} |")
        print(f"learned sigma_k: {np.round(np.exp(np.asarray(p['log_sigma'])), 3).tolist()}; "
              f"distances between means: min {dist[dist > 0].min():.2f}, "
              f"max {dist.max():.2f} (fixed: 4.0)")
        return
    names = list(models)
    recon_figure(test[:12], {n: np.asarray(models[n].reconstruct(trained[n], test[:12]))
                             for n in names}, RESULTS / "gm_wae_reconstructions.png")
    sample_grid(models[names[0]], trained[names[0]], jax.random.key(7), 10,
                RESULTS / "gm_wae_samples.png", "GM-WAE samples, row k: z ~ N(mu_k, sigma^2)")
    sample_grid(models[names[1]], trained[names[1]], jax.random.key(7), 10,
                RESULTS / "gm_vae_samples.png",
                "GM-VAE (ELBO) samples, row k: z ~ N(mu_k, sigma^2)")

    lines = [
        HEADING, "",
        f"Command: `nice -n 10 python experiments/gm_wae.py --n-train {n_train} --steps "
        f"{steps} --lam {args.lam:g} --hidden {args.hidden} --batch {batch}` (2 CPU cores "
        f"shared with other jobs, load ~15). Budget, both models: MNIST "
        f"subsample of {n_train} training images (pixels in [0, 1]), 500 for validation, "
        f"{steps} steps of Adam at {lr:g}, batch {batch}; `gm_wae(784, K=10, latent_dim=8, "
        f"hidden=({args.hidden}, {args.hidden}))`; WAE: lam={args.lam:g}, IMQ-kernel MMD; "
        f"ELBO: Gaussian decoder of scale 0.3. Scores on {n_test} test images. log K = "
        f"{math.log(10):.3f}.", "",
        "| model | recon sq. error / image | H(mean q(k\\|x)) | mean H(q(k\\|x)) | components "
        "used (>=1 %) | label purity | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in out.items():
        lines.append(f"| {name} | {s['recon_sq_error']:.2f} | {s['entropy_mean_q']:.3f} | "
                     f"{s['mean_entropy_q']:.3f} | {s['components_used']} | "
                     f"{s['purity']:.3f} | {s['seconds']:.0f} |")
    lines += ["", "Figures: `gm_wae_reconstructions.png` (test images; reconstructions by "
              "each model), `gm_wae_samples.png`, `gm_vae_samples.png` (one row per "
              "component k).", ""]
    print("\n".join(lines))
    write_section(RESULTS / "latent_manifold.md", "\n".join(lines))


def write_section(path: pathlib.Path, section: str) -> None:
    """Replace this experiment's section (from its heading to the next ``## ``) in the
    results file, or append it."""
    text = path.read_text() if path.exists() else ""
    start = text.find(HEADING)
    if start < 0:
        path.write_text(text + ("\n" if text and not text.endswith("\n\n") else "") + section)
        return
    end = text.find("\n## ", start + len(HEADING))
    path.write_text(text[:start] + section + ("" if end < 0 else text[end:]))


if __name__ == "__main__":
    main()
