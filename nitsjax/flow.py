"""``Flow``: a base distribution plus a bijector, with a batched user-facing API.

``log_prob(x) = base.log_prob(z) + log|det dz/dx|`` with ``(z, logdet) = forward(x)``
(Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference",
JMLR 2021, eq. 2). Sampling draws ``z`` from the base and runs the inverse.

Input rule: the checked methods (``log_prob``, ``sample``, ``init``) refuse bad input at
the boundary (``nitsjax.validation``); a finite input whose log-density overflows in
floating point gets ``-inf``, never NaN (``nan_to_neginf``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Bijector
from nitsjax.distributions.base import Distribution
from nitsjax.validation import check_context, check_data, check_key, check_positive_int

Array = jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Flow:
    """A normalizing flow on R^dim, optionally conditional on a ``context_dim`` context.

    ``params`` is a dict ``{"bijector": ..., "base": ...}``. All methods take batches:
    ``x`` of shape ``(n, dim)`` and ``context`` of shape ``(n, context_dim)``.
    """

    base: Distribution
    bijector: Bijector
    dim: int
    context_dim: Optional[int] = None
    name: str = "flow"

    def __post_init__(self):
        object.__setattr__(self, "_init_jit", jax.jit(self._init_params))
        object.__setattr__(self, "_data_init_jit", jax.jit(self._data_init_params))
        object.__setattr__(self, "_log_prob_jit", jax.jit(self.log_prob_batch))
        object.__setattr__(
            self, "_sample_jit", jax.jit(self.sample_batch, static_argnames=("n",))
        )

    # ----------------------------------------------------------------- pure functions
    def init(self, key: jax.Array, x: Optional[Array] = None, context: Optional[Array] = None):
        """Fresh params. With a data batch ``x`` (n, dim), layers that support it (ActNorm)
        are initialised from the data."""
        check_key(key, "key")
        if x is not None and self.bijector.data_init is not None:  # checked before any work
            x = check_data(x, self.dim, "x")
            context = check_context(context, self.context_dim, x.shape[0], "context")
        if isinstance(key, jax.core.Tracer):  # inside a user's jit: no nested compile
            params = self._init_params(key)
        else:
            params = self._init_jit(key)
        if x is not None and self.bijector.data_init is not None:
            params = self._data_init_jit(params, jnp.asarray(x), context)
        return params

    def _init_params(self, key):
        kb, kd = jax.random.split(key)
        return {"bijector": self.bijector.init(kb), "base": self.base.init(kd)}

    def _data_init_params(self, params, x, context):
        bij, _ = self.bijector.data_init(params["bijector"], x, context)
        return {"bijector": bij, "base": params["base"]}

    def log_prob_single(self, params, x, context=None, key=None):
        """log p(x) for one event ``x`` (dim,). Pure and traceable."""
        z, logdet = self.bijector.forward(params["bijector"], x, context, key)
        lp = self.base.log_prob(params["base"], z) + logdet
        return nan_to_neginf(lp, jnp.all(jnp.isfinite(x)))

    def log_prob_batch(self, params, x, context=None, key=None):
        """log p(x) for a batch ``x`` (n, dim) -> (n,), without input checks (use inside jit).

        With ``key`` the bijector runs in training mode (dropout active)."""
        keys = None if key is None else jax.random.split(key, x.shape[0])
        return jax.vmap(self.log_prob_single, in_axes=(None, 0, _axis(context), _axis(keys)))(
            params, x, context, keys
        )

    def sample_single(self, params, key, context=None):
        """One sample and its log-density, ``((dim,), scalar)``. Pure and traceable."""
        z = self.base.sample(params["base"], key)
        z = z.astype(jnp.result_type(float))
        lp_z = self.base.log_prob(params["base"], z)
        x, logdet = self.bijector.inverse(params["bijector"], z, context, None)
        return x, nan_to_neginf(lp_z - logdet)

    def sample_batch(self, params, key, n, context=None):
        """``n`` samples and log-densities, ``((n, dim), (n,))``, without input checks."""
        keys = jax.random.split(key, n)
        return jax.vmap(self.sample_single, in_axes=(None, 0, _axis(context)))(
            params, keys, context
        )

    # ------------------------------------------------------------- checked user API
    def log_prob(self, params, x, context=None) -> Array:
        """Log-density of each row of ``x`` (n, dim) -> (n,)."""
        x = check_data(x, self.dim, "x")
        context = check_context(context, self.context_dim, x.shape[0], "context")
        return self._log_prob_jit(params, x, context)

    def sample(self, params, key, n: int, context=None) -> Array:
        """``n`` samples, shape (n, dim). ``context`` is (context_dim,) shared by all samples
        or (n, context_dim)."""
        return self.sample_and_log_prob(params, key, n, context)[0]

    def sample_and_log_prob(self, params, key, n: int, context=None):
        """``n`` samples (n, dim) and their log-densities (n,), in one pass."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        context = self._broadcast_context(context, n)
        return self._sample_jit(params, key, n, context)

    def _broadcast_context(self, context, n):
        if self.context_dim is None:
            return check_context(context, None, n, "context")
        if context is None:
            raise ValueError(
                f"context: this flow is conditional (context_dim={self.context_dim}); pass "
                f"context of shape ({self.context_dim},) or (n, {self.context_dim})"
            )
        c = jnp.asarray(context) if not isinstance(context, np.ndarray) else context
        if c.ndim == 1:
            c = jnp.broadcast_to(c, (n, c.shape[0]))
        return check_context(c, self.context_dim, n, "context")


def nan_to_neginf(lp: Array, finite_input=True) -> Array:
    """The out-of-range rule: a log-density that is NaN although the input is finite (an
    overflow such as ``inf - inf`` for an astronomically large input) is reported as
    ``-inf``, i.e. density zero, so no finite input gets NaN. A NaN input (possible only
    inside a user's ``jit``, where inputs are not checked) still gives NaN. Costs one
    select per row."""
    return jnp.where(jnp.isnan(lp) & finite_input, -jnp.inf, lp)


def _axis(a: Any) -> Optional[int]:
    return None if a is None else 0
