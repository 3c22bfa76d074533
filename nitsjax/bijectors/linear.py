"""LU-parameterised invertible linear map ``z = W x + b`` with ``W = P L U``.

``P`` is a fixed permutation, ``L`` unit lower-triangular and ``U`` upper-triangular with a
positive diagonal, so ``W`` is invertible for every parameter value, ``log|det W| =
sum(log diag U)`` costs O(dim) and the inverse is two triangular solves (Kingma &
Dhariwal, "Glow", NeurIPS 2018, section 3.2; Durkan et al., "Neural Spline Flows",
NeurIPS 2019, use it between coupling layers).

Params are ``{"lu": (dim, dim), "bias": (dim,)}``. One square matrix holds everything:
its strictly lower part is ``L - I``, its strictly upper part the off-diagonal of ``U``,
and its diagonal the unconstrained ``raw`` of ``diag U = softplus(raw) + min_diag``. The
floor ``min_diag`` keeps ``W`` away from singular, so the log-det is bounded below by
``dim * log(min_diag)`` and the inverse stays well conditioned.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from nitsjax.bijectors.base import Bijector
from nitsjax.validation import check_positive_int

_HIGHEST = jax.lax.Precision.HIGHEST


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def lu_linear(
    dim: int, *, permute: bool = True, seed: int = 0, min_diag: float = 1e-3
) -> Bijector:
    """A learned invertible linear layer on R^dim.

    Args:
      dim: event size.
      permute: use a fixed random permutation ``P`` drawn from ``seed`` (not learned; every
        layer built by ``stack`` shares it). With ``permute=False``, ``P = I``.
      seed: seed of the permutation.
      min_diag: floor on the diagonal of ``U``.

    Initialisation: ``L = I``, ``U = I``, ``b = 0``, so a fresh layer is ``z = P x``, a
    volume-preserving permutation (the identity when ``permute=False``).
    """
    check_positive_int(dim, "dim")
    if not float(min_diag) > 0.0 or not float(min_diag) < 1.0:
        raise ValueError(f"lu_linear: expected 0 < min_diag < 1, got min_diag={min_diag}")
    min_diag = float(min_diag)
    perm = np.random.RandomState(seed).permutation(dim) if permute else np.arange(dim)
    inv_perm = np.argsort(perm)
    raw_identity = _softplus_inverse(1.0 - min_diag)  # diag U = 1 at init
    eye = np.eye(dim, dtype=bool)
    strict_lower = np.tril(np.ones((dim, dim), dtype=bool), -1)

    def init(key):
        return {"lu": jnp.eye(dim) * raw_identity, "bias": jnp.zeros(dim)}

    def _factors(params, dtype):
        m = params["lu"].astype(dtype)
        diag = jax.nn.softplus(jnp.diagonal(m)) + min_diag
        lower = jnp.where(strict_lower, m, 0.0) + jnp.eye(dim, dtype=dtype)
        upper = jnp.where(strict_lower | eye, 0.0, m) + jnp.diag(diag)
        return lower, upper, jnp.sum(jnp.log(diag)), params["bias"].astype(dtype)

    def forward(params, x, context=None, key=None):
        lower, upper, logdet, bias = _factors(params, x.dtype)
        # full precision: on GPU/TPU default matmuls round to bf16/tf32 and the
        # triangular solves of the inverse would no longer undo them
        z = jnp.matmul(lower, jnp.matmul(upper, x, precision=_HIGHEST), precision=_HIGHEST)
        return z[perm] + bias, logdet

    def inverse(params, z, context=None, key=None):
        lower, upper, logdet, bias = _factors(params, z.dtype)
        v = (z - bias)[inv_perm]
        w = solve_triangular(lower, v, lower=True, unit_diagonal=True)
        return solve_triangular(upper, w, lower=False), -logdet

    return Bijector(init, forward, inverse, event_size=dim, name="lu_linear")
