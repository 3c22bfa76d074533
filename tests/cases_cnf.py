"""Contract cases for continuous normalizing flows (``nitsjax.bijectors.cnf``, ``nj.flows.cnf``).

The ODE solve is accurate to the solver's tolerances (rtol = atol = 1e-5), not to
rounding, so the cases carry looser tolerances. ``adjoint="direct"``: the contract's
log-det check differentiates the solve forward (``jax.jacfwd``), which diffrax's
checkpointed reverse-mode adjoint does not support. Only the tiny 2-D float32 case runs
in the fast tier; its float64 twin, the conditional case and the flow run with the slow
tests."""

from contract import BijectorCase, FlowCase

from nitsjax.bijectors.cnf import cnf as cnf_bijector
from nitsjax.flows.cnf import cnf

BIJECTORS = [
    BijectorCase(
        "cnf_2d", lambda: cnf_bijector(2, (8,), adjoint="direct"), 2,
        atol=2e-4, rtol=1e-3, atol64=2e-5, rtol64=1e-4, perturb=0.5,
        slow=("float32", "float64"),  # compile-bound: the ODE is checked by test_cnf/test_ode
    ),
    BijectorCase(
        "cnf_context_3d",
        lambda: cnf_bijector(3, (16, 16), context_dim=2, adjoint="direct", solver="dopri5",
                             activation="softplus"),
        3, context_dim=2, atol=2e-4, rtol=1e-3, atol64=2e-5, rtol64=1e-4, perturb=0.3,
        slow=("float32", "float64"),
    ),
]

FLOWS = [
    FlowCase("cnf_flow", lambda: cnf(2, hidden=(16,)), slow=True),
    FlowCase("cnf_flow_context", lambda: cnf(2, hidden=(8,), context_dim=2, trace="hutchinson"),
             slow=True),
]
