"""``chain``: bijectors and stochastic layers composed into one stochastic normalizing flow.

``Chain`` lists its layers in the sampling direction (base first). The base is
``N(0, I_dim)``. ``sample_paths`` runs the forward chain from the base and returns the
end points with each path's log importance weight against an unnormalised target;
``reverse_paths`` runs the reverse chain from given end points (data) and returns the
ELBO of ``log p(x)``; ``importance`` turns log weights into the effective sample size and
a ``log Z`` estimate with its standard error.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from nitsjax.bijectors.base import Bijector
from nitsjax.snf.layers import Layer, from_bijector

Array = jax.Array


class Chain(NamedTuple):
    """A stochastic normalizing flow on R^dim: ``layers`` (sampling order), their params
    keys ``names``, base ``N(0, I_dim)``."""

    layers: tuple
    names: tuple
    dim: int

    def init(self, key: Array) -> dict:
        """Params ``{name: layer params}``."""
        keys = jax.random.split(key, len(self.layers))
        return {n: layer.init(k) for n, layer, k in
                zip(self.names, self.layers, keys)}

    @property
    def stochastic(self) -> bool:
        """True when some layer runs MCMC towards ``log_target`` (Langevin or MH)."""
        return any(layer.beta is not None for layer in self.layers)


def chain(layers: Sequence, dim: Optional[int] = None) -> Chain:
    """Compose nitsjax bijectors and SNF layers (``langevin``, ``metropolis``,
    ``vae_layer``) in the sampling direction: ``layers[0]`` acts on the base sample.

    A bijector ``f`` (data -> latent, as inside a ``Flow``) is applied as ``f^{-1}``, so a
    flow's bijector can be dropped in unchanged. Params are keyed by layer name; a repeated
    name gets ``_1``, ``_2``, ... as in ``nitsjax.bijectors.chain``.

    Args:
      layers: bijectors and SNF layers.
      dim: event size; inferred from the layers when one of them states it.
    """
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError("layers: expected a non-empty list of bijectors and SNF layers "
                         "(nj.snf.langevin, nj.snf.metropolis, nj.snf.vae_layer)")
    wrapped = []
    for i, layer in enumerate(layers):
        if isinstance(layer, Bijector):
            layer = from_bijector(layer)
        elif not isinstance(layer, Layer):
            raise TypeError(f"layers[{i}]: expected a nitsjax Bijector or an nj.snf layer, "
                            f"got {type(layer).__name__}")
        wrapped.append(layer)
    sizes = {layer.event_size for layer in wrapped if layer.event_size is not None}
    if dim is not None:
        sizes.add(int(dim))
    if len(sizes) > 1:
        raise ValueError(f"layers: the layers act on different event sizes {sorted(sizes)}")
    if not sizes:
        raise ValueError("dim: no layer states its event size; pass chain(layers, dim=...)")
    names, taken = [], set()
    for layer in wrapped:
        name, k = layer.name, 0
        while name in taken:
            k += 1
            name = f"{layer.name}_{k}"
        taken.add(name)
        names.append(name)
    return Chain(tuple(wrapped), tuple(names), sizes.pop())


def base_log_prob(x: Array) -> Array:
    """``log N(x; 0, I)`` of one event."""
    return -0.5 * jnp.sum(x**2) - 0.5 * x.shape[-1] * math.log(2 * math.pi)


def _log_pi(layer: Layer, log_target: Optional[Callable]):
    beta = layer.beta
    if beta is None:
        return None
    if log_target is None:
        if beta == 0.0:
            return base_log_prob
        raise ValueError(
            f"log_target: layer {layer.name!r} runs MCMC towards the target (beta={beta}) "
            "but no log_target was given; pass log_target= (an unnormalised log-density "
            "of one event) or build the chain from bijectors and nj.snf.vae_layer only")
    if beta == 1.0:
        return log_target
    return lambda x: (1 - beta) * base_log_prob(x) + beta * log_target(x)


def sample_path(chain: Chain, params: dict, key: Array, log_target: Optional[Callable]):
    """One forward path from the base: ``(x_T, log N(x_0), sum_t log_ratio_t)``."""
    keys = jax.random.split(key, len(chain.layers) + 1)
    x = jax.random.normal(keys[0], (chain.dim,))
    log_q0 = base_log_prob(x)
    total = jnp.zeros(())
    for layer, name, k in zip(chain.layers, chain.names, keys[1:]):
        x, r = layer.forward(params[name], x, k, _log_pi(layer, log_target))
        total = total + r
    return x, log_q0, total


def sample_paths(chain: Chain, params: dict, key: Array, n: int,
                 log_target: Callable) -> tuple[Array, Array]:
    """``n`` forward paths: samples ``(n, dim)`` and log importance weights ``(n,)``,
    ``log gamma(x_T) - log N(x_0) + sum_t log_ratio_t`` (``E[w] = Z``)."""
    def one(k):
        x, log_q0, ratio = sample_path(chain, params, k, log_target)
        return x, log_target(x) - log_q0 + ratio

    return jax.vmap(one)(jax.random.split(key, n))


def reverse_path(chain: Chain, params: dict, x: Array, key: Array,
                 log_target: Optional[Callable] = None) -> Array:
    """The reverse chain from one event ``x`` (``(dim,)``): the ELBO
    ``log N(x_0) - sum_t log_ratio_t`` of the model's ``log p(x)`` (a scalar)."""
    keys = jax.random.split(key, len(chain.layers))
    total = jnp.zeros(())
    for layer, name, k in reversed(list(zip(chain.layers, chain.names, keys))):
        x, r = layer.backward(params[name], x, k, _log_pi(layer, log_target))
        total = total + r
    return base_log_prob(x) - total


