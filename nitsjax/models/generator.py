"""``generator``: a non-invertible sampler, an MLP from a Gaussian latent to R^dim.

It has no density (its map need not be invertible, ``latent_dim`` may differ from
``dim``), so it cannot be trained by the likelihood; the energy objective trains it from
samples alone (``nj.fit(gen, params, train, val, loss="energy")``; Si et al., arXiv
2206.06672, section on determinant-free training; ``nitsjax.losses.energy``).

Scale-free like the flows: the network's output is in standardised units and a last
affine layer maps it to the data's units, ``x = anchor^{-1}(correction^{-1}(h))`` with
the inverse of the flows' standardising layer (``standardize="whiten"``: the training
rows' mean and Cholesky factor of their covariance; ``"diagonal"``: per-coordinate mean
and scale). ``nj.fit`` sets the anchor from the training split on fresh params
(``data_init`` / ``needs_data_init``) and never moves it (a ``"frozen"`` params subtree,
``nitsjax.bijectors.anchored``), so the trained network sees the same numbers whatever the
data's units.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from nitsjax.bijectors.base import Bijector
from nitsjax.flows.common import check_standardize, standardize_layer
from nitsjax.nn.mlp import MLP
from nitsjax.validation import (
    check_context,
    check_data,
    check_hidden,
    check_key,
    check_positive_int,
)

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Generator:
    """An MLP generator ``x = out(net(z[, context]))``, ``z ~ N(0, I_latent_dim)``.

    A value: generators built with the same arguments are equal and hash alike (compiled
    code is shared). Params ``{"net": flax params, "output": {"frozen": ..., "learned":
    ...}}`` (``"output"`` is absent with ``standardize=None``).

    Attributes:
      dim, latent_dim, hidden, context_dim, standardize: as given to ``generator``.
      name: ``"generator"``.
    """

    dim: int
    latent_dim: int
    hidden: tuple
    context_dim: Optional[int] = None
    standardize: Optional[str] = "whiten"
    name: str = "generator"

    #: samples are differentiable in params (what ``loss="energy"`` needs); no density
    reparameterized = True

    # ------------------------------------------------------------------ pieces
    @property
    def net(self) -> MLP:
        return MLP(hidden=self.hidden, out_dim=self.dim, activation=nn.gelu)

    @property
    def output(self) -> Optional[Bijector]:
        """The output affine layer (a flow's standardising layer, used inverted)."""
        return standardize_layer(self.dim, self.standardize)

    # --------------------------------------------------------------- pure functions
    def _init_params(self, key):
        k_net, k_out = jax.random.split(key)
        z = jnp.zeros((self.latent_dim,), jnp.float32)
        c = None if self.context_dim is None else jnp.zeros((self.context_dim,), jnp.float32)
        params = {"net": self.net.init(k_net, z, c)["params"]}
        if self.output is not None:
            params["output"] = self.output.init(k_out)
        return params

    def transform(self, params, z, context=None) -> Array:
        """The map from latents ``z`` ``(n, latent_dim)`` (and contexts ``(n,
        context_dim)``) to samples ``(n, dim)``. Pure and traceable."""
        h = self.net.apply({"params": params["net"]}, z, context)
        out = self.output
        if out is None:
            return h
        return jax.vmap(lambda hi: out.inverse(params["output"], hi)[0])(h)

    def sample_batch(self, params, key, n: int, context=None) -> Array:
        """``n`` samples ``(n, dim)``, differentiable in ``params`` (reparameterised);
        ``context`` ``(n, context_dim)`` or None. No input checks (use inside ``jit``)."""
        dtype = jax.tree_util.tree_leaves(params["net"])[0].dtype
        z = jax.random.normal(key, (n, self.latent_dim), dtype)
        return self.transform(params, z, context)

    # ------------------------------------------------------------- checked user API
    def init(self, key, x=None, context=None):
        """Fresh params; with data rows ``x`` ``(n, dim)``, the output layer is set from
        them (``data_init``)."""
        check_key(key, "key")
        if x is not None:
            x = check_data(x, self.dim, "x")
            context = check_context(context, self.context_dim, x.shape[0], "context")
        if isinstance(key, jax.core.Tracer):
            params = self._init_params(key)
        else:
            params = _init_compiled(self, key)
        return params if x is None else self.data_init(params, x, context)

    def data_init(self, params, x, context=None):
        """``params`` with the output layer's anchor set from the rows ``x`` ``(n, dim)``
        (their mean and scale); the network is unchanged."""
        x = check_data(x, self.dim, "x")
        if self.output is None:
            return params
        return _data_init_compiled(self, params, jnp.asarray(x))

    def needs_data_init(self, params) -> bool:
        """True while the output layer's anchor is still at its fresh (identity) value."""
        if self.output is None:
            return False
        return bool(_needs_data_init_compiled(self, params))

    def sample(self, params, key, n: int, context=None) -> Array:
        """``n`` samples ``(n, dim)``; ``context`` ``(context_dim,)`` shared by all or ``(n,
        context_dim)`` for a conditional generator."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        if self.context_dim is None:
            context = check_context(context, None, n, "context")
        else:
            if context is None:
                raise ValueError(
                    f"context: this generator is conditional (context_dim="
                    f"{self.context_dim}); pass context of shape ({self.context_dim},) or "
                    f"(n, {self.context_dim})"
                )
            c = jnp.asarray(context)
            if c.ndim == 1:
                c = jnp.broadcast_to(c, (n,) + c.shape)
            context = check_context(c, self.context_dim, n, "context")
        return _sample_compiled(self, params, key, n, context)


def _data_init(gen: Generator, params, x):
    out, _ = gen.output.data_init(params["output"], x, None)
    return {**params, "output": out}


def _needs(gen: Generator, params):
    return gen.output.needs_data_init(params["output"])


_init_compiled = jax.jit(lambda gen, key: gen._init_params(key), static_argnums=0)
_data_init_compiled = jax.jit(_data_init, static_argnums=0)
_needs_data_init_compiled = jax.jit(_needs, static_argnums=0)
_sample_compiled = jax.jit(lambda gen, params, key, n, context: gen.sample_batch(
    params, key, n, context), static_argnums=(0, 3))


def generator(dim: int, *, latent_dim: Optional[int] = None, hidden: Sequence[int] = (64, 64),
              context_dim: Optional[int] = None,
              standardize: Optional[str] = "whiten") -> Generator:
    """A non-invertible MLP generator on R^dim, trained by ``loss="energy"`` (no density).

    Args:
      dim: size of the samples.
      latent_dim: size of the Gaussian latent; None: ``dim`` (it may be smaller or larger:
        the map is not invertible).
      hidden: hidden widths of the MLP (GELU activations).
      context_dim: size of a conditioning input (concatenated to the latent), or None.
      standardize: the output layer: ``"whiten"`` (the training rows' mean and full
        covariance factor), ``"diagonal"`` (per-coordinate mean and scale) or None (the
        network's output is the sample).
    """
    dim = check_positive_int(dim, "dim")
    latent_dim = dim if latent_dim is None else check_positive_int(latent_dim, "latent_dim")
    hidden = check_hidden(hidden, "hidden")
    if context_dim is not None:
        context_dim = check_positive_int(context_dim, "context_dim")
    check_standardize(standardize)
    return Generator(dim, latent_dim, tuple(hidden), context_dim, standardize)
