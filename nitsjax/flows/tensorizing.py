"""Tensorizing flow (Ren, Zhao, Khoo & Ying, "High-dimensional density estimation with
tensorizing flow", arXiv 2212.00759): a continuous normalizing flow whose base density is a
tensor-train density built from the data without optimisation (``nitsjax.tt.fit``), trained
by maximum likelihood from that base to the data.

The base. The TT density is zero outside its grid box; so that a point the flow moves out of
the box keeps a finite likelihood (and gradient), the base is the defensive mixture
``(1 - tail) * q_TT + tail * N(centre, (box width / 2)^2)`` with a small ``tail`` (exact
log-density and sampling of a mixture). The TT is the base's params, under the key
``"frozen"`` (``{"base": {"frozen": TensorTrain}}``): saved and loaded with the flow's
params, never trained (``stop_gradient``; ``nj.fit`` leaves ``"frozen"`` params unchanged,
weight decay included).

The flow. ``bijector`` is any ``nitsjax`` bijector on R^dim mapping data to the base's space.
By default it is the CNF bijector ``nitsjax.bijectors.cnf`` (diffrax through ``nitsjax.ode``):
``dz/dt = f(t, z)`` on t in [0, 1], ``f`` a tanh MLP of ``(z, t)`` whose output layer starts
at zero (the flow starts as the identity, so training starts from the TT density itself),
exact trace ``tr(df/dz)`` (small ``dim``), Tsit5 with a PID step-size controller (rtol 1e-3)
and backpropagation through the solver (diffrax's ``RecursiveCheckpointAdjoint``).
``log p(x) = log q_base(z(1)) + int_0^1 tr(df/dz) dt`` (Chen et al., NeurIPS 2018).

``tensorizing(dim, *, x_train, rank, grid, ...)`` is the same flow with the TT fitted from
``x_train`` inside, the form ``model=tensorizing`` of the command line builds.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax import tt as tt_lib
from nitsjax.bijectors.base import Bijector
from nitsjax.bijectors.cnf import cnf as cnf_bijector
from nitsjax.distributions.base import Distribution
from nitsjax.flow import Flow
from nitsjax.flows.cnf import cnf
from nitsjax.tt import TensorTrain
from nitsjax.validation import check_hidden, check_positive_int

__all__ = ["gaussian_cnf", "tensorizing", "tensorizing_flow", "tt_base"]

#: the ODE solve of the default flow (looser than ``nj.flows.cnf``'s 1e-5: a 2-D toy needs no
#: more, and it keeps the solver's step count small)
ODE_OPTIONS = dict(rtol=1e-3, atol=1e-5, max_steps=1000)


def _check_tt(tt) -> None:
    if not isinstance(tt, TensorTrain):
        raise TypeError(f"tt: expected a nitsjax.tt.TensorTrain (from nj.tt.fit), "
                        f"got {type(tt).__name__}")


def tt_base(tt: TensorTrain, tail: float = 1e-3) -> Distribution:
    """The TT density as a flow's base: ``(1 - tail) q_TT + tail N(centre, (width/2)^2)``.

    Args:
      tt: a fitted ``TensorTrain`` (``nitsjax.tt.fit``): the base's init returns it as its
        params ``{"frozen": tt}`` (constants: never trained, saved with the flow's params).
      tail: the Gaussian's weight in (0, 1); keeps the log-density finite off the grid box.
    """
    _check_tt(tt)
    if not 0.0 < tail < 1.0:
        raise ValueError(f"tail: expected a weight in (0, 1), got {tail!r}")

    def frozen(params):
        t = jax.lax.stop_gradient(params["frozen"])
        return t, (t.low + t.high) / 2, (t.high - t.low) / 2

    def log_prob(params, z):
        t, centre, scale = frozen(params)
        u = (z - centre) / scale
        gauss = jnp.sum(-0.5 * u * u - jnp.log(scale) - 0.5 * jnp.log(2 * jnp.pi))
        lp_tt = t.log_prob_single(z.astype(t.grid.dtype))
        return jnp.logaddexp(jnp.log1p(-tail) + lp_tt, jnp.log(tail) + gauss)

    def sample(params, key):
        t, centre, scale = frozen(params)
        kc, kt, kg = jax.random.split(key, 3)
        g = centre + scale * jax.random.normal(kg, centre.shape, centre.dtype)
        return jnp.where(jax.random.uniform(kc) < tail, g, t.sample_single(kt))

    return Distribution(tt.dim, lambda key: {"frozen": tt}, log_prob, sample)


def tensorizing_flow(dim: int, tt: TensorTrain, *, hidden: Sequence[int] = (64, 64),
                     tail: float = 1e-3, bijector: Optional[Bijector] = None) -> Flow:
    """A continuous normalizing flow with a tensor-train base density (module docstring).

    Args:
      dim: event size; must equal ``tt.dim``.
      tt: the base's tensor-train density (``nitsjax.tt.fit(x_train, rank=..., grid=...)``).
      hidden: hidden widths of the default CNF's vector field MLP.
      tail: weight of the Gaussian in the base's defensive mixture (``tt_base``).
      bijector: a bijector on R^dim (data -> base space) to use instead of the default CNF
        (``nj.bijectors.cnf(dim, hidden, **ODE_OPTIONS)``), e.g.
        ``nj.flows.cnf(dim, standardize=None).bijector`` (no data-side standardising layer:
        the TT is fitted in data space).

    Params: ``{"bijector": ..., "base": {"frozen": tt}}``.
    """
    check_positive_int(dim, "dim")
    _check_tt(tt)
    if tt.dim != dim:
        raise ValueError(f"tt: the tensor train is on R^{tt.dim} but dim={dim}; fit it on "
                         f"the same data the flow models")
    hidden = check_hidden(hidden, "hidden")
    bij = cnf_bijector(dim, hidden, **ODE_OPTIONS) if bijector is None else bijector
    spec = None if bijector is not None else ("tensorizing_flow", dim, id(tt), hidden, tail)
    return Flow(tt_base(tt, tail), bij, dim, name="tensorizing_flow", spec=spec)


def tensorizing(dim: int, *, x_train: Optional[np.ndarray] = None, rank: int = 8,
                grid: int = 48, bandwidth: Optional[float] = None, pad: float = 0.1,
                hidden: Sequence[int] = (64, 64), tail: float = 1e-3, trace: str = "exact",
                solver: str = "tsit5", rtol: float = 1e-3, atol: float = 1e-5,
                adjoint: str = "recursive", max_steps: int = 1000) -> Flow:
    """The tensorizing flow with its TT base fitted from the training rows
    (``model=tensorizing``: the command line passes the training split as ``x_train``).

    Args:
      dim: event size.
      x_train: (N, dim) training rows the TT base is fitted on (``nj.tt.fit``); None builds
        the flow around an unfitted placeholder TT of the same shapes (uniform on the unit
        box), only to load saved params into (``nitsjax eval``: the TT is in the params).
      rank: TT rank (>= 1; capped at ``grid``).
      grid: TT grid points a dimension (>= 2).
      bandwidth: the KDE bandwidth of the TT sketch, or None for Scott's rule.
      pad: the TT grid box's padding beyond the data range, relative to the range.
      hidden: hidden widths of the vector field's MLP.
      tail: weight of the Gaussian in the base's defensive mixture (``tt_base``).
      trace: "exact", or "hutchinson" (training only; evaluation stays exact).
      solver: adaptive diffrax solver: "tsit5", "dopri5", "dopri8", "bosh3" or "heun".
      rtol: relative tolerance of the step-size controller.
      atol: absolute tolerance of the step-size controller.
      adjoint: gradients through the solve: "recursive", "backsolve" or "direct".
      max_steps: the most solver steps per event (a longer solve raises).

    Params: ``{"bijector": CNF MLP variables, "base": {"frozen": TensorTrain}}``.
    """
    check_positive_int(dim, "dim")
    if x_train is None:
        tt = _placeholder_tt(dim, rank, grid)
    else:
        tt = tt_lib.fit(x_train, rank=rank, grid=grid, bandwidth=bandwidth, pad=pad)
        if tt.dim != dim:
            raise ValueError(f"x_train: expected rows of {dim} values (dim={dim}), got "
                             f"{tt.dim}")
    bij = cnf_bijector(dim, check_hidden(hidden, "hidden"), trace=trace, solver=solver,
                       rtol=rtol, atol=atol, adjoint=adjoint, max_steps=max_steps)
    return Flow(tt_base(tt, tail), bij, dim, name="tensorizing", spec=(
        "tensorizing", dim, id(tt), tuple(hidden), tail, trace, solver, rtol, atol, adjoint,
        max_steps))


def _placeholder_tt(dim: int, rank: int, grid: int) -> TensorTrain:
    """A TT of the shapes ``nj.tt.fit(x, rank=rank, grid=grid)`` gives on R^dim: all-ones
    cores on the unit box (the uniform density), a template to load fitted values into."""
    tt_lib.check_shape_options(rank, grid)
    r = min(int(rank), int(grid))
    ranks = [1] + [r] * (dim - 1) + [1]
    dtype = jnp.result_type(float)
    cores = tuple(jnp.ones((ranks[k], grid, ranks[k + 1]), dtype) for k in range(dim))
    g = jnp.tile(jnp.linspace(0.0, 1.0, grid, dtype=dtype), (dim, 1))
    return TensorTrain(cores, g, tt_lib._right_environments(cores, g), jnp.ones(dim, dtype))


def gaussian_cnf(dim: int, *, hidden: Sequence[int] = (64, 64)) -> Flow:
    """The same CNF with a standard normal base (the comparison of the paper):
    ``nj.flows.cnf(dim, hidden=hidden, standardize=None, **ODE_OPTIONS)``."""
    return cnf(dim, hidden=hidden, standardize=None, **ODE_OPTIONS)