def log_prob_bound(chain: Chain, params: dict, x: Array, key: Array, *, n_paths: int = 1,
                   log_target: Optional[Callable] = None) -> Array:
    """A lower bound of ``log p(x)`` per row of ``x`` ``(n, dim)`` -> ``(n,)``: the ELBO
    (``n_paths=1``) or the importance-weighted bound over ``n_paths`` reverse paths
    (tighter as ``n_paths`` grows; exact for a chain of bijectors)."""
    x = jnp.asarray(x)
    keys = jax.random.split(key, (x.shape[0], n_paths))

    def row(xi, ks):
        elbos = jax.vmap(lambda k: reverse_path(chain, params, xi, k, log_target))(ks)
        return logsumexp(elbos) - math.log(n_paths)

    return jax.vmap(row)(x, keys)


class Importance(NamedTuple):
    """Self-normalised importance sampling summary of log weights ``(n,)``.

    Attributes:
      weights: normalised weights ``(n,)`` (sum 1).
      ess: effective sample size ``(sum w)^2 / sum w^2`` (between 1 and n).
      log_z: ``log mean w``, an estimate of the target's ``log Z`` (biased low by
        Jensen; consistent).
      log_z_se: its delta-method standard error ``sd(w) / (sqrt(n) mean(w))``.
    """

    weights: Array
    ess: Array
    log_z: Array
    log_z_se: Array


def importance(log_weights: Array) -> Importance:
    """ESS and ``log Z`` with its standard error from log importance weights ``(n,)``.
    Non-finite log weights (``-inf``) count as zero weight."""
    lw = jnp.asarray(log_weights)
    lw = jnp.where(jnp.isnan(lw), -jnp.inf, lw)
    n = lw.shape[0]
    w = jnp.exp(lw - jnp.max(lw))
    mean = jnp.mean(w)
    weights = w / jnp.sum(w)
    ess = 1.0 / jnp.sum(weights**2)
    log_z = jnp.log(mean) + jnp.max(lw)
    se = jnp.std(w, ddof=1) / (jnp.sqrt(n) * mean)
    return Importance(weights, ess, log_z, se)
