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

Each bijector states its ``event_size`` (``None``: elementwise, any size) and a ``name``.
``chain`` checks that its layers agree on the event size when it is built, and names the
params of its layers by layer name (rule below), so adding an option to a flow does not
move the keys of the other layers.

``data_init`` is optional: given params and a batch ``x`` of shape ``(n, dim)`` (and a
batched context or ``None``), it returns params re-initialised from the data (ActNorm,
whitening) and the batch pushed forward through the layer, so a chain can initialise
layer by layer. ``inverse_data_init`` is the same for data arriving on the latent side
(``(params, z_batch, context) -> (params, x_batch)``): it is what ``invert`` calls, so
an inverted data-initialised layer is still initialised from the data it sees. A bijector
with a ``data_init`` and no ``needs_data_init`` is a *leaf whose data init is its own*:
``needs_data_init(bijector, params)`` compares its params with its (deterministic) init.
Combinators set ``needs_data_init`` to combine their layers.

Chain param naming rule: ``chain([a, b, c])`` has params ``{a.name: ..., b.name: ...,
c.name: ...}``; when a name repeats, its first use keeps the name and the k-th repeat is
``f"{name}_{k}"`` (``made``, ``made_1``, ``made_2``; a suffix already taken is skipped).
``chain({"pre": a, "core": b})`` uses the given names. The order of the layers is the
order given, never the (sorted) order of the dict's keys in a pytree.

``conditional_inverse`` is optional, for layers triangular in their input order (output
coordinate ``pi(i)`` depends on ``x_<=i`` only and increases with ``x_i``):
``(params, x, z, context, key) -> v`` solves ``forward(x_<i, v_i)[pi(i)] = z[pi(i)]``
for every ``i`` at once, the prefix held at the given row ``x`` (teacher forcing): for
an autoregressive layer one conditioner pass on ``x`` and the transformer's inverse per
coordinate, for an elementwise map or a permutation its inverse. ``chain`` and ``stack``
compose it when all their layers have it (``v = A.ci(x, B.ci(A(x), z))`` for ``B after
A``); it is what conditional quantiles given the data prefix (CRPS training,
``nitsjax.losses.quantile``) run on. ``conditional_inverse(x, forward(x)) == x``.

A *transformer* (in the sense of Papamakarios et al., JMLR 2021, section 3.1) is a
strictly monotone scalar map ``tau(x; theta)`` with ``num_params`` parameters per
dimension: the one scalar-map abstraction. Autoregressive and coupling layers take a
transformer and a conditioner that produces ``theta``; ``elementwise`` applies one with
learned or fixed ``theta`` (the affine layer, sigmoid, logit and tanh are built so).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = Any
PRNGKey = jax.Array

ForwardFn = Callable[..., tuple[Array, Array]]
DataInitFn = Callable[..., tuple[Params, Array]]


class Bijector(NamedTuple):
    """A bijection on R^event_size as pure functions over a parameter pytree.

    Positional construction ``Bijector(init, forward, inverse, data_init)`` keeps working;
    the other fields are keywords with defaults.

    Attributes:
      init: ``key -> params``.
      forward: ``(params, x, context=None, key=None) -> (z, log|det dz/dx|)``; data to latent.
      inverse: ``(params, z, context=None, key=None) -> (x, log|det dx/dz|)``; latent to data.
      data_init: optional ``(params, x_batch, context_batch) -> (params, z_batch)``.
      event_size: the size ``dim`` of the events it acts on, or None for an elementwise
        map that takes any size.
      name: short name; ``chain`` keys its layers' params by it.
      inverse_data_init: optional ``(params, z_batch, context_batch) -> (params,
        x_batch)``: initialise from data arriving on the latent side (used by ``invert``).
      needs_data_init: optional ``params -> bool scalar``, True while every
        data-initialised param is still exactly at its init value. Set by combinators; a
        leaf with a ``data_init`` leaves it None (see the module docstring).
      conditional_inverse: optional ``(params, x, z, context=None, key=None) -> v``: every
        coordinate's inverse with the preceding ones held at ``x`` (module docstring);
        None for layers that are not triangular in their input order.
    """

    init: Callable[[PRNGKey], Params]
    forward: ForwardFn
    inverse: ForwardFn
    data_init: Optional[DataInitFn] = None
    event_size: Optional[int] = None
    name: str = "bijector"
    inverse_data_init: Optional[DataInitFn] = None
    needs_data_init: Optional[Callable[[Params], Array]] = None
    conditional_inverse: Optional[Callable[..., Array]] = None


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


