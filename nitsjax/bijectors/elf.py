"""ELF layers: residual autoregressive maps made of 1-D one-hidden-layer networks with a
closed-form Lipschitz bound, invertible by construction and inverted in parallel.

Gopal, "ELF: Exact-Lipschitz Based Universal Density Approximator Flow", arXiv
2112.06997. Built from the paper's abstract and the residual-flow construction it names
(the full text was not available when this was written): a one-hidden-layer 1-D network
``h(x) = sum_j u_j tanh(w_j x + b_j)`` has the closed-form Lipschitz bound
``L = sum_j |u_j w_j|`` (``|tanh'| <= 1``, attained when the units' slopes peak
together), so ``h_c = h * c / max(L, c)`` has Lipschitz constant at most ``c < 1`` and
``x + h_c(x)`` is strictly increasing with slope in ``[1 - c, 1 + c]``. An ELF layer
applies, to every coordinate,

    z_i = exp(s_i) * (x_i + h_c(x_i; u_i, w_i, b_i)) + t_i,

with ``(s_i, t_i, u_i, w_i, b_i)`` from a MADE conditioner on ``x_<i`` (and a context).
Density evaluation is one network pass (as MAF); the log-determinant is
``sum_i s_i + log(1 + h_c'(x_i))``, exact.

Inverse (sampling): all coordinates at once by the fixed-point iteration of residual
flows,

    x <- (z - t(x)) * exp(-s(x)) - h_c(x; theta(x)),

one network pass per iteration inside ``lax.while_loop``. For coordinate ``i`` with
``x_<i`` fixed the map is a contraction with factor ``c`` (Banach), and the Jacobian of
the whole iteration is strictly lower triangular apart from a diagonal bounded by ``c``,
so the iteration converges to the unique root for any start; the error falls like
``c^k`` (times a polynomial in ``k`` for the coupling through ``x_<i``). It stops when
the largest relative update ``|dx| / (1 + |x|)`` is at most ``tol``, or stops shrinking
while below ``64 tol`` (the rounding floor, common in float32), or after ``max_iter``
iterations (under ``vmap`` the loop runs until the slowest event stops);
``inverse_with_info`` also returns the iteration count and the final residual
``max_i |F(x)_i - z_i|`` (``elf_layer(...).inverse`` is the same without them). The
loop is not differentiated (train with the density direction).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.affine import _log_scale
from nitsjax.bijectors.base import Bijector
from nitsjax.nn.made import MADE


class SolveInfo(NamedTuple):
    """What an ELF inverse did, per event: ``iterations`` (int), ``residual``
    (``max_i |F(x)_i - z_i|`` at the returned ``x``), ``converged`` (a stopping rule,
    tolerance or rounding floor, fired before ``max_iter``)."""

    iterations: jax.Array
    residual: jax.Array
    converged: jax.Array


def check_lipschitz(lipschitz) -> float:
    if isinstance(lipschitz, bool) or not isinstance(lipschitz, (int, float)) or not (
            0.0 < float(lipschitz) < 1.0):
        raise ValueError(f"lipschitz: expected a number in (0, 1) (the bound on each 1-D "
                         f"residual network; 1 would lose invertibility), got {lipschitz!r}")
    return float(lipschitz)


def elf_network(theta, x, lipschitz: float):
    """The rescaled 1-D network and its derivative at scalar ``x``: ``theta = (u (K,),
    w (K,), b (K,))`` -> ``(h_c(x), h_c'(x))`` with ``Lip(h_c) <= lipschitz``."""
    u, w, b = theta
    a = jnp.tanh(w * x + b)
    bound = jnp.sum(jnp.abs(u * w))
    factor = lipschitz / jnp.maximum(bound, lipschitz)
    return factor * jnp.sum(u * a), factor * jnp.sum(u * w * (1.0 - a * a))


def elf_layer(
    dim: int,
    hidden: Sequence[int] = (128, 128),
    *,
    units: int = 8,
    lipschitz: float = 0.8,
    context_dim: Optional[int] = None,
    dropout: float = 0.0,
    max_iter: int = 1000,
    tol: Optional[float] = None,
    seed: int = 0,
) -> Bijector:
    """One ELF layer on R^dim (module docstring).

    Args:
      dim: event size.
      hidden: MADE hidden widths.
      units: hidden units ``K`` of each 1-D network.
      lipschitz: bound ``c`` in (0, 1) on each 1-D residual network; smaller converges
        faster when sampling (error ~ ``c^k``), larger bends more per layer (slopes in
        ``[1 - c, 1 + c]`` before the affine part).
      context_dim: size of a conditioning input, or None.
      dropout: MADE dropout rate, active only when a ``key`` is passed.
      max_iter: cap on fixed-point iterations of the inverse.
      tol: relative stopping tolerance of the inverse (default ``4 * eps`` of the dtype).
      seed: MADE seed.

    Returns:
      A ``Bijector`` named ``"elf"``; ``elf_parts`` (same arguments) also returns the
      inverse that reports its iterations and residual.
    """
    return elf_parts(dim, hidden, units=units, lipschitz=lipschitz, context_dim=context_dim,
                     dropout=dropout, max_iter=max_iter, tol=tol, seed=seed)[0]


def elf_parts(dim, hidden=(128, 128), *, units=8, lipschitz=0.8, context_dim=None,
              dropout=0.0, max_iter=1000, tol=None, seed=0):
    """``(bijector, inverse_with_info)`` of an ELF layer (``elf_layer``'s arguments);
    ``inverse_with_info(params, z, context=None) -> (x, log|det dx/dz|, SolveInfo)``."""
    c = check_lipschitz(lipschitz)
    k = int(units)
    if k < 1:
        raise ValueError(f"units: expected a positive integer, got {units!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter: expected a positive integer, got {max_iter!r}")
    # theta per coordinate: s, t, u (K), w (K), b (K); identity: s = t = u = 0
    identity = np.concatenate([[0.0, 0.0], np.zeros(k), np.ones(k), np.linspace(-2, 2, k)])
    made = MADE(dim=dim, hidden=tuple(hidden), num_params=2 + 3 * k,
                out_bias=identity.astype(np.float32), degrees="sequential", residual=False,
                dropout=dropout, seed=seed)

    def theta_of(params, x, context, key):
        if key is None:
            th = made.apply(params, x, context)
        else:
            th = made.apply(params, x, context, deterministic=False, rngs={"dropout": key})
        th = th.astype(x.dtype)
        # log-scale softly bounded as in the affine layers: finite for any input
        theta = (th[:, 2:2 + k], th[:, 2 + k:2 + 2 * k], th[:, 2 + 2 * k:])
        return _log_scale(th[:, 0]), th[:, 1], theta

    def nets(theta, x):
        return jax.vmap(lambda u, w, b, xi: elf_network((u, w, b), xi, c))(*theta, x)

    def init(key):
        ctx = None if context_dim is None else jnp.zeros(context_dim)
        return made.init(key, jnp.zeros(dim), ctx)

    def forward(params, x, context=None, key=None):
        s, t, theta = theta_of(params, x, context, key)
        h, dh = nets(theta, x)
        return jnp.exp(s) * (x + h) + t, jnp.sum(s + jnp.log1p(dh))

    def inverse_with_info(params, z, context=None, key=None):
        eps = jnp.finfo(z.dtype).eps
        rtol = 4 * eps if tol is None else jnp.asarray(tol, z.dtype)

        def update(x):
            s, t, theta = theta_of(params, x, context, key)
            h, _ = nets(theta, x)
            return (z - t) * jnp.exp(-s) - h

        def cond(state):
            it, _, _, done = state
            return (it < max_iter) & ~done

        def body(state):
            it, x, prev, _ = state
            x_new = update(x)
            delta = jnp.max(jnp.abs(x_new - x) / (1 + jnp.abs(x_new)))
            # converged, or stuck at the rounding floor (no longer shrinking near tol)
            done = (delta <= rtol) | ((delta >= prev) & (delta <= 64 * rtol))
            return it + 1, x_new, delta, done

        x0 = z  # the fresh layer is the identity
        start = (jnp.asarray(0), x0, jnp.asarray(jnp.inf, z.dtype), jnp.asarray(False))
        its, x, _, done = jax.lax.while_loop(cond, body, start)
        zz, ld = forward(params, x, context, key)
        info = SolveInfo(its, jnp.max(jnp.abs(zz - z)), done)
        return x, -ld, info

    def inverse(params, z, context=None, key=None):
        x, ld, _ = inverse_with_info(params, z, context, key)
        return x, ld

    return Bijector(init, forward, inverse, event_size=dim, name="elf"), inverse_with_info
