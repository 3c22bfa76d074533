"""What the flow constructors share: argument checks, the variable order and the
standardising first layers, the per-layer mixing options, and the flow's ``spec`` (what
makes two flows equal)."""

from __future__ import annotations

from typing import Any, Hashable, Optional

import numpy as np

from nitsjax.bijectors.actnorm import actnorm as actnorm_layer
from nitsjax.bijectors.anchored import anchored
from nitsjax.bijectors.base import Bijector, chain
from nitsjax.bijectors.linear import lu_linear
from nitsjax.bijectors.permute import permute, random_permutation, reverse
from nitsjax.validation import check_hidden, check_positive_int

#: ``standardize=`` values: a full-covariance whitening layer, a diagonal (per-coordinate
#: mean and scale, ActNorm) layer, or none.
STANDARDIZE = ("whiten", "diagonal", None)
#: ``linear=`` values: an LU linear layer, a fixed random permutation, or neither.
LINEAR_LAYERS = (None, "lu", "permute")


def check_common(dim, layers, hidden, context_dim: Optional[int], dropout: float):
    """Validate the arguments every constructor shares; returns ``hidden`` as a tuple."""
    check_positive_int(dim, "dim")
    check_positive_int(layers, "layers")
    hidden = check_hidden(hidden, "hidden")
    if context_dim is not None:
        check_positive_int(context_dim, "context_dim")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout: expected 0 <= dropout < 1, got {dropout}")
    return hidden


def check_extras(actnorm, linear) -> None:
    """Validate the ``actnorm`` and ``linear`` options of the flow constructors."""
    if not isinstance(actnorm, bool):
        raise ValueError(f"actnorm: expected True or False, got {actnorm!r}")
    if linear not in LINEAR_LAYERS:
        raise ValueError(f"linear: expected one of {LINEAR_LAYERS}, got {linear!r}")


def check_standardize(standardize) -> None:
    if standardize not in STANDARDIZE:
        raise ValueError(
            f"standardize: expected one of {STANDARDIZE} ('whiten': full covariance, "
            f"'diagonal': per-coordinate, None: no standardising layer), got {standardize!r}"
        )


def flow_layer(core: Bijector, dim: int, actnorm: bool, linear) -> Bijector:
    """One scanned layer, data side first: [actnorm] -> [LU linear | random permutation]
    -> core -> reverse. Params ``{"actnorm", "lu_linear" | "permute", core.name,
    "reverse"}``. Every layer of a ``stack`` shares the fixed permutations."""
    parts = []
    if actnorm:
        parts.append(actnorm_layer(dim))
    if linear == "lu":
        parts.append(lu_linear(dim))
    elif linear == "permute":
        parts.append(random_permutation(dim, seed=0))
    return chain([*parts, core, reverse(dim)], name="layer")


def standardize_layer(dim: int, standardize) -> Optional[Bijector]:
    """The data-side standardising layer of ``standardize`` (see ``STANDARDIZE``): the
    data-initialised statistics are a frozen anchor and training learns a correction in
    standardised units (``nitsjax.bijectors.anchored``), so fits are affine equivariant."""
    check_standardize(standardize)
    if standardize == "whiten":
        from nitsjax.bijectors.standardize import whiten

        return anchored(whiten(dim))
    if standardize == "diagonal":
        return anchored(actnorm_layer(dim))
    return None


def check_order(order, dim: int) -> Optional[tuple]:
    """``order`` (None or a permutation of ``range(dim)``) as a tuple of ints, or None;
    a ``ValueError`` naming ``order`` otherwise."""
    check_positive_int(dim, "dim")
    if order is None:
        return None
    try:
        a = np.asarray(order)
    except (TypeError, ValueError):
        a = np.asarray([None])
    ints = a.ndim == 1 and (np.issubdtype(a.dtype, np.integer) and a.dtype != bool)
    if not ints or sorted(a.tolist()) != list(range(dim)):
        raise ValueError(
            f"order: expected None or a permutation of range({dim}) (each of 0..{dim - 1} "
            f"once, e.g. nj.ordering.suggest(x_train)), got {order!r}"
        )
    return tuple(int(i) for i in a)


def order_layer(dim: int, order) -> Optional[Bijector]:
    """The fixed data-side permutation of ``order=`` (``z = x[order]``: the flow sees
    ``x[order[0]]`` first), named ``"order"``, or None when ``order`` is None. Log-det 0
    and no params, so densities stay in the user's coordinates. Checks ``order``
    (``check_order``)."""
    order = check_order(order, dim)
    return None if order is None else permute(np.asarray(order), name="order")


def flow_bijector(core: Bijector, dim: int, standardize, order=None) -> Bijector:
    """``chain({["order": permutation,] ["standardize": layer,] core.name: core})``: the
    variable order (``order_layer``) and then the standardising layer on the data side,
    once each; the flow's params are ``{"bijector": {["order",] ["standardize",] <core
    name>: ...}, "base": ...}`` (``order`` has empty params). ``standardize`` is a name
    of ``STANDARDIZE`` or a ready ``Bijector``."""
    parts = {}
    first = order_layer(dim, order)
    if first is not None:
        parts["order"] = first
    layer = standardize if isinstance(standardize, Bijector) else standardize_layer(
        dim, standardize)
    if layer is not None:
        parts["standardize"] = layer
    parts[core.name] = core
    return chain(parts, name="flow")


def _freeze(v: Any) -> Hashable:
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, tuple(v.ravel().tolist()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(a) for a in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(a)) for k, a in v.items()))
    hash(v)  # raises TypeError for anything else unhashable
    return v


def flow_spec(constructor: str, arguments: dict) -> Optional[Hashable]:
    """``(constructor, ((argument, value), ...))``, the value that makes two flows built by
    the same call equal (``Flow.spec``); None when an argument cannot be frozen."""
    try:
        return (constructor, tuple(sorted((k, _freeze(v)) for k, v in arguments.items())))
    except TypeError:
        return None
