"""Mixture density network (Bishop, "Mixture Density Networks", Aston University technical
report NCRG/94/004, 1994): ``p(y | x)`` a Gaussian mixture whose weights, means and
covariances (diagonal or full) are outputs of an MLP of ``x``::

    p(y | x) = sum_k pi_k(x) N(y; mu_k(x), Sigma_k(x))

Scale-free: ``x`` and ``y`` are standardised by their training means and standard
deviations (data init, ``nitsjax.models.conditional``); the mixture lives on the
standardised ``y`` and ``log p`` includes the ``-sum(log std_y)`` of that map, so densities
are in the units of ``y``. Scales are ``softplus`` of the network's output plus a floor
(``min_scale``, standardised units); with ``covariance="full"`` each component's
covariance is ``L L^T`` with ``L`` lower triangular (Cholesky factor). A fresh network has
equal weights, unit scales and means drawn from a standard normal (distinct components:
identical ones would get identical gradients forever).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from nitsjax.models.conditional import ConditionalModel, _check_dims, hidden_layers
from nitsjax.validation import check_hidden, check_positive_int

COVARIANCES = ("diagonal", "full")
#: softplus(_UNIT) == 1: a zero output gives a unit scale
_UNIT = math.log(math.e - 1.0)


class _MDNNet(nn.Module):
    """x (n, x_dim) -> (logits (n, K), means (n, K, d), scale params (n, K, s))."""

    y_dim: int
    components: int
    hidden: tuple
    scale_params: int
    dropout: float

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        h = hidden_layers(x, self.hidden, self.dropout, deterministic)
        k, d = self.components, self.y_dim
        small = nn.initializers.variance_scaling(0.01, "fan_in", "truncated_normal")
        logits = nn.Dense(k, kernel_init=small, name="logits")(h)
        means = nn.Dense(k * d, kernel_init=small, bias_init=nn.initializers.normal(1.0),
                         name="means")(h)
        scales = nn.Dense(k * self.scale_params, kernel_init=small, name="scales")(h)
        n = x.shape[0]
        return logits, means.reshape(n, k, d), scales.reshape(n, k, self.scale_params)


@dataclasses.dataclass(frozen=True)
class MDN(ConditionalModel):
    """A mixture density network; build it with ``mdn(...)`` (module docstring).

    ``params = {"net": ..., "frozen": {"x_shift", "x_scale", "y_shift", "y_scale",
    "ready"}}``.
    """

    components: int = 5
    hidden: tuple = (64, 64)
    covariance: str = "diagonal"
    dropout: float = 0.0
    min_scale: float = 1e-3

    name = "mdn"

    def _net(self):
        d = self.y_dim
        s = d if self.covariance == "diagonal" else d * (d + 1) // 2
        return _MDNNet(d, self.components, self.hidden, s, self.dropout)

    def _init_frozen(self):
        return {"y_shift": jnp.zeros(self.y_dim), "y_scale": jnp.ones(self.y_dim)}

    def _data_init_frozen(self, frozen, y):
        std = jnp.std(y, axis=0)
        return {"y_shift": jnp.mean(y, axis=0), "y_scale": jnp.where(std > 0, std, 1.0)}

    # ------------------------------------------------------------- pure functions
    def mixture(self, params, x, key=None):
        """The mixture given ``x`` (n, x_dim), on the standardised ``y``: ``(log_weights
        (n, K), means (n, K, d), chol (n, K, d, d))``, ``chol`` lower triangular with
        ``chol @ chol.T`` the covariance (diagonal for ``covariance="diagonal"``)."""
        logits, means, raw = self._apply(params, x, key)
        d = self.y_dim
        diag_idx = jnp.arange(d)
        if self.covariance == "diagonal":
            scale = jax.nn.softplus(raw + _UNIT) + self.min_scale
            chol = jnp.zeros(raw.shape + (d,), raw.dtype).at[..., diag_idx, diag_idx].set(scale)
        else:
            rows, cols = jnp.tril_indices(d)
            chol = jnp.zeros(raw.shape[:-1] + (d, d), raw.dtype).at[..., rows, cols].set(raw)
            diag = jax.nn.softplus(chol[..., diag_idx, diag_idx] + _UNIT) + self.min_scale
            chol = chol.at[..., diag_idx, diag_idx].set(diag)
        return jax.nn.log_softmax(logits, axis=-1), means, chol

    def log_prob_batch(self, params, y, x, key=None) -> jax.Array:
        """``log p(y | x)``, ``y`` (n, y_dim), ``x`` (n, x_dim) -> (n,). Unchecked and
        traceable; with ``key`` in training mode (dropout)."""
        f = params["frozen"]
        z = (y - f["y_shift"]) / f["y_scale"]
        logw, means, chol = self.mixture(params, x, key)
        diff = z[:, None, :] - means  # (n, K, d)
        white = jax.vmap(jax.vmap(lambda c, v: solve_triangular(c, v, lower=True)))(chol, diff)
        logdet = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        comp = -0.5 * jnp.sum(white**2, -1) - logdet - 0.5 * self.y_dim * math.log(2 * math.pi)
        return jax.nn.logsumexp(logw + comp, axis=-1) - jnp.sum(jnp.log(f["y_scale"]))

    def sample_per_row(self, params, key, x, n: int) -> jax.Array:
        """``n`` draws for each row of ``x`` (m, x_dim) -> (n, m, y_dim): a component
        drawn by its weight, then a Gaussian draw from it. Unchecked and traceable."""
        f = params["frozen"]
        m = x.shape[0]
        k_comp, k_eps = jax.random.split(key)
        logw, means, chol = self.mixture(params, x)
        comp = jax.random.categorical(k_comp, logw, shape=(n, m))  # (n, m)
        rows = jnp.arange(m)[None, :]
        eps = jax.random.normal(k_eps, (n, m, self.y_dim), means.dtype)
        z = means[rows, comp] + jnp.einsum("nmij,nmj->nmi", chol[rows, comp], eps)
        return z * f["y_scale"] + f["y_shift"]


def mdn(
    x_dim: int,
    y_dim: int,
    *,
    components: int = 5,
    hidden: Sequence[int] = (64, 64),
    covariance: str = "diagonal",
    dropout: float = 0.0,
    min_scale: float = 1e-3,
) -> MDN:
    """A mixture density network for ``p(y | x)`` (Bishop 1994).

    Args:
      x_dim: size of the conditioning input ``x``.
      y_dim: size of the target ``y``.
      components: number of Gaussian components.
      hidden: widths of the MLP's hidden layers (ELU).
      covariance: ``"diagonal"`` or ``"full"`` (a Cholesky factor per component).
      dropout: dropout rate after each hidden layer (training only).
      min_scale: floor of every scale, in standard deviations of ``y``.
    """
    x_dim, y_dim = _check_dims(x_dim, y_dim)
    components = check_positive_int(components, "components")
    hidden = check_hidden(hidden, "hidden")
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance: expected one of {COVARIANCES}, got {covariance!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout: expected a rate in [0, 1), got {dropout!r}")
    if not float(min_scale) > 0.0:
        raise ValueError(f"min_scale: expected a number > 0, got {min_scale!r}")
    return MDN(x_dim, y_dim, components=components, hidden=hidden, covariance=covariance,
               dropout=float(dropout), min_scale=float(min_scale))


__all__ = ["MDN", "mdn"]
