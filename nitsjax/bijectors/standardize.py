"""Full-covariance standardisation (whitening) with data-dependent initialisation.

``z = W (x - shift)`` with ``W`` lower-triangular and a positive diagonal, so ``W`` is
invertible for every parameter value, ``log|det W| = sum(log diag W)`` costs O(dim) and the
inverse is one triangular solve. ``data_init`` sets ``shift`` to the batch mean and ``W``
to the inverse Cholesky factor of the batch covariance, so the layer's output on that
batch has zero mean and identity covariance; afterwards both are ordinary trainable params.
A flow whose other layers are the identity, on a ``N(0, I)`` base, is then exactly the
maximum-likelihood full-covariance Gaussian of the batch (the "Gaussian floor").

Params are ``{"shift": (dim,), "lower": (dim, dim)}``: the strictly lower part of
``lower`` is the off-diagonal of ``W`` and its diagonal holds ``log diag W``. At ``init``
both are zero: the identity.

The diagonal variant (per-coordinate mean and standard deviation) is ``actnorm``
(``nitsjax.bijectors.actnorm``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from nitsjax.bijectors.base import Bijector
from nitsjax.validation import check_positive_int

_HIGHEST = jax.lax.Precision.HIGHEST


def whiten(dim: int, *, jitter: float = 1e-6) -> Bijector:
    """A learned full-covariance standardising layer on R^dim (data side of a flow).

    Use ``Flow.init(key, x=batch)`` (or ``data_init``) to initialise it from data.

    Args:
      dim: event size.
      jitter: relative regularisation of the covariance used by ``data_init`` (>= 0).

    ``data_init(params, x (n, dim), context)`` computes, in the dtype of ``x`` with jnp
    (it runs under ``jit`` inside ``Flow.init``), the column means ``m``, the standard
    deviations ``s`` (1/n) and the Cholesky factor ``L`` of the regularised correlation
    ``R + jitter_eff * I``, i.e. of ``cov + jitter_eff * diag(var)`` rescaled, where
    ``jitter_eff = max(jitter, 16 * dim * eps(dtype))`` (so collinear columns stay
    positive definite despite rounding in float32). Then ``shift = m`` and
    ``W = L^-1 diag(1 / s)``. The rule for degenerate columns:

    - a constant column (max == min in the batch, including a batch of one row) gets
      ``s = 1`` and no correlation with the others: it is only centred, as in ``actnorm``;
    - an exactly collinear column is kept positive definite by the jitter: its
      whitened scale is large (~ 1/sqrt(jitter)) but finite;
    - if the factorisation still fails (``jitter=0`` on a singular batch), the layer
      falls back to the diagonal ``W = diag(1 / s)`` (actnorm) instead of NaN.

    The rule is equivariant: ``data_init`` on ``a * x + b`` (per-coordinate ``a > 0``)
    gives the same ``z``. With ``jitter=0`` and a non-singular batch the fitted Gaussian
    is exactly the maximum-likelihood one (covariance with 1/n).
    """
    check_positive_int(dim, "dim")
    jitter = float(jitter)
    if not (np.isfinite(jitter) and jitter >= 0.0):
        raise ValueError(f"whiten: expected a finite jitter >= 0, got jitter={jitter}")
    strict_lower = np.tril(np.ones((dim, dim), dtype=bool), -1)
    eye = np.eye(dim, dtype=bool)

    def init(key):
        return {"shift": jnp.zeros(dim), "lower": jnp.zeros((dim, dim))}

    def _w(params, dtype):
        m = params["lower"].astype(dtype)
        log_diag = jnp.diagonal(m)
        w = jnp.where(strict_lower, m, 0.0) + jnp.diag(jnp.exp(log_diag))
        return w, jnp.sum(log_diag), params["shift"].astype(dtype)

    def forward(params, x, context=None, key=None):
        w, logdet, shift = _w(params, x.dtype)
        # full precision: default GPU/TPU matmuls round to bf16/tf32 and the triangular
        # solve of the inverse would no longer undo them
        return jnp.matmul(w, x - shift, precision=_HIGHEST), logdet

    def inverse(params, z, context=None, key=None):
        w, logdet, shift = _w(params, z.dtype)
        return solve_triangular(w, z, lower=True) + shift, -logdet

    def data_init(params, x, context=None):
        """Mean and inverse Cholesky factor of the covariance of ``x`` (n, dim) ->
        (new params, z (n, dim))."""
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(
                f"whiten.data_init: x: expected shape (n, {dim}), got {tuple(x.shape)}"
            )
        if x.shape[0] < 1:
            raise ValueError("whiten.data_init: x: expected at least one row, got 0")
        dtype = x.dtype
        finfo = jnp.finfo(dtype)
        mean = jnp.mean(x, axis=0)
        xc = x - mean
        std = jnp.sqrt(jnp.mean(xc * xc, axis=0))
        constant = jnp.max(x, axis=0) == jnp.min(x, axis=0)
        # constant columns: scale 1 (only centred); others: floored so 1/s is finite
        std = jnp.where(constant, 1.0, jnp.maximum(std, jnp.sqrt(finfo.tiny)))
        u = jnp.where(constant, 0.0, xc / std)
        corr = jnp.matmul(u.T, u, precision=_HIGHEST) / x.shape[0]
        corr = jnp.where(eye, 1.0, corr)  # exact unit diagonal (1 for constant columns)
        jit_eff = max(jitter, 16.0 * dim * float(finfo.eps))
        # no jitter on constant columns, so their scale is exactly 1
        chol = jnp.linalg.cholesky(corr + jnp.diag(jnp.where(constant, 0.0, jit_eff)))
        ok = jnp.all(jnp.isfinite(chol))
        chol = jnp.where(ok, chol, jnp.eye(dim, dtype=dtype))  # fallback: diagonal
        w = solve_triangular(chol, jnp.diag(1.0 / std), lower=True)
        log_diag = -jnp.log(jnp.diagonal(chol)) - jnp.log(std)
        lower = jnp.where(strict_lower, w, 0.0) + jnp.diag(log_diag)
        new = {
            "shift": mean.astype(params["shift"].dtype),
            "lower": lower.astype(params["lower"].dtype),
        }
        z, _ = jax.vmap(lambda xi: forward(new, xi))(x)
        return new, z

    def conditional_inverse(params, x, z, context=None, key=None):
        """``v_i = x_i + (z_i - forward(x)_i) / W_ii``: the map is affine and lower
        triangular, so coordinate ``i`` with the prefix held moves by ``W_ii``."""
        w, _, _ = _w(params, x.dtype)
        y, _ = forward(params, x)
        return x + (z - y) / jnp.diagonal(w)

    return Bijector(init, forward, inverse, data_init, event_size=dim, name="whiten",
                    conditional_inverse=conditional_inverse)
