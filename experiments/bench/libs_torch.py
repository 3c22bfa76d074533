"""PyTorch peers of the benchmark: zuko and nflows (CPU, float32, eager).

Same architecture as the JAX side: ``layers`` layers, MADE / MLP conditioners with the
hidden widths of the task (ReLU), coordinates reversed between layers, 8-bin
rational-quadratic splines on ``[-4, 4]`` with linear (identity) tails, Adam 1e-3.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from common import SPLINE_BOUND

LR = 1e-3


def _threads():
    torch.set_num_threads(max(1, torch.get_num_threads()))
    torch.set_default_dtype(torch.float32)


def zuko_flow(task: dict):
    import zuko

    d, layers, hidden, bins = task["dim"], task["layers"], tuple(task["hidden"]), task["bins"]
    kind = task["flow"]
    common = dict(features=d, transforms=layers, hidden_features=hidden)
    if kind == "maf":
        return zuko.flows.MAF(**common)
    if kind == "maf_rqs":
        return zuko.flows.NSF(bins=bins, **common)  # fully autoregressive by default
    if kind == "nsf":
        return zuko.flows.NSF(bins=bins, passes=2, **common)  # coupling
    if kind == "realnvp":
        return zuko.flows.RealNVP(**common)
    raise ValueError(f"flow: unknown {kind!r}")


def nflows_flow(task: dict):
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.nn.nets import MLP
    from nflows.transforms.autoregressive import (
        MaskedAffineAutoregressiveTransform,
        MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
    )
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import (
        AffineCouplingTransform,
        PiecewiseRationalQuadraticCouplingTransform,
    )
    from nflows.transforms.permutations import ReversePermutation

    d, layers, hidden, bins = task["dim"], task["layers"], list(task["hidden"]), task["bins"]
    if len(set(hidden)) != 1:
        raise ValueError(f"hidden: nflows MADE has equal widths, got {hidden}")
    width, blocks = hidden[0], len(hidden) - 1  # MADE: initial layer + blocks + output
    kind = task["flow"]
    mask = torch.zeros(d)
    mask[d // 2:] = 1  # coupling: transform the last half given the first

    def net(i, o):
        return MLP([i], [o], hidden_sizes=hidden)

    def layer():
        if kind == "maf":
            return MaskedAffineAutoregressiveTransform(
                d, width, num_blocks=blocks, use_residual_blocks=False)
        if kind == "maf_rqs":
            return MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                d, width, num_bins=bins, tails="linear", tail_bound=SPLINE_BOUND,
                num_blocks=blocks, use_residual_blocks=False)
        if kind == "nsf":
            return PiecewiseRationalQuadraticCouplingTransform(
                mask, net, num_bins=bins, tails="linear", tail_bound=SPLINE_BOUND)
        if kind == "realnvp":
            return AffineCouplingTransform(mask, net)
        raise ValueError(f"flow: unknown {kind!r}")

    ts = []
    for _ in range(layers):
        ts += [layer(), ReversePermutation(d)]
    return Flow(CompositeTransform(ts), StandardNormal([d]))


def build_torch(task: dict, lib: str):
    _threads()
    torch.manual_seed(task.get("seed", 0))
    if lib == "zuko":
        flow = zuko_flow(task)
        log_prob_fn = lambda x: flow().log_prob(x)  # noqa: E731
        sample_fn = lambda n: flow().sample((n,))  # noqa: E731
        how = f"zuko.flows.{type(flow).__name__}"
    else:
        flow = nflows_flow(task)
        log_prob_fn = flow.log_prob
        sample_fn = flow.sample
        how = "nflows CompositeTransform"
    opt = torch.optim.Adam(flow.parameters(), lr=LR)

    def train(xb):
        xs = [torch.from_numpy(b) for b in xb]
        flow.train()
        for x in xs:
            opt.zero_grad(set_to_none=True)
            loss = -log_prob_fn(x).mean()
            loss.backward()
            opt.step()

    def log_prob(x):
        flow.eval()
        with torch.no_grad():
            return log_prob_fn(torch.from_numpy(x))

    def sample(n):
        flow.eval()
        with torch.no_grad():
            return sample_fn(n)

    return SimpleNamespace(train=train, log_prob=log_prob, sample=sample, how=how,
                           xla_flops=lambda x: None)
