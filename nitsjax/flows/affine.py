"""Ready-made affine flows: MAF, IAF, RealNVP. Layers are stacked with ``lax.scan``.

Every constructor puts a standardising layer first on the data side (``standardize=``,
default ``"whiten"``: a full-covariance affine map, the identity at ``flow.init(key)`` and
set from the data by ``flow.init(key, x)`` / ``flow.data_init``; see
``nitsjax.flows.common``), so a fresh, data-initialised flow is the full-covariance
Gaussian fitted to the data and the flow gives the same density on ``a x + b`` as on
``x``, up to the Jacobian.

``actnorm`` and ``linear`` put, at the data side of each scanned layer, an ActNorm
(initialised from data) and/or an LU-parameterised linear map or a fixed random
permutation, in Glow's order: actnorm, linear, then the autoregressive/coupling layer and
the coordinate reversal (Kingma & Dhariwal, NeurIPS 2018; Durkan et al., NeurIPS 2019).

``order`` (None or a permutation of ``range(dim)``) permutes the coordinates on the data
side before everything else (``nitsjax.flows.common.order_layer``): the flow models
``x[:, order]``, densities and samples stay in the given coordinates.
"""

from __future__ import annotations

from typing import Optional, Sequence

from nitsjax.bijectors.affine import affine_transformer, gated_affine_transformer
from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import invert, stack
from nitsjax.bijectors.coupling import coupling
from nitsjax.distributions.base import standard_normal
from nitsjax.flow import Flow
from nitsjax.flows.common import (
    check_common,
    check_extras,
    check_order,
    check_standardize,
    flow_bijector,
    flow_layer,
    flow_spec,
)

__all__ = ["flow_layer", "iaf", "maf", "realnvp"]


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
    linear: Optional[str] = None,
    standardize: Optional[str] = "whiten",
    order: Optional[Sequence[int]] = None,
) -> Flow:
    """Masked autoregressive flow (Papamakarios et al., NeurIPS 2017).

    ``layers`` MADE-conditioned affine autoregressive layers, the order of coordinates
    reversed between layers, standard normal base. Cheap density, sequential sampling.
    ``gated=True`` uses the sigmoid-gated update of IAF (Kingma et al., 2016).
    ``actnorm=True`` / ``linear="lu" | "permute"`` add an ActNorm / LU linear layer or a
    fixed random permutation to each layer; ``standardize`` picks the data-side
    standardising layer (``"whiten"``, ``"diagonal"`` or None; module docstring).
    ``order``: None or a permutation of ``range(dim)``, the autoregressive order of the
    coordinates (a fixed data-side permutation, log-det 0, densities in your coordinates;
    ``nj.ordering.suggest`` proposes one). The other constructors take it too.
    Params: ``{"bijector": {"standardize": ..., "layers": {"made", "reverse", ...}}}``.
    """
    order = check_order(order, dim)
    spec = flow_spec("maf", locals())
    return _affine_autoregressive(
        "maf", dim, layers, hidden, context_dim, residual, gated, degrees, dropout, actnorm,
        linear, standardize, order, spec,
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
    linear: Optional[str] = None,
    standardize: Optional[str] = "whiten",
    order: Optional[Sequence[int]] = None,
) -> Flow:
    """Inverse autoregressive flow (Kingma et al., NeurIPS 2016): each layer is the
    inverse of a MAF layer, so sampling is one pass and density is sequential. Uses the
    numerically stable sigmoid-gated update by default (exactly the identity when fresh).
    ``actnorm``, ``linear`` and ``standardize`` as in ``maf``; those layers are not
    inverted, so they still initialise from data."""
    order = check_order(order, dim)
    spec = flow_spec("iaf", locals())
    return _affine_autoregressive(
        "iaf", dim, layers, hidden, context_dim, residual, gated, degrees, dropout, actnorm,
        linear, standardize, order, spec,
    )


def _affine_autoregressive(
    name, dim, layers, hidden, context_dim, residual, gated, degrees, dropout, actnorm, linear,
    standardize, order, spec,
) -> Flow:
    """MAF (``name="maf"``) or IAF (``"iaf"``: every autoregressive layer inverted)."""
    hidden = check_common(dim, layers, hidden, context_dim, dropout)
    check_extras(actnorm, linear)
    check_standardize(standardize)
    t = gated_affine_transformer() if gated else affine_transformer()
    ar = masked_autoregressive(
        t, dim, hidden, context_dim=context_dim, residual=residual, degrees=degrees,
        dropout=dropout,
    )
    core = invert(ar) if name == "iaf" else ar
    bij = flow_bijector(stack(flow_layer(core, dim, actnorm, linear), layers, name="layers"),
                        dim, standardize, order)
    return Flow(standard_normal(dim), bij, dim, context_dim, name=name, spec=spec)


def realnvp(
    dim: int,
    *,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    context_dim: Optional[int] = None,
    dropout: float = 0.0,
    actnorm: bool = False,
    linear: Optional[str] = None,
    standardize: Optional[str] = "whiten",
    order: Optional[Sequence[int]] = None,
) -> Flow:
    """RealNVP (Dinh et al., ICLR 2017): affine coupling layers, halves swapped between
    layers by reversing the coordinates. Needs dim >= 2. ``actnorm``, ``linear`` and
    ``standardize`` as in ``maf`` (actnorm + ``linear="lu"`` is a Glow step with affine
    coupling). ``dropout``: rate in the coupling MLPs, active when a key is passed."""
    order = check_order(order, dim)
    spec = flow_spec("realnvp", locals())
    hidden = check_common(dim, layers, hidden, context_dim, dropout)
    check_extras(actnorm, linear)
    check_standardize(standardize)
    cp = coupling(affine_transformer(), dim, hidden, context_dim=context_dim, dropout=dropout)
    bij = flow_bijector(stack(flow_layer(cp, dim, actnorm, linear), layers, name="layers"),
                        dim, standardize, order)
    return Flow(standard_normal(dim), bij, dim, context_dim, name="realnvp", spec=spec)
