"""Interoperability with distrax: a flow as a ``distrax.Distribution``, a bijector as a
``distrax.Bijector``.

    dist = nj.interop.to_distrax(flow, params)            # context=... for a conditional flow
    x, lp = dist.sample_and_log_prob(seed=jax.random.key(0), sample_shape=(4, 100))
    dist.log_prob(x)                                        # (4, 100), equal to lp

    bij = nj.interop.to_distrax_bijector(flow.bijector, params["bijector"])
    same = distrax.Transformed(base, bij)                   # base: the flow's base density

Both objects are distrax ``Jittable``s: they can be built inside ``jax.jit`` or passed to a
jitted function, and their methods trace (no host synchronisation, no input value checks;
only shapes and dtypes are checked, at trace time).

Direction convention. nitsjax's ``Bijector.forward`` maps **data to latent** (the
density-evaluation direction, ``z = f(x)``, ``log|det dz/dx|``), as in most flow papers.
distrax's ``Bijector.forward`` maps **base to data** (the sampling direction of
``distrax.Transformed``, ``y = f(x)`` with ``x`` drawn from the base). So the wrapper
swaps them:

    ===============================  =====================================================
    distrax bijector (wrapper)       nitsjax bijector
    ===============================  =====================================================
    ``forward_and_log_det(z)``       ``inverse(params, z)``: latent -> data, log|det dx/dz|
    ``inverse_and_log_det(x)``       ``forward(params, x)``: data -> latent, log|det dz/dx|
    ===============================  =====================================================

Batching follows distrax: events are the last axis (``event_ndims_in = 1``); any leading
axes are batch axes, flattened and ``vmap``-ed over. A bound context of shape
``(context_dim,)`` applies to every event; a context with leading axes broadcasts against
the events' batch axes (and, for ``to_distrax``, sets the distribution's ``batch_shape``).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Optional

import distrax
import jax
import jax.numpy as jnp

from nitsjax import flow as flow_module
from nitsjax.bijectors.base import Bijector
from nitsjax.flow import Flow
from nitsjax.validation import as_float_array

Array = jax.Array

__all__ = ["FlowDistribution", "NitsjaxBijector", "to_distrax", "to_distrax_bijector"]


def to_distrax(flow: Flow, params: Any, context: Optional[Array] = None) -> FlowDistribution:
    """``flow`` with fixed ``params`` (and, if conditional, a bound ``context``) as a
    ``distrax.Distribution``.

    Args:
      flow: a ``nitsjax.Flow`` (any of ``nj.flows.*``).
      params: its params, ``{"bijector": ..., "base": ...}`` (``flow.init`` or ``nj.fit``).
      context: for a conditional flow (built with ``context_dim``), an array of shape
        ``(context_dim,)`` (one conditional distribution) or ``batch_shape +
        (context_dim,)`` (a batch of conditional distributions); ``None`` otherwise.

    Returns:
      A ``FlowDistribution`` with ``event_shape == (flow.dim,)``: ``log_prob(x)`` for
      ``x`` of shape ``(..., dim)``, ``sample(seed=..., sample_shape=...)`` and
      ``sample_and_log_prob(seed=..., sample_shape=...)`` of shape ``sample_shape +
      batch_shape + (dim,)``. Numerically the flow's own ``log_prob_batch`` and
      ``sample_batch``: the same key gives the same samples as ``flow.sample``. A point
      outside a bounded NITS support gets ``-inf`` (the flow's in-``jit`` rule).
    """
    if not isinstance(flow, Flow):
        raise TypeError(
            f"flow: expected a nitsjax Flow (e.g. nj.flows.maf(...)), got {type(flow).__name__}"
        )
    _check_params(params)
    return FlowDistribution(flow, params, context)


def to_distrax_bijector(
    bijector: Bijector, params: Any, context: Optional[Array] = None
) -> NitsjaxBijector:
    """A nitsjax ``bijector`` with fixed ``params`` as a ``distrax.Bijector``, in distrax's
    direction convention: the wrapper's ``forward`` is nitsjax's ``inverse`` (latent ->
    data) and its ``inverse`` is nitsjax's ``forward`` (data -> latent); see the module
    docstring.

    Args:
      bijector: a ``nitsjax.bijectors.Bijector`` (e.g. ``flow.bijector``).
      params: its params (e.g. ``params["bijector"]`` of a flow).
      context: for a conditional bijector, ``(context_dim,)`` or an array whose leading
        axes broadcast against the events' batch axes; ``None`` otherwise.

    Returns:
      A ``NitsjaxBijector`` with ``event_ndims_in == event_ndims_out == 1``, so
      ``distrax.Transformed(base, to_distrax_bijector(flow.bijector, params["bijector"]))``
      with ``base`` the flow's base density (e.g. ``distrax.MultivariateNormalDiag``) has
      the flow's density.
    """
    if not isinstance(bijector, Bijector):
        raise TypeError(
            "bijector: expected a nitsjax Bijector (e.g. flow.bijector), got "
            f"{type(bijector).__name__}"
        )
    return NitsjaxBijector(bijector, params, context)


class FlowDistribution(distrax.Distribution):
    """A nitsjax ``Flow`` with fixed params as a ``distrax.Distribution``. Build it with
    ``to_distrax``."""

    def __init__(self, flow: Flow, params: Any, context: Optional[Array] = None):
        super().__init__()
        self._flow = flow
        self._params = params
        self._context = _check_context(context, flow.context_dim)
        self._batch_shape = () if self._context is None else tuple(self._context.shape[:-1])

    @property
    def flow(self) -> Flow:
        return self._flow

    @property
    def params(self) -> Any:
        return self._params

    @property
    def context(self) -> Optional[Array]:
        return self._context

    @property
    def name(self) -> str:
        return f"FlowDistribution_{self._flow.name}"

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self._flow.dim,)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self._batch_shape

    def log_prob(self, value) -> Array:
        """log-density of ``value`` of shape ``(..., dim)``; the leading axes broadcast
        against ``batch_shape``. Returns the broadcast leading shape."""
        dim = self._flow.dim
        x = _check_events(value, dim, "value")
        if self._context is None:
            batch = x.shape[:-1]
            lp = _log_prob(self._flow, self._params, x.reshape(-1, dim), None)
            return lp.reshape(batch)
        batch = _broadcast_batch(x, self._context, "value")
        c = self._context
        x = jnp.broadcast_to(x, batch + (dim,)).reshape(-1, dim)
        c = jnp.broadcast_to(c, batch + c.shape[-1:]).reshape(-1, c.shape[-1])
        return _log_prob(self._flow, self._params, x, c).reshape(batch)

    def _sample_n(self, key, n: int) -> Array:
        return self._sample_n_and_log_prob(key, n)[0]

    def _sample_n_and_log_prob(self, key, n: int) -> tuple[Array, Array]:
        # One pass: the flow's sample_batch returns the log-density alongside (no re-run
        # of the forward direction, which for NITS would solve nothing but cost a pass).
        dim = self._flow.dim
        if self._context is None:
            return _sample(self._flow, self._params, key, n, None)
        batch = self._batch_shape
        c = self._context
        m = n * math.prod(batch)
        c = jnp.broadcast_to(c, (n,) + c.shape).reshape(m, c.shape[-1])
        x, lp = _sample(self._flow, self._params, key, m, c)
        return x.reshape((n,) + batch + (dim,)), lp.reshape((n,) + batch)


class NitsjaxBijector(distrax.Bijector):
    """A nitsjax ``Bijector`` with fixed params as a ``distrax.Bijector`` (distrax's
    direction: ``forward`` = base -> data = nitsjax's ``inverse``). Build it with
    ``to_distrax_bijector``."""

    def __init__(self, bijector: Bijector, params: Any, context: Optional[Array] = None):
        super().__init__(event_ndims_in=1, event_ndims_out=1, is_constant_jacobian=False)
        self._bijector = bijector
        self._params = params
        self._context = None if context is None else as_float_array(context, "context")
        if self._context is not None and self._context.ndim < 1:
            raise ValueError(
                "context: expected shape (context_dim,) or (..., context_dim), got a scalar"
            )

    @property
    def bijector(self) -> Bijector:
        return self._bijector

    @property
    def params(self) -> Any:
        return self._params

    @property
    def name(self) -> str:
        name = getattr(self._bijector, "name", None)
        return f"NitsjaxBijector_{name}" if isinstance(name, str) else "NitsjaxBijector"

    def forward_and_log_det(self, x) -> tuple[Array, Array]:
        """Latent -> data (nitsjax ``inverse``): ``(y, log|det dy/dx|)``, shapes
        ``(..., dim)`` and ``(...)``."""
        return self._apply(self._bijector.inverse, x, "x")

    def inverse_and_log_det(self, y) -> tuple[Array, Array]:
        """Data -> latent (nitsjax ``forward``): ``(x, log|det dx/dy|)``, shapes
        ``(..., dim)`` and ``(...)``."""
        return self._apply(self._bijector.forward, y, "y")

    def _apply(self, fn, a, name: str):
        a = as_float_array(a, name)
        self._check_forward_input_shape(a)
        size = getattr(self._bijector, "event_size", None)
        if isinstance(size, int) and a.shape[-1] != size:
            raise ValueError(f"{name}: expected events of size {size}, got shape {a.shape}")
        dim = a.shape[-1]
        if self._context is None:
            batch = a.shape[:-1]
            out, ld = _vmapped(fn, self._params, a.reshape(-1, dim), None)
        else:
            batch = _broadcast_batch(a, self._context, name)
            c = self._context
            flat_a = jnp.broadcast_to(a, batch + (dim,)).reshape(-1, dim)
            flat_c = jnp.broadcast_to(c, batch + c.shape[-1:]).reshape(-1, c.shape[-1])
            out, ld = _vmapped(fn, self._params, flat_a, flat_c)
        return out.reshape(batch + out.shape[-1:]), ld.reshape(batch)


# ----------------------------------------------------------------- compiled kernels
# Called outside jit (distrax's methods run eagerly), these compile once per flow (flows
# are hashable values: ``nitsjax.flow``'s own compiled functions) or bijector function and
# shape; inside a user's jit they inline.
_log_prob = flow_module._log_prob_compiled
_sample = flow_module._sample_compiled


@functools.partial(jax.jit, static_argnums=0)
def _vmapped(fn, params, a, context):
    if context is None:
        return jax.vmap(lambda e: fn(params, e, None, None))(a)
    return jax.vmap(lambda e, c: fn(params, e, c, None))(a, context)


# ------------------------------------------------------------------------------ checks
def _check_params(params) -> None:
    if not (isinstance(params, Mapping) and "bijector" in params and "base" in params):
        got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise TypeError(
            "params: expected the flow's params, a dict with keys 'bijector' and 'base' "
            f"(from flow.init(key) or nj.fit), got {got}"
        )


def _check_context(context, context_dim: Optional[int]):
    if context_dim is None:
        if context is not None:
            raise ValueError(
                "context: this flow is unconditional (built without context_dim); "
                "pass context=None"
            )
        return None
    if context is None:
        raise ValueError(
            f"context: this flow is conditional (context_dim={context_dim}); pass "
            f"context=... of shape ({context_dim},) or (..., {context_dim})"
        )
    c = as_float_array(context, "context")
    if c.ndim < 1 or c.shape[-1] != context_dim:
        raise ValueError(
            f"context: expected shape ({context_dim},) or (..., {context_dim}), got {c.shape}"
        )
    return jnp.asarray(c)


def _check_events(value, dim: int, name: str):
    x = as_float_array(value, name)
    if x.ndim < 1 or x.shape[-1] != dim:
        raise ValueError(
            f"{name}: expected shape (..., {dim}) (events on the last axis), got "
            f"{tuple(x.shape)}"
        )
    return jnp.asarray(x)


def _broadcast_batch(a, context, name: str) -> tuple[int, ...]:
    try:
        return tuple(jnp.broadcast_shapes(a.shape[:-1], context.shape[:-1]))
    except ValueError as err:
        raise ValueError(
            f"{name}: leading shape {tuple(a.shape[:-1])} does not broadcast against the "
            f"context's leading shape {tuple(context.shape[:-1])}"
        ) from err
