"""Contract cases for NITS: the PNN transformer inside autoregressive and coupling layers,
the NITS bijector (unbounded, bounded, rotated, conditional) and the ``nits`` flow."""

from contract import BijectorCase, FlowCase

from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.coupling import coupling
from nitsjax.bijectors.nits import nits_bijector, normal_squash
from nitsjax.bijectors.pnn import pnn_transformer
from nitsjax.flows.nits import nits

BIJECTORS = [
    BijectorCase(
        "pnn_maf_layer_linear_tails",
        lambda: masked_autoregressive(
            pnn_transformer((8,), (-3.0, 3.0), tails="linear"), 3, (16, 16)
        ),
        3,
        low=-4.0,  # crosses the linear tails on both sides
        high=4.0, slow=("float64",),
    ),
    BijectorCase(
        "pnn_coupling_context_linear_tails",
        lambda: coupling(
            pnn_transformer((8, 8), (-3.0, 3.0), tails="linear", solver="chandrupatla"),
            4,
            (16,),
            context_dim=2,
        ),
        4,
        context_dim=2, slow=("float64",),
    ),
    BijectorCase("normal_squash", lambda: normal_squash(3), 3, low=-3.0, high=3.0),
    BijectorCase(
        "normal_squash_learned",
        # |y| <= ~2.5: float32 Phi keeps ~1e-4 inverse accuracy there (see normal_squash)
        lambda: normal_squash(2, loc=[0.5, 1.0], scale=[2.0, 1.5], learn=True),
        2,
        perturb=0.2,
    ),
    BijectorCase(
        "nits_normal_squash",
        lambda: nits_bijector(3, arch=(8,), hidden=32, blocks=1, squash="normal"),
        3, slow=("float64",),
    ),
    BijectorCase("nits_unbounded", lambda: nits_bijector(3, arch=(8, 8), hidden=32, blocks=1), 3,
                 slow=("float64",)),
    BijectorCase(
        "nits_bounded_per_dim_bisection",
        lambda: nits_bijector(
            3, arch=(8,), hidden=32, blocks=1, bounds=([-3.0, -2.5, -4.0], [3.0, 2.5, 4.0]),
            solver="bisection",
        ),
        3,
    ),
    BijectorCase(
        "nits_rotate_context_learned_squash",
        lambda: nits_bijector(
            3, arch=(8,), hidden=32, blocks=2, rotate=True, context_dim=2, learn_squash=True,
            squash_scale=1.5, solver="chandrupatla",
        ),
        3,
        context_dim=2, slow=("float64",),
    ),
]

FLOWS = [
    FlowCase("nits", lambda: nits(2, arch=(8, 8), hidden=32, blocks=1), low=-14.0, high=14.0),
    FlowCase(
        "nits_bounded",
        lambda: nits(2, arch=(8,), hidden=32, blocks=1, bounds=(-3.0, 3.0)),
        low=-3.0,
        high=3.0,
    ),
    FlowCase(
        "nits_context_rotate",
        lambda: nits(3, arch=(8,), hidden=32, blocks=1, context_dim=2, rotate=True),
    ),
]
