"""Spread divergence (Zhang et al., ICML 2020, arXiv 1811.08968) experiments.

(a) Linear ICA with deterministic mixing (Laplace sources, n = 2000): square 2 x 2 and
undercomplete 3 x 2 (data on a plane: no density), spread MLE at two spreads; plain MLE
(exact density) for the square case; Amari distance of the recovered mixing matrix.
(b) Data on a curve (a circle in 2-D, non-uniform angle): a deep generator with a 1-D
latent trained by spread MLE, a MAF by plain MLE, a MAF with ``fit(spread=)``; mean
distance of samples to the circle and KS distance of their angle to the truth.

    nice -n 10 python -m experiments.spread
    nice -n 10 python -m experiments.spread --learned   # fixed vs learned spread only

``--learned``: the undercomplete ICA and the generator on the circle with the spread fixed
(``N(0, sigma^2 I)``) and learned (``fit(learn_spread=True)``), same data, seeds, budgets.

Writes experiments/results/spread_manifold.png and prints markdown tables.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import nitsjax as nj
from nitsjax.spread import Generator, LinearICA, amari_distance

OUT = Path(__file__).parent / "results"


def plain_ica(x, key, steps, lr=1e-2):
    """Exact maximum likelihood of square noiseless ICA (the classical estimator)."""
    model = LinearICA(x.shape[1], x.shape[1])
    tx = optax.adam(lr)

    @jax.jit
    def run(params, key):
        def step(carry, k):
            p, opt = carry
            idx = jax.random.choice(k, x.shape[0], (256,), replace=False)
            g = jax.grad(lambda p: -jnp.mean(model.log_prob(p, x[idx])))(p)
            u, opt = tx.update(g, opt, p)
            return (optax.apply_updates(p, u), opt), None
        return jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, steps))[0][0]

    return run(model.init(jax.random.key(1)), key)


def ica(rng, steps=3000):
    print("| mixing | estimator | spread sigma | Amari distance |")
    print("|---|---|---|---|")
    mixes = {"square 2 x 2": np.array([[1.0, 0.5], [-0.3, 1.0]]),
             "undercomplete 3 x 2": np.array([[1.0, 0.4], [-0.5, 1.0], [0.3, 0.8]])}
    for name, a in mixes.items():
        x = jnp.asarray((rng.laplace(size=(2000, a.shape[1])) / np.sqrt(2)) @ a.T, jnp.float32)
        if a.shape[0] == a.shape[1]:
            p = plain_ica(x, jax.random.key(3), steps)
            print(f"| {name} | plain MLE | - | {amari_distance(a, p['mixing']):.3f} |")
        for sigma in (0.05, 0.3):
            model = LinearICA(*a.shape)
            p, _ = nj.spread.fit(model, model.init(jax.random.key(1)), x, sigma=sigma,
                                 key=jax.random.key(2), steps=steps, learning_rate=1e-2)
            print(f"| {name} | spread MLE | {sigma} | {amari_distance(a, p['mixing']):.3f} |")


def circle(n, rng):
    th = np.pi * (rng.beta(2, 5, n) * 2 - 1) + np.pi / 2  # non-uniform along the circle
    return np.c_[np.cos(th), np.sin(th)].astype(np.float32)


def ks(a, b):
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / a.size
                               - np.searchsorted(b, grid, "right") / b.size)))


def manifold(rng, sigma=0.05):
    x, xv, xt = circle(2000, rng), circle(500, rng), circle(5000, rng)
    truth = np.arctan2(xt[:, 1], xt[:, 0])
    out = {}
    gen = Generator(2, 1, hidden=(64, 64))
    p, _ = nj.spread.fit(gen, gen.init(jax.random.key(0)), x, sigma=sigma,
                         key=jax.random.key(1), steps=4000, learning_rate=2e-3)
    out[f"generator (1-D latent), spread MLE sigma={sigma}"] = np.asarray(
        gen.sample(p, jax.random.key(2), 5000))
    flow = nj.flows.maf(2, layers=4, hidden=(64, 64))
    common = dict(key=jax.random.key(1), steps=3000, batch_size=256, eval_every=250,
                  progress=False, patience=None)
    for label, kw in (("MAF, plain MLE", {}), (f"MAF, fit(spread={sigma})",
                                                dict(spread=sigma))):
        fp, h = nj.fit(flow, flow.init(jax.random.key(0)), x, xv, **common, **kw)
        out[label] = np.asarray(flow.sample(fp, jax.random.key(2), 5000))
        out[label + " (val NLL)"] = h["val_nll"][-1]
    print("| model | mean distance to the curve | KS of angle | final val NLL (plain) |")
    print("|---|---|---|---|")
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    axes[0].scatter(xt[:2000, 0], xt[:2000, 1], s=1)
    axes[0].set_title("data (on the unit circle)")
    i = 1
    for label, s in out.items():
        if label.endswith("(val NLL)"):
            continue
        s = s[np.all(np.isfinite(s), 1)]
        dist = np.mean(np.abs(np.linalg.norm(s, axis=1) - 1))
        k = ks(np.arctan2(s[:, 1], s[:, 0]), truth)
        nll = out.get(label + " (val NLL)")
        print(f"| {label} | {dist:.4f} | {k:.3f} | {'-' if nll is None else f'{nll:.2f}'} |")
        axes[i].scatter(s[:2000, 0], s[:2000, 1], s=1)
        axes[i].set_title(label, fontsize=8)
        i += 1
    for ax in axes:
        ax.set_xlim(-1.6, 1.6), ax.set_ylim(-1.6, 1.6), ax.set_aspect("equal")
    OUT.mkdir(exist_ok=True)
    fig.savefig(OUT / "spread_manifold.png", dpi=110)


def learned(rng, steps=3000):
    """Fixed against learned spread: undercomplete ICA (Amari distance) and the 1-D-latent
    generator on the circle (distance to the curve, KS of the angle)."""
    from nitsjax.spread import spread_factor

    print("| model | spread | sigma | result | wall s |")
    print("|---|---|---|---|---|")
    a = np.array([[1.0, 0.4], [-0.5, 1.0], [0.3, 0.8]])
    rng.laplace(size=(2000, 2))  # the square run's draw in ica(): the same data as there
    x = jnp.asarray((rng.laplace(size=(2000, 2)) / np.sqrt(2)) @ a.T, jnp.float32)
    for sigma in (0.05, 0.3):
        for learn in (False, True):
            t = time.time()
            model = LinearICA(*a.shape)
            p, _ = nj.spread.fit(model, model.init(jax.random.key(1)), x, sigma=sigma,
                                 key=jax.random.key(2), steps=steps, learning_rate=1e-2,
                                 learn_spread=learn)
            what = "learned" if learn else "fixed"
            print(f"| ICA 3 x 2 | {what} | {sigma} | Amari {amari_distance(a, p['mixing']):.3f}"
                  f" | {time.time() - t:.0f} |", flush=True)
            if learn:
                print(f"  learned L = {np.round(np.asarray(spread_factor(p)), 3).tolist()}")
    xc, xt = circle(2000, rng), circle(5000, rng)
    truth = np.arctan2(xt[:, 1], xt[:, 0])
    for learn in (False, True):
        t = time.time()
        gen = Generator(2, 1, hidden=(64, 64))
        p, _ = nj.spread.fit(gen, gen.init(jax.random.key(0)), xc, sigma=0.05,
                             key=jax.random.key(1), steps=4000, learning_rate=2e-3,
                             learn_spread=learn)
        s = np.asarray(gen.sample(p, jax.random.key(2), 5000))
        dist = np.mean(np.abs(np.linalg.norm(s, axis=1) - 1))
        k = ks(np.arctan2(s[:, 1], s[:, 0]), truth)
        what = "learned" if learn else "fixed"
        print(f"| generator 1-D latent, circle | {what} | 0.05 | distance {dist:.4f}, KS {k:.3f}"
              f" | {time.time() - t:.0f} |", flush=True)
        if learn:
            print(f"  learned L = {np.round(np.asarray(spread_factor(p)), 3).tolist()}")


if __name__ == "__main__":
    import sys

    t0 = time.time()
    rng = np.random.default_rng(0)
    if "--learned" in sys.argv:
        learned(rng)
        print(f"wall time {time.time() - t0:.0f} s")
        sys.exit(0)
    ica(rng)
    print(f"ICA wall time {time.time() - t0:.0f} s")
    t1 = time.time()
    manifold(rng)
    print(f"manifold wall time {time.time() - t1:.0f} s")