def elementwise(
    transformer: Transformer,
    dim: Optional[int] = None,
    *,
    theta=None,
    learn: bool = False,
    name: str = "elementwise",
) -> Bijector:
    """A transformer applied to every coordinate with its own ``theta``.

    Args:
      transformer: the scalar map.
      dim: event size; needed when ``learn`` or when ``theta`` is per coordinate. None
        with a shared ``theta`` gives a map on events of any size.
      theta: ``(num_params,)`` shared by every coordinate or ``(dim, num_params)``;
        default ``transformer.identity_params``.
      learn: ``theta`` is a learned param ``{"theta": (dim, num_params)}`` starting at
        ``theta``; otherwise it is fixed and ``init`` returns ``{}``.
      name: the bijector's name.
    """
    k = transformer.num_params
    theta0 = np.asarray(transformer.identity_params if theta is None else theta, np.float64)
    if theta0.shape not in ((k,),) + (((dim, k),) if dim is not None else ()):
        raise ValueError(
            f"{name}: theta: expected shape ({k},) or (dim, {k}) with dim={dim}, got "
            f"{theta0.shape}"
        )
    if learn:
        if dim is None:
            raise ValueError(f"{name}: learn=True needs dim (the number of coordinates)")
        start = np.broadcast_to(theta0, (dim, k)).astype(np.float32)

    def init(key):
        return {"theta": jnp.asarray(start)} if learn else {}

    def _apply(params, x, inverse):
        th = params["theta"] if learn else theta0
        th = jnp.broadcast_to(jnp.asarray(th, x.dtype), (x.shape[0], k))
        return transform_elementwise(transformer, th, x, inverse)

    def forward(params, x, context=None, key=None):
        return _apply(params, x, inverse=False)

    def inverse(params, z, context=None, key=None):
        return _apply(params, z, inverse=True)

    return Bijector(init, forward, inverse, event_size=dim, name=name,
                    conditional_inverse=inverse_only(inverse))


def inverse_only(inverse: ForwardFn) -> Callable[..., Array]:
    """The ``conditional_inverse`` of an elementwise map or a permutation: its inverse
    (the prefix ``x`` does not matter)."""

    def conditional_inverse(params, x, z, context=None, key=None):
        return inverse(params, z, context, key)[0]

    return conditional_inverse


# -------------------------------------------------------------------- data init helpers
def needs_data_init(bijector: Bijector, params: Params) -> Optional[Array]:
    """A bool scalar: True while every data-initialised param of ``bijector`` is still
    exactly at its init value (``data_init`` has not run); None when it has none."""
    if bijector.needs_data_init is not None:
        return bijector.needs_data_init(params)
    if bijector.data_init is None:
        return None
    fresh = bijector.init(jax.random.key(0))  # a leaf's data-init params: deterministic init
    leaves, fresh_leaves = jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(fresh)
    if len(leaves) != len(fresh_leaves):
        raise ValueError(
            f"{bijector.name}: params: expected {len(fresh_leaves)} arrays (as init gives), "
            f"got {len(leaves)}"
        )
    same = [jnp.all(p == jnp.asarray(f, p.dtype)) for p, f in zip(leaves, fresh_leaves)]
    return jnp.all(jnp.stack(same)) if same else jnp.asarray(True)


def has_data_init(b: Bijector) -> bool:
    """Whether ``b`` has layers initialised from data (``data_init`` does more than push)."""
    return b.data_init is not None or b.needs_data_init is not None


def _all_pending(flags):
    flags = [f for f in flags if f is not None]
    return jnp.all(jnp.stack(flags)) if flags else None


def _push(fn, p, x, context):
    """``fn`` (forward or inverse of one layer) over a batch, log-dets dropped."""
    if context is None:
        return jax.vmap(lambda xi: fn(p, xi, None, None)[0])(x)
    return jax.vmap(lambda xi, ci: fn(p, xi, ci, None)[0])(x, context)


def _data_init_layer(b: Bijector, p: Params, x: Array, context: Optional[Array]):
    """Run one layer's data_init, or just push the batch through if it has none."""
    if b.data_init is not None:
        return b.data_init(p, x, context)
    return p, _push(b.forward, p, x, context)


def _inverse_data_init_layer(b: Bijector, p: Params, z: Array, context: Optional[Array]):
    """Initialise one layer from a batch on its latent side, or push the batch back."""
    if b.inverse_data_init is not None:
        return b.inverse_data_init(p, z, context)
    if has_data_init(b):
        raise ValueError(
            f"invert({b.name}): the layer is initialised from data on its data side "
            f"(data_init) and has no inverse_data_init, so inverted it cannot be "
            f"initialised from the data it receives; keep it outside invert(...) (as "
            f"nj.flows.iaf does with actnorm and whitening) or give it an inverse_data_init"
        )
    return p, _push(b.inverse, p, z, context)


