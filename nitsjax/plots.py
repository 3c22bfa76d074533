"""Figures of a density model: 2-D density heatmaps, samples against data, image grids,
training curves.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot, so no global
backend state: safe in scripts, threads and notebooks, where a returned Figure displays
inline) and, given ``path``, saves it as PNG. Arrays are numpy or JAX, in the data's
own units.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
from matplotlib.figure import Figure

PathLike = Union[str, Path]


def _save(fig: Figure, path: Optional[PathLike]) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def _as_2d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"{name}: expected an array of shape (n, d) with n >= 1, got {a.shape}")
    return a


def _limits(data: np.ndarray, pad: float = 0.1, q: float = 0.005) -> np.ndarray:
    """Per-column (low, high) plotting limits from robust quantiles of ``data``, padded."""
    lo = np.quantile(data, q, axis=0)
    hi = np.quantile(data, 1 - q, axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    return np.stack([lo - pad * width, hi + pad * width], axis=1)


def _subsample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    if len(x) <= n:
        return x
    idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
    return x[idx]


# ----------------------------------------------------------------------- 2-D density
def density_grid(
    log_prob: Callable[[np.ndarray], np.ndarray],
    limits: np.ndarray,
    grid: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``log_prob`` ((n, 2) -> (n,)) on a ``grid`` x ``grid`` lattice over
    ``limits`` ((2, 2): rows are dims, columns low/high). Returns ``(xs, ys, density)``
    with ``density[i, j] = p(xs[j], ys[i])``."""
    xs = np.linspace(limits[0, 0], limits[0, 1], grid)
    ys = np.linspace(limits[1, 0], limits[1, 1], grid)
    xx, yy = np.meshgrid(xs, ys)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    lp = np.asarray(log_prob(pts), dtype=np.float64).reshape(grid, grid)
    dens = np.exp(np.where(np.isfinite(lp), lp, -np.inf))
    return xs, ys, dens


def plot_density_2d(
    log_prob: Callable[[np.ndarray], np.ndarray],
    data,
    path: Optional[PathLike] = None,
    *,
    grid: int = 200,
    limits=None,
    title: str = "model density",
) -> Figure:
    """Data histogram (left) next to the model density heatmap (right), for d == 2.

    ``log_prob`` maps an (n, 2) float32 array to (n,) log-densities in data units.
    """
    data = _as_2d(data, "data")
    if data.shape[1] != 2:
        raise ValueError(f"data: plot_density_2d needs 2-D data, got dim {data.shape[1]}")
    lim = _limits(data) if limits is None else np.asarray(limits, np.float64)
    xs, ys, dens = density_grid(log_prob, lim, grid)
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    ax0.hist2d(data[:, 0], data[:, 1], bins=grid // 2, range=lim.tolist(), cmap="viridis")
    ax0.set_title(f"data (n={len(data)})")
    ax1.imshow(
        dens,
        origin="lower",
        extent=(lim[0, 0], lim[0, 1], lim[1, 0], lim[1, 1]),
        aspect="auto",
        cmap="viridis",
    )
    mass = float(dens.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]))
    ax1.set_title(f"{title} (mass in view {mass:.3f})")
    for ax in (ax0, ax1):
        ax.set_xlim(*lim[0])
        ax.set_ylim(*lim[1])
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
    return _save(fig, path)


# ------------------------------------------------------------------ samples vs data
def plot_samples(
    samples,
    data=None,
    path: Optional[PathLike] = None,
    *,
    max_dims: int = 4,
    max_points: int = 2000,
    title: str = "samples",
) -> Figure:
    """Samples against data: a scatter for d == 2 (side by side), for d > 2 pairwise
    scatters and marginal histograms of the first ``max_dims`` dimensions (data in grey,
    samples in colour), for d == 1 overlaid histograms."""
    s = _as_2d(samples, "samples")
    d = s.shape[1]
    x = None if data is None else _as_2d(data, "data")
    if x is not None and x.shape[1] != d:
        raise ValueError(f"data: expected dim {d} like the samples, got {x.shape[1]}")
    s = _subsample(s, max_points, 1)
    x = None if x is None else _subsample(x, max_points, 2)
    ref = s if x is None else x
    lim = _limits(ref)
    if d == 2:
        panels = 1 if x is None else 2
        fig = Figure(figsize=(4.3 * panels, 4.2), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, panels))
        pairs = [(axes[-1], s, title, "C1")]
        if x is not None:
            pairs.insert(0, (axes[0], x, "data", "C0"))
        for ax, pts, name, c in pairs:
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, c=c)
            ax.set_title(f"{name} (n={len(pts)})")
            ax.set_xlim(*lim[0])
            ax.set_ylim(*lim[1])
        return _save(fig, path)
    k = min(d, max(1, max_dims))
    m = len(s) if x is None else min(len(s), len(x))  # as many points of each in scatters
    fig = Figure(figsize=(2.4 * k + 0.5, 2.4 * k + 0.5), layout="constrained")
    axes = np.array(fig.subplots(k, k, squeeze=False))
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                bins = np.linspace(lim[i, 0], lim[i, 1], 40)
                if x is not None:
                    ax.hist(x[:, i], bins=bins, density=True, color="0.6", label="data")
                ax.hist(s[:, i], bins=bins, density=True, histtype="step", color="C1", lw=1.5,
                        label=title)
            else:
                if x is not None:
                    ax.scatter(x[:m, j], x[:m, i], s=1, alpha=0.4, c="0.4")
                ax.scatter(s[:m, j], s[:m, i], s=1, alpha=0.4, c="C1")
                ax.set_xlim(*lim[j])
                ax.set_ylim(*lim[i])
            if i == k - 1:
                ax.set_xlabel(f"x{j}")
            if j == 0:
                ax.set_ylabel(f"x{i}")
            ax.tick_params(labelsize=6)
    if k > 1 and x is not None:
        axes[0, 0].legend(fontsize=6)
    shown = f"first {k} of {d} dims" if k < d else f"{d} dims"
    fig.suptitle(f"{title} (colour) vs data (grey), {shown}")
    return _save(fig, path)


