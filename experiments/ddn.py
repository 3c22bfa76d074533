"""Conditional density p(y | x): the deconvolutional density network against conditional
NITS, a conditional neural spline flow and a mixture density network.

    python experiments/ddn.py            # the recorded run (about 8 CPU-minutes)
    python experiments/ddn.py --quick    # every code path, tiny budget

Three tasks whose true conditional density is known, and one real table:

- ``multimodal``: x ~ U(-1, 1); y | x a two-component Gaussian mixture whose weights
  (sigmoid(3x)), means (+-(1 + 0.5 x) + 0.5 x^2) and scales (0.15, 0.3) move with x.
- ``heteroscedastic``: x ~ U(-2, 2)^2; y | x ~ N(sin(2 x_1) + 0.5 x_2, (0.1 + 0.4|x_1|)^2).
- ``ring`` (2-D y): x ~ U(-1, 1); y = r (cos t, sin t), t ~ U(0, 2 pi), log r ~
  N(log(1 + 0.5 x), 0.1^2); p(y | x) = p_r(|y|) / (2 pi |y|).
- ``wine_alcohol``: UCI red wine, alcohol given the other 11 columns (quality included),
  1599 rows split 80/10/10; alcohol is recorded on a lattice (0.1 % vol mostly), so it is
  dequantised once with uniform noise of its lattice step and the scores are densities
  of the dequantised alcohol (% vol).

Every model is trained by ``nj.fit`` (maximum likelihood, the same steps, batch size and
learning rate; early stopping on the validation split, best params returned). Inputs
``x`` are standardised with training statistics for every model (the flows do not
standardise their context). Reported: test conditional log-likelihood (nats per row,
+- 1 s.e.) and, where p(y|x) is known, the KL gap ``E[log p(y|x) - log q(y|x)]`` over the
test rows (the expected KL(p || q), estimated; >= 0 in expectation), with its s.e.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np
from scipy import stats

import nitsjax as nj
from nitsjax.data.columns import lattice_steps

HEADING = "## Deconvolutional density network"


# ------------------------------------------------------------------------ tasks
def multimodal(rng, n):
    x = rng.uniform(-1, 1, (n, 1))
    y = _multimodal_draw(rng, x[:, 0])
    return x, y[:, None], _multimodal_logp(y[:, None], x)


def _multimodal_parts(x):
    w = 1 / (1 + np.exp(-3 * x))
    mu = np.stack([1 + 0.5 * x, -1 - 0.5 * x], -1) + 0.5 * x[:, None] ** 2
    return np.stack([w, 1 - w], -1), mu, np.array([0.15, 0.3])


def _multimodal_draw(rng, x):
    w, mu, s = _multimodal_parts(x)
    k = (rng.uniform(size=len(x)) > w[:, 0]).astype(int)
    return mu[np.arange(len(x)), k] + s[k] * rng.normal(size=len(x))


def _multimodal_logp(y, x):
    w, mu, s = _multimodal_parts(x[:, 0])
    comp = stats.norm.logpdf(y, mu, s) + np.log(w)
    return np.logaddexp(comp[:, 0], comp[:, 1])


def heteroscedastic(rng, n):
    x = rng.uniform(-2, 2, (n, 2))
    y = _het_mean(x) + _het_scale(x) * rng.normal(size=n)
    return x, y[:, None], _heteroscedastic_logp(y[:, None], x)


def _het_mean(x):
    return np.sin(2 * x[:, 0]) + 0.5 * x[:, 1]


def _het_scale(x):
    return 0.1 + 0.4 * np.abs(x[:, 0])


def _heteroscedastic_logp(y, x):
    return stats.norm.logpdf(y[:, 0], _het_mean(x), _het_scale(x))


def ring(rng, n):
    x = rng.uniform(-1, 1, (n, 1))
    t = rng.uniform(0, 2 * np.pi, n)
    r = np.exp(np.log(1 + 0.5 * x[:, 0]) + 0.1 * rng.normal(size=n))
    y = np.stack([r * np.cos(t), r * np.sin(t)], -1)
    return x, y, _ring_logp(y, x)


def _ring_logp(y, x):
    r = np.linalg.norm(y, axis=-1)
    log_pr = stats.norm.logpdf(np.log(r), np.log(1 + 0.5 * x[:, 0]), 0.1) - np.log(r)
    return log_pr - np.log(2 * np.pi * r)


TRUTH = {"multimodal": _multimodal_logp, "heteroscedastic": _heteroscedastic_logp,
         "ring": _ring_logp}
SYNTHETIC = {"multimodal": multimodal, "heteroscedastic": heteroscedastic, "ring": ring}


def wine_alcohol(root: pathlib.Path, rng):
    path = root / "winequality-red" / "winequality-red.csv"
    first = path.read_text().splitlines()[0]
    sep = ";" if ";" in first else ","
    skip = 0 if first.split(sep)[0].replace(".", "").strip().isdigit() else 1
    table = np.loadtxt(path, delimiter=sep, skiprows=skip)
    table = table[rng.permutation(len(table))]
    y, x = table[:, 10:11], np.delete(table, 10, axis=1)
    step = lattice_steps(y)[0]
    y = y + (rng.uniform(size=y.shape) - 0.5) * step  # dequantised once
    n = len(y)
    a, b = int(0.8 * n), int(0.9 * n)
    return (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:]), step


# ----------------------------------------------------------------------- models
def models(x_dim, y_dim, a):
    h = (a.hidden, a.hidden)
    deconv = (dict(bins=a.bins) if y_dim == 1 else  # 2-D: lighter deconvolutions (CPU budget)
              dict(bins=a.bins_2d, channels=(16, 8), kernel=3))
    return {
        "DDN": nj.models.ddn(x_dim, y_dim, hidden=h, margin=a.margin, **deconv),
        "NITS": nj.flows.nits(y_dim, context_dim=x_dim, hidden=a.hidden, blocks=2,
                              arch=(8, 8)),
        "NSF": nj.flows.nsf(y_dim, context_dim=x_dim, layers=2, hidden=h,
                            autoregressive=y_dim == 1),
        "MDN": nj.models.mdn(x_dim, y_dim, components=5, hidden=h,
                             covariance="diagonal" if y_dim == 1 else "full"),
    }


def train_and_score(model, split, a, seed):
    (xtr, ytr), (xva, yva), (xte, yte) = split
    key = jax.random.key(seed)
    params = model.init(key)
    start = time.perf_counter()
    params, hist = nj.fit(model, params, ytr, yva, context=xtr, val_context=xva,
                          key=jax.random.key(seed + 1), steps=a.steps, batch_size=a.batch,
                          learning_rate=a.lr, eval_every=a.eval_every, patience=a.patience,
                          dequantize=False, progress=False)
    seconds = time.perf_counter() - start
    lp = np.asarray(model.log_prob_batch(params, jax.numpy.asarray(yte),
                                         jax.numpy.asarray(xte)), np.float64)
    return params, lp, seconds, hist.best_step


def outside(lp) -> int:
    """Test rows the model gives density zero (a DDN's rows outside its box)."""
    return int(np.isneginf(lp).sum())


def mean_se(v):
    v = np.asarray(v, np.float64)
    return float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v)))


