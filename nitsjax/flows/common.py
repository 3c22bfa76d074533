"""What the flow constructors share: argument checks, the standardising first layer, the
per-layer mixing options, and the flow's ``spec`` (what makes two flows equal)."""

from __future__ import annotations

from typing import Any, Hashable, Optional

import numpy as np

from nitsjax.bijectors.actnorm import actnorm as actnorm_layer
from nitsjax.bijectors.anchored import anchored
from nitsjax.bijectors.base import Bijector, chain
from nitsjax.bijectors.linear import lu_linear
from nitsjax.bijectors.permute import random_permutation, reverse
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


def flow_bijector(core: Bijector, dim: int, standardize) -> Bijector:
    """``chain({"standardize": layer, core.name: core})`` (the standardising layer first,
    on the data side, once), or ``chain({core.name: core})`` without one: the flow's
    params are always ``{"bijector": {["standardize",] <core name>: ...}, "base": ...}``."""
    layer = standardize_layer(dim, standardize)
    parts = {} if layer is None else {"standardize": layer}
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
