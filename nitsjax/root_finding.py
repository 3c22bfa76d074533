"""Batched bracketing root finders for strictly increasing scalar functions.

Each solver finds ``x`` in ``[lo, hi]`` with ``F(x) = target`` *elementwise*: ``F`` maps an
array of points to an array of values of the same shape, and ``target``, ``lo``, ``hi``
broadcast to that shape. The iteration runs inside one ``lax.while_loop`` (no host
synchronisation), works under ``jit`` and ``vmap``, and always keeps a bracket around
the root, so the answer is never outside ``[lo, hi]``. This is the inverse transform
sampling step of NITS (Li & Kluger, "Neural Inverse Transform Sampler", ICML 2022).

Solvers (all stop after ``max_iter`` iterations at the latest; by default
``max_iter = ceil(log2((hi - lo) / xtol))``, the bisection count, with a small allowance
for the hybrids):

- ``bisection``: halves the bracket; ``|x - root| <= xtol / 2`` after the bound.
- ``newton``: safeguarded Newton (Numerical Recipes' ``rtsafe``): a Newton step when it
  stays inside the bracket and at least halves the step before last, a bisection step
  otherwise. Needs ``F'``; quadratic convergence near the root.
- ``chandrupatla``: Chandrupatla's (1997) derivative-free inverse-quadratic interpolation
  with bisection fallback, as described by Scherer, "Computational Physics" (2010).

``solve_monotone`` wraps any of them with derivatives by the implicit function theorem:
for ``F(theta, x) = u``, ``dx/du = 1 / f(x)`` and ``dx/dtheta = -(dF/dtheta) / f(x)`` with
``f = dF/dx``, as a ``jax.custom_jvp`` (so both forward and reverse mode work and the
loop itself is never differentiated).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

METHODS = ("bisection", "newton", "chandrupatla")


class RootResult(NamedTuple):
    """Result of a batched solve.

    Attributes:
      x: the root estimates.
      residual: ``F(x) - target`` at the returned ``x``.
      iterations: per element, the number of iterations it used before it converged.
      converged: per element, whether a stopping rule fired before ``max_iter``.
      lo, hi: the final bracket (``lo <= root <= hi`` when ``F(lo) <= target <= F(hi)``).
    """

    x: Array
    residual: Array
    iterations: Array
    converged: Array
    lo: Array
    hi: Array


def bisection_steps(width, xtol) -> int:
    """``ceil(log2(width / xtol))``: halvings that shrink a bracket of ``width`` below ``xtol``.

    ``width`` may be an array (per-dimension supports); the largest entry counts.
    Both must be concrete (Python or NumPy numbers), since the result is a static bound.
    """
    w = float(np.max(np.asarray(width)))
    t = float(xtol)
    if not (math.isfinite(w) and w > 0):
        raise ValueError(f"width: expected a finite positive bracket width, got {width!r}")
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"xtol: expected a finite positive tolerance, got {xtol!r}")
    return max(1, int(math.ceil(math.log2(w / t))))


def _default_max_iter(method: str, lo, hi, xtol) -> int:
    try:
        width = np.max(np.asarray(hi) - np.asarray(lo))
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError) as err:
        raise ValueError(
            "max_iter: lo/hi are traced values, so the iteration bound cannot be derived "
            "from them; pass max_iter=bisection_steps(width, xtol) explicitly"
        ) from err
    n = bisection_steps(width, xtol)
    # the hybrids fall back to bisection, but an accepted interpolation step need not
    # halve the bracket; allow a few extra iterations beyond the pure bisection count.
    return n if method == "bisection" else n + 8


def _prepare(target, lo, hi):
    target = jnp.asarray(target)
    dtype = jnp.result_type(target.dtype, jnp.asarray(lo).dtype, jnp.asarray(hi).dtype, float)
    shape = jnp.broadcast_shapes(jnp.shape(target), jnp.shape(lo), jnp.shape(hi))
    cast = lambda a: jnp.broadcast_to(jnp.asarray(a, dtype), shape)  # noqa: E731
    return cast(target), cast(lo), cast(hi)


def bisection(
    fn: Callable[[Array], Array], target, lo, hi, *, xtol: float, max_iter: Optional[int] = None
) -> RootResult:
    """Solve ``fn(x) = target`` for increasing ``fn`` by halving ``[lo, hi]``.

    Stops an element when its bracket is at most ``xtol`` wide; returns the midpoint.
    """
    max_iter = _default_max_iter("bisection", lo, hi, xtol) if max_iter is None else max_iter
    target, lo, hi = _prepare(target, lo, hi)
    xtol = jnp.asarray(xtol, lo.dtype)

    def cond(s):
        it, lo, hi, its, done = s
        return (it < max_iter) & ~jnp.all(done)

    def body(s):
        it, lo, hi, its, done = s
        mid = 0.5 * (lo + hi)
        right = fn(mid) < target
        lo = jnp.where(~done & right, mid, lo)
        hi = jnp.where(~done & ~right, mid, hi)
        its = its + (~done).astype(its.dtype)
        done = done | (hi - lo <= xtol)
        return it + 1, lo, hi, its, done

    zeros = jnp.zeros(lo.shape, jnp.int32)
    init = (jnp.asarray(0), lo, hi, zeros, hi - lo <= xtol)
    _, lo, hi, its, done = jax.lax.while_loop(cond, body, init)
    x = 0.5 * (lo + hi)
    return RootResult(x, fn(x) - target, its, done, lo, hi)


def newton(
    fn_and_deriv: Callable[[Array], tuple[Array, Array]],
    target,
    lo,
    hi,
    *,
    xtol: float,
    ftol: float = 0.0,
    max_iter: Optional[int] = None,
    x0=None,
) -> RootResult:
    """Safeguarded Newton for increasing ``fn``; ``fn_and_deriv(x) -> (fn(x), fn'(x))``.

    Each iteration takes the Newton step from the current iterate when it lands strictly
    inside the bracket and is at most half the step before last (so progress is at least
    geometric), and bisects otherwise; the bracket is updated with the sign of the new
    residual. An element stops when its last step is at most ``xtol``, its bracket is at
    most ``xtol`` wide, or ``|fn(x) - target| <= ftol``. ``x0`` (default: midpoint) is the
    starting iterate, clipped into the bracket.
    """
    max_iter = _default_max_iter("newton", lo, hi, xtol) if max_iter is None else max_iter
    target, lo, hi = _prepare(target, lo, hi)
    dtype = lo.dtype
    xtol = jnp.asarray(xtol, dtype)
    ftol = jnp.asarray(ftol, dtype)
    tiny = jnp.finfo(dtype).tiny

    x = 0.5 * (lo + hi) if x0 is None else jnp.clip(jnp.asarray(x0, dtype), lo, hi)
    fx, dfx = fn_and_deriv(x)
    r = fx - target
    lo = jnp.where(r < 0, x, lo)
    hi = jnp.where(r < 0, hi, x)
    width = hi - lo
    done = (width <= xtol) | (jnp.abs(r) <= ftol)

    def cond(s):
        return (s[0] < max_iter) & ~jnp.all(s[-1])

    def body(s):
        it, x, r, dfx, lo, hi, step, step_old, its, done = s
        safe_d = jnp.maximum(dfx, tiny)
        dn = r / safe_d
        xn = x - dn
        inside = (xn > lo) & (xn < hi) & jnp.isfinite(xn)
        fast = 2.0 * jnp.abs(r) <= jnp.abs(step_old) * safe_d
        # a Newton step below xtol is accepted even when it rounds onto the bracket end
        # (in float32 it can be below one ulp of x): that is convergence, not a stall
        small = jnp.abs(dn) <= xtol
        mid = 0.5 * (lo + hi)
        x_new = jnp.where((inside & fast) | small, jnp.clip(xn, lo, hi), mid)
        f_new, d_new = fn_and_deriv(x_new)
        r_new = f_new - target
        below = r_new < 0
        new_step = x_new - x
        keep = lambda new, old: jnp.where(done, old, new)  # noqa: E731
        lo_n = keep(jnp.where(below, x_new, lo), lo)
        hi_n = keep(jnp.where(below, hi, x_new), hi)
        stop = (
            (jnp.abs(new_step) <= xtol) | (hi_n - lo_n <= xtol) | (jnp.abs(r_new) <= ftol)
        )
        its = its + (~done).astype(its.dtype)
        return (
            it + 1,
            keep(x_new, x),
            keep(r_new, r),
            keep(d_new, dfx),
            lo_n,
            hi_n,
            keep(new_step, step),
            keep(step, step_old),
            its,
            done | stop,
        )

    zeros = jnp.zeros(lo.shape, jnp.int32)
    init = (jnp.asarray(0), x, r, dfx, lo, hi, width, width, zeros, done)
    _, x, r, _, lo, hi, _, _, its, done = jax.lax.while_loop(cond, body, init)
    return RootResult(x, r, its, done, lo, hi)


def chandrupatla(
    fn: Callable[[Array], Array],
    target,
    lo,
    hi,
    *,
    xtol: float,
    ftol: float = 0.0,
    max_iter: Optional[int] = None,
) -> RootResult:
    """Chandrupatla's bracketing method for increasing ``fn`` (no derivative needed).

    Inverse quadratic interpolation through the last three points when the function looks
    locally well behaved (Chandrupatla's xi/phi test), bisection otherwise; the new point
    is kept at least ``xtol``-ish inside the bracket. An element stops when the bracket
    falls below about ``xtol`` or ``|fn(x) - target| <= ftol``.
    """
    max_iter = _default_max_iter("chandrupatla", lo, hi, xtol) if max_iter is None else max_iter
    target, lo, hi = _prepare(target, lo, hi)
    dtype = lo.dtype
    eps = jnp.finfo(dtype).eps
    xtol_ = jnp.asarray(xtol, dtype)
    ftol = jnp.asarray(ftol, dtype)

    # a, b bracket the root; c is the point dropped last. f* = fn(*) - target.
    b, a = lo, hi
    fb, fa = fn(b) - target, fn(a) - target
    c, fc = a, fa
    t = jnp.full(lo.shape, 0.5, dtype)
    # an end point already within ftol (e.g. target exactly 0 or 1) is the answer
    fm0 = jnp.where(jnp.abs(fa) < jnp.abs(fb), fa, fb)
    done = (jnp.abs(fm0) <= ftol) | (fb >= 0) | (fa <= 0) | (hi - lo <= xtol_)

    def cond(s):
        return (s[0] < max_iter) & ~jnp.all(s[-1])

    def body(s):
        it, a, b, c, fa, fb, fc, t, its, done = s
        xt = a + t * (b - a)
        ft = fn(xt) - target
        same = jnp.sign(ft) == jnp.sign(fa)
        c_n = jnp.where(same, a, b)
        fc_n = jnp.where(same, fa, fb)
        b_n = jnp.where(same, b, a)
        fb_n = jnp.where(same, fb, fa)
        a_n, fa_n = xt, ft
        xm = jnp.where(jnp.abs(fa_n) < jnp.abs(fb_n), a_n, b_n)
        fm = jnp.where(jnp.abs(fa_n) < jnp.abs(fb_n), fa_n, fb_n)
        tol = 2.0 * eps * jnp.abs(xm) + 0.5 * xtol_
        denom = jnp.abs(b_n - c_n)
        tlim = tol / jnp.where(denom > 0, denom, 1.0)
        stop = (jnp.abs(fm) <= ftol) | (tlim > 0.5) | (fm == 0) | (denom == 0)
        # inverse quadratic interpolation where Chandrupatla's test allows it
        den_ba = jnp.where(b_n - a_n != 0, b_n - a_n, 1.0)
        den_cb = jnp.where(c_n - b_n != 0, c_n - b_n, 1.0)
        d_fb_fa = jnp.where(fb_n - fa_n != 0, fb_n - fa_n, 1.0)
        d_fc_fb = jnp.where(fc_n - fb_n != 0, fc_n - fb_n, 1.0)
        d_fc_fa = jnp.where(fc_n - fa_n != 0, fc_n - fa_n, 1.0)
        xi = (a_n - b_n) / den_cb
        phi = (fa_n - fb_n) / d_fc_fb
        iqi = (phi * phi < xi) & ((1 - phi) ** 2 < 1 - xi)
        t_iqi = (fa_n / d_fb_fa) * (fc_n / (-d_fc_fb)) + ((c_n - a_n) / den_ba) * (
            fa_n / d_fc_fa
        ) * (fb_n / d_fc_fb)
        t_n = jnp.where(iqi & jnp.isfinite(t_iqi), t_iqi, 0.5)
        t_n = jnp.clip(t_n, jnp.minimum(tlim, 0.5), jnp.maximum(1 - tlim, 0.5))
        keep = lambda new, old: jnp.where(done, old, new)  # noqa: E731
        its = its + (~done).astype(its.dtype)
        return (
            it + 1,
            keep(a_n, a),
            keep(b_n, b),
            keep(c_n, c),
            keep(fa_n, fa),
            keep(fb_n, fb),
            keep(fc_n, fc),
            keep(t_n, t),
            its,
            done | stop,
        )

    zeros = jnp.zeros(lo.shape, jnp.int32)
    init = (jnp.asarray(0), a, b, c, fa, fb, fc, t, zeros, done)
    _, a, b, c, fa, fb, fc, t, its, done = jax.lax.while_loop(cond, body, init)
    pick_a = jnp.abs(fa) < jnp.abs(fb)
    x = jnp.where(pick_a, a, b)
    r = jnp.where(pick_a, fa, fb)
    return RootResult(x, r, its, done, jnp.minimum(a, b), jnp.maximum(a, b))


# --------------------------------------------------------------------------------------
# differentiable solve (implicit function theorem)


class SolverOptions(NamedTuple):
    """Static settings of ``solve_monotone`` (hashable, so usable as a static argument)."""

    method: str = "newton"
    xtol: float = 1e-6
    max_iter: Optional[int] = None
    ftol: float = 0.0


Evaluator = Callable[[Any], Callable[[Array], tuple[Array, Array]]]


def default_evaluator(cdf: Callable[[Any, Array], Array]) -> Evaluator:
    """``params -> (x -> (F(x), dF/dx))`` with the derivative from one ``jax.jvp``
    (valid because ``F`` is elementwise in ``x``)."""

    def evaluator(params):
        def ev(x):
            return jax.jvp(lambda z: cdf(params, z), (x,), (jnp.ones_like(x),))

        return ev

    return evaluator


def run_solver(ev, target, lo, hi, options: SolverOptions, x0=None) -> RootResult:
    """Dispatch to the solver named by ``options.method``; ``ev(x) -> (F, F')``."""
    method = options.method
    if method == "bisection":
        return bisection(
            lambda x: ev(x)[0], target, lo, hi, xtol=options.xtol, max_iter=options.max_iter
        )
    if method == "newton":
        return newton(
            ev, target, lo, hi, xtol=options.xtol, ftol=options.ftol,
            max_iter=options.max_iter, x0=x0,
        )
    if method == "chandrupatla":
        return chandrupatla(
            lambda x: ev(x)[0], target, lo, hi, xtol=options.xtol, ftol=options.ftol,
            max_iter=options.max_iter,
        )
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


def check_method(method: str, name: str = "method") -> str:
    """``method`` must name a solver in ``METHODS``."""
    if method not in METHODS:
        raise ValueError(f"{name}: expected one of {METHODS}, got {method!r}")
    return method


def solve_monotone(
    cdf: Callable[[Any, Array], Array],
    params: Any,
    target,
    lo,
    hi,
    *,
    method: str = "newton",
    xtol: float = 1e-6,
    max_iter: Optional[int] = None,
    ftol: float = 0.0,
    x0=None,
    evaluator: Optional[Evaluator] = None,
) -> Array:
    """``x`` in ``[lo, hi]`` with ``cdf(params, x) = target``, differentiable in ``params``
    and ``target`` by the implicit function theorem.

    Args:
      cdf: ``(params, x) -> F(x)``, strictly increasing and elementwise in ``x``.
      params: any pytree of arrays.
      target, lo, hi: arrays broadcasting to the shape of ``x``; no gradient flows to
        ``lo``/``hi`` (the root is interior).
      method: ``"bisection"``, ``"newton"`` or ``"chandrupatla"``.
      xtol: tolerance on ``x``; ``max_iter`` defaults to ``bisection_steps(hi - lo, xtol)``
        (plus a small allowance for the hybrids), which needs concrete ``lo``/``hi``.
      ftol: optional residual tolerance ``|F(x) - target|``.
      x0: starting point for Newton (e.g. a cheap approximate inverse).
      evaluator: ``params -> (x -> (F(x), F'(x)))`` built once per solve, to hoist work
        that does not depend on ``x`` out of the loop; defaults to a jvp of ``cdf``.
    """
    check_method(method)
    if max_iter is None:
        max_iter = _default_max_iter(method, lo, hi, xtol)
    options = SolverOptions(method, float(xtol), int(max_iter), float(ftol))
    if evaluator is None:
        evaluator = default_evaluator(cdf)
    target, lo, hi = _prepare(target, lo, hi)
    x0 = 0.5 * (lo + hi) if x0 is None else jnp.asarray(x0, lo.dtype)
    return _solve(cdf, evaluator, options, params, target, lo, hi, x0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _solve(cdf, evaluator, options, params, target, lo, hi, x0):
    ev = evaluator(params)
    return run_solver(ev, target, lo, hi, options, x0).x


@_solve.defjvp
def _solve_jvp(cdf, evaluator, options, primals, tangents):
    params, target, lo, hi, x0 = primals
    d_params, d_target = tangents[0], tangents[1]
    x = _solve(cdf, evaluator, options, params, target, lo, hi, x0)
    _, density = evaluator(params)(x)
    density = jnp.maximum(density, jnp.finfo(x.dtype).tiny)
    _, d_f = jax.jvp(lambda p: cdf(p, x), (params,), (d_params,))
    return x, (d_target - d_f) / density
