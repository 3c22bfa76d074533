"""The Gaussian floor: the full-covariance Gaussian fitted to the training rows.

A flow should never score worse on validation than this Gaussian. ``fit`` records its
validation NLL (``history.gaussian_val_nll``). Flows built with ``standardize="whiten"``
are exactly this Gaussian after their data-dependent init, so ``fit``'s step-0 evaluation
and restore-best keep the returned params at or above it.

Fitting rule (that of the whitening layer, ``nitsjax.bijectors.standardize.whiten``):
mean and maximum-likelihood covariance (divided by ``n``), in float64 on the host; a
column constant in the training rows gets variance 1 and no correlation; every other
variance is inflated by the relative jitter ``max(JITTER, 16 * dim * eps)`` (``eps`` of
the data's float type), i.e. ``cov + jitter * diag(var)``.
"""

from __future__ import annotations

import numpy as np

#: Relative diagonal jitter (the whitening layer's default).
JITTER = 1e-6


def effective_jitter(dim: int, dtype) -> float:
    """``max(JITTER, 16 * dim * eps(dtype))`` (float64 eps for non-float dtypes)."""
    dtype = np.dtype(dtype)
    eps = np.finfo(dtype).eps if np.issubdtype(dtype, np.floating) else np.finfo(np.float64).eps
    return max(JITTER, 16.0 * dim * float(eps))


def fit_gaussian(x) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (dim,), covariance (dim, dim))`` of rows ``x`` (n, dim), float64."""
    jitter = effective_jitter(np.shape(x)[1], np.asarray(x).dtype)
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    d = x - mean
    cov = d.T @ d / x.shape[0]
    constant = x.max(axis=0) == x.min(axis=0)
    cov[constant, :] = 0.0
    cov[:, constant] = 0.0
    var = np.diag(cov).copy()
    var[constant] = 1.0
    cov[np.diag_indices_from(cov)] = var + np.where(constant, 0.0, jitter * var)
    return mean, cov


def gaussian_nll(mean: np.ndarray, cov: np.ndarray, x) -> float:
    """Mean negative log-density (nats) of rows ``x`` under ``N(mean, cov)``."""
    x = np.asarray(x, np.float64)
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (x - mean).T)
    logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    dim = x.shape[1]
    return float(np.mean(0.5 * np.sum(z**2, axis=0)) + 0.5 * (logdet + dim * np.log(2 * np.pi)))


def gaussian_floor(train, val) -> float:
    """Validation NLL of the full-covariance Gaussian fitted to ``train``."""
    mean, cov = fit_gaussian(train)
    return gaussian_nll(mean, cov, val)
