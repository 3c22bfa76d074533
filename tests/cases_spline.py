"""Contract cases for neural spline flows: RQ-spline coupling and autoregressive layers
(inputs span inside and outside [-B, B], so the identity tails are exercised) and ``nsf``."""

from contract import BijectorCase, FlowCase

from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.coupling import coupling
from nitsjax.bijectors.spline import rational_quadratic_transformer as rq
from nitsjax.flows.spline import nsf

BIJECTORS = [
    BijectorCase(
        "spline_coupling", lambda: coupling(rq(bins=6, bound=2.0), 4, (16,)), 4,
        low=-3.0, high=3.0,
    ),
    BijectorCase(
        "spline_coupling_context",
        lambda: coupling(rq(bins=5, bound=1.5), 3, (16, 16), context_dim=2), 3,
        context_dim=2, low=-2.5, high=2.5, perturb=0.3, slow=("float64",),
    ),
    BijectorCase(
        "spline_autoregressive", lambda: masked_autoregressive(rq(bins=8, bound=2.0), 3, (16, 16)),
        3, low=-3.0, high=3.0, slow=("float64",),
    ),
    BijectorCase(
        "spline_autoregressive_residual_context",
        lambda: masked_autoregressive(
            rq(bins=4, bound=1.0), 4, (16, 16), context_dim=3, residual=True
        ),
        4, context_dim=3, low=-2.0, high=2.0, slow=("float64",),
    ),
]

FLOWS = [
    FlowCase(
        "nsf_coupling_permute_actnorm",
        lambda: nsf(2, layers=2, hidden=(8,), bins=4, linear="permute", actnorm=True),
    ),
    FlowCase("nsf_coupling", lambda: nsf(2, layers=3, hidden=(16, 16), bins=6)),
    FlowCase(
        "nsf_coupling_context", lambda: nsf(2, layers=2, hidden=(16,), bins=5, context_dim=3)
    ),
    FlowCase(
        "nsf_autoregressive",
        lambda: nsf(2, layers=3, hidden=(16, 16), bins=6, autoregressive=True),
    ),
    FlowCase(
        "nsf_autoregressive_context",
        lambda: nsf(2, layers=2, hidden=(16,), bins=4, autoregressive=True, context_dim=2),
    ),
    FlowCase(
        "nsf_coupling_5d", lambda: nsf(5, layers=4, hidden=(32, 32), bins=8, bound=2.5)
    ),
]