def standardise(split):
    (xtr, ytr), val, test = split
    mu, sd = xtr.mean(0), xtr.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    f = np.float32
    return [((x - mu) / sd).astype(f) for x, _ in (split[0], val, test)], \
        [y.astype(f) for _, y in (split[0], val, test)]


# ----------------------------------------------------------------------- figure
def figure(path, fitted, a):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [-0.8, 0.0, 0.8]
    fig, axes = plt.subplots(2, len(xs), figsize=(4 * len(xs), 6.5))
    # row 1: multimodal p(y|x) curves
    task = fitted["multimodal"]
    grid = np.linspace(-3, 3, 600)[:, None].astype(np.float32)
    for ax, x0 in zip(axes[0], xs):
        xr = np.full((len(grid), 1), x0)
        ax.plot(grid[:, 0], np.exp(_multimodal_logp(grid, xr)), "k", lw=2, label="truth")
        for name, (model, params) in task["models"].items():
            xm = ((xr - task["mu"]) / task["sd"]).astype(np.float32)
            lp = np.asarray(model.log_prob_batch(params, jax.numpy.asarray(grid),
                                                 jax.numpy.asarray(xm)))
            ax.plot(grid[:, 0], np.exp(lp), lw=1, label=name)
        ax.set_title(f"multimodal: p(y | x = {x0})")
        ax.set_xlabel("y")
    axes[0, 0].legend(fontsize=8)
    # row 2: ring, DDN's p(y|x) next to the truth's contour
    task = fitted["ring"]
    model, params = task["models"]["DDN"]
    g = np.linspace(-2, 2, 160)
    yy = np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2).astype(np.float32)
    for ax, x0 in zip(axes[1], xs):
        xr = np.full((len(yy), 1), x0)
        xm = ((xr - task["mu"]) / task["sd"]).astype(np.float32)
        lp = np.asarray(model.log_prob_batch(params, jax.numpy.asarray(yy),
                                             jax.numpy.asarray(xm)))
        ax.imshow(np.exp(lp).reshape(len(g), len(g)), origin="lower", extent=(-2, 2, -2, 2),
                  cmap="viridis")
        truth = np.exp(_ring_logp(yy, xr)).reshape(len(g), len(g))
        ax.contour(g, g, truth, levels=3, colors="w", linewidths=0.8)
        ax.set_title(f"ring: DDN p(y | x = {x0}) (white: truth)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="/work/shared/data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=3000, help="training rows per synthetic task")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--bins", type=int, default=64)
    p.add_argument("--bins-2d", type=int, default=32)
    p.add_argument("--margin", type=float, default=0.25,
                   help="DDN: fraction of the training targets' range added on each side")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="experiments/results/beyond_density.md")
    a = p.parse_args()
    if a.quick:
        a.n, a.steps, a.eval_every, a.hidden = 300, 20, 10, 16
        a.out = None
    rng = np.random.default_rng(a.seed)
    started = time.perf_counter()
    cpu = time.process_time()
    rows, fitted = [], {}
    for t, (task, draw) in enumerate(SYNTHETIC.items()):
        x, y, lp_true = draw(rng, int(a.n * 1.25) + 2000)
        n_tr, n_va = a.n, a.n // 4
        idx = [slice(0, n_tr), slice(n_tr, n_tr + n_va), slice(n_tr + n_va, None)]
        mu, sd = x[idx[0]].mean(0), x[idx[0]].std(0)
        xs, ys = standardise([(x[i], y[i]) for i in idx])
        split = list(zip(xs, ys))
        truth = lp_true[idx[2]]
        fitted[task] = {"models": {}, "mu": mu, "sd": sd}
        for m, (name, model) in enumerate(models(x.shape[1], y.shape[1], a).items()):
            params, lp, secs, best = train_and_score(model, split, a, 100 * t + m)
            fitted[task]["models"][name] = (model, params)
            ll, ll_se = mean_se(lp)
            gap, gap_se = mean_se(truth - lp)
            rows.append((task, name, ll, ll_se, gap, gap_se, secs, best, outside(lp)))
            print(f"{task:16s} {name:5s} test LL {ll:8.4f} +- {ll_se:.4f}  KL gap "
                  f"{gap:7.4f} +- {gap_se:.4f}  ({secs:.0f} s, best step {best})", flush=True)
        t_ll, t_se = mean_se(truth)
        rows.append((task, "truth", t_ll, t_se, 0.0, 0.0, 0.0, None, 0))
    wine = wine_alcohol(pathlib.Path(a.root), rng)
    step = wine[3]
    xs, ys = standardise(wine[:3])
    split = list(zip(xs, ys))
    for m, (name, model) in enumerate(models(xs[0].shape[1], 1, a).items()):
        params, lp, secs, best = train_and_score(model, split, a, 1000 + m)
        ll, ll_se = mean_se(lp)
        rows.append(("wine_alcohol", name, ll, ll_se, None, None, secs, best, outside(lp)))
        print(f"{'wine_alcohol':16s} {name:5s} test LL {ll:8.4f} +- {ll_se:.4f}  ({secs:.0f} "
              f"s, best step {best})", flush=True)
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu
    print(f"total {total:.0f} s wall, {cpu:.0f} s CPU")
    if a.out is None:
        return
    out = pathlib.Path(a.out)
    fig = out.parent / "ddn_conditionals.png"
    figure(fig, fitted, a)
    write(out, rows, a, total, cpu, step, fig.name)


