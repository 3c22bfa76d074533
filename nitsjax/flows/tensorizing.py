"""Tensorizing flow (Ren, Zhao, Khoo & Ying, "High-dimensional density estimation with
tensorizing flow", arXiv 2212.00759): a continuous normalizing flow whose base density is a
tensor-train density built from the data without optimisation (``nitsjax.tt.fit``), trained
by maximum likelihood from that base to the data.

The base. The TT density is zero outside its grid box; so that a point the flow moves out of
the box keeps a finite likelihood (and gradient), the base is the defensive mixture
``(1 - tail) * q_TT + tail * N(centre, (box width / 2)^2)`` with a small ``tail`` (exact
log-density and sampling of a mixture). The TT itself is fixed (no trainable base params).

The flow. ``bijector`` is any ``nitsjax`` bijector on R^dim mapping data to the base's space
(e.g. the CNF bijector of ``nitsjax.flows.cnf``). By default it is a small ODE flow solved
by ``nitsjax.ode.log_det_flow`` (diffrax): ``dz/dt = f(t, z)`` on t in [0, 1], ``f`` an MLP
of ``(z, t)`` whose last layer starts at zero (the flow starts as the identity, so training
starts from the TT density itself), exact trace ``tr(df/dz)`` by ``jax.jacfwd`` (small
``dim``), Tsit5 with a PID step-size controller and backpropagation through the solver
(diffrax's ``RecursiveCheckpointAdjoint``). ``log p(x) = log q_base(z(1)) + int_0^1
tr(df/dz) dt`` (Chen et al., NeurIPS 2018).
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from nitsjax import ode
from nitsjax.bijectors.base import Bijector
from nitsjax.distributions.base import Distribution
from nitsjax.flow import Flow
from nitsjax.tt import TensorTrain
from nitsjax.validation import check_hidden, check_positive_int


def tt_base(tt: TensorTrain, tail: float = 1e-3) -> Distribution:
    """The TT density as a flow's base: ``(1 - tail) q_TT + tail N(centre, (width/2)^2)``.

    Args:
      tt: a fitted ``TensorTrain`` (``nitsjax.tt.fit``).
      tail: the Gaussian's weight in (0, 1); keeps the log-density finite off the grid box.
    """
    if not isinstance(tt, TensorTrain):
        raise TypeError(f"tt: expected a nitsjax.tt.TensorTrain (from nj.tt.fit), "
                        f"got {type(tt).__name__}")
    if not 0.0 < tail < 1.0:
        raise ValueError(f"tail: expected a weight in (0, 1), got {tail!r}")
    centre = (tt.low + tt.high) / 2
    scale = (tt.high - tt.low) / 2

    def gauss_lp(z):
        u = (z - centre) / scale
        return jnp.sum(-0.5 * u * u - jnp.log(scale) - 0.5 * jnp.log(2 * jnp.pi))

    def log_prob(params, z):
        lp_tt = tt.log_prob_single(z.astype(tt.grid.dtype))
        return jnp.logaddexp(jnp.log1p(-tail) + lp_tt, jnp.log(tail) + gauss_lp(z))

    def sample(params, key):
        kc, kt, kg = jax.random.split(key, 3)
        g = centre + scale * jax.random.normal(kg, centre.shape, centre.dtype)
        return jnp.where(jax.random.uniform(kc) < tail, g, tt.sample_single(kt))

    return Distribution(tt.dim, lambda key: {}, log_prob, sample)


def ode_bijector(dim: int, hidden: Sequence[int] = (64, 64), *, rtol: float = 1e-3,
                 atol: float = 1e-5, max_steps: int = 1000) -> Bijector:
    """An ODE flow ``dz/dt = f(t, z)`` on [0, 1] with exact trace (module docstring).

    forward: data -> latent (t: 0 -> 1), inverse: latent -> data (t: 1 -> 0); each returns
    the log-determinant of its own map.
    """
    hidden = check_hidden(hidden, "hidden")
    sizes = (dim + 1, *hidden, dim)

    def init(key):
        keys = jax.random.split(key, len(sizes) - 1)
        layers = []
        for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            w = jnp.zeros((a, b)) if last else jax.random.normal(k, (a, b)) / jnp.sqrt(a)
            layers.append({"w": w, "b": jnp.zeros((b,))})
        return {"mlp": layers}

    def field(params, t, z):
        h = jnp.concatenate([z, jnp.reshape(t, (1,)).astype(z.dtype)])
        for layer in params["mlp"][:-1]:
            h = jnp.tanh(h @ layer["w"] + layer["b"])
        last = params["mlp"][-1]
        return h @ last["w"] + last["b"]

    def vector_field(params, t, z, context):
        return field(params, t, z)

    def solve(params, x, t0, t1):
        z, log_det = ode.log_det_flow(vector_field, params, x[None], t0, t1, trace="exact",
                                      rtol=rtol, atol=atol, max_steps=max_steps)
        return z[0], log_det[0]

    def forward(params, x, context=None, key=None):
        return solve(params, x, 0.0, 1.0)

    def inverse(params, z, context=None, key=None):
        return solve(params, z, 1.0, 0.0)

    return Bijector(init, forward, inverse, event_size=dim, name="ode")


def tensorizing_flow(dim: int, tt: TensorTrain, *, hidden: Sequence[int] = (64, 64),
                     tail: float = 1e-3, bijector: Optional[Bijector] = None) -> Flow:
    """A continuous normalizing flow with a tensor-train base density (module docstring).

    Args:
      dim: event size; must equal ``tt.dim``.
      tt: the base's tensor-train density (``nitsjax.tt.fit(x_train, rank=..., grid=...)``).
      hidden: hidden widths of the default ODE flow's vector field MLP.
      tail: weight of the Gaussian in the base's defensive mixture (``tt_base``).
      bijector: a bijector on R^dim (data -> base space) to use instead of the default ODE
        flow, e.g. ``nj.flows.cnf(dim, standardize=None).bijector`` (no data-side
        standardising layer: the TT is fitted in data space).
    """
    check_positive_int(dim, "dim")
    if not isinstance(tt, TensorTrain):
        raise TypeError(f"tt: expected a nitsjax.tt.TensorTrain (from nj.tt.fit), "
                        f"got {type(tt).__name__}")
    if tt.dim != dim:
        raise ValueError(f"tt: the tensor train is on R^{tt.dim} but dim={dim}; fit it on "
                         f"the same data the flow models")
    bij = ode_bijector(dim, hidden) if bijector is None else bijector
    spec = None if bijector is not None else ("tensorizing_flow", dim, id(tt),
                                               tuple(hidden), tail)
    return Flow(tt_base(tt, tail), bij, dim, name="tensorizing_flow", spec=spec)


def gaussian_cnf(dim: int, *, hidden: Sequence[int] = (64, 64)) -> Flow:
    """The same ODE flow with a standard normal base (the comparison of the paper)."""
    from nitsjax.distributions.base import standard_normal

    check_positive_int(dim, "dim")
    return Flow(standard_normal(dim), ode_bijector(dim, hidden), dim, name="ode_flow",
                spec=("gaussian_cnf", dim, tuple(hidden)))