# -------------------------------------------------------------------------- combinators
def unique_names(names: Sequence[str]) -> list[str]:
    """The chain naming rule: a repeated name gets ``_1``, ``_2``, ... (first use plain)."""
    taken = set(names)
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n not in seen:
            seen[n] = 0
            out.append(n)
            continue
        k = seen[n] + 1
        while f"{n}_{k}" in taken:
            k += 1
        seen[n] = k
        taken.add(f"{n}_{k}")
        out.append(f"{n}_{k}")
    return out


def _check_bijector(b, where: str) -> None:
    if not isinstance(b, Bijector):
        raise TypeError(f"{where}: expected a nitsjax Bijector, got {type(b).__name__}")


def _check_event(name: str, event_size: Optional[int], x) -> None:
    """Trace-time check of one event's shape against the bijector's event size."""
    if event_size is not None and tuple(x.shape) != (event_size,):
        raise ValueError(
            f"{name}: expected one event of shape ({event_size},), got {tuple(x.shape)} "
            f"(bijectors act on one event; vmap over a batch)"
        )


def chain(
    bijectors: Union[Sequence[Bijector], Mapping[str, Bijector]], *, name: str = "chain"
) -> Bijector:
    """Compose bijectors: forward applies the first (data side) first, the last last.

    Args:
      bijectors: a sequence (params keyed by layer name, repeats suffixed ``_1``, ``_2``;
        module docstring) or a dict ``{name: bijector}`` (params keyed by those names).
      name: the chain's own name.

    Params are a dict ``{layer name: layer params}``. Building checks that every layer
    with an ``event_size`` has the same one; calling checks the params' keys.
    """
    if isinstance(bijectors, Mapping):
        names = list(bijectors)
        layers = list(bijectors.values())
        for n in names:
            if not isinstance(n, str) or not n:
                raise ValueError(f"chain: layer names must be non-empty strings, got {n!r}")
    else:
        layers = list(bijectors)
        for i, b in enumerate(layers):
            _check_bijector(b, f"chain: layer {i}")
        names = unique_names([b.name for b in layers])
    if not layers:
        raise ValueError("chain() needs at least one bijector, got an empty sequence")
    for n, b in zip(names, layers):
        _check_bijector(b, f"chain: layer {n!r}")
    sized = [(n, b.event_size) for n, b in zip(names, layers) if b.event_size is not None]
    for n, s in sized[1:]:
        if s != sized[0][1]:
            raise ValueError(
                f"chain {name!r}: layer {sized[0][0]!r} has event_size {sized[0][1]} but layer "
                f"{n!r} has event_size {s}; every layer of a chain acts on the same event"
            )
    event_size = sized[0][1] if sized else None
    pairs = list(zip(names, layers))
    n_layers = len(pairs)

    def check(params):
        if isinstance(params, Mapping) and set(params) == set(names):
            return
        got = (f"keys {sorted(params)}" if isinstance(params, Mapping)
               else f"a {type(params).__name__}")
        raise ValueError(
            f"chain {name!r}: params: expected a dict with one entry per layer, keys "
            f"{names}, got {got}; use the params of this chain's init"
        )

    def init(key):
        keys = jax.random.split(key, n_layers)
        return {n: b.init(k) for (n, b), k in zip(pairs, keys)}

    def forward(params, x, context=None, key=None):
        check(params)
        _check_event(name, event_size, x)
        total = jnp.zeros((), x.dtype)
        for (n, b), k in zip(pairs, split_key(key, n_layers)):
            x, ld = b.forward(params[n], x, context, k)
            total = total + ld
        return x, total

    def inverse(params, z, context=None, key=None):
        check(params)
        _check_event(name, event_size, z)
        total = jnp.zeros((), z.dtype)
        keys = split_key(key, n_layers)
        for i in reversed(range(n_layers)):
            n, b = pairs[i]
            z, ld = b.inverse(params[n], z, context, keys[i])
            total = total + ld
        return z, total

    def data_init(params, x, context=None):
        check(params)
        new = {}
        for n, b in pairs:
            new[n], x = _data_init_layer(b, params[n], x, context)
        return new, x

    def inverse_data_init(params, z, context=None):
        check(params)
        new = {}
        for n, b in reversed(pairs):
            new[n], z = _inverse_data_init_layer(b, params[n], z, context)
        return new, z

    def pending(params):
        check(params)
        return _all_pending([needs_data_init(b, params[n]) for n, b in pairs])

    def conditional_inverse(params, x, z, context=None, key=None):
        check(params)
        _check_event(name, event_size, x)
        keys = split_key(key, n_layers)
        inputs = []
        for (n, b), k in zip(pairs, keys):  # the data's value entering every layer
            inputs.append(x)
            x = b.forward(params[n], x, context, k)[0]
        for i in reversed(range(n_layers)):
            n, b = pairs[i]
            z = b.conditional_inverse(params[n], inputs[i], z, context, keys[i])
        return z

    has = any(has_data_init(b) for b in layers)
    triangular = all(b.conditional_inverse is not None for b in layers)
    return Bijector(
        init, forward, inverse, data_init if has else None, event_size=event_size, name=name,
        inverse_data_init=inverse_data_init if has else None,
        needs_data_init=pending if has else None,
        conditional_inverse=conditional_inverse if triangular else None,
    )


