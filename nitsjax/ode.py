"""ODE flows with diffrax: a state and its log-density change, integrated together.

For an ODE ``dz/dt = f(t, z)`` the log-density of ``z(t)`` changes by
``d log p(z(t)) / dt = -tr(df/dz)`` (Chen, Rubanova, Bettencourt & Duvenaud, "Neural Ordinary
Differential Equations", NeurIPS 2018); FFJORD (Grathwohl, Chen, Bettencourt, Sutskever &
Duvenaud, ICLR 2019) replaces the trace by Hutchinson's unbiased estimator
``E[eps^T (df/dz) eps]`` with one probe ``eps`` held fixed along the trajectory. Hence, with
``z = z(t1)`` the solution started at ``z(t0) = x``,

    log p_{t0}(x) = log p_{t1}(z) + log_det,    log_det = int_{t0}^{t1} tr(df/dz)(t, z(t)) dt,

and ``log_det = log |det dz/dx|`` exactly (up to the solver's error) when ``trace="exact"``.
``t1 < t0`` integrates backwards in time (the inverse map), with ``log_det`` of that map.

The vector field is a pure function of ONE event::

    vector_field(params, t, z, context) -> dz/dt
      t: scalar time; z: (dim,); context: (context_dim,) or None; returns (dim,)

and everything here is vmapped over a batch of events (each event gets its own adaptive
steps, so a sample's result does not depend on the rest of its batch). The base density is
the caller's: ``log_prob`` takes any ``base_log_prob`` (a Gaussian for a CNF or the
probability-flow ODE of a diffusion model, a tensor-train density for a tensorizing flow).

Options (static, Python values):

- ``trace``: ``"exact"`` (``jax.jacfwd``: ``dim`` JVPs per evaluation, for small ``dim``) or
  ``"hutchinson"`` (one JVP per evaluation and probe; needs ``key``);
- ``probe``: Hutchinson's probe distribution, ``"rademacher"`` (lower variance) or
  ``"gaussian"``;
- ``solver``: an adaptive Runge-Kutta method of diffrax, ``"tsit5"`` (default),
  ``"dopri5"``, ``"dopri8"``, ``"bosh3"`` or ``"heun"``, with a ``PIDController(rtol, atol)``;
- ``adjoint``: how gradients flow through the solve: ``"recursive"`` (diffrax's
  ``RecursiveCheckpointAdjoint``: backpropagation through the solver's steps with
  checkpointing; exact gradients of the discretised solve, default), ``"backsolve"``
  (``BacksolveAdjoint``: the continuous adjoint ODE solved backwards, O(1) memory, gradients
  approximate to the tolerances) or ``"direct"`` (``DirectAdjoint``, also forward-mode).

Shapes are static and there is no host synchronisation: the functions jit, grad and run on
CPU/GPU/TPU. A solve that exceeds ``max_steps`` raises (diffrax's runtime error).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import diffrax
import jax
import jax.numpy as jnp

Array = jax.Array
VectorField = Callable[[Any, Array, Array, Optional[Array]], Array]

TRACES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")
SOLVERS = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "bosh3": diffrax.Bosh3,
    "heun": diffrax.Heun,
}
ADJOINTS = ("recursive", "backsolve", "direct")


def check_options(*, trace: str = "exact", probe: str = "rademacher", solver: str = "tsit5",
                  rtol: float = 1e-5, atol: float = 1e-5, adjoint: str = "recursive",
                  max_steps: int = 4096) -> None:
    """Raise a ValueError naming the first bad option (all are static Python values)."""
    if trace not in TRACES:
        raise ValueError(f"trace: expected one of {TRACES}, got {trace!r}; 'exact' for small "
                         f"dim, 'hutchinson' (with a key) to train in larger dim")
    if probe not in PROBES:
        raise ValueError(f"probe: expected one of {PROBES}, got {probe!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver: expected one of {tuple(SOLVERS)}, got {solver!r}")
    if adjoint not in ADJOINTS:
        raise ValueError(f"adjoint: expected one of {ADJOINTS}, got {adjoint!r}")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if isinstance(tol, (int, float)) and not tol > 0:
            raise ValueError(f"{name}: expected a positive tolerance such as 1e-5, got {tol}")
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ValueError(f"max_steps: expected an integer >= 1, got {max_steps!r}")


def divergence(f: Callable[[Array], Array], z: Array, *, trace: str = "exact",
               eps: Optional[Array] = None) -> tuple[Array, Array]:
    """``f(z)`` and the trace of its Jacobian at ``z``, exact or estimated.

    Args:
      f: a map R^dim -> R^dim of one event.
      z: the point, shape (dim,).
      trace: "exact" (the Jacobian by ``jax.jacfwd``) or "hutchinson" (``eps^T J eps`` by
        one ``jax.jvp``).
      eps: the probe, shape (dim,), required for "hutchinson".

    Returns:
      ``(f(z), tr)``: shapes (dim,) and ().
    """
    if trace == "exact":
        dz, jvp = jax.linearize(f, z)
        jac = jax.vmap(jvp, out_axes=1)(jnp.eye(z.shape[-1], dtype=z.dtype))
        return dz, jnp.trace(jac)
    dz, jv = jax.jvp(f, (z,), (eps,))
    return dz, jnp.vdot(eps, jv)


def _solve(term, y0, args, t0, t1, *, solver, rtol, atol, adjoint, dt0, max_steps):
    method = SOLVERS[solver]()
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    if adjoint == "recursive":
        adj = diffrax.RecursiveCheckpointAdjoint()
    elif adjoint == "backsolve":
        adj = diffrax.BacksolveAdjoint(solver=method, stepsize_controller=controller)
    else:
        adj = diffrax.DirectAdjoint()
    sol = diffrax.diffeqsolve(term, method, t0, t1, dt0, y0, args=args,
                              stepsize_controller=controller, adjoint=adj,
                              max_steps=max_steps, saveat=diffrax.SaveAt(t1=True))
    return jax.tree_util.tree_map(lambda y: y[-1], sol.ys)


def _times(t0, t1, dtype):
    return jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)


def _batched_context(context, n):
    if context is None:
        return None
    if context.ndim != 2 or context.shape[0] != n:
        raise ValueError(f"context: expected shape ({n}, context_dim), got "
                         f"{tuple(context.shape)}")
    return context


def _check_x(x):
    if x.ndim != 2:
        raise ValueError(f"x: expected a batch of shape (n, dim), got {tuple(x.shape)}")


def integrate(vector_field: VectorField, params: Any, x: Array, t0, t1, *,
              context: Optional[Array] = None, solver: str = "tsit5", rtol: float = 1e-5,
              atol: float = 1e-5, adjoint: str = "recursive", dt0: Optional[float] = None,
              max_steps: int = 4096) -> Array:
    """The ODE's solution ``z(t1)`` from ``z(t0) = x``, without the log-density (sampling).

    Args:
      vector_field: ``vector_field(params, t, z, context) -> dz/dt`` for one event.
      params: the vector field's parameters (any pytree; gradients flow to it).
      x: initial states, shape (n, dim).
      t0, t1: start and end times (scalars; ``t1 < t0`` integrates backwards).
      context: conditioning inputs, shape (n, context_dim), or None.
      solver, rtol, atol, adjoint, dt0, max_steps: see the module docstring; ``dt0=None``
        lets the controller choose the first step.

    Returns:
      ``z(t1)``, shape (n, dim).
    """
    check_options(solver=solver, rtol=rtol, atol=atol, adjoint=adjoint, max_steps=max_steps)
    _check_x(x)
    context = _batched_context(context, x.shape[0])
    t0, t1 = _times(t0, t1, x.dtype)

    def field(t, z, args):
        p, c = args
        return vector_field(p, t, z, c)

    term = diffrax.ODETerm(field)

    def one(xi, ci):
        return _solve(term, xi, (params, ci), t0, t1, solver=solver, rtol=rtol, atol=atol,
                      adjoint=adjoint, dt0=dt0, max_steps=max_steps)

    return jax.vmap(one)(x, context)


def log_det_flow(vector_field: VectorField, params: Any, x: Array, t0, t1, *,
                 trace: str = "exact", key: Optional[Array] = None, probe: str = "rademacher",
                 solver: str = "tsit5", rtol: float = 1e-5, atol: float = 1e-5,
                 adjoint: str = "recursive", context: Optional[Array] = None,
                 dt0: Optional[float] = None, max_steps: int = 4096) -> tuple[Array, Array]:
    """Integrate ``dz/dt = f(t, z, context)`` from ``x`` at ``t0`` to ``t1`` with its log-det.

    Args:
      vector_field: ``vector_field(params, t, z, context) -> dz/dt`` for one event
        (t: scalar, z: (dim,), context: (context_dim,) or None; returns (dim,)).
      params: the vector field's parameters (any pytree; gradients flow to it).
      x: initial states ``z(t0)``, shape (n, dim).
      t0, t1: start and end times (scalars; ``t1 < t0`` integrates backwards).
      trace: "exact" or "hutchinson" (the estimate is unbiased for ``log_det``).
      key: PRNG key for Hutchinson's probes (one probe per event, fixed along the path);
        required for "hutchinson", ignored for "exact".
      probe: "rademacher" or "gaussian".
      solver: "tsit5", "dopri5", "dopri8", "bosh3" or "heun" (adaptive, PID controller).
      rtol, atol: the controller's relative and absolute tolerances (> 0).
      adjoint: "recursive" (checkpointed backpropagation), "backsolve" (continuous adjoint)
        or "direct".
      context: conditioning inputs, shape (n, context_dim), or None.
      dt0: first step size, or None to let the controller choose.
      max_steps: the most steps per solve (static; a longer solve raises).

    Returns:
      ``(z, log_det)``: ``z = z(t1)``, shape (n, dim), and
      ``log_det = int_{t0}^{t1} tr(df/dz) dt``, shape (n,), so that
      ``log p_{t0}(x) = log p_{t1}(z) + log_det``.
    """
    check_options(trace=trace, probe=probe, solver=solver, rtol=rtol, atol=atol,
                  adjoint=adjoint, max_steps=max_steps)
    _check_x(x)
    context = _batched_context(context, x.shape[0])
    if trace == "hutchinson":
        if key is None:
            raise ValueError("key: trace='hutchinson' draws random probes and needs a PRNG "
                             "key (jax.random.key(0)); or use trace='exact'")
        if probe == "rademacher":
            eps = jax.random.rademacher(key, x.shape, dtype=x.dtype)
        else:
            eps = jax.random.normal(key, x.shape, dtype=x.dtype)
    else:
        eps = jnp.zeros_like(x)
    t0, t1 = _times(t0, t1, x.dtype)

    def field(t, y, args):
        p, c, e = args
        z, _ = y
        dz, tr = divergence(lambda zz: vector_field(p, t, zz, c), z, trace=trace, eps=e)
        return dz, tr

    term = diffrax.ODETerm(field)

    def one(xi, ci, ei):
        y0 = (xi, jnp.zeros((), xi.dtype))
        return _solve(term, y0, (params, ci, ei), t0, t1, solver=solver, rtol=rtol,
                      atol=atol, adjoint=adjoint, dt0=dt0, max_steps=max_steps)

    z, log_det = jax.vmap(one)(x, context, eps)
    return z, log_det


def log_prob(vector_field: VectorField, params: Any, x: Array,
             base_log_prob: Callable[[Array], Array], t0, t1, **options) -> Array:
    """``log p_{t0}(x) = base_log_prob(z(t1)) + log_det`` for a pluggable base density.

    Args:
      vector_field, params, x, t0, t1: as in ``log_det_flow``.
      base_log_prob: the density at ``t1``: maps (n, dim) to (n,) log-densities (a standard
        normal, a tensor-train density, ...).
      **options: ``log_det_flow``'s keyword options (trace, key, solver, rtol, atol,
        adjoint, context, ...).

    Returns:
      log-densities, shape (n,).
    """
    z, log_det = log_det_flow(vector_field, params, x, t0, t1, **options)
    return base_log_prob(z) + log_det


def standard_normal_log_prob(z: Array) -> Array:
    """log N(z; 0, I) summed over the event: (n, dim) -> (n,)."""
    d = z.shape[-1]
    return -0.5 * jnp.sum(z * z, axis=-1) - 0.5 * d * jnp.log(2 * jnp.pi).astype(z.dtype)
