"""Contract cases for the affine family: elementwise, MAF/IAF layers, coupling, stacks."""

from contract import BijectorCase, FlowCase

import nitsjax as nj
from nitsjax import bijectors as B

BIJECTORS = [
    BijectorCase("elementwise_affine", lambda: B.elementwise_affine(3), 3),
    BijectorCase("reverse", lambda: B.reverse(4), 4),
    BijectorCase("random_permutation", lambda: B.random_permutation(5, seed=1), 5),
    BijectorCase(
        "maf_layer", lambda: B.masked_autoregressive(B.affine_transformer(), 4, (16, 16)), 4
    ),
    BijectorCase(
        "maf_layer_residual_random",
        lambda: B.masked_autoregressive(
            B.affine_transformer(), 4, (16, 16, 16), residual=True, degrees="random"
        ),
        4, slow=("float64",),
    ),
    BijectorCase(
        "maf_layer_gated_context",
        lambda: B.masked_autoregressive(B.gated_affine_transformer(), 3, (16,), context_dim=2),
        3,
        context_dim=2, slow=("float64",),
    ),
    BijectorCase(
        "iaf_layer", lambda: B.invert(B.masked_autoregressive(B.affine_transformer(), 3, (16,))), 3
    ),
    BijectorCase(
        "affine_coupling_context",
        lambda: B.coupling(B.affine_transformer(), 5, (16,), context_dim=3),
        5,
        context_dim=3,
    ),
    BijectorCase(
        "chain_named_dict",
        lambda: B.chain({"first": B.masked_autoregressive(B.affine_transformer(), 3, (8,)),
                         "flip": B.reverse(3), "scale": B.elementwise_affine(3)}),
        3,
    ),
    BijectorCase(
        "iaf_layer_gated", lambda: B.invert(
            B.masked_autoregressive(B.gated_affine_transformer(), 3, (8,))), 3,
    ),
    BijectorCase(
        "stack_chain",
        lambda: B.stack(
            B.chain([B.masked_autoregressive(B.affine_transformer(), 3, (8,)), B.reverse(3)]), 3
        ),
        3,
        perturb=0.2,
    ),
]

FLOWS = [
    FlowCase("maf", lambda: nj.flows.maf(2, layers=3, hidden=(16, 16))),
    FlowCase("maf_context", lambda: nj.flows.maf(2, layers=2, hidden=(16,), context_dim=3)),
    FlowCase("iaf", lambda: nj.flows.iaf(2, layers=3, hidden=(16, 16))),
    FlowCase("iaf_context", lambda: nj.flows.iaf(3, layers=2, hidden=(16,), context_dim=2)),
    FlowCase("realnvp", lambda: nj.flows.realnvp(2, layers=3, hidden=(16, 16))),
    FlowCase("realnvp_context", lambda: nj.flows.realnvp(4, layers=2, hidden=(16,), context_dim=2)),
    FlowCase("maf_6d", lambda: nj.flows.maf(6, layers=5, hidden=(32, 32))),
    FlowCase("maf_permute_diagonal",
             lambda: nj.flows.maf(3, layers=2, hidden=(8,), linear="permute",
                                  standardize="diagonal")),
    FlowCase("realnvp_dropout_unstandardized",
             lambda: nj.flows.realnvp(2, layers=2, hidden=(8,), dropout=0.1, standardize=None)),
]