def write(out: pathlib.Path, rows, a, total, cpu, step, fig):
    lines = [
        HEADING, "",
        f"Command: `python experiments/ddn.py` (JAX {jax.__version__}, float32; {total:.0f} s "
        f"wall, {cpu:.0f} s CPU in all, on 2 CPU cores shared with other jobs). Each model: "
        "`nj.fit` maximum likelihood, "
        f"{a.steps} steps at most, batch {a.batch}, learning rate {a.lr}, validation every "
        f"{a.eval_every} steps, patience {a.patience}, best params returned; inputs "
        "standardised with training statistics. Synthetic tasks: "
        f"{a.n} training, {a.n // 4} validation, 2000 test rows; wine: 1279/160/160 rows.",
        "",
        f"Models: DDN `ddn(x_dim, y_dim, bins={a.bins}, hidden=({a.hidden}, {a.hidden}), "
        f"margin={a.margin})` (default channels (32, 16), kernel 5; 2-D y: bins={a.bins_2d}, "
        "channels=(16, 8), kernel=3); NITS "
        f"`nits(y_dim, context_dim=x_dim, hidden={a.hidden}, blocks=2, arch=(8, 8))`; NSF "
        f"`nsf(y_dim, context_dim=x_dim, layers=2, hidden=({a.hidden}, {a.hidden}))` "
        f"(autoregressive for 1-D y); MDN `mdn(x_dim, y_dim, components=5, "
        f"hidden=({a.hidden}, {a.hidden}))` (full covariances for 2-D y).", "",
        "Test conditional log-likelihood (nats per row, +- 1 s.e.) and the KL gap "
        "E[log p(y|x) - log q(y|x)] to the true conditional (+- 1 s.e.; truth row: the true "
        "density's own test log-likelihood):", "",
        "| task | model | test log p(y\\|x) | KL gap | rows at density 0 | fit (s) | best step |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, name, ll, ll_se, gap, gap_se, secs, best, zero in rows:
        g = "" if gap is None else ("0" if name == "truth" else f"{gap:.4f} ± {gap_se:.4f}")
        s = "" if name == "truth" else f"{secs:.0f}"
        lines.append(f"| {task} | {name} | {ll:.4f} ± {ll_se:.4f} | {g} | {zero} | {s} | "
                     f"{'' if best is None else best} |")
    lines += [
        "", f"wine_alcohol: alcohol (% vol) given the other 11 columns; the alcohol lattice "
        f"step {step:g} was dequantised once with uniform noise, so the scores are densities "
        "of the dequantised alcohol.", "",
        f"![p(y|x) for three x: multimodal task, every model against the truth; ring task, "
        f"DDN against the truth's contours]({fig})", "",
    ]
    text = out.read_text() if out.exists() else ""
    if HEADING in text:  # replace this section, keep the others
        head, rest = text.split(HEADING, 1)
        nxt = rest.find("\n## ")
        text = head + "\n".join(lines) + ("" if nxt < 0 else rest[nxt:])
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