# ---------------------------------------------------------------------- image grids
def image_grid(images, image_shape: Sequence[int], rows: int = 8, cols: int = 8, pad: int = 1):
    """Tile the first ``rows * cols`` flat images ((n, prod(image_shape))) into one array.

    ``image_shape`` is ``(h, w)`` or ``(h, w, c)``. Missing tiles are left blank (NaN)."""
    shape = tuple(int(v) for v in image_shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"image_shape: expected (h, w) or (h, w, c), got {shape}")
    a = _as_2d(images, "images")
    if a.shape[1] != math.prod(shape):
        raise ValueError(
            f"images: rows have {a.shape[1]} values, image_shape {shape} needs {math.prod(shape)}"
        )
    h, w = shape[:2]
    c = shape[2] if len(shape) == 3 else 1
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.nan)
    for t, img in enumerate(a[: rows * cols]):
        r, q = divmod(t, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y : y + h, x : x + w] = img.reshape(h, w, c)
    return out[..., 0] if c == 1 else out


def plot_image_samples(
    samples,
    image_shape: Sequence[int],
    data=None,
    path: Optional[PathLike] = None,
    *,
    rows: int = 8,
    cols: int = 8,
    title: str = "samples",
) -> Figure:
    """A ``rows`` x ``cols`` grid of sampled images next to a grid of real ones.

    Colours share the data's range (1st-99th percentile), so both grids are comparable."""
    grids = [] if data is None else [("data", data)]
    grids.append((title, samples))
    ref = np.asarray(samples if data is None else data, np.float64)
    vmin, vmax = np.nanpercentile(ref, 1), np.nanpercentile(ref, 99)
    if not vmax > vmin:
        vmin, vmax = float(np.nanmin(ref)), float(np.nanmax(ref)) + 1e-12
    fig = Figure(figsize=(4.2 * len(grids), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(grids)))
    for ax, (name, imgs) in zip(axes, grids, strict=True):
        g = image_grid(imgs, image_shape, rows, cols)
        if g.ndim == 3:
            g = np.clip((g - vmin) / (vmax - vmin), 0, 1)
            ax.imshow(np.nan_to_num(g, nan=1.0), interpolation="nearest")
        else:
            ax.imshow(g, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    return _save(fig, path)


# ------------------------------------------------------------------- training curves
def plot_history(
    history: Union[Sequence[Mapping], Mapping[str, Sequence]],
    path: Optional[PathLike] = None,
    *,
    title: str = "training",
) -> Figure:
    """Training and validation NLL against optimisation steps (the training objective's
    ``train_loss``/``val_loss`` instead when the records have them: ``fit(loss=...)``).

    ``history`` is a list of records (``{"step", "train_nll", "val_nll", ...}``, as in
    ``history.jsonl``) or a dict of columns."""
    if isinstance(history, Mapping):
        cols = dict(history)
    else:
        records = list(getattr(history, "records", history))
        keys = sorted({k for r in records for k in r})
        cols = {k: [r.get(k) for r in records] for k in keys}
    if "step" not in cols:
        raise ValueError(f"history: needs a 'step' column, got columns {sorted(cols)}")
    steps = np.asarray(cols["step"], np.float64)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    drawn = 0
    losses = any(v is not None for v in cols.get("train_loss", ()))  # another objective
    shown = (("train_loss", "train loss"), ("val_loss", "validation loss")) if losses else (
        ("train_nll", "train NLL"), ("val_nll", "validation NLL"))
    for key, label in shown:
        if key not in cols:
            continue
        v = np.array([np.nan if a is None else float(a) for a in cols[key]])
        if np.isfinite(v).any():
            ax.plot(steps, v, marker="o", ms=2, label=label)
            drawn += 1
    best = _best_step(steps, cols, "val_loss" if losses else "val_nll")
    if best is not None:
        ax.axvline(best, color="0.4", ls="--", lw=1,
                   label=f"early-stopping point (best validation, step {best:g})")
        drawn += 1
    ax.set_xlabel("step")
    ax.set_ylabel("training objective" if losses else "negative log-likelihood (nats)")
    ax.set_title(title)
    if drawn:
        ax.legend()
    return _save(fig, path)


def _best_step(steps, cols, key):
    """The step of the lowest finite validation value in ``cols[key]`` (None: none)."""
    v = np.array([np.nan if a is None else float(a) for a in cols.get(key, ())])
    if not np.isfinite(v).any():
        return None
    return float(steps[int(np.nanargmin(np.where(np.isfinite(v), v, np.nan)))])
