"""The 1-D ingredients of a monotone triangular map: basis functions, rectifiers and the
Gauss–Legendre rule.

Baptista, Marzouk, Zahm, "On the representation and learning of monotone triangular
transport maps", arXiv 2009.10303 (Found. Comput. Math. 2023). A component's smooth
function is ``f(x_1..x_k) = sum_alpha c_alpha prod_j psi_{alpha_j}(x_j)`` over a set of
multi-indices ``alpha``; the 1-D functions ``psi_p`` are tabulated here for every degree
``p <= max_degree`` at once.

Bases (``BASES``):

- ``"hermite"``: Hermite functions with linear terms, as in the paper's experiments:
  ``psi_0 = 1``, ``psi_1 = x`` and, for ``p >= 2``, the probabilists' Hermite polynomial
  ``He_{p-2}`` times the Gaussian weight ``exp(-x^2 / 4)``, normalised in ``L^2(R)``
  (``int psi_p^2 = 1``). Away from the data the component is then linear in each
  variable, so the map's tails are Gaussian.
- ``"polynomial"``: the probabilists' Hermite polynomials ``He_p / sqrt(p!)``,
  orthonormal under the standard normal (the standardised data's scale), so the greedy
  rule's gradients compare terms of equal size.

Rectifiers ``g`` (``RECTIFIERS``), positive maps applied to ``d f / d x_k``:
``"softplus"`` ``log(1 + e^s)`` (the paper's choice: Lipschitz, so the objective has no
spurious local minima), ``"exp"`` (the classical integrated-exponential map) and
``"elu"`` (the shifted ELU ``s + 1`` for ``s > 0``, ``e^s`` otherwise).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

BASES = ("hermite", "polynomial")
RECTIFIERS = ("softplus", "exp", "elu")


def check_basis(basis: str) -> str:
    if basis not in BASES:
        raise ValueError(
            f"basis: expected one of {BASES} ('hermite': Hermite functions with linear "
            f"terms, the paper's basis), got {basis!r}"
        )
    return basis


def check_rectifier(rectifier: str) -> str:
    if rectifier not in RECTIFIERS:
        raise ValueError(f"rectifier: expected one of {RECTIFIERS}, got {rectifier!r}")
    return rectifier


def _hermite_polys(x: Array, n: int) -> Array:
    """``He_0..He_{n-1}`` at ``x`` (any shape) -> shape ``x.shape + (n,)``, by the
    recurrence ``He_{m+1} = x He_m - m He_{m-1}``."""
    out = [jnp.ones_like(x), x]
    for m in range(1, n - 1):
        out.append(x * out[m] - m * out[m - 1])
    return jnp.stack(out[:n], axis=-1)


def basis_table(basis: str, max_degree: int) -> Callable[[Array], Array]:
    """``x -> (psi_0(x), ..., psi_max_degree(x))``, shape ``x.shape + (max_degree + 1,)``."""
    check_basis(basis)
    n = max_degree + 1
    if basis == "polynomial":
        scale = np.array([1.0 / math.sqrt(math.factorial(p)) for p in range(n)])
        return lambda x: _hermite_polys(x, max(n, 2))[..., :n] * scale.astype(x.dtype)
    norms = np.array([1.0 / math.sqrt(math.sqrt(2 * math.pi) * math.factorial(m))
                      for m in range(max(n - 2, 1))])

    def table(x):
        head = [jnp.ones_like(x), x][:n]
        if n <= 2:
            return jnp.stack(head, -1)
        he = _hermite_polys(x, max(n - 2, 2))[..., : n - 2]
        bumps = he * jnp.exp(-0.25 * x * x)[..., None] * norms[: n - 2].astype(x.dtype)
        return jnp.concatenate([jnp.stack(head, -1), bumps], -1)

    return table


def basis_with_derivative(basis: str, max_degree: int):
    """``x -> (table(x), d table / dx)``, both ``x.shape + (max_degree + 1,)`` (one jvp)."""
    table = basis_table(basis, max_degree)
    return lambda x: jax.jvp(table, (x,), (jnp.ones_like(x),))


def rectifier(name: str) -> Callable[[Array], Array]:
    """The positive function ``g`` named ``name`` (``RECTIFIERS``)."""
    check_rectifier(name)
    if name == "softplus":
        return jax.nn.softplus
    if name == "exp":
        return jnp.exp
    return lambda s: jnp.where(s > 0, s + 1.0, jnp.exp(jnp.minimum(s, 0.0)))


def log_rectifier(name: str) -> Callable[[Array], Array]:
    """``log g``, computed stably (``log softplus`` for very negative arguments is ``s``)."""
    check_rectifier(name)
    if name == "softplus":
        def log_softplus(s):
            return jnp.where(s < -30.0, s, jnp.log(jax.nn.softplus(jnp.maximum(s, -30.0))))
        return log_softplus
    if name == "exp":
        return lambda s: s
    return lambda s: jnp.where(s > 0, jnp.log1p(jnp.maximum(s, 0.0)), jnp.minimum(s, 0.0))


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``n``-point Gauss–Legendre rule on ``[0, 1]``."""
    t, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (t + 1.0), 0.5 * w
