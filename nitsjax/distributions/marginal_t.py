"""A factorised base with Student-t (heavy) and Gaussian (light) marginals.

The base of marginal tail-adaptive flows (Laszkiewicz, Lederer, Fischer, "Marginal
Tail-Adaptive Normalizing Flows", ICML 2022, arXiv 2206.10311): coordinate ``j`` is
``StudentT(df_j)`` where ``heavy[j]`` and ``N(0, 1)`` elsewhere, independently.

Params ``{"frozen": {"heavy": (dim,), "df": (dim,)}[, "log_df": (dim,)]}``:

- ``heavy``: 1 for a Student-t coordinate, 0 for a Gaussian one, -1 for "not yet known"
  (Gaussian until set, e.g. by ``mtaf``'s data init); read as ``heavy > 0.5``.
- ``df``: degrees of freedom per coordinate; 0 means "not yet known" (the coordinate is
  Gaussian until set). Under the ``"frozen"`` key: constants that training never moves
  (``nitsjax.bijectors.anchored``).
- ``log_df`` (``learn_df=True``, the paper's gTAF): a learned correction, the degrees of
  freedom are ``df * exp(log_df)``; it starts at 0.

``with_tails(params, heavy, df)`` sets the frozen entries (e.g. from data).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.distributions.base import Distribution, _check_dim

UNKNOWN_HEAVY = -1.0  # heavy mask entry: not yet estimated
UNKNOWN_DF = 0.0  # degrees of freedom: not yet estimated


def check_heavy(heavy, dim: int) -> Optional[np.ndarray]:
    """``heavy`` as a ``(dim,)`` bool array (None stays None); a clear error otherwise."""
    if heavy is None:
        return None
    a = np.asarray(heavy)
    if a.shape != (dim,) or not (a.dtype == bool or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(
            f"heavy: expected None (estimated from the data at init) or {dim} booleans, "
            f"one per coordinate (True: Student-t marginal), got {heavy!r} (shape {a.shape})"
        )
    if not np.all((a == 0) | (a == 1)):
        raise ValueError(f"heavy: expected booleans (or 0/1), got {heavy!r}")
    return a.astype(bool)


def check_df(df, dim: int) -> Optional[np.ndarray]:
    """``df`` (None, a number or ``dim`` numbers, all > 0) as a ``(dim,)`` float array."""
    if df is None:
        return None
    try:
        a = np.broadcast_to(np.asarray(df, np.float64), (dim,)).copy()
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"df: expected None, a number > 0 or {dim} numbers > 0 (degrees of freedom of "
            f"the Student-t marginals), got {df!r}"
        ) from err
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(
            f"df: degrees of freedom must be finite and > 0, got {df!r}; a Student-t with "
            f"df degrees of freedom has tail index df (try 1 to 30, or None to estimate)"
        )
    return a


def marginal_t(dim: int, *, heavy=None, df=None, learn_df: bool = False) -> Distribution:
    """Independent Student-t (``heavy``) and standard normal marginals on R^dim.

    Args:
      dim: event size.
      heavy: ``(dim,)`` booleans, or None: unknown until ``with_tails`` sets it (all
        coordinates Gaussian meanwhile).
      df: degrees of freedom of the heavy coordinates: a number > 0, ``(dim,)`` numbers
        (entries of light coordinates unused), or None: unknown until set.
      learn_df: learn every coordinate's degrees of freedom (``log_df`` correction).
    """
    _check_dim(dim)
    heavy0 = check_heavy(heavy, dim)
    df0 = check_df(df, dim)
    if not isinstance(learn_df, bool):
        raise ValueError(f"learn_df: expected True or False, got {learn_df!r}")
    h_init = (np.full(dim, UNKNOWN_HEAVY) if heavy0 is None else heavy0.astype(np.float64))
    df_init = np.full(dim, UNKNOWN_DF) if df0 is None else df0

    def init(key):
        p = {"frozen": {"heavy": jnp.asarray(h_init, jnp.float32),
                        "df": jnp.asarray(df_init, jnp.float32)}}
        if learn_df:
            p["log_df"] = jnp.zeros(dim, jnp.float32)
        return p

    def _tails(params, dtype):
        frozen = jax.lax.stop_gradient(params["frozen"])
        df_fixed = frozen["df"].astype(dtype)
        use_t = (frozen["heavy"] > 0.5) & (df_fixed > 0)
        nu = df_fixed * jnp.exp(params["log_df"].astype(dtype)) if learn_df else df_fixed
        return use_t, jnp.where(use_t, nu, jnp.ones_like(nu))  # a safe df where unused

    def log_prob(params, z):
        use_t, nu = _tails(params, z.dtype)
        lp = jnp.where(use_t, jax.scipy.stats.t.logpdf(z, nu), jax.scipy.stats.norm.logpdf(z))
        return jnp.sum(lp)

    def sample(params, key):
        use_t, nu = _tails(params, jnp.float32)
        kt, kn = jax.random.split(key)
        return jnp.where(use_t, jax.random.t(kt, nu, (dim,)), jax.random.normal(kn, (dim,)))

    return Distribution(dim, init, log_prob, sample)


def with_tails(params, heavy, df):
    """Base params with the frozen ``heavy`` mask and ``df`` replaced (arrays ``(dim,)``;
    traceable). The learned ``log_df`` correction, if any, is kept."""
    frozen = params["frozen"]
    new = dict(params)
    new["frozen"] = {"heavy": jnp.asarray(heavy, frozen["heavy"].dtype),
                     "df": jnp.asarray(df, frozen["df"].dtype)}
    return new


def tails_pending(params) -> jax.Array:
    """True while the mask or the degrees of freedom are still unknown."""
    frozen = params["frozen"]
    return jnp.any(frozen["heavy"] < 0) | jnp.all(frozen["df"] <= 0)
