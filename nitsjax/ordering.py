"""Choosing the order of the coordinates for a triangular (autoregressive) flow.

A triangular flow (Knothe-Rosenblatt map) factorises ``p(x) = prod_i p(x_pi(i) |
x_pi(<i))``; every order gives the same density in principle, but not the same
estimation error: Irons, Scetbon, Pal, Harchaoui, "Triangular Flows for Generative
Modeling: Statistical Consistency, Smoothness Classes, and Fast Rates", AISTATS 2022
(arXiv 2112.15595) bound the error of the KL (maximum-likelihood) estimator of the KR map
through the anisotropic smoothness of its components, which depends on the order, and
conclude that the order matters (their abstract: the results "shed light on optimal
coordinate ordering"). Only the abstract was available while this was written; it
gives no ready procedure, so the methods here are ours:

- ``"greedy"`` (default): builds the order one coordinate at a time. A cheap conditional
  model scores a candidate ``j`` given the coordinates ``S`` already placed: a Gaussian
  whose mean is a ridge regression of ``x_j`` on ``[1, x_S, random Fourier features of
  x_S]`` (Rahimi & Recht, NeurIPS 2007; a kernel regression in a few dozen features),
  fitted on ``x_train`` and scored by its log-likelihood on ``x_val``. The candidate
  placed next maximises its own score plus those of every remaining coordinate given
  ``S`` and it (a one-step look-ahead, so a coordinate that makes the others easy to
  predict goes first). A conditional that is a smooth, one-valued function of the earlier
  coordinates plus noise scores high, a multi-modal one (a non-monotone relation read
  backwards) scores low: the proxy for "easy to estimate" that the paper's smoothness
  argument suggests. Cost: about ``d^3 / 3`` small ridge solves (rows capped at
  ``max_rows``).
- ``"variance"``: coordinates by decreasing variance (in the data's units): a simple
  baseline.

``flow = nj.flows.maf(d, order=nj.ordering.suggest(x_train, x_val))``: the flow sees
``x[:, order]``; its densities and samples stay in your coordinates.
"""

from __future__ import annotations

import numpy as np

from nitsjax.validation import as_float_array, check_finite, check_positive_int

METHODS = ("greedy", "variance")
RIDGE = 1e-3  # ridge penalty per training row, on standardised features


def _check(x, name, dim=None):
    x = np.asarray(as_float_array(x, name), np.float64)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = "(n, d)" if dim is None else f"(n, {dim}) like x_train"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    if x.shape[0] < 10:
        raise ValueError(f"{name}: expected at least 10 rows, got {x.shape[0]}")
    check_finite(x, name)
    return x


class _Scorer:
    """Validation log-likelihood (nats per row) of ``x_j | x_S`` under the cheap model,
    cached by ``(j, S)``."""

    def __init__(self, train, val, features, seed):
        mean, std = train.mean(0), train.std(0)
        std = np.where(std > 0, std, 1.0)
        self.train, self.val = (train - mean) / std, (val - mean) / std
        self.features, self.seed = features, seed
        self.cache: dict = {}

    def _phi(self, x, cols):
        s = len(cols)
        rng = np.random.default_rng([self.seed, s])
        scales = np.array([0.5, 1.0, 2.0])[np.arange(self.features) % 3] * np.sqrt(s)
        w = rng.standard_normal((s, self.features)) / scales
        b = rng.uniform(0, 2 * np.pi, self.features)
        xs = x[:, cols]
        rff = np.sqrt(2.0 / self.features) * np.cos(xs @ w + b)
        return np.concatenate([np.ones((x.shape[0], 1)), xs, rff], axis=1)

    def __call__(self, j, given) -> float:
        key = (j, frozenset(given))
        if key not in self.cache:
            self.cache[key] = self._score(j, sorted(given))
        return self.cache[key]

    def _score(self, j, cols):
        yt, yv = self.train[:, j], self.val[:, j]
        if cols:
            ft, fv = self._phi(self.train, cols), self._phi(self.val, cols)
            gram = ft.T @ ft + RIDGE * len(yt) * np.eye(ft.shape[1])
            coef = np.linalg.solve(gram, ft.T @ yt)
            mt, mv = ft @ coef, fv @ coef
        else:
            mt = np.full_like(yt, yt.mean())
            mv = np.full_like(yv, yt.mean())
        var = max(float(np.mean((yt - mt) ** 2)), 1e-6)
        return float(np.mean(-0.5 * np.log(2 * np.pi * var) - 0.5 * (yv - mv) ** 2 / var))


def suggest(x_train, x_val=None, *, method: str = "greedy", features: int = 48,
            max_rows: int = 5000, seed: int = 0) -> np.ndarray:
    """A permutation of the coordinates for ``order=`` of a triangular flow.

    Args:
      x_train: ``(n, d)`` training rows (at least 10).
      x_val: ``(m, d)`` rows the greedy scores are computed on; None: the last 20% of a
        fixed shuffle of ``x_train`` (the model is then fitted on the other 80%).
      method: ``"greedy"`` or ``"variance"`` (module docstring).
      features: random Fourier features of the greedy conditional model.
      max_rows: rows used for fitting and scoring (a fixed random subset beyond it).
      seed: seed of the shuffle, the subsets and the random features.

    Returns:
      ``(d,)`` int64 array ``order``: ``order[0]`` is modelled first (``x[:, order]``).
    """
    x_train = _check(x_train, "x_train")
    d = x_train.shape[1]
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    check_positive_int(features, "features")
    check_positive_int(max_rows, "max_rows", minimum=10)
    if method == "variance":
        return np.argsort(-x_train.var(0), kind="stable").astype(np.int64)
    rng = np.random.default_rng(seed)
    if x_val is None:
        idx = rng.permutation(x_train.shape[0])
        cut = int(0.8 * len(idx))
        x_train, x_val = x_train[idx[:cut]], x_train[idx[cut:]]
    else:
        x_val = _check(x_val, "x_val", d)
    x_train = x_train[rng.permutation(x_train.shape[0])[:max_rows]]
    x_val = x_val[rng.permutation(x_val.shape[0])[:max_rows]]
    score = _Scorer(x_train, x_val, features, seed)
    placed: list = []
    left = list(range(d))
    while left:
        def total(j):
            rest = [r for r in left if r != j]
            return score(j, placed) + sum(score(r, placed + [j]) for r in rest)

        best = max(left, key=total)
        placed.append(best)
        left.remove(best)
    return np.asarray(placed, np.int64)


def order_log_likelihood(x_train, x_val, order, *, features: int = 48,
                         seed: int = 0) -> float:
    """The greedy method's cheap model's validation log-likelihood (nats per row) of the
    factorisation in ``order``: ``sum_i score(x_order[i] | x_order[<i])``. For comparing
    orders; not a density estimate of the data."""
    x_train = _check(x_train, "x_train")
    x_val = _check(x_val, "x_val", x_train.shape[1])
    score = _Scorer(x_train, x_val, features, seed)
    order = [int(i) for i in order]
    return float(sum(score(j, order[:i]) for i, j in enumerate(order)))


__all__ = ["METHODS", "order_log_likelihood", "suggest"]
