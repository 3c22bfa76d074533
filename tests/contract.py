"""The generic checks every bijector and every flow must pass (DESIGN.md, the contract).

A ``BijectorCase`` names a factory returning a fresh ``Bijector`` plus the event and
context sizes and the scale/shift of inputs inside its domain. Test files register cases
in ``tests/cases_*.py`` lists ``BIJECTORS`` and ``FLOWS``; ``test_contract.py`` runs
every check on every case.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class BijectorCase:
    name: str
    make: Callable  # () -> Bijector
    dim: int
    context_dim: Optional[int] = None
    low: float = -2.0  # inputs are drawn uniformly in [low, high]
    high: float = 2.0
    atol: float = 1e-4  # float32 tolerance; float64 uses 1e3 x tighter where possible
    perturb: float = 0.5  # scale of random perturbation of params (so not at identity)
    # Looser cases (ODE solves: the solver's tolerance, not rounding, bounds the error):
    rtol: float = 1e-4  # float32 relative tolerance
    atol64: Optional[float] = None  # float64 tolerances; default atol * 1e-3 and 1e-6
    rtol64: float = 1e-6
    slow: tuple = ()  # dtypes ("float32", "float64") whose check runs with the slow tests

    def __str__(self):
        return self.name


@dataclasses.dataclass(frozen=True)
class FlowCase:
    name: str
    make: Callable  # () -> Flow
    low: float = -6.0  # box over which the 2-D density is integrated (if dim == 2)
    high: float = 6.0
    slow: bool = False  # run with the slow tests (make test-all)

    def __str__(self):
        return self.name


def perturbed_params(bij, key, scale):
    """Fresh params plus noise, so tests do not sit at the identity initialisation.

    Compiled in one program: eager initialisation compiles every op separately."""

    @jax.jit
    def make(key):
        params = bij.init(key)
        leaves, tree = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.fold_in(key, 1), max(len(leaves), 1))
        new = [
            leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
            if jnp.issubdtype(leaf.dtype, jnp.floating)
            else leaf
            for leaf, k in zip(leaves, keys)
        ]
        return jax.tree_util.tree_unflatten(tree, new)

    return make(key)


def cast(tree, dtype):
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


def inputs(case: BijectorCase, key, n, dtype):
    kx, kc = jax.random.split(key)
    x = jax.random.uniform(kx, (n, case.dim), dtype, case.low, case.high)
    c = None
    if case.context_dim is not None:
        c = jax.random.normal(kc, (n, case.context_dim), dtype)
    return x, c


def vm(fn, params, x, c):
    if c is None:
        return jax.vmap(lambda xi: fn(params, xi, None))(x)
    return jax.vmap(lambda xi, ci: fn(params, xi, ci))(x, c)


def check_all(case: BijectorCase, dtype, n=8):
    """Invertibility, log-det vs jacfwd, inverse log-det = -forward, jit == no-jit, and
    (bijectors that have one) ``conditional_inverse(x, forward(x)) == x``.

    The heavy checks run compiled (one program per case); the no-jit comparison runs the
    forward pass op by op once."""
    bij = case.make()
    params = cast(perturbed_params(bij, jax.random.key(0), case.perturb), dtype)
    x, c = inputs(case, jax.random.key(1), n, dtype)
    tight = dtype == jnp.float64
    atol = case.atol if not tight else case.atol * 1e-3 if case.atol64 is None else case.atol64
    rtol = case.rtol64 if tight else case.rtol

    def one(p, xi, ci):
        z, ld = bij.forward(p, xi, ci)
        x2, ld_inv = bij.inverse(p, z, ci)
        jac = jax.jacfwd(lambda a: bij.forward(p, a, ci)[0])(xi)
        x3 = xi if bij.conditional_inverse is None else bij.conditional_inverse(p, xi, z, ci)
        return z, ld, x2, ld_inv, jnp.linalg.slogdet(jac), x3

    run = jax.jit(lambda p, a, b: vm(one, p, a, b))
    z, ld, x2, ld_inv, (sign, logabs), x3 = run(params, x, c)
    assert z.shape == x.shape and ld.shape == (n,)
    assert z.dtype == dtype and ld.dtype == dtype, (z.dtype, ld.dtype)
    assert np.all(np.isfinite(z)) and np.all(np.isfinite(ld))
    tol = dict(atol=10 * atol, rtol=10 * rtol)
    np.testing.assert_allclose(x2, x, **tol, err_msg="inverse(forward(x))")
    np.testing.assert_allclose(ld_inv, -ld, **tol, err_msg="inverse logdet")
    np.testing.assert_allclose(x3, x, **tol, err_msg="conditional_inverse(x, forward(x))")
    assert np.all(sign != 0), "singular Jacobian"
    np.testing.assert_allclose(logabs, ld, **tol, err_msg="logdet vs jacfwd")

    z_eager, ld_eager = vm(bij.forward, params, x, c)
    np.testing.assert_allclose(z_eager, z, atol=atol, rtol=rtol, err_msg="jit vs no-jit forward")
    np.testing.assert_allclose(ld_eager, ld, atol=atol, rtol=rtol, err_msg="jit vs no-jit logdet")