def invert(bijector: Bijector, *, name: Optional[str] = None) -> Bijector:
    """Swap forward and inverse (e.g. IAF = invert(MAF)). Params are unchanged.

    Data init swaps too: the inverted layer's ``data_init`` is the layer's
    ``inverse_data_init`` (the data now arrive on its latent side), and the other way
    round. A layer initialised from data (ActNorm, whitening) that has no
    ``inverse_data_init`` raises a clear error when the inverted layer is data-initialised.
    Layers without data init just push the batch through.
    """
    _check_bijector(bijector, "invert")
    b = bijector
    has = has_data_init(b)

    def data_init(params, x, context=None):
        return _inverse_data_init_layer(b, params, x, context)

    def inverse_data_init(params, z, context=None):
        return _data_init_layer(b, params, z, context)

    def pending(params):
        return needs_data_init(b, params)

    return Bijector(
        b.init, b.inverse, b.forward, data_init if has else None, event_size=b.event_size,
        name=b.name if name is None else name,
        inverse_data_init=inverse_data_init if has else None,
        needs_data_init=pending if has else None,
    )


def stack(bijector: Bijector, num: int, *, name: str = "stack") -> Bijector:
    """``num`` copies of ``bijector`` with independent params, scanned with ``lax.scan``.

    Params are the layer's params with a leading axis of size ``num`` (checked when
    called); the compiled program holds one copy of the layer, so compile time does not
    grow with depth. Forward applies layer 0 first.
    """
    _check_bijector(bijector, "stack")
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"stack() needs num >= 1 layers, got num={num!r} (an integer)")
    num = int(num)
    b = bijector

    def check(params):
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            shape = tuple(np.shape(leaf))
            if not shape or shape[0] != num:
                raise ValueError(
                    f"stack {name!r}: params: every array needs a leading axis of size "
                    f"{num} (one slice per layer); "
                    f"{jax.tree_util.keystr(path) or 'the params'} has shape {shape}"
                )

    def init(key):
        return jax.vmap(b.init)(jax.random.split(key, num))

    def _run(fn, params, x, context, key, reverse):
        check(params)
        _check_event(name, b.event_size, x)
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
        return _run(b.forward, params, x, context, key, reverse=False)

    def inverse(params, z, context=None, key=None):
        return _run(b.inverse, params, z, context, key, reverse=True)

    def _layer(params, i):
        return jax.tree_util.tree_map(lambda a: a[i], params)

    def _restack(layers):
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *layers)

    def data_init(params, x, context=None):
        check(params)
        layers = []
        for i in range(num):
            p, x = _data_init_layer(b, _layer(params, i), x, context)
            layers.append(p)
        return _restack(layers), x

    def inverse_data_init(params, z, context=None):
        check(params)
        layers = [None] * num
        for i in reversed(range(num)):
            layers[i], z = _inverse_data_init_layer(b, _layer(params, i), z, context)
        return _restack(layers), z

    def pending(params):
        check(params)
        return jnp.all(jax.vmap(lambda p: needs_data_init(b, p))(params))

    def conditional_inverse(params, x, z, context=None, key=None):
        check(params)
        _check_event(name, b.event_size, x)
        keys = None if key is None else jax.random.split(key, num)

        def up(y, inputs):  # the data's value entering every layer
            p, k = inputs
            return b.forward(p, y, context, k)[0], y

        _, entering = jax.lax.scan(up, x, (params, keys))

        def down(v, inputs):
            p, k, y = inputs
            return b.conditional_inverse(p, y, v, context, k), None

        v, _ = jax.lax.scan(down, z, (params, keys, entering), reverse=True)
        return v

    has = has_data_init(b)
    return Bijector(
        init, forward, inverse, data_init if has else None, event_size=b.event_size,
        name=name, inverse_data_init=inverse_data_init if has else None,
        needs_data_init=pending if has else None,
        conditional_inverse=conditional_inverse if b.conditional_inverse is not None else None,
    )
