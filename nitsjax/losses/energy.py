"""The energy objective: determinant-free training from model samples.

Si, Chen, Sahoo, Schiff & Kuleshov, "Energy Flows: Towards Determinant-Free Training of
Normalizing Flows", arXiv 2206.06672 (the energy objective and its random-projection
estimators); the energy score is Gneiting & Raftery's (JASA 2007) multivariate proper
scoring rule, the energy distance Szekely & Rizzo's (J. Stat. Plan. Inference 2013).

For a model ``P`` with samples ``Y, Y'`` and a data row ``x``, the energy score is

    S_beta(P, x) = E ||Y - x||^beta - 1/2 E ||Y - Y'||^beta,      0 < beta < 2,

strictly proper: ``E_{x ~ Q} S(P, x)`` is minimised only by ``P = Q``, and it differs
from half the energy distance ``D_beta(P, Q) = 2 E||X - Y||^beta - E||X - X'||^beta -
E||Y - Y'||^beta`` by a term that does not depend on the model. It needs only samples of
the model that are differentiable in its params (reparameterised), no density and no
Jacobian determinant, so it also trains maps that are not invertible
(``nitsjax.models.generator``).

Estimators (rows ``x`` (n, d), model samples ``y`` (m, d)):

- ``energy_score(x, y, beta)``: the mean over rows ``x_i`` of ``(1/m) sum_j ||y_j -
  x_i||^beta - 1/(2 m (m-1)) sum_{j != k} ||y_j - y_k||^beta``, unbiased for
  ``E_x S_beta(P, x)`` (the U-statistic drops the ``j == k`` pairs); ``O(n m d)``.
- ``sliced_energy_score(x, y, key, beta, projections)``: the paper's projected variant:
  the 1-D energy score of ``v . x`` against ``v . y`` for ``projections`` directions ``v``
  uniform on the sphere, averaged and divided by ``E|v_1|^beta`` (``projection_constant``),
  so that it is unbiased for the same quantity as ``energy_score``. For ``beta = 1`` each
  projection costs ``O((n + m) log(n + m))`` (sorting), not ``O(n m)``.
- ``energy_distance(x, y, beta)``: the U-statistic of ``D_beta`` (unbiased; may be
  slightly negative when the two samples come from the same law), for evaluation.

``energy(model, params, x, context, key)`` is the training loss (``nj.fit(...,
loss="energy")``): it draws one reparameterised model sample per row and returns
``energy_score`` (or the sliced estimate); for a conditional model, two samples given
each row's context, scored against that row.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp

from nitsjax.validation import check_positive_int

Array = jax.Array


def check_beta(beta) -> float:
    """``beta`` as a float in the open interval (0, 2), else a ``ValueError``."""
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise TypeError(f"beta: expected a number in (0, 2), got {type(beta).__name__}") from None
    if not 0.0 < b < 2.0:
        raise ValueError(
            f"beta: expected 0 < beta < 2 (the energy score is strictly proper only there; "
            f"beta = 1 is the usual choice), got {beta!r}"
        )
    return b


def _check_rows(a, name: str) -> Array:
    if getattr(a, "ndim", None) != 2:
        raise ValueError(f"{name}: expected rows of shape (n, d), got shape "
                         f"{getattr(a, 'shape', type(a).__name__)}")
    return a


def _check_pair(x, y) -> tuple[Array, Array]:
    x, y = jnp.asarray(_check_rows(x, "x")), jnp.asarray(_check_rows(y, "y"))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected {x.shape[1]} columns like x, got shape {y.shape}")
    if y.shape[0] < 2:
        raise ValueError(f"y: the Y - Y' term needs at least 2 model samples, got {y.shape[0]}")
    return x, y


def _power_of_distance(sq: Array, beta: float) -> Array:
    """``sq ** (beta / 2)`` with a finite gradient at ``sq == 0`` (where it is 0)."""
    positive = sq > 0
    safe = jnp.where(positive, sq, 1.0)
    return jnp.where(positive, safe ** (0.5 * beta), 0.0)


def _squared_distances(a: Array, b: Array) -> Array:
    """``(n, m)`` squared Euclidean distances, by the Gram expansion (memory ``O(n m)``,
    not ``O(n m d)``), clipped at 0 against rounding."""
    sq = (jnp.sum(a * a, axis=1)[:, None] + jnp.sum(b * b, axis=1)[None, :]
          - 2.0 * a @ b.T)
    return jnp.maximum(sq, 0.0)


def _mean_cross(a: Array, b: Array, beta: float) -> Array:
    """``mean_{i, j} ||a_i - b_j||^beta``."""
    return jnp.mean(_power_of_distance(_squared_distances(a, b), beta))


def _mean_within(a: Array, beta: float) -> Array:
    """``1/(m (m-1)) sum_{j != k} ||a_j - a_k||^beta`` (the U-statistic)."""
    m = a.shape[0]
    d = _power_of_distance(_squared_distances(a, a), beta)
    d = d * (1.0 - jnp.eye(m, dtype=d.dtype))
    return jnp.sum(d) / (m * (m - 1))


def energy_score(x, y, beta: float = 1.0) -> Array:
    """Mean energy score of the model samples ``y`` at the data rows ``x``.

    Args:
      x: data rows ``(n, d)``.
      y: model samples ``(m, d)``, ``m >= 2``.
      beta: exponent in (0, 2).

    Returns:
      The scalar ``mean_{i,j} ||x_i - y_j||^beta - 1/2 mean_{j != k} ||y_j - y_k||^beta``
      (lower is better), differentiable in ``y``.
    """
    beta = check_beta(beta)
    x, y = _check_pair(x, y)
    return _mean_cross(x, y, beta) - 0.5 * _mean_within(y, beta)


def energy_distance(x, y, beta: float = 1.0) -> Array:
    """Unbiased estimate of the energy distance ``2 E||X - Y||^beta - E||X - X'||^beta -
    E||Y - Y'||^beta`` between the laws of the rows of ``x`` ``(n, d)`` and ``y`` ``(m,
    d)`` (``n, m >= 2``); 0 when they are equal, positive otherwise (in expectation)."""
    beta = check_beta(beta)
    x, y = _check_pair(x, y)
    if x.shape[0] < 2:
        raise ValueError(f"x: the X - X' term needs at least 2 rows, got {x.shape[0]}")
    return 2.0 * _mean_cross(x, y, beta) - _mean_within(x, beta) - _mean_within(y, beta)


def projection_constant(dim: int, beta: float = 1.0) -> float:
    """``E|v_1|^beta`` for ``v`` uniform on the unit sphere of R^dim:
    ``Gamma(dim/2) Gamma((beta+1)/2) / (sqrt(pi) Gamma((dim+beta)/2))``, so that
    ``E_v |v . w|^beta = projection_constant(dim, beta) ||w||^beta`` for every ``w``."""
    return math.exp(math.lgamma(dim / 2) + math.lgamma((beta + 1) / 2)
                    - 0.5 * math.log(math.pi) - math.lgamma((dim + beta) / 2))


def _pair_sum_sorted(s: Array) -> Array:
    """``sum_{i < j} |s_i - s_j|`` of a 1-D array, by sorting: ``sum_j s_(j) (2 j - N + 1)``."""
    s = jnp.sort(s)
    n = s.shape[0]
    return jnp.sum(s * (2.0 * jnp.arange(n, dtype=s.dtype) - (n - 1)))


def _score_1d(px: Array, py: Array, beta: float) -> Array:
    """The 1-D energy score of samples ``py`` (m,) at rows ``px`` (n,)."""
    n, m = px.shape[0], py.shape[0]
    if beta == 1.0:  # O((n + m) log(n + m)) by sorting
        within_y = _pair_sum_sorted(py)
        cross = _pair_sum_sorted(jnp.concatenate([px, py])) - _pair_sum_sorted(px) - within_y
        return cross / (n * m) - within_y / (m * (m - 1))
    return _energy_1d_pairwise(px, py, beta)


def _energy_1d_pairwise(px: Array, py: Array, beta: float) -> Array:
    m = py.shape[0]
    cross = _power_of_distance(jnp.square(px[:, None] - py[None, :]), beta)
    within = _power_of_distance(jnp.square(py[:, None] - py[None, :]), beta)
    within = within * (1.0 - jnp.eye(m, dtype=within.dtype))
    return jnp.mean(cross) - 0.5 * jnp.sum(within) / (m * (m - 1))


def sliced_energy_score(x, y, key, beta: float = 1.0, projections: int = 16) -> Array:
    """The projected (sliced) estimate of ``energy_score(x, y, beta)``.

    Draws ``projections`` directions uniform on the unit sphere, scores the 1-D projections
    and divides their mean by ``projection_constant(d, beta)``: unbiased for the same
    expectation as ``energy_score``, with extra variance from the directions.

    Args:
      x: data rows ``(n, d)``; y: model samples ``(m, d)``, ``m >= 2``.
      key: PRNG key of the directions.
      beta: exponent in (0, 2) (``beta = 1``: sorting, ``O((n + m) log(n + m))`` per
        direction; otherwise ``O(n m)``).
      projections: number of directions.
    """
    beta = check_beta(beta)
    projections = check_positive_int(projections, "projections")
    x, y = _check_pair(x, y)
    d = x.shape[1]
    v = jax.random.normal(key, (d, projections), y.dtype)
    v = v / jnp.linalg.norm(v, axis=0, keepdims=True)
    scores = jax.vmap(lambda a, b: _score_1d(a, b, beta), in_axes=(1, 1))(x @ v, y @ v)
    return jnp.mean(scores) / projection_constant(d, beta)


# ------------------------------------------------------------------------- the loss
def model_samples(model, params, key, n: int, context=None) -> Array:
    """``n`` reparameterised draws ``(n, dim)`` of ``model.sample_batch`` (a ``Flow``
    returns ``(samples, log-densities)``: the samples are taken)."""
    draws = model.sample_batch(params, key, n, context)
    return draws[0] if isinstance(draws, tuple) else draws


def energy(model, params, x, context=None, key=None, *, beta: float = 1.0,
           projections: Optional[int] = None) -> Array:
    """The energy objective: ``energy_score`` of ``x.shape[0]`` model samples at the rows.

    Args:
      model: a model with reparameterised sampling (``energy.check``): a continuous flow
        or ``nitsjax.models.generator``.
      params: its params.
      x: a minibatch ``(n, dim)``.
      context: ``(n, context_dim)`` for a conditional model, else None. Then two samples
        are drawn given each ``context[i]`` and scored against row ``i`` alone
        (``projections`` is not used: the per-row score is already ``O(n d)``).
      key: PRNG key of the model samples (and directions); None at evaluation (a fixed
        key, ``nitsjax.losses.eval_key``).
      beta: exponent in (0, 2).
      projections: None for the exact pairwise score, or the number of random
        directions of the sliced estimate (``sliced_energy_score``).

    Returns:
      A scalar, lower is better.
    """
    from nitsjax.losses import eval_key

    beta = check_beta(beta)
    k_sample, k_proj = jax.random.split(eval_key(key))
    n = x.shape[0]
    if context is not None:
        # two draws given each row's context: the Y - Y' term must pair draws of one law
        y = model_samples(model, params, k_sample, 2 * n, jnp.concatenate([context, context]))
        return _conditional_score(x, y[:n].astype(x.dtype), y[n:].astype(x.dtype), beta)
    y = model_samples(model, params, k_sample, n).astype(x.dtype)
    if projections is None:
        return energy_score(x, y, beta)
    return sliced_energy_score(x, y, k_proj, beta, projections)


def _conditional_score(x: Array, y1: Array, y2: Array, beta: float) -> Array:
    """Mean over rows of the energy score of two draws ``y1_i, y2_i`` given row ``i``'s
    context: ``(||y1_i - x_i||^beta + ||y2_i - x_i||^beta) / 2 - ||y1_i - y2_i||^beta / 2``,
    unbiased for the mean conditional score."""

    def dist(a, b):
        return _power_of_distance(jnp.sum(jnp.square(a - b), axis=1), beta)

    return jnp.mean(0.5 * (dist(y1, x) + dist(y2, x)) - 0.5 * dist(y1, y2))


def _check_energy(model) -> None:
    """``ValueError`` unless ``model`` has reparameterised sampling."""
    name = getattr(model, "name", type(model).__name__)
    discrete = getattr(model, "discrete", False)
    reparameterized = getattr(model, "reparameterized", None)
    if reparameterized is None:
        from nitsjax.flow import Flow

        reparameterized = isinstance(model, Flow)
    if discrete or not reparameterized or not callable(getattr(model, "sample_batch", None)):
        why = ("its samples are discrete (rounded), so they have no gradient in the params"
               if discrete else "it has no reparameterised sampler (sample_batch "
               "differentiable in params)")
        raise ValueError(
            f"loss='energy': the {name} model cannot be trained by the energy objective: "
            f"{why}. Models that qualify: the continuous flows (nitsjax.flows.maf, iaf, "
            f"realnvp, nsf, nits: their samples are differentiable in the params; "
            f"autoregressive maf/nsf and nits sample coordinate by coordinate, slower) and "
            f"nitsjax.models.generator"
        )


energy.check = _check_energy


@dataclasses.dataclass(frozen=True)
class EnergyLoss:
    """``energy`` with fixed options, for ``nj.fit(..., loss=EnergyLoss(beta=1.5,
    projections=32))``. A value: equal options hash alike, so compiled code is shared."""

    beta: float = 1.0
    projections: Optional[int] = None

    def __post_init__(self):
        check_beta(self.beta)
        if self.projections is not None:
            check_positive_int(self.projections, "projections")

    @property
    def __name__(self) -> str:  # noqa: A003 - what fit records as the loss's name
        sliced = "" if self.projections is None else f", projections={self.projections}"
        return f"energy(beta={self.beta}{sliced})"

    def __call__(self, model, params, x, context=None, key=None):
        return energy(model, params, x, context, key, beta=self.beta,
                      projections=self.projections)

    def check(self, model) -> None:
        _check_energy(model)
