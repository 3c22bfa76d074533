"""Log-likelihoods in fixed-size batches (one compilation per flow), their mean +- SE,
and samples in batches."""

from __future__ import annotations

import functools

import jax
import numpy as np

from nitsjax import flow as flow_module
from nitsjax import results


def log_likelihoods(flow, params, x, batch_size: int = 4096, context=None) -> np.ndarray:
    """Per-row log-likelihoods of ``x`` (n, d) (given ``context`` (n, context_dim) for a
    conditional model), in batches of exactly ``batch_size`` rows (the last one padded),
    so every split and the density grid share one compilation."""
    x = np.asarray(x, np.float32)
    c = None if context is None else np.asarray(context, np.float32)
    n = len(x)
    bs = max(1, int(batch_size))
    out = []
    for i in range(0, n, bs):
        chunk = x[i : i + bs]
        cc = None if c is None else c[i : i + bs]
        m = len(chunk)
        if m < bs:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], bs - m, axis=0)])
            cc = None if cc is None else np.concatenate([cc, np.repeat(cc[:1], bs - m, axis=0)])
        out.append(np.asarray(_log_prob_fn(flow)(params, chunk, cc))[:m])
    return np.concatenate(out).astype(np.float64)


def discrete_log_likelihoods(flow, params, x, dequantized, batch_size: int = 4096,
                             context=None):
    """Per-row log-likelihoods as ``fit`` reports them: when ``fit`` dequantised lattice
    columns (``history.dequantized = {column: step}``), the bound on the discrete data's
    log-probability ``log p(x + (u - 1/2) * step) + sum_j log step_j`` with ``fit``'s fixed noise
    draw (``nitsjax.train.dequantize``); the plain log-density otherwise. ``context``:
    the rows' contexts for a conditional model."""
    if not dequantized:
        return log_likelihoods(flow, params, x, batch_size, context)
    from nitsjax.train import dequantize as dq

    x = np.asarray(x)
    steps = np.zeros(x.shape[1])
    for column, step in dequantized.items():
        steps[int(column)] = float(step)
    lp = log_likelihoods(flow, params, dq.with_fixed_noise(x, steps), batch_size, context)
    return lp + dq.log_volume(steps)


def dequantized_log_likelihoods(flow, params, x, batch_size: int = 4096) -> np.ndarray:
    """Per-row log-densities of an image model (``ImageNITSFlow``) at the uniformly
    dequantised ``x + u - 1/2`` of integer images ``x`` (one fixed noise draw per row
    batch), in batches of exactly ``batch_size`` rows."""
    from nitsjax.flows.image_nits import EVAL_NOISE_SEED, _dequantized_compiled

    x = np.asarray(x, np.float32)
    n, bs = len(x), max(1, int(batch_size))
    out = []
    for k, i in enumerate(range(0, n, bs)):
        chunk = x[i : i + bs]
        m = len(chunk)
        if m < bs:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], bs - m, axis=0)])
        key = jax.random.fold_in(jax.random.key(EVAL_NOISE_SEED), k)
        out.append(np.asarray(_dequantized_compiled(flow, params, chunk, key))[:m])
    return np.concatenate(out).astype(np.float64)


def _log_prob_fn(flow):
    """``flow.log_prob_batch``, compiled once per (equal) flow or model by ``nitsjax.flow``;
    unlike ``flow.log_prob`` it gives ``-inf`` (not an error) outside a bounded flow's
    (or a ``ddn``'s) support, as a density grid needs."""
    return functools.partial(flow_module._log_prob_compiled, flow)


def summarize(lp) -> dict:
    """``{"mean", "stderr", "n"}`` of per-example log-likelihoods (``results.summarize``).

    Rows at density zero (``-inf``: outside a bounded model's support, e.g. a ``ddn``'s
    bin range) make the mean ``-inf``; then ``zero_density`` counts them and
    ``mean_inside`` / ``stderr_inside`` summarise the other rows. NaN still raises."""
    lp = np.asarray(lp, np.float64).ravel()
    zero = np.isneginf(lp)
    if zero.any() and not zero.all():
        s = results.summarize(lp[~zero])
        return {"mean": -np.inf, "stderr": np.nan, "n": int(lp.size),
                "zero_density": int(zero.sum()), "mean_inside": s.mean, "stderr_inside": s.stderr}
    s = results.summarize(lp)
    return {"mean": s.mean, "stderr": s.stderr, "n": s.n}


def zero_density_note(split: str, s: dict) -> dict:
    """Metrics and a warning for rows at density zero (``summarize``'s ``zero_density``);
    ``{}`` when there are none."""
    if "zero_density" not in s:
        return {}
    import logging

    logging.getLogger("nitsjax").warning(
        f"{split}: {s['zero_density']} of {s['n']} rows have density zero (outside the model's "
        f"support; for a ddn: wider model.y_bounds or a larger model.margin), so the "
        f"log-likelihood is -inf; over the other rows it is {s['mean_inside']:.4f}"
    )
    return {f"{split}_rows_at_zero_density": s["zero_density"],
            f"{split}_log_likelihood_inside": s["mean_inside"]}


def format_ll(s: dict) -> str:
    return f"{s['mean']:.4f} +- {2 * s['stderr']:.4f} (mean +- 2 SE, n={s['n']})"


def sample_in_batches(flow, params, key, n: int, batch: int = 10000) -> np.ndarray:
    """``n`` samples drawn in equal batches (one compilation), as a numpy array."""
    batch = max(1, min(int(batch), int(n)))
    keys = jax.random.split(key, -(-int(n) // batch))
    parts = [np.asarray(flow.sample(params, k, batch)) for k in keys]
    return np.concatenate(parts)[:n]


#: rows of a split (and model samples) the energy distance is computed on (O(n^2) pairs)
ENERGY_ROWS = 2000


def has_density(flow) -> bool:
    """Whether the model has a density (``log_prob_batch``); a generator has none."""
    return callable(getattr(flow, "log_prob_batch", None))


def energy_distances(flow, params, splits: dict, key, rows: int = ENERGY_ROWS) -> dict:
    """``{<split>_energy_distance: ..., n_<split>: ...}``: the unbiased energy distance
    (beta = 1, ``nitsjax.losses.energy_distance``) between the first ``rows`` rows of each
    split and as many model samples, in the units the model was trained in."""
    from nitsjax.losses import energy_distance

    out = {}
    for (name, x), k in zip(splits.items(), jax.random.split(key, len(splits))):
        x = np.asarray(x[:rows], np.float32)
        y = sample_in_batches(flow, params, k, len(x))
        out[f"{name}_energy_distance"] = float(energy_distance(x, y.astype(np.float32)))
        out[f"n_{name}"] = len(x)
    return out
