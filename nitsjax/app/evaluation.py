"""Log-likelihoods in fixed-size batches (one compilation per flow), their mean +- SE,
and samples in batches."""

from __future__ import annotations

import functools

import jax
import numpy as np

from nitsjax import results


def log_likelihoods(flow, params, x, batch_size: int = 4096) -> np.ndarray:
    """Per-row log-likelihoods of ``x`` (n, d), in batches of exactly ``batch_size`` rows
    (the last one padded), so every split and the density grid share one compilation."""
    x = np.asarray(x, np.float32)
    n = len(x)
    bs = max(1, int(batch_size))
    out = []
    for i in range(0, n, bs):
        chunk = x[i : i + bs]
        m = len(chunk)
        if m < bs:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], bs - m, axis=0)])
        out.append(np.asarray(_log_prob_fn(flow)(params, chunk))[:m])
    return np.concatenate(out).astype(np.float64)


@functools.lru_cache(maxsize=32)
def _log_prob_fn(flow):
    """``flow.log_prob_batch`` jitted once per flow; unlike ``flow.log_prob`` it gives
    ``-inf`` (not an error) outside a bounded flow's support, as a density grid needs."""
    return jax.jit(flow.log_prob_batch)


def summarize(lp) -> dict:
    """``{"mean", "stderr", "n"}`` of per-example log-likelihoods (``results.summarize``)."""
    s = results.summarize(lp)
    return {"mean": s.mean, "stderr": s.stderr, "n": s.n}


def format_ll(s: dict) -> str:
    return f"{s['mean']:.4f} +- {2 * s['stderr']:.4f} (mean +- 2 SE, n={s['n']})"


def sample_in_batches(flow, params, key, n: int, batch: int = 10000) -> np.ndarray:
    """``n`` samples drawn in equal batches (one compilation), as a numpy array."""
    batch = max(1, min(int(batch), int(n)))
    keys = jax.random.split(key, -(-int(n) // batch))
    parts = [np.asarray(flow.sample(params, k, batch)) for k in keys]
    return np.concatenate(parts)[:n]
