"""Continuous normalizing flow (Chen et al., NeurIPS 2018; FFJORD, Grathwohl et al., ICLR
2019): a standardising layer, then the time-``time`` map of a neural ODE
(``nitsjax.bijectors.cnf``, solved with diffrax through ``nitsjax.ode``), N(0, I) base.

Training (``nj.fit`` passes a key) uses Hutchinson's trace estimator when
``trace="hutchinson"``; ``flow.log_prob`` (no key) integrates the exact trace.
"""

from __future__ import annotations

from typing import Optional, Sequence

from nitsjax.bijectors.cnf import cnf as cnf_bijector
from nitsjax.distributions.base import standard_normal
from nitsjax.flow import Flow
from nitsjax.flows.common import check_common, check_order, flow_bijector, flow_spec

__all__ = ["cnf"]


def cnf(
    dim: int,
    *,
    hidden: Sequence[int] = (64, 64),
    context_dim: Optional[int] = None,
    trace: str = "exact",
    solver: str = "tsit5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    adjoint: str = "recursive",
    time: float = 1.0,
    activation: str = "tanh",
    max_steps: int = 4096,
    standardize: Optional[str] = "whiten",
    order: Optional[Sequence[int]] = None,
) -> Flow:
    """Continuous normalizing flow on R^dim: ``dz/dt = f(t, z)`` from the data (t=0) to the
    N(0, I) base (t=time), log-det by the integrated trace.

    Args:
      dim: event size.
      hidden: hidden widths of the vector field's MLP (input ``[z, t]`` and the context).
      context_dim: size of a conditioning input, or None.
      trace: "exact" (dim JVPs per step) or "hutchinson" (training only: one JVP with a
        Rademacher probe when a key is passed; evaluation stays exact).
      solver: adaptive diffrax solver: "tsit5", "dopri5", "dopri8", "bosh3" or "heun".
      rtol: relative tolerance of the step-size controller.
      atol: absolute tolerance of the step-size controller.
      adjoint: gradients through the solve: "recursive" (checkpointed backpropagation),
        "backsolve" (continuous adjoint, O(1) memory) or "direct".
      time: integration time T > 0.
      activation: smooth activation of the MLP: "tanh", "softplus" or "swish".
      max_steps: the most solver steps per event (a longer solve raises).
      standardize: data-side standardising layer ("whiten", "diagonal" or None).
      order: None or a permutation of range(dim) applied on the data side.

    Params: ``{"bijector": {["standardize",] "cnf": MLP variables}, "base": ...}``.
    """
    order = check_order(order, dim)
    spec = flow_spec("cnf", locals())
    hidden = check_common(dim, 1, hidden, context_dim, 0.0)
    core = cnf_bijector(dim, hidden, context_dim=context_dim, trace=trace, solver=solver,
                        rtol=rtol, atol=atol, adjoint=adjoint, time=time,
                        activation=activation, max_steps=max_steps)
    bij = flow_bijector(core, dim, standardize, order)
    return Flow(standard_normal(dim), bij, dim, context_dim, name="cnf", spec=spec)
