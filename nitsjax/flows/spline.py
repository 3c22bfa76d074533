"""Neural spline flows (Durkan, Bekasov, Murray, Papamakarios, NeurIPS 2019).

``nsf(dim)`` stacks rational-quadratic spline layers, either coupling layers (RQ-NSF (C),
one network pass both ways) or MADE-conditioned autoregressive layers (RQ-NSF (AR), one
pass to evaluate the density, ``dim`` passes to sample). Each scanned layer is, data side
first, [ActNorm] -> [LU linear layer | fixed random permutation] -> spline layer ->
coordinate reversal; the NSF paper mixes coordinates with the learned LU linear layer
(section 3.4 / appendix B), the default here. The base is N(0, I).

Scale: outside ``[-bound, bound]`` every spline is the identity, so the data must reach
the splines standardised. The first layer (``standardize="whiten"`` by default) maps the
training data to zero mean and identity covariance when the flow is data-initialised
(``flow.init(key, x)`` or ``flow.data_init``; ``nj.fit`` does it for fresh params), and
the default ``bound=4`` keeps standardised data well inside: 99.99% of a standard normal
coordinate lies in [-4, 4] (FlowJAX's coupling NSF uses 4; the NSF paper 3 on UCI).
"""

from __future__ import annotations

from typing import Optional, Sequence

from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import stack
from nitsjax.bijectors.coupling import coupling
from nitsjax.bijectors.spline import rational_quadratic_transformer
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


def nsf(
    dim: int,
    *,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    bins: int = 8,
    bound: float = 4.0,
    autoregressive: bool = False,
    context_dim: Optional[int] = None,
    residual: bool = False,
    degrees: str = "sequential",
    dropout: float = 0.0,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
    linear: Optional[str] = "lu",
    actnorm: bool = False,
    standardize: Optional[str] = "whiten",
    order: Optional[Sequence[int]] = None,
) -> Flow:
    """A neural spline flow on R^dim.

    Args:
      dim: event size; coupling layers need ``dim >= 2`` (use ``autoregressive=True`` in 1-D).
      layers: number of spline layers.
      hidden: conditioner hidden widths (MLP for coupling, MADE for autoregressive).
      bins: spline bins per coordinate (>= 2).
      bound: the splines act on ``[-bound, bound]``, the identity outside (> 0); the
        default 4 holds standardised data (module docstring).
      autoregressive: MADE-conditioned autoregressive layers instead of coupling layers.
      context_dim: size of a conditioning input, or None.
      residual: residual MADE blocks (autoregressive only; equal hidden widths).
      degrees: MADE hidden degrees, ``"sequential"`` or ``"random"`` (autoregressive only).
      dropout: conditioner (MLP or MADE) dropout rate, active when a key is passed.
      min_width, min_height, min_derivative: spline floors, see
        ``nitsjax.bijectors.spline.rational_quadratic_transformer``.
      linear: mixing before each spline layer: ``"lu"`` (default, the NSF paper's learned
        LU-decomposed linear layer), ``"permute"`` (a fixed random permutation) or None
        (only the coordinate reversal between layers).
      actnorm: an ActNorm layer (initialised from data) at the start of each layer.
      standardize: the data-side standardising layer: ``"whiten"`` (default, full
        covariance), ``"diagonal"`` or None.
      order: None or a permutation of ``range(dim)``: the order in which the layers see
        the coordinates (a fixed data-side permutation; densities stay in your
        coordinates).

    Returns:
      A ``Flow`` named ``"nsf_coupling"`` or ``"nsf_autoregressive"``; a fresh flow is
      the identity map onto the standard normal (up to rounding), and right after data
      init the full-covariance Gaussian fitted to the data. Params: ``{"bijector":
      {"standardize": ..., "layers": {"lu_linear", "coupling" | "made", "reverse"}}}``.
    """
    order = check_order(order, dim)
    spec = flow_spec("nsf", locals())
    hidden = check_common(dim, layers, hidden, context_dim, dropout)
    check_extras(actnorm, linear)
    check_standardize(standardize)
    if not isinstance(autoregressive, bool):
        raise ValueError(f"autoregressive: expected True or False, got {autoregressive!r}")
    # checks bins >= 2, bound > 0 and the floors, naming the argument
    t = rational_quadratic_transformer(bins, bound, min_width, min_height, min_derivative)
    if autoregressive:
        if residual and len(set(hidden)) != 1:
            raise ValueError(
                f"hidden: residual=True needs equal hidden widths, got {hidden}"
            )
        layer = masked_autoregressive(
            t, dim, hidden, context_dim=context_dim, residual=residual, degrees=degrees,
            dropout=dropout,
        )
        name = "nsf_autoregressive"
    else:
        if dim < 2:
            raise ValueError(
                f"dim: coupling spline layers need dim >= 2, got dim={dim}; pass "
                f"autoregressive=True for a 1-D neural spline flow"
            )
        for arg, value, default in (
            ("residual", residual, False), ("degrees", degrees, "sequential"),
        ):
            if value != default:
                raise ValueError(
                    f"{arg}: only autoregressive=True (MADE conditioner) supports it; "
                    f"expected {default!r} with coupling layers, got {value!r}"
                )
        layer = coupling(t, dim, hidden, context_dim=context_dim, dropout=dropout)
        name = "nsf_coupling"
    bij = flow_bijector(stack(flow_layer(layer, dim, actnorm, linear), layers, name="layers"),
                        dim, standardize, order)
    return Flow(standard_normal(dim), bij, dim, context_dim, name=name, spec=spec)
