"""Continuous normalizing flow layer: the time-1 map of a neural ODE (``nitsjax.ode``).

``dz/dt = f(t, z, context)`` with ``f`` an MLP of ``[z, t]`` (and the context), smooth
activations, its output layer zero-initialised so that a fresh layer is the identity.
Forward (data -> latent) integrates from ``t = 0`` to ``t = time``; inverse from ``time``
back to 0; both return their log-det ``int tr(df/dz) dt`` from the same solve (Chen et al.,
NeurIPS 2018; FFJORD, Grathwohl et al., ICLR 2019).

The trace is exact (``dim`` JVPs per evaluation of ``f``) unless ``trace="hutchinson"``
AND a ``key`` is passed: ``Flow`` passes a key in training mode (``nj.fit``), so training
uses FFJORD's unbiased estimator (one JVP, one Rademacher probe per event held fixed along
the path) while ``flow.log_prob`` and evaluation (``key=None``) stay exact.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from nitsjax import ode
from nitsjax.bijectors.base import Bijector
from nitsjax.nn.mlp import MLP

ACTIVATIONS = {"tanh": nn.tanh, "softplus": nn.softplus, "swish": nn.swish}


def cnf(dim: int, hidden: Sequence[int] = (64, 64), *, context_dim: Optional[int] = None,
        trace: str = "exact", solver: str = "tsit5", rtol: float = 1e-5, atol: float = 1e-5,
        adjoint: str = "recursive", time: float = 1.0, activation: str = "tanh",
        max_steps: int = 4096, name: str = "cnf") -> Bijector:
    """The CNF bijector on R^dim.

    Args:
      dim: event size.
      hidden: widths of the vector field's MLP (input ``[z, t]`` (+ context), output dim).
      context_dim: size of a conditioning input (concatenated to the MLP input), or None.
      trace: "exact", or "hutchinson" to estimate the trace when a key is passed (training).
      solver, rtol, atol, adjoint, max_steps: the ODE solve (``nitsjax.ode``).
      time: the integration time T > 0 (the layer is the flow's map from 0 to T).
      activation: "tanh", "softplus" or "swish" (smooth: the solver needs a smooth field).
      name: the layer's name (its params' key in a chain).

    Params: the flax variables of the MLP.
    """
    ode.check_options(trace=trace, solver=solver, rtol=rtol, atol=atol, adjoint=adjoint,
                      max_steps=max_steps)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {tuple(ACTIVATIONS)}, got "
                         f"{activation!r}")
    if not float(time) > 0:
        raise ValueError(f"time: expected a positive integration time such as 1.0, got {time}")
    mlp = MLP(hidden=tuple(hidden), out_dim=dim, out_bias=np.zeros(dim),
              activation=ACTIVATIONS[activation])

    def field(params, t, z, context):
        h = jnp.concatenate([z, jnp.reshape(t, (1,)).astype(z.dtype)])
        return mlp.apply(params, h, context).astype(z.dtype)

    def init(key):
        ctx = None if context_dim is None else jnp.zeros(context_dim)
        return mlp.init(key, jnp.zeros(dim + 1), ctx)

    def _run(params, x, context, key, t0, t1):
        hutchinson = trace == "hutchinson" and key is not None
        c = None if context is None else context[None]
        z, log_det = ode.log_det_flow(
            field, params, x[None], t0, t1, trace="hutchinson" if hutchinson else "exact",
            key=key if hutchinson else None, solver=solver, rtol=rtol, atol=atol,
            adjoint=adjoint, context=c, max_steps=max_steps)
        return z[0], log_det[0]

    def forward(params, x, context=None, key=None):
        return _run(params, x, context, key, 0.0, float(time))

    def inverse(params, z, context=None, key=None):
        return _run(params, z, context, key, float(time), 0.0)

    return Bijector(init, forward, inverse, event_size=dim, name=name)
