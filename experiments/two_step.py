"""Manifold overfitting and two-step models (Loaiza-Ganem et al., TMLR 2022, arXiv
2204.07172): an ambient flow fitted by maximum likelihood in R^2 against a two-step model
(MLP autoencoder + a flow on the 1-D codes) on data on a known curve, and a two-step model
on MNIST.

Curve: x = (cos 3s, sin 3s), s ~ Beta(2, 5) on [0, 1] (a 1-D arc in R^2, non-uniform along
it). A sample's position along the curve is s = atan2(x2, x1) / 3 (its nearest point on
the arc); the KS distance of the samples' positions to fresh draws of s measures how well
each model learned the distribution along the manifold; the mean |radius - 1| how close
its samples are to the manifold.

    nice -n 10 python -m experiments.two_step [--no-mnist] [--quick]

Writes experiments/results/two_step_curve.png, two_step_mnist.png and prints the numbers
for experiments/results/latent_manifold.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import nitsjax as nj

RESULTS = Path(__file__).parent / "results"
#: ../shared/data/mnist next to the checkout (or next to the folder of worktrees)
MNIST_ROOT = next((p / "shared" / "data" / "mnist" for p in Path(__file__).resolve().parents[2:4]
                   if (p / "shared" / "data" / "mnist").is_dir()), Path("../shared/data/mnist"))


def arc(n, seed):
    s = np.random.default_rng(seed).beta(2.0, 5.0, size=n)
    return np.stack([np.cos(3 * s), np.sin(3 * s)], 1).astype(np.float32), s


def position(x):
    return np.arctan2(x[:, 1], x[:, 0]) / 3.0


def ks_distance(a, b):
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a)
                               - np.searchsorted(b, grid, "right") / len(b))))


def curve(steps_ambient, steps_ae, steps_latent, n_train=2000):
    x, _ = arc(n_train, 0)
    val, _ = arc(500, 1)
    _, truth = arc(5000, 2)
    out = {}
    t = time.perf_counter()
    flow = nj.flows.nsf(2, hidden=(64, 64), layers=4)
    p_amb, h_amb = nj.fit(flow, flow.init(jax.random.key(0)), x, val, key=jax.random.key(1),
                          steps=steps_ambient, batch_size=256, learning_rate=1e-3,
                          patience=None, progress=False)
    s_amb = np.asarray(flow.sample(p_amb, jax.random.key(3), 5000))
    out["ambient"] = dict(seconds=time.perf_counter() - t, val_nll=h_amb.best_val_nll,
                          steps=steps_ambient)
    t = time.perf_counter()
    model = nj.models.two_step_mlp(2, latent_dim=1, hidden=(64, 64), density="nsf",
                                   density_hidden=(64, 64), autoencoder_steps=steps_ae)
    p_ts, h_ts = model.fit(model.init(jax.random.key(0)), x, val, key=jax.random.key(1),
                           steps=steps_latent, batch_size=256, learning_rate=1e-3,
                           patience=None, progress=False)
    s_ts = np.asarray(model.sample(p_ts, jax.random.key(3), 5000))
    out["two_step"] = dict(seconds=time.perf_counter() - t, steps_ae=steps_ae,
                           steps_latent=steps_latent,
                           val_reconstruction=h_ts.autoencoder_history.best_val_loss,
                           latent_val_nll=h_ts.best_val_nll)
    for name, s in (("ambient", s_amb), ("two_step", s_ts)):
        out[name]["ks_position"] = ks_distance(position(s), truth)
        out[name]["mean_abs_radius_minus_1"] = float(np.mean(np.abs(
            np.linalg.norm(s, axis=1) - 1.0)))
    out["n_train"] = n_train
    _curve_figure(x, s_amb, s_ts, truth, out)
    return out


def _curve_figure(x, s_amb, s_ts, truth, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    ax[0].scatter(*x[:1000].T, s=2, label="data")
    ax[0].scatter(*s_amb[:1000].T, s=2, alpha=0.5, label="ambient flow")
    ax[0].scatter(*s_ts[:1000].T, s=2, alpha=0.5, label="two-step")
    ax[0].set_aspect("equal")
    ax[0].legend(markerscale=4)
    ax[0].set_title("samples")
    bins = np.linspace(-0.1, 1.1, 61)
    for i, (name, s) in enumerate((("ambient flow", s_amb), ("two-step", s_ts))):
        a = ax[i + 1]
        a.hist(truth, bins, density=True, alpha=0.4, label="truth: Beta(2, 5)")
        a.hist(position(s), bins, density=True, histtype="step", lw=1.5, label=name)
        key = "ambient" if i == 0 else "two_step"
        a.set_title(f"{name}: position along the curve, KS {out[key]['ks_position']:.3f}")
        a.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "two_step_curve.png", dpi=110)
    plt.close(fig)


def mnist(steps_ae, steps_latent, n_train=10000, latent_dim=12):
    from nitsjax.data.images import load_mnist

    splits, _ = load_mnist(MNIST_ROOT, seed=0)
    rng = np.random.default_rng(0)
    train = splits.train[rng.choice(len(splits.train), n_train, replace=False)]
    val = splits.val[:2000]
    t = time.perf_counter()
    model = nj.models.two_step_mlp(784, latent_dim=latent_dim, hidden=(256, 128),
                                   standardize="scalar", density="nsf",
                                   density_hidden=(128, 128), density_layers=5,
                                   autoencoder_steps=steps_ae)
    params, hist = model.fit(model.init(jax.random.key(0)), train, val,
                             key=jax.random.key(1), steps=steps_latent, batch_size=128,
                             learning_rate=1e-3, progress=False)
    samples = np.clip(np.asarray(model.sample(params, jax.random.key(2), 64)), 0, 1)
    recon = np.clip(np.asarray(model.decode(params, model.encode(params, val[:32]))), 0, 1)
    out = dict(seconds=time.perf_counter() - t, n_train=n_train, latent_dim=latent_dim,
               steps_ae=steps_ae, steps_latent=steps_latent,
               val_reconstruction=hist.autoencoder_history.best_val_loss,
               val_mse_pixels=float(np.mean((recon - val[:32]) ** 2)),
               latent_val_nll=hist.best_val_nll)
    _mnist_figure(samples, val[:32], recon)
    return out


def _mnist_figure(samples, real, recon):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def grid(a, cols):
        a = a.reshape(-1, 28, 28)
        rows = len(a) // cols
        return a[: rows * cols].reshape(rows, cols, 28, 28).transpose(0, 2, 1, 3).reshape(
            rows * 28, cols * 28)

    fig, ax = plt.subplots(1, 2, figsize=(11, 6))
    ax[0].imshow(grid(samples, 8), cmap="gray")
    ax[0].set_title("two-step samples g(z), z ~ latent NSF")
    pairs = np.concatenate([real.reshape(4, 8, 784), recon.reshape(4, 8, 784)], 1)
    ax[1].imshow(grid(pairs.reshape(-1, 784), 8), cmap="gray")
    ax[1].set_title("odd rows: validation images; even rows: their reconstructions")
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(RESULTS / "two_step_mnist.png", dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-mnist", action="store_true")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    k = 10 if a.quick else 1
    t = time.perf_counter()
    res = {"curve": curve(3000 // k, 2000 // k, 1500 // k)}
    print(json.dumps(res, indent=1), flush=True)
    if not a.no_mnist:
        res["mnist"] = mnist(2000 // k, 1500 // k)
    res["wall_seconds"] = time.perf_counter() - t
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
