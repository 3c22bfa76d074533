"""The Gaussian floor: the full-covariance Gaussian fitted to the training rows.

A flow should never score worse on validation than this Gaussian. ``fit`` records its
validation NLL (``history.gaussian_val_nll``). Flows built with ``standardize="whiten"``
are exactly this Gaussian after their data-dependent init, so ``fit``'s step-0 evaluation
and restore-best keep the returned params at or above it.

Fitting rule (the whitening layer's): mean and maximum-likelihood covariance (divided by
``n``) in float64 on the host; a column constant in the training rows gets variance 1 and
no correlation; ``JITTER`` times the mean variance is added to the diagonal.
"""

from __future__ import annotations

import numpy as np

#: Relative diagonal jitter: ``cov + JITTER * mean(diag(cov)) * I``.
JITTER = 1e-6


def fit_gaussian(x) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (dim,), covariance (dim, dim))`` of rows ``x`` (n, dim), float64."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    d = x - mean
    cov = d.T @ d / x.shape[0]
    constant = x.max(axis=0) == x.min(axis=0)
    cov[constant, :] = 0.0
    cov[:, constant] = 0.0
    cov[constant, constant] = 1.0
    cov += JITTER * np.mean(np.diag(cov)) * np.eye(x.shape[1])
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
