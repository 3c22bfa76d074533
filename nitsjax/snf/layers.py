"""Layers of a stochastic normalizing flow: a forward and a reverse Markov kernel each.

A stochastic normalizing flow (Wu, Koehler & Noe, NeurIPS 2020; Hagemann, Hertrich &
Steidl, arXiv 2109.11375) is a pair of Markov chains on R^dim. The forward chain
``x_0 -> x_1 -> ... -> x_T`` starts at the base ``x_0 ~ N(0, I)`` and ends at samples;
the reverse chain runs back from ``x_T`` (the target or the data). Layer ``t`` has a
forward kernel ``K_t(x_{t-1}, x_t)`` and a reverse kernel ``R_t(x_t, x_{t-1})`` and
reports, on whichever path it is run, the path log-ratio

    log_ratio = log R_t(x_t, x_{t-1}) - log K_t(x_{t-1}, x_t)

(Wu et al.'s ``Delta S_t``; Hagemann et al.'s ``log(q_{t-1}/q_t ...)`` terms). Then the
sample's log importance weight is ``log gamma(x_T) - log N(x_0) + sum_t log_ratio_t``
and ``log N(x_0) - sum_t log_ratio_t`` is an ELBO of the model's ``log p(x_T)``.

Every layer acts on ONE event (``x`` of shape ``(dim,)``); batching is ``jax.vmap``:

    y, log_ratio = layer.forward(params, x, key, log_pi)    # x_{t-1} -> x_t
    x, log_ratio = layer.backward(params, y, key, log_pi)   # x_t -> x_{t-1}

``log_pi`` is the layer's stationary log-density ``(dim,) -> ()`` (unnormalised), which
``nitsjax.snf.chain`` builds as ``(1 - beta) log N(x; 0, I) + beta log gamma(x)``; only
the Langevin and Metropolis-Hastings layers use it.

The kernels:
- a nitsjax bijector ``f`` (data -> latent, as in a ``Flow``) is applied in its sampling
  direction ``x_t = f^{-1}(x_{t-1})``; ``log_ratio = log|det d x_t / d x_{t-1}|``;
- ``metropolis``: ``n_steps`` Metropolis-Hastings steps (blackjax's random-walk or MALA
  kernel) leaving ``pi`` invariant; ``R = K`` and by detailed balance
  ``log_ratio = log pi(x_{t-1}) - log pi(x_t)``;
- ``langevin``: ``n_steps`` unadjusted Langevin steps
  ``y = x + eps grad log pi(x) + sqrt(2 eps) xi``, reverse kernel the Langevin step from
  ``y``; ``log_ratio = log N(x; y + eps grad log pi(y), 2 eps) - log N(y; x + eps grad
  log pi(x), 2 eps)`` summed over the steps;
- ``vae_layer``: learned Gaussian kernels ``K(x, .) = N(x + mu_f(x), diag s_f(x)^2)``
  and ``R(y, .) = N(y + mu_r(y), diag s_r(y)^2)`` (MLPs; Hagemann et al., section 4).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Bijector

Array = jax.Array
LogDensity = Callable[[Array], Array]


class Layer(NamedTuple):
    """One SNF layer: forward and reverse kernels with the path log-ratio (module doc).

    Attributes:
      init: ``key -> params`` (``{}`` for the parameter-free MCMC layers).
      forward: ``(params, x, key, log_pi) -> (y, log R(y, x) - log K(x, y))``.
      backward: ``(params, y, key, log_pi) -> (x, log R(y, x) - log K(x, y))``.
      name: short name; ``chain`` keys the params by it.
      event_size: the dim it acts on, or None for any.
      beta: where its stationary density sits between the base (0) and the target (1);
        None for layers that use no ``log_pi``.
    """

    init: Callable[[Array], Any]
    forward: Callable[..., tuple[Array, Array]]
    backward: Callable[..., tuple[Array, Array]]
    name: str
    event_size: Optional[int] = None
    beta: Optional[float] = None


def _check_step(step_size: float, n_steps: int, beta: float) -> None:
    if not isinstance(step_size, (int, float)) or not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size: expected a positive finite float, got {step_size!r}; "
                         "pass e.g. step_size=0.05")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps: expected an integer >= 1, got {n_steps!r}; "
                         "pass n_steps=1 or more")
    if not isinstance(beta, (int, float)) or not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta: expected a float in [0, 1] (0: the base, 1: the target), "
                         f"got {beta!r}")


def from_bijector(bijector: Bijector) -> Layer:
    """A nitsjax bijector as a deterministic SNF layer (sampling direction: its inverse)."""

    def forward(params, x, key, log_pi):
        y, logdet = bijector.inverse(params, x, None, None)  # latent side -> data side
        return y, logdet

    def backward(params, y, key, log_pi):
        x, logdet = bijector.forward(params, y, None, None)
        return x, -logdet

    return Layer(bijector.init, forward, backward, bijector.name, bijector.event_size)


def _langevin_step(log_pi, eps, x, noise):
    """One unadjusted Langevin step from ``x``; returns ``(y, log N(x; y + eps g(y)) -
    log N(y; x + eps g(x)))`` with both Gaussians of covariance ``2 eps I``."""
    grad = jax.grad(log_pi)
    y = x + eps * grad(x) + jnp.sqrt(2 * eps) * noise
    back = x - y - eps * grad(y)
    return y, 0.5 * jnp.sum(noise**2) - jnp.sum(back**2) / (4 * eps)


def langevin(step_size: float, n_steps: int = 1, *, beta: float = 1.0,
             name: str = "langevin") -> Layer:
    """``n_steps`` unadjusted Langevin steps towards ``pi_beta`` (Wu et al. 2020, eq. 13).

    Forward: ``y = x + eps grad log pi(x) + sqrt(2 eps) xi``; reverse kernel: the same step
    from ``y``. Parameter-free; differentiable in ``x`` (reparameterised noise).

    Args:
      step_size: ``eps > 0``.
      n_steps: steps per layer (>= 1).
      beta: stationary density ``(1 - beta) log N(0, I) + beta log gamma``.
      name: params key in a chain.
    """
    _check_step(step_size, n_steps, beta)
    eps = float(step_size)

    def forward(params, x, key, log_pi):
        def step(x, k):
            y, r = _langevin_step(log_pi, eps, x, jax.random.normal(k, x.shape, x.dtype))
            return y, r

        y, r = jax.lax.scan(step, x, jax.random.split(key, n_steps))
        return y, jnp.sum(r)

    def backward(params, y, key, log_pi):
        # x_{t-1} ~ R(y, .): the Langevin step from y; the layer's ratio is minus the
        # ratio of that step read as a forward step.
        def step(y, k):
            x, r = _langevin_step(log_pi, eps, y, jax.random.normal(k, y.shape, y.dtype))
            return x, -r

        x, r = jax.lax.scan(step, y, jax.random.split(key, n_steps))
        return x, jnp.sum(r)

    return Layer(lambda key: {}, forward, backward, name, None, float(beta))


def metropolis(proposal: str = "mala", step_size: float = 0.1, n_steps: int = 1, *,
               beta: float = 1.0, name: str = "metropolis") -> Layer:
    """``n_steps`` Metropolis-Hastings steps leaving ``pi_beta`` invariant (blackjax kernels).

    ``proposal="rw"``: Gaussian random walk of standard deviation ``step_size``
    (``blackjax.additive_step_random_walk``); ``proposal="mala"``: Langevin proposal
    ``x + eps grad log pi(x) + sqrt(2 eps) xi`` with ``eps = step_size`` (``blackjax.mala``).
    Reverse kernel = forward kernel (reversible), so the path log-ratio is
    ``log pi(x_{t-1}) - log pi(x_t)`` (Wu et al. 2020, eq. 12). Gradients pass through the
    accepted position, not through the accept decision (as in Wu et al.).

    Args:
      proposal: "rw" or "mala".
      step_size: random-walk scale or MALA step (> 0).
      n_steps: steps per layer (>= 1).
      beta: stationary density ``(1 - beta) log N(0, I) + beta log gamma``.
      name: params key in a chain.
    """
    if proposal not in ("rw", "mala"):
        raise ValueError(f"proposal: expected 'rw' or 'mala', got {proposal!r}")
    _check_step(step_size, n_steps, beta)
    eps = float(step_size)

    def run(x, key, log_pi):
        import blackjax

        if proposal == "mala":
            kernel = blackjax.mala(log_pi, eps)
        else:
            kernel = blackjax.additive_step_random_walk(
                log_pi, blackjax.mcmc.random_walk.normal(jnp.asarray(eps, x.dtype)))
        state = kernel.init(x)

        def step(state, k):
            return kernel.step(k, state)[0], None

        end, _ = jax.lax.scan(step, state, jax.random.split(key, n_steps))
        return end.position, state.logdensity, end.logdensity

    def forward(params, x, key, log_pi):
        y, lp_x, lp_y = run(x, key, log_pi)
        return y, lp_x - lp_y

    def backward(params, y, key, log_pi):
        x, lp_y, lp_x = run(y, key, log_pi)
        return x, lp_x - lp_y

    return Layer(lambda key: {}, forward, backward, name, None, float(beta))


def _gaussian_logpdf(x, mean, log_scale):
    z = (x - mean) * jnp.exp(-log_scale)
    return jnp.sum(-0.5 * z**2 - log_scale - 0.5 * math.log(2 * math.pi))


def vae_layer(dim: int, *, hidden: Sequence[int] = (64, 64), init_scale: float = 0.1,
              name: str = "vae") -> Layer:
    """Learned Gaussian forward and reverse kernels (Hagemann et al. 2021, section 4).

    ``K(x, .) = N(x + mu_f(x), diag exp(2 s_f(x)))``, ``R(y, .) = N(y + mu_r(y), diag
    exp(2 s_r(y)))``; ``mu, s`` from two MLPs ``(dim,) -> (2 dim,)`` whose output layers
    start at zero mean shift and scale ``init_scale``. Params ``{"forward": ...,
    "reverse": ...}``.

    Args:
      dim: event size.
      hidden: MLP hidden widths.
      init_scale: initial standard deviation of both kernels (> 0).
      name: params key in a chain.
    """
    from nitsjax.nn import MLP

    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
    if not init_scale > 0:
        raise ValueError(f"init_scale: expected a positive float, got {init_scale!r}")
    bias = np.concatenate([np.zeros(dim), np.full(dim, math.log(init_scale))])
    net = MLP(hidden=tuple(hidden), out_dim=2 * dim, out_bias=bias, activation=jax.nn.silu)

    def init(key):
        kf, kr = jax.random.split(key)
        x = jnp.zeros((dim,))
        return {"forward": net.init(kf, x), "reverse": net.init(kr, x)}

    def kernel(p, x):
        out = net.apply(p, x)
        return x + out[:dim], out[dim:]

    def forward(params, x, key, log_pi):
        mean, ls = kernel(params["forward"], x)
        y = mean + jnp.exp(ls) * jax.random.normal(key, x.shape, x.dtype)
        rmean, rls = kernel(params["reverse"], y)
        return y, _gaussian_logpdf(x, rmean, rls) - _gaussian_logpdf(y, mean, ls)

    def backward(params, y, key, log_pi):
        rmean, rls = kernel(params["reverse"], y)
        x = rmean + jnp.exp(rls) * jax.random.normal(key, y.shape, y.dtype)
        mean, ls = kernel(params["forward"], x)
        return x, _gaussian_logpdf(x, rmean, rls) - _gaussian_logpdf(y, mean, ls)

    return Layer(init, forward, backward, name, int(dim))
