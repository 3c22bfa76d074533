"""Quantile training: the pinball loss and the CRPS of autoregressive conditionals.

Autoregressive quantile flows (Si, Bishop, Kuleshov, "Autoregressive Quantile Flows for
Predictive Uncertainty Estimation", ICLR 2022, arXiv 2112.04643) train a flow by a
proper scoring rule instead of the likelihood: the quantile (pinball) loss of each
conditional, integrated over all levels, which is the continuous ranked probability
score (Gneiting & Raftery, JASA 2007, eq. 21; Laio & Tamea 2007)::

    CRPS(F, y) = int (F(t) - 1{y <= t})^2 dt = 2 int_0^1 rho_u(y - F^-1(u)) du,
    rho_u(r) = r (u - 1{r < 0})                                   (the pinball loss)

For a flow triangular in the data order (``flow.is_triangular``), coordinate ``i`` of a
row has the conditional quantile ``q_i(u | x_<i)``, and the loss of a row is
``sum_i CRPS(F_i(. | x_<i), x_i)`` with the prefix held at the data (teacher forcing):
one conditioner pass per row gives every coordinate's transformer parameters, and each
quantile is the transformer's inverse at the base quantile of ``u``
(``Bijector.conditional_inverse``). No Jacobian determinant is needed.

Gradients. Affine and spline transformers have closed-form inverses, differentiated as
they are. The NITS transformer's inverse is a bracketing solve of ``F(q; theta) = u``;
its derivative comes from the implicit function theorem at the solved ``q``,
``dq/dtheta = -(dF/dtheta) / f(q)`` (``nitsjax.root_finding.solve_monotone``, a
``jax.custom_jvp``, so reverse mode works too), never by differentiating the solver's
iterations.

Levels. Training (``key`` given) draws ``levels`` stratified levels per row and
coordinate, ``u_k = (k + U_k) / levels`` with ``U_k ~ U(0, 1)`` (each ``u_k`` uniform in its
stratum, so ``2 mean_k rho_{u_k}`` is an unbiased estimate of the CRPS with less variance
than independent draws). Evaluation (``key=None``) uses the midpoint rule on the same
number of levels, ``u_k = (k + 1/2) / levels``: deterministic, and accurate to
``O(levels^-2)`` for a smooth quantile function (pass a larger ``levels`` to report a
CRPS; the experiments use 64).

The CRPS is in the data's units, so columns on larger scales weigh more in the sum;
``nj.data.load`` standardises tables (fitted on the training split).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

Array = jax.Array

#: the number of levels per row and coordinate when not given
DEFAULT_LEVELS = 16


def pinball(y, q, level) -> Array:
    """The pinball (quantile, check) loss ``rho_tau(y - q) = (y - q) (tau - 1{y < q})``,
    elementwise: ``tau (y - q)`` when ``y >= q``, ``(1 - tau) (q - y)`` otherwise.

    Minimised in ``q`` by the ``tau``-quantile of ``y``'s distribution (Koenker & Bassett,
    Econometrica 1978); ``2 int_0^1 rho_tau(y - F^-1(tau)) dtau`` is the CRPS of ``F``.

    Args:
      y: observations.
      q: predicted quantiles.
      level: ``tau`` in [0, 1].
      (All three broadcast against each other.)

    Returns:
      The loss, of the broadcast shape; non-negative.
    """
    y, q, level = jnp.asarray(y), jnp.asarray(q), jnp.asarray(level)
    r = y - q
    return jnp.maximum(level * r, (level - 1.0) * r)


def _levels(key, n: int, levels: int, dim: int, dtype) -> Array:
    """``(n, levels, dim)`` levels in (0, 1): stratified random draws, or the midpoints
    when ``key`` is None (module docstring)."""
    k = jnp.arange(levels, dtype=dtype)[None, :, None]
    if key is None:
        offset = jnp.full((n, levels, dim), 0.5, dtype)
    else:
        tiny = jnp.finfo(dtype).tiny
        offset = jax.random.uniform(key, (n, levels, dim), dtype, minval=tiny, maxval=1.0)
    u = (k + offset) / levels
    # (levels - 1 + offset) / levels may round to 1 in float32: keep it inside (0, 1)
    below_one = jnp.nextafter(jnp.asarray(1.0, dtype), jnp.asarray(0.0, dtype))
    return jnp.minimum(u, below_one)


def _structure(model):
    from nitsjax import distribution_functions as df

    return df.structure(model)


def conditional_quantiles(model, params, x, u, context=None, key=None) -> Array:
    """``q_i(u_i | x_<i)`` for every row of ``x`` (n, dim) and every level vector in ``u``
    (n, k, dim) -> (n, k, dim): the quantiles of each conditional given the data prefix
    (teacher forcing), one conditioner pass per row. Unchecked and traceable (use inside
    ``jit``); ``key`` turns on dropout. Differentiable in ``params`` (implicitly through a
    NITS solve)."""
    _check_crps(model)  # at trace time: a flow without conditional quantiles is refused
    st = _structure(model)
    bij = model.bijector
    pos = jnp.asarray(st.position)
    base = ndtri(u) if st.base == "normal" else u
    z = jnp.zeros_like(base).at[..., pos].set(base)  # latent index pi(i) gets level u_i

    def row(xr, zr, cr, kr):
        # the levels of a row share x: vmap leaves the conditioner pass unbatched
        return jax.vmap(lambda zk: bij.conditional_inverse(params["bijector"], xr, zk, cr,
                                                           kr))(zr)

    keys = None if key is None else jax.random.split(key, x.shape[0])
    axes = (0, 0, None if context is None else 0, None if keys is None else 0)
    return jax.vmap(row, in_axes=axes)(x, z, context, keys)


def crps(model, params, x, context=None, key=None, *, levels: int = DEFAULT_LEVELS) -> Array:
    """Mean CRPS of the rows of ``x`` (n, dim) under ``model``'s autoregressive
    conditionals: ``(1/n) sum_rows sum_i CRPS(F_i(. | x_<i, c), x_i)``, each estimated as
    ``2 mean_k pinball(x_i, q_i(u_k | x_<i), u_k)`` over ``levels`` levels (stratified
    random with ``key``, midpoints without; module docstring). A loss for ``nj.fit(...,
    loss="crps")`` (``nitsjax.losses``); for a flow triangular in the data order.

    Args:
      model: a ``Flow`` with ``is_triangular`` (and ``bijector.conditional_inverse``).
      params: its params.
      x: (n, dim) rows.
      context: (n, context_dim) for a conditional flow (forecasting), else None.
      key: PRNG key (training: random levels and dropout) or None (evaluation).
      levels: levels per row and coordinate (static).

    Returns:
      A scalar, in the data's units.
    """
    k_levels, k_model = (None, None) if key is None else jax.random.split(key)
    u = _levels(k_levels, x.shape[0], int(levels), x.shape[1], x.dtype)
    q = conditional_quantiles(model, params, x, u, context, k_model)
    score = 2.0 * jnp.mean(pinball(x[:, None, :], q, u), axis=1)  # (n, dim)
    return jnp.mean(jnp.sum(score, axis=1))


def _check_crps(model) -> None:
    from nitsjax import distribution_functions as df

    name = getattr(model, "name", type(model).__name__)
    if not hasattr(model, "bijector"):
        raise ValueError(f"loss='crps': the {name} model is not a flow; {_SUPPORTED}")
    ok, why = df._why_not(model)
    if ok is None:
        raise ValueError(f"loss='crps': this {name!r} flow has no conditional quantiles "
                         f"given the data prefix: {why}. {_SUPPORTED}")
    if model.bijector.conditional_inverse is None:
        raise ValueError(f"loss='crps': this {name!r} flow's layers do not give their "
                         f"inverse with the prefix held (Bijector.conditional_inverse; an "
                         f"inverted layer, as in iaf, does not). {_SUPPORTED}")


_SUPPORTED = (
    "CRPS training needs a flow triangular in the data order (flow.is_triangular) whose "
    "layers invert coordinate by coordinate given the data prefix: nits(...) without "
    "rotate=True; maf(...), realnvp(...) and nsf(...) (autoregressive or coupling) with "
    "layers=1 and linear=None"
)

crps.check = _check_crps

__all__ = ["DEFAULT_LEVELS", "conditional_quantiles", "crps", "pinball"]
