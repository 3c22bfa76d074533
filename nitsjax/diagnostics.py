"""Memorisation and generalisation diagnostics of a trained density model.

Yang & E, "Generalization, memorization and the early stopping of distribution-learning
models" (arXiv 2212.11481; with "Generalization and memorization: the bias potential
model", arXiv 2011.14269): a density model trained long enough converges to the empirical
distribution of its training sample (memorises it); it generalises because training is
stopped early. ``memorisation`` measures where a model stands:

* the generalisation gap: mean log-likelihood of the training rows minus that of held-out
  rows (nats per row; grows as the model memorises);
* the nearest-neighbour distance ratio: for each model sample, the distance to its nearest
  training row over the distance to its nearest held-out row, with the training rows
  subsampled to as many as the held-out ones (so that both sets are equally dense); the
  median is about 1 for a model that generalises and falls below 1 when samples crowd
  around training rows;
* the near-copy fraction: the fraction of samples whose nearest training row is closer
  than ``copy_ratio`` (default 1/3) times the second-nearest one, ``d1 < copy_ratio * d2``
  (the ratio test of the memorisation literature, e.g. Yoon et al. 2023); reported with
  its chance level, the same fraction for the held-out rows themselves (they are not
  copies of anything: a model that generalises has about this fraction).

Distances are Euclidean after standardising every column by the training rows' mean and
standard deviation.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.validation import as_float_array, check_key, check_positive_int

#: rows per compiled log-likelihood call
CHUNK = 1024


@functools.partial(jax.jit, static_argnums=0)
def _log_prob(flow, params, x):
    return flow.log_prob_batch(params, x)


def _mean_log_prob(flow, params, x) -> float:
    total = 0.0
    for i in range(0, x.shape[0], CHUNK):
        total += float(jnp.sum(_log_prob(flow, params, jnp.asarray(x[i:i + CHUNK]))))
    return total / x.shape[0]


def _nearest(points, ref, k: int) -> np.ndarray:
    """Distances ``(len(points), k)`` from each point to its ``k`` nearest rows of ``ref``."""
    out = np.empty((points.shape[0], k))
    ref_sq = np.sum(ref**2, 1)
    for i in range(0, points.shape[0], CHUNK):
        p = points[i:i + CHUNK]
        d2 = np.sum(p**2, 1)[:, None] - 2 * p @ ref.T + ref_sq[None]
        out[i:i + CHUNK] = np.sqrt(np.maximum(np.sort(d2, 1)[:, :k], 0.0))
    return out


def _copy_fraction(points, ref, copy_ratio) -> float:
    d = _nearest(points, ref, 2)
    return float(np.mean(d[:, 0] < copy_ratio * d[:, 1]))


def memorisation(flow, params, train, test, *, samples: int = 1000, key=None,
                 copy_ratio: float = 1 / 3) -> dict:
    """Memorisation diagnostics of ``flow`` with ``params`` (module docstring).

    Args:
      flow: a model with ``log_prob_batch(params, x)`` and ``sample(params, key, n)`` (a
        ``nitsjax.Flow``).
      params: its params.
      train: the training rows ``(n, dim)``, at least 2.
      test: held-out rows ``(m, dim)``, at least 1.
      samples: model samples drawn for the distance diagnostics.
      key: PRNG key of the samples and of the training subsample (None: a fixed key).
      copy_ratio: a sample is a near-copy of a training row when its nearest training row
        is closer than ``copy_ratio`` times its second-nearest, in (0, 1].

    Returns:
      a dict of floats: ``train_log_likelihood``, ``test_log_likelihood``,
      ``generalisation_gap`` (train minus test, nats per row), ``nn_ratio`` (median over
      samples of nearest-training / nearest-held-out distance), ``copy_fraction`` (of the
      samples), ``test_copy_fraction`` (of the held-out rows: the chance level).
    """
    dim = flow.dim
    train = np.asarray(as_float_array(train, "train"), np.float64)
    test = np.asarray(as_float_array(test, "test"), np.float64)
    for name, a, low in (("train", train, 2), ("test", test, 1)):
        if a.ndim != 2 or a.shape[1] != dim or a.shape[0] < low:
            raise ValueError(f"{name}: expected rows of shape (n, {dim}) with n >= {low}, "
                             f"got {a.shape}")
    samples = check_positive_int(samples, "samples")
    if not (isinstance(copy_ratio, (int, float)) and 0 < copy_ratio <= 1):
        raise ValueError(f"copy_ratio: expected a number in (0, 1], got {copy_ratio!r}")
    if key is None:
        key = jax.random.key(0)
    check_key(key, "key")
    k_sample, k_sub = jax.random.split(key)

    dtype = jnp.result_type(float)
    train_ll = _mean_log_prob(flow, params, train.astype(dtype))
    test_ll = _mean_log_prob(flow, params, test.astype(dtype))
    x = np.asarray(flow.sample(params, k_sample, samples), np.float64)

    mean, sd = train.mean(0), train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    tr, te, x = (train - mean) / sd, (test - mean) / sd, (x - mean) / sd
    m = min(tr.shape[0], te.shape[0])
    sub = np.asarray(jax.random.permutation(k_sub, tr.shape[0]))[:m]
    d_train = _nearest(x, tr[sub], 1)[:, 0]
    d_test = _nearest(x, te[:m], 1)[:, 0]
    ratio = d_train / np.maximum(d_test, 1e-300)
    finite = np.all(np.isfinite(x), 1)
    return {
        "train_log_likelihood": train_ll,
        "test_log_likelihood": test_ll,
        "generalisation_gap": train_ll - test_ll,
        "nn_ratio": float(np.median(ratio[finite])) if finite.any() else math.nan,
        "copy_fraction": _copy_fraction(x[finite], tr, copy_ratio) if finite.any()
        else math.nan,
        "test_copy_fraction": _copy_fraction(te, tr, copy_ratio),
    }


#: the ``memorisation`` values ``fit(..., diagnostics_every=)`` adds to history records
RECORD_KEYS = ("generalisation_gap", "nn_ratio", "copy_fraction")

__all__ = ["RECORD_KEYS", "memorisation"]
