"""The bijector contract and its combinators.

A bijector is a small record of pure functions over an explicit parameter pytree, in the
spirit of optax's ``GradientTransformation``::

    params = bij.init(key)
    z, logdet = bij.forward(params, x, context, key)    # data -> latent, log|det dz/dx|
    x, logdet = bij.inverse(params, z, context, key)    # latent -> data, log|det dx/dz|

Every function acts on ONE event: ``x`` has shape ``(dim,)`` and ``context`` shape
``(context_dim,)`` or is ``None``; ``logdet`` is a scalar. Batching is ``jax.vmap``.
``key`` is an optional PRNG key used only by bijectors with stochastic regularisation
(dropout); ``None`` means deterministic evaluation. Bijectors that need no randomness
ignore it.

``data_init`` is optional: given params and a batch ``x`` of shape ``(n, dim)`` (and a
batched context or ``None``), it returns params re-initialised from the data (ActNorm) and
the batch pushed forward through the layer, so a chain can initialise layer by layer.

A *transformer* (in the sense of Papamakarios et al., JMLR 2021, section 3.1) is a
strictly monotone scalar map ``tau(x; theta)`` with ``num_params`` parameters per
dimension. Autoregressive and coupling layers take a transformer and a conditioner that
produces ``theta``: the affine map, the rational-quadratic spline and the NITS PNN all
plug into both.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any
PRNGKey = jax.Array

ForwardFn = Callable[..., tuple[Array, Array]]


class Bijector(NamedTuple):
    """A bijection on R^dim as pure functions over a parameter pytree.

    Attributes:
      init: ``key -> params``.
      forward: ``(params, x, context=None, key=None) -> (z, log|det dz/dx|)``; data to latent.
      inverse: ``(params, z, context=None, key=None) -> (x, log|det dx/dz|)``; latent to data.
      data_init: optional ``(params, x_batch, context_batch) -> (params, z_batch)``.
    """

    init: Callable[[PRNGKey], Params]
    forward: ForwardFn
    inverse: ForwardFn
    data_init: Optional[Callable[..., tuple[Params, Array]]] = None


class Transformer(NamedTuple):
    """A strictly increasing scalar map ``tau(x; theta)``, ``theta`` of shape ``(num_params,)``.

    Attributes:
      num_params: number of unconstrained parameters per dimension.
      forward: ``(theta, x) -> (z, log dz/dx)`` for scalar ``x``.
      inverse: ``(theta, z) -> (x, log dx/dz)`` for scalar ``z``.
      identity_params: a ``(num_params,)`` array for which the map is (close to) the
        identity; conditioners whose last layer is zero-initialised output exactly this,
        so a freshly initialised flow starts as (close to) the identity.
    """

    num_params: int
    forward: Callable[[Array, Array], tuple[Array, Array]]
    inverse: Callable[[Array, Array], tuple[Array, Array]]
    identity_params: Array


def split_key(key: Optional[PRNGKey], num: int) -> list[Optional[PRNGKey]]:
    """Split ``key`` into ``num`` keys, or return ``num`` Nones when ``key`` is None."""
    if key is None:
        return [None] * num
    return list(jax.random.split(key, num))


def transform_elementwise(transformer: Transformer, theta: Array, x: Array, inverse: bool):
    """Apply ``transformer`` to every coordinate: ``theta`` (dim, num_params), ``x`` (dim,).

    Returns ``(y, logdet)`` with ``y`` of shape ``(dim,)`` and the summed scalar log-det.
    """
    fn = transformer.inverse if inverse else transformer.forward
    y, ld = jax.vmap(fn)(theta, x)
    return y, jnp.sum(ld)


def chain(bijectors: Sequence[Bijector]) -> Bijector:
    """Compose bijectors: forward applies ``bijectors[0]`` first (data side) to the last.

    Params are a tuple with one entry per bijector.
    """
    bijectors = tuple(bijectors)
    if not bijectors:
        raise ValueError("chain() needs at least one bijector, got an empty sequence")
    n = len(bijectors)

    def init(key):
        return tuple(b.init(k) for b, k in zip(bijectors, jax.random.split(key, n)))

    def forward(params, x, context=None, key=None):
        total = jnp.zeros((), x.dtype)
        for b, p, k in zip(bijectors, params, split_key(key, n)):
            x, ld = b.forward(p, x, context, k)
            total = total + ld
        return x, total

    def inverse(params, z, context=None, key=None):
        total = jnp.zeros((), z.dtype)
        keys = split_key(key, n)
        for i in reversed(range(n)):
            z, ld = bijectors[i].inverse(params[i], z, context, keys[i])
            total = total + ld
        return z, total

    def data_init(params, x, context=None):
        new = []
        for b, p in zip(bijectors, params):
            p, x = _data_init_layer(b, p, x, context)
            new.append(p)
        return tuple(new), x

    return Bijector(init, forward, inverse, data_init)


def _data_init_layer(b: Bijector, p: Params, x: Array, context: Optional[Array]):
    """Run one layer's data_init, or just push the batch through if it has none."""
    if b.data_init is not None:
        return b.data_init(p, x, context)
    if context is None:
        z, _ = jax.vmap(lambda xi: b.forward(p, xi, None, None))(x)
    else:
        z, _ = jax.vmap(lambda xi, ci: b.forward(p, xi, ci, None))(x, context)
    return p, z


def invert(bijector: Bijector) -> Bijector:
    """Swap forward and inverse (e.g. IAF = invert(MAF)). Params are unchanged."""

    def data_init(params, x, context=None):
        if context is None:
            z, _ = jax.vmap(lambda xi: bijector.inverse(params, xi, None, None))(x)
        else:
            z, _ = jax.vmap(lambda xi, ci: bijector.inverse(params, xi, ci, None))(x, context)
        return params, z

    return Bijector(bijector.init, bijector.inverse, bijector.forward, data_init)


def stack(bijector: Bijector, num: int) -> Bijector:
    """``num`` copies of ``bijector`` with independent params, scanned with ``lax.scan``.

    Params are the layer's params with a leading axis of size ``num``; the compiled
    program holds one copy of the layer, so compile time does not grow with depth.
    Forward applies layer 0 first.
    """
    if num < 1:
        raise ValueError(f"stack() needs num >= 1 layers, got num={num}")

    def init(key):
        return jax.vmap(bijector.init)(jax.random.split(key, num))

    def _run(fn, params, x, context, key, reverse):
        keys = None if key is None else jax.random.split(key, num)

        def step(carry, inputs):
            y, total = carry
            p, k = inputs
            y, ld = fn(p, y, context, k)
            return (y, total + ld), None

        (y, total), _ = jax.lax.scan(
            step, (x, jnp.zeros((), x.dtype)), (params, keys), reverse=reverse
        )
        return y, total

    def forward(params, x, context=None, key=None):
        return _run(bijector.forward, params, x, context, key, reverse=False)

    def inverse(params, z, context=None, key=None):
        return _run(bijector.inverse, params, z, context, key, reverse=True)

    def data_init(params, x, context=None):
        layers = []
        for i in range(num):
            p = jax.tree_util.tree_map(lambda a, i=i: a[i], params)
            p, x = _data_init_layer(bijector, p, x, context)
            layers.append(p)
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *layers), x

    return Bijector(init, forward, inverse, data_init)
