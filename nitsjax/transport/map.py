"""Monotone triangular maps as a bijector and a ``Flow``.

Baptista, Marzouk, Zahm, "On the representation and learning of monotone triangular
transport maps", arXiv 2009.10303. Component ``k`` of the map ``S: R^d -> R^d`` is

    S_k(x_1..x_k) = f_k(x_<k, 0) + int_0^{x_k} g(d_k f_k(x_<k, t)) dt,

with ``f_k(x) = sum_m c_km prod_j psi_{a_kmj}(x_j)`` a linear expansion in the 1-D basis
of ``nitsjax.transport.basis`` over the multi-indices ``a_km`` (rows of ``index[k]``,
zero in every position ``j > k``) and ``g > 0`` a rectifier, so ``S_k`` is strictly
increasing in ``x_k`` whatever the coefficients. The integral is a Gauss–Legendre rule
with ``quadrature`` fixed nodes on ``[0, x_k]`` (static shapes), and ``d S_k / d x_k =
g(d_k f_k(x))`` exactly (no quadrature), so the log-determinant is
``sum_k log g(d_k f_k(x))``.

The map pushes the data to a standard normal: ``log p(x) = sum_k [log N(S_k(x)) + log
g(d_k f_k(x))]``, which separates over ``k`` (each component is fitted alone,
``nitsjax.transport.atm``). Its inverse (sampling) runs the components in order and
solves ``S_k(x_<k, x_k) = z_k`` for ``x_k`` with a bracketed safeguarded Newton
(``nitsjax.root_finding.newton``; the bracket doubles from ``[-4, 4]`` until it holds the
root).

Params of the bijector: ``{"coef": (dim, terms), "index": (dim, terms, dim) int32}``;
unused slots hold a zero multi-index with a zero coefficient. A fresh map
(``init``) is the identity: the constant term and ``x_k`` with ``g(c) = 1``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Bijector
from nitsjax.distributions.base import standard_normal
from nitsjax.flow import Flow
from nitsjax.flows.common import flow_bijector
from nitsjax.root_finding import newton
from nitsjax.transport import basis as B
from nitsjax.validation import check_data, check_key, check_positive_int

Array = jax.Array

#: ``g^{-1}(1)``: the coefficient of ``x_k`` that makes a component the identity
_IDENTITY_SLOPE = {"softplus": float(np.log(np.e - 1.0)), "exp": 0.0, "elu": 0.0}


class Component:
    """The maths of one component for given static settings (hashable, so usable in
    ``jax.jit`` static arguments)."""

    def __init__(self, basis: str, rectifier: str, max_degree: int, quadrature: int):
        self.key = (B.check_basis(basis), B.check_rectifier(rectifier), int(max_degree),
                    int(quadrature))
        self.table = B.basis_with_derivative(basis, max_degree)
        self.g = B.rectifier(rectifier)
        self.log_g = B.log_rectifier(rectifier)
        self.nodes, self.weights = B.gauss_legendre(quadrature)
        self.identity_slope = _IDENTITY_SLOPE[rectifier]

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, Component) and self.key == other.key

    def features(self, x: Array, k, index: Array):
        """The linear pieces of component ``k`` at one point ``x`` (d,) for the terms
        ``index`` (M, d): ``(f0 (M,), dq (Q, M), de (M,), x_k)`` with ``f_k(x_<k, 0) = f0 @
        c``, ``d_k f_k(x_<k, x_k t_q) = dq[q] @ c`` at the quadrature nodes ``t_q`` and
        ``d_k f_k(x) = de @ c``."""
        d = x.shape[0]
        xk = x[k]
        pts = jnp.concatenate([x, jnp.zeros((1,), x.dtype), xk * self.nodes.astype(x.dtype),
                               xk[None]])
        vals, dvals = self.table(pts)  # (d + Q + 2, P + 1): x, then 0, x_k t_q, x_k
        picked = jnp.take_along_axis(vals[:d], index.T, axis=1)  # (d, M)
        other = jnp.prod(jnp.where((jnp.arange(d) == k)[:, None], 1.0, picked), axis=0)
        ak = index[:, k]
        return (other * vals[d, ak], dvals[d + 1:-1, ak] * other, dvals[-1, ak] * other, xk)

    def value(self, feats, c: Array):
        """``(S_k, log dS_k/dx_k)`` from ``features`` and coefficients ``c`` (M,)."""
        f0, dq, de, xk = feats
        w = self.weights.astype(c.dtype)
        s = f0 @ c + xk * jnp.sum(w * self.g(dq @ c))
        return s, self.log_g(de @ c)

    def evaluate(self, x, k, c, index):
        """``(S_k(x), log dS_k/dx_k(x))`` at one point ``x`` (d,)."""
        return self.value(self.features(x, k, index), c)

    def all_components(self, coef, index, x):
        """Every component at one point: ``(S (d,), log dS_k/dx_k (d,))``."""
        d = x.shape[0]
        return jax.vmap(lambda k, c, a: self.evaluate(x, k, c, a))(jnp.arange(d), coef, index)

    def solve_from(self, coef, index, z, x, start: int):
        """Components ``start..d-1`` inverted in order: ``x`` (d,) holds the known prefix
        ``x_<start``; returns ``x`` with ``S_k(x) = z_k`` for ``k >= start``."""
        d = x.shape[0]
        eps = jnp.finfo(x.dtype).eps
        steps = 4.0 * 2.0 ** jnp.arange(16, dtype=x.dtype)  # 4 .. 131072 (standardised)
        grid = jnp.concatenate([-steps, steps])

        def body(k, x):
            c, a, target = coef[k], index[k], z[k]

            def s_and_ds(v):  # scalar v -> (S_k, dS_k/dx_k) with x_<k held
                s, log_ds = self.evaluate(x.at[k].set(v), k, c, a)
                return s, jnp.exp(log_ds)

            s_grid = jax.vmap(lambda v: s_and_ds(v)[0])(grid)  # (-4 * 2^m, 4 * 2^m)
            half = grid.shape[0] // 2
            s_lo, s_hi = s_grid[:half], s_grid[half:]
            hi = grid[half + jnp.minimum(jnp.argmax(s_hi >= target), half - 1)]
            lo = grid[jnp.minimum(jnp.argmax(s_lo <= target), half - 1)]
            res = newton(s_and_ds, target, lo, hi, xtol=4 * eps * hi,
                         ftol=16 * eps * (1 + jnp.abs(target)), max_iter=100)
            return x.at[k].set(res.x)

        return jax.lax.fori_loop(start, d, body, x)


def identity_terms(dim: int, terms: int, rectifier: str):
    """``(coef, index)`` of the identity map with ``terms`` slots (needs ``terms >= 2``)."""
    index = np.zeros((dim, terms, dim), np.int32)
    coef = np.zeros((dim, terms), np.float32)
    for k in range(dim):
        index[k, 1, k] = 1
        coef[k, 1] = _IDENTITY_SLOPE[rectifier]
    return coef, index


def triangular_map(
    dim: int,
    terms: int,
    *,
    basis: str = "hermite",
    rectifier: str = "softplus",
    max_degree: int = 8,
    quadrature: int = 16,
    index: Optional[np.ndarray] = None,
) -> Bijector:
    """A monotone triangular map on R^dim (module docstring) as a ``Bijector``.

    Args:
      dim: event size.
      terms: slots per component (the padded number of multi-indices, >= 2).
      basis, rectifier: see ``nitsjax.transport.basis``.
      max_degree: largest 1-D degree a multi-index may hold.
      quadrature: Gauss–Legendre nodes of the integral over ``x_k``.
      index: optional (dim, terms, dim) multi-indices for ``init`` (default: the
        identity's constant and linear terms); ``fit_atm`` sets them in the params.

    Returns:
      A ``Bijector`` named ``"atm"`` with params ``{"coef", "index"}``.
    """
    check_positive_int(dim, "dim")
    check_positive_int(terms, "terms", minimum=2)
    comp = Component(basis, rectifier, max_degree, quadrature)
    coef0, index0 = identity_terms(dim, terms, rectifier)
    if index is not None:
        index0 = np.asarray(index, np.int32)
        if index0.shape != (dim, terms, dim) or index0.min() < 0 or index0.max() > max_degree:
            raise ValueError(f"index: expected ({dim}, {terms}, {dim}) integers in "
                             f"[0, {max_degree}], got shape {index0.shape}")

    def init(key):
        return {"coef": jnp.asarray(coef0), "index": jnp.asarray(index0)}

    def forward(params, x, context=None, key=None):
        coef = params["coef"].astype(x.dtype)
        s, log_ds = comp.all_components(coef, params["index"], x)
        return s, jnp.sum(log_ds)

    def inverse(params, z, context=None, key=None):
        coef = params["coef"].astype(z.dtype)
        x = comp.solve_from(coef, params["index"], z, jnp.zeros_like(z), 0)
        _, log_ds = comp.all_components(coef, params["index"], x)
        return x, -jnp.sum(log_ds)

    return Bijector(init, forward, inverse, event_size=dim, name="atm")


@dataclasses.dataclass(frozen=True, eq=False)
class TransportFlow(Flow):
    """A monotone triangular map behind a per-coordinate standardisation, with a
    standard normal base (``fit_atm`` builds and fits it).

    Params ``{"bijector": {"standardize": {"frozen", "learned"}, "atm": {"coef",
    "index"}}, "base": {}}``: the standardisation is the data's per-coordinate mean and
    standard deviation (a diagonal map, so the triangular structure and the active
    variables are those of the data's coordinates), and the density is in the data's units.

    Beyond ``Flow``: ``conditional_log_prob`` and ``conditional_sample`` (the lower
    components of a triangular map are the conditionals of the later coordinates).
    """

    component: Optional[Component] = None

    def _check_given(self, given) -> int:
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or not (
                0 <= given < self.dim):
            raise ValueError(f"given: expected an integer in [0, {self.dim - 1}] (the number "
                             f"of leading coordinates conditioned on), got {given!r}")
        return int(given)

    def conditional_log_prob(self, params, x, given: int) -> Array:
        """``log p(x_{given+1..d} | x_1..x_given)`` of each row of ``x`` (n, dim) -> (n,)
        (``given`` leading coordinates conditioned on; ``given=0`` is ``log_prob``)."""
        x = check_data(x, self.dim, "x")
        return _conditional_log_prob(self, params, jnp.asarray(x), self._check_given(given))

    def conditional_sample(self, params, key, x_given, n: int) -> Array:
        """``n`` draws of the whole row given its first ``k`` coordinates ``x_given``:
        shape (k,) (shared by all draws) or (n, k) -> (n, dim), the first ``k`` columns
        equal to ``x_given``."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        xg = np.asarray(x_given, dtype=np.float64)
        if xg.ndim == 1:
            xg = np.broadcast_to(xg, (n, xg.shape[0]))
        if xg.ndim != 2 or xg.shape[0] != n or not 1 <= xg.shape[1] < self.dim:
            raise ValueError(
                f"x_given: expected shape (k,) or ({n}, k) with 1 <= k < {self.dim}, got "
                f"{np.shape(x_given)}")
        if not np.all(np.isfinite(xg)):
            raise ValueError("x_given: contains NaN or inf")
        xg = jnp.asarray(xg, jnp.result_type(float))
        return _conditional_sample(self, params, key, xg)

    # -------------------------------------------------------------- pure helpers
    def coordinate_log_probs(self, params, x):
        """Per-coordinate terms of ``log p(x)`` for one row ``x`` (d,) -> (d,):
        ``log N(S_k) + log dS_k/dx_k + log |d standardise_k / d x_k|``."""
        parts = params["bijector"]
        std = self.bijector_parts["standardize"]
        y, dy = jax.jvp(lambda a: std.forward(parts["standardize"], a)[0], (x,),
                        (jnp.ones_like(x),))
        p = parts["atm"]
        s, log_ds = self.component.all_components(p["coef"].astype(x.dtype), p["index"], y)
        return -0.5 * s * s - 0.5 * jnp.log(2 * jnp.pi) + log_ds + jnp.log(jnp.abs(dy))

    @property
    def bijector_parts(self):
        return _parts(self.dim)


@functools.cache
def _parts(dim: int):
    from nitsjax.flows.common import standardize_layer

    return {"standardize": standardize_layer(dim, "diagonal")}


@functools.partial(jax.jit, static_argnums=(0, 3))
def _conditional_log_prob(flow, params, x, given):
    terms = jax.vmap(lambda r: flow.coordinate_log_probs(params, r))(x)
    return jnp.sum(terms[:, given:], axis=1)


@functools.partial(jax.jit, static_argnums=0)
def _conditional_sample(flow, params, key, x_given):
    n, k = x_given.shape
    d = flow.dim
    parts = params["bijector"]
    std = flow.bijector_parts["standardize"]
    p = parts["atm"]
    z = jax.random.normal(key, (n, d), x_given.dtype)

    def one(xg, zi):
        full = jnp.concatenate([xg, jnp.zeros((d - k,), xg.dtype)])
        y, _ = std.forward(parts["standardize"], full)
        y = flow.component.solve_from(p["coef"].astype(y.dtype), p["index"], zi, y, k)
        x, _ = std.inverse(parts["standardize"], y)
        return x.at[:k].set(xg)

    return jax.vmap(one)(x_given, z)


def atm_flow(dim: int, *, terms: int, basis: str = "hermite", rectifier: str = "softplus",
             max_degree: int = 8, quadrature: int = 16) -> TransportFlow:
    """An (unfitted: identity) ``TransportFlow`` on R^dim with ``terms`` slots per
    component; ``fit_atm`` returns a fitted one. Flows built with the same arguments are
    equal (they share compiled functions)."""
    core = triangular_map(dim, terms, basis=basis, rectifier=rectifier,
                          max_degree=max_degree, quadrature=quadrature)
    bij = flow_bijector(core, dim, "diagonal")
    comp = Component(basis, rectifier, max_degree, quadrature)
    spec = ("atm", dim, terms, comp.key)
    return TransportFlow(standard_normal(dim), bij, dim, None, name="atm", spec=spec,
                         component=comp)
