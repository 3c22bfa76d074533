"""Contract cases for marginal tail-adaptive flows (the tail-preserving autoregressive core
with a fixed heavy mask; ``mtaf`` with Student-t marginals, learned degrees of freedom,
``order=`` and a context)."""

import numpy as np
from contract import BijectorCase, FlowCase

from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.spline import rational_quadratic_transformer as rq
from nitsjax.flows.mtaf import mtaf, tail_preserving_autoregressive

BIJECTORS = [
    BijectorCase(  # 3 layers: odd, so the final within-group reversal is undone at the end
        "tail_preserving_autoregressive",
        lambda: tail_preserving_autoregressive(
            masked_autoregressive(rq(bins=4, bound=2.0), 3, (8,)), 3, 3,
            np.array([True, False, True]),
        ),
        3, low=-3.0, high=3.0, perturb=0.3, slow=("float64",),
    ),
]

FLOWS = [
    # heavy coordinate 1 (Student-t, 5 degrees of freedom): all but 1e-5 of the mass in
    # [-30, 30]; order=[1, 0] puts it first on the data side, the grouping puts it last
    FlowCase(
        "mtaf_learn_df_order_context",
        lambda: mtaf(2, heavy=[False, True], df=[1.0, 5.0], learn_df=True, layers=1,
                     hidden=(8,), bins=4, order=[1, 0], context_dim=2, standardize="diagonal"),
        low=-30.0, high=30.0,
    ),
]
