"""Ready-made affine flows: MAF, IAF, RealNVP. Layers are stacked with ``lax.scan``."""

from __future__ import annotations

from typing import Optional, Sequence

from nitsjax.bijectors.affine import affine_transformer, gated_affine_transformer
from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import chain, invert, stack
from nitsjax.bijectors.coupling import coupling
from nitsjax.bijectors.permute import reverse
from nitsjax.distributions.base import standard_normal
from nitsjax.flow import Flow
from nitsjax.flows.common import check_common


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
) -> Flow:
    """Masked autoregressive flow (Papamakarios et al., NeurIPS 2017).

    ``layers`` MADE-conditioned affine autoregressive layers, the order of coordinates
    reversed between layers, standard normal base. Cheap density, sequential sampling.
    ``gated=True`` uses the sigmoid-gated update of IAF (Kingma et al., 2016).
    """
    hidden = check_common(dim, layers, hidden, context_dim, dropout)
    t = gated_affine_transformer() if gated else affine_transformer()
    ar = masked_autoregressive(
        t, dim, hidden, context_dim=context_dim, residual=residual, degrees=degrees,
        dropout=dropout,
    )
    bij = stack(chain([ar, reverse(dim)]), layers)
    return Flow(standard_normal(dim), bij, dim, context_dim, name="maf")


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
) -> Flow:
    """Inverse autoregressive flow (Kingma et al., NeurIPS 2016): each layer is the
    inverse of a MAF layer, so sampling is one pass and density is sequential. Uses the
    numerically stable sigmoid-gated update by default."""
    hidden = check_common(dim, layers, hidden, context_dim, dropout)
    t = gated_affine_transformer() if gated else affine_transformer()
    ar = masked_autoregressive(
        t, dim, hidden, context_dim=context_dim, residual=residual, degrees=degrees,
        dropout=dropout,
    )
    bij = stack(chain([invert(ar), reverse(dim)]), layers)
    return Flow(standard_normal(dim), bij, dim, context_dim, name="iaf")


def realnvp(
    dim: int,
    *,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    context_dim: Optional[int] = None,
) -> Flow:
    """RealNVP (Dinh et al., ICLR 2017): affine coupling layers, halves swapped between
    layers by reversing the coordinates. Needs dim >= 2."""
    hidden = check_common(dim, layers, hidden, context_dim, 0.0)
    cp = coupling(affine_transformer(), dim, hidden, context_dim=context_dim)
    bij = stack(chain([cp, reverse(dim)]), layers)
    return Flow(standard_normal(dim), bij, dim, context_dim, name="realnvp")
