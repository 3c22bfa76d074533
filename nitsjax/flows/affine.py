"""Ready-made affine flows: MAF, IAF, RealNVP. Layers are stacked with ``lax.scan``.

Every constructor takes ``actnorm`` and ``linear`` to put, at the data side of each
scanned layer, an ActNorm (initialised from data by ``Flow.init(key, x=batch)``) and/or
an LU-parameterised linear map, in Glow's order: actnorm, linear, then the
autoregressive/coupling layer and the coordinate reversal (Kingma & Dhariwal, NeurIPS
2018; Durkan et al., NeurIPS 2019).
"""

from __future__ import annotations

from typing import Optional, Sequence

from nitsjax.bijectors.actnorm import actnorm as actnorm_layer
from nitsjax.bijectors.affine import affine_transformer, gated_affine_transformer
from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import Bijector, chain, invert, stack
from nitsjax.bijectors.coupling import coupling
from nitsjax.bijectors.linear import lu_linear
from nitsjax.bijectors.permute import reverse
from nitsjax.distributions.base import standard_normal
from nitsjax.flow import Flow
from nitsjax.flows.common import check_common

LINEAR_LAYERS = (None, "lu")


def check_extras(actnorm, linear) -> None:
    """Validate the ``actnorm`` and ``linear`` options of the flow constructors."""
    if not isinstance(actnorm, bool):
        raise ValueError(f"actnorm: expected True or False, got {actnorm!r}")
    if linear not in LINEAR_LAYERS:
        raise ValueError(f"linear: expected one of {LINEAR_LAYERS}, got {linear!r}")


def flow_layer(core: Bijector, dim: int, actnorm: bool, linear) -> Bijector:
    """One scanned layer: [actnorm] -> [linear] -> core -> reverse, data side first."""
    parts = []
    if actnorm:
        parts.append(actnorm_layer(dim))
    if linear == "lu":
        parts.append(lu_linear(dim))
    return chain([*parts, core, reverse(dim)])


def maf(
    dim: int,
    *,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    context_dim: Optional[int] = None,
    residual: bool = False,
    gated: bool = False,
    degrees: str = "sequential",
    dropout: float = 0.0,
    actnorm: bool = False,
    linear: str | None = None,
) -> Flow:
    """Masked autoregressive flow (Papamakarios et al., NeurIPS 2017).

    ``layers`` MADE-conditioned affine autoregressive layers, the order of coordinates
    reversed between layers, standard normal base. Cheap density, sequential sampling.
    ``gated=True`` uses the sigmoid-gated update of IAF (Kingma et al., 2016).
    ``actnorm=True`` / ``linear="lu"`` add an ActNorm / LU linear layer to each layer
    (module docstring).
    """
    return _affine_autoregressive(
        "maf", dim, layers, hidden, context_dim, residual, gated, degrees, dropout, actnorm,
        linear,
    )


def iaf(
    dim: int,
    *,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    context_dim: Optional[int] = None,
    residual: bool = False,
    gated: bool = True,
    degrees: str = "sequential",
    dropout: float = 0.0,
    actnorm: bool = False,
    linear: str | None = None,
) -> Flow:
    """Inverse autoregressive flow (Kingma et al., NeurIPS 2016): each layer is the
    inverse of a MAF layer, so sampling is one pass and density is sequential. Uses the
    numerically stable sigmoid-gated update by default. ``actnorm`` and ``linear`` as in
    ``maf``; the extra layers are not inverted, so ActNorm still initialises from data."""
    return _affine_autoregressive(
        "iaf", dim, layers, hidden, context_dim, residual, gated, degrees, dropout, actnorm,
        linear,
    )


def _affine_autoregressive(
    name, dim, layers, hidden, context_dim, residual, gated, degrees, dropout, actnorm, linear
) -> Flow:
    """MAF (``name="maf"``) or IAF (``"iaf"``: every autoregressive layer inverted)."""
    hidden = check_common(dim, layers, hidden, context_dim, dropout)
    check_extras(actnorm, linear)
    t = gated_affine_transformer() if gated else affine_transformer()
    ar = masked_autoregressive(
        t, dim, hidden, context_dim=context_dim, residual=residual, degrees=degrees,
        dropout=dropout,
    )
    core = invert(ar) if name == "iaf" else ar
    bij = stack(flow_layer(core, dim, actnorm, linear), layers)
    return Flow(standard_normal(dim), bij, dim, context_dim, name=name)


def realnvp(
    dim: int,
    *,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    context_dim: Optional[int] = None,
    actnorm: bool = False,
    linear: str | None = None,
) -> Flow:
    """RealNVP (Dinh et al., ICLR 2017): affine coupling layers, halves swapped between
    layers by reversing the coordinates. Needs dim >= 2. ``actnorm`` and ``linear`` as in
    ``maf`` (actnorm + ``linear="lu"`` is a Glow step with affine coupling)."""
    hidden = check_common(dim, layers, hidden, context_dim, 0.0)
    check_extras(actnorm, linear)
    cp = coupling(affine_transformer(), dim, hidden, context_dim=context_dim)
    bij = stack(flow_layer(cp, dim, actnorm, linear), layers)
    return Flow(standard_normal(dim), bij, dim, context_dim, name="realnvp")
