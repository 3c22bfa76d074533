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
from typing import Any, Callable, Hashable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import Bijector, chain, has_data_init, needs_data_init
from nitsjax.distributions.base import Distribution
from nitsjax.validation import check_context, check_data, check_key, check_positive_int

Array = jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Flow:
    """A normalizing flow on R^dim, optionally conditional on a ``context_dim`` context.

    ``params`` is a dict ``{"bijector": ..., "base": ...}``. All methods take batches:
    ``x`` of shape ``(n, dim)`` and ``context`` of shape ``(n, context_dim)``.

    A flow is a value: two flows with the same ``spec`` (the constructors in
    ``nitsjax.flows`` record ``(constructor name, dim, keyword arguments)``) and the same
    type are equal and hash alike, so compiled functions keyed on a flow (``Flow``'s own,
    ``nj.fit``'s) are shared by equal flows. A hand-built flow (``spec=None``) is equal
    only to itself. Compiled functions live in module-level caches, not on the flow.

    Attributes:
      base, bijector, dim, context_dim, name: as given.
      spec: a hashable description of how the flow was built, or None.
      support: optional ``(params, x, bad) -> message`` with ``x`` (n, dim) the rows as
        they enter ``bijector`` and ``bad`` (n,) the rows whose log-density is ``-inf``
        (outside the model's support): when set, ``log_prob`` raises ``ValueError`` with the
        message (the checked API only; ``log_prob_batch`` returns ``-inf``).
    """

    base: Distribution
    bijector: Bijector
    dim: int
    context_dim: Optional[int] = None
    name: str = "flow"
    spec: Optional[Hashable] = None
    support: Optional[Callable[[Any, np.ndarray, np.ndarray], str]] = None

    def __post_init__(self):
        size = self.bijector.event_size
        if size is not None and size != self.dim:
            raise ValueError(
                f"bijector: {self.bijector.name!r} acts on events of size {size}, but the "
                f"flow has dim={self.dim}"
            )

    def __eq__(self, other):
        if self is other:
            return True
        if type(other) is not type(self) or self.spec is None or other.spec is None:
            return False
        return self.spec == other.spec

    def __hash__(self):
        return id(self) if self.spec is None else hash((type(self).__name__, self.spec))

    # ------------------------------------------------------------ construction helpers
    def with_preprocessing(self, bijector: Bijector, *, spec: Optional[Hashable] = None):
        """This flow behind a fixed or learned data-side ``bijector`` (e.g. ``logit`` for
        data in [0, 1]): ``log p(x) = log p_flow(b(x)) + log|det db/dx|``.

        The result has the same type, base, support rule and data init (the data are
        pushed through ``bijector`` first); params are ``{"bijector": {"preprocessing":
        ..., "flow": <this flow's bijector params>}, "base": ...}``. It is a value (equal
        to another built the same way) when this flow has a spec and ``spec`` (a hashable
        description of ``bijector``) is given.
        """
        if not isinstance(bijector, Bijector):
            raise TypeError(f"bijector: expected a nitsjax Bijector, got {type(bijector).__name__}")
        pre = bijector
        bij = chain({"preprocessing": pre, "flow": self.bijector}, name=f"{pre.name}_{self.name}")
        support = None
        if self.support is not None:
            inner = self.support

            def support(params, x, bad):
                p = params["bijector"]
                z = jax.vmap(lambda r: pre.forward(p["preprocessing"], r)[0])(jnp.asarray(x))
                return inner({"bijector": p["flow"], "base": params["base"]}, np.asarray(z), bad)

        new_spec = None
        if spec is not None and self.spec is not None:
            new_spec = ("with_preprocessing", self.spec, spec)
        return dataclasses.replace(
            self, bijector=bij, name=f"{pre.name}_{self.name}", spec=new_spec, support=support
        )

    # ----------------------------------------------------------------- pure functions
    def init(self, key: jax.Array, x: Optional[Array] = None, context: Optional[Array] = None):
        """Fresh params. With a data batch ``x`` (n, dim), layers that support it
        (whitening, ActNorm) are initialised from the data (``data_init``)."""
        check_key(key, "key")
        if x is not None and self.bijector.data_init is not None:  # checked before any work
            x = check_data(x, self.dim, "x")
            context = check_context(context, self.context_dim, x.shape[0], "context")
        if isinstance(key, jax.core.Tracer):  # inside a user's jit: no nested compile
            params = self._init_params(key)
        else:
            params = _init_compiled(self, key)
        if x is not None and self.bijector.data_init is not None:
            params = _data_init_compiled(self, params, jnp.asarray(x), context)
        return params

    def data_init(self, params, x, context=None):
        """``params`` with every data-initialised layer (whitening, ActNorm) set from the
        batch ``x`` (n, dim) (and ``context`` (n, context_dim)); the other params are
        returned unchanged. A flow without such layers returns ``params`` as given."""
        x = check_data(x, self.dim, "x")
        context = check_context(context, self.context_dim, x.shape[0], "context")
        if self.bijector.data_init is None:
            return params
        return _data_init_compiled(self, params, jnp.asarray(x), context)

    def needs_data_init(self, params) -> bool:
        """True when the flow has data-initialised layers and all of them are still
        exactly at their init values, i.e. ``params`` are fresh and ``data_init`` has not
        run (``nj.fit`` then initialises them from the training split)."""
        if not has_data_init(self.bijector):
            return False
        return bool(_needs_data_init_compiled(self, params))

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
        """Log-density of each row of ``x`` (n, dim) -> (n,). With a ``support`` rule,
        rows outside the support raise ``ValueError`` (class docstring)."""
        x = check_data(x, self.dim, "x")
        context = check_context(context, self.context_dim, x.shape[0], "context")
        lp = _log_prob_compiled(self, params, x, context)
        if self.support is None or isinstance(lp, jax.core.Tracer):
            return lp
        bad = np.isneginf(np.asarray(lp))
        if bad.any():
            raise ValueError(self.support(params, np.asarray(x), bad))
        return lp

    def sample(self, params, key, n: int, context=None) -> Array:
        """``n`` samples, shape (n, dim). ``context`` is (context_dim,) shared by all samples
        or (n, context_dim)."""
        return self.sample_and_log_prob(params, key, n, context)[0]

    def sample_and_log_prob(self, params, key, n: int, context=None):
        """``n`` samples (n, dim) and their log-densities (n,), in one pass."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        context = self._broadcast_context(context, n)
        return _sample_compiled(self, params, key, n, context)

    # ------------------------------------------- distribution functions (triangular flows)
    # nitsjax.distribution_functions holds the maths, costs and exactness of each.
    @property
    def is_triangular(self) -> bool:
        """Whether the flow's map is triangular in the data order with a factorised base,
        so the distribution functions below are available: ``nits(...)`` without
        ``rotate=True``; ``maf``, ``iaf``, ``realnvp``, ``nsf`` with ``layers=1`` and
        ``linear=None``. The others raise ``ValueError`` saying so."""
        from nitsjax import distribution_functions as df

        return df.is_triangular(self)

    def cdf(self, params, x, context=None) -> Array:
        """Conditional CDFs ``F_i(x_i | x_<i)`` of ``x`` (n, dim) -> (n, dim)."""
        from nitsjax import distribution_functions as df

        return df.cdf(self, params, x, context)

    def quantile(self, params, u, context=None) -> Array:
        """Rows ``x`` (n, dim) with ``cdf(x) = u``, ``u`` (n, dim) in (0, 1)."""
        from nitsjax import distribution_functions as df

        return df.quantile(self, params, u, context)

    def marginal_log_prob(self, params, x_prefix, context=None) -> Array:
        """Exact log-density of the first ``k`` coordinates, ``x_prefix`` (n, k) -> (n,)."""
        from nitsjax import distribution_functions as df

        return df.marginal_log_prob(self, params, x_prefix, context)

    def log_prob_censored(self, params, lower, upper, context=None, *, key=None,
                          num_samples: int = 1000):
        """``log P(lower < X <= upper)`` (``lower == upper``: observed) ->
        ``CensoredLogProb(log_prob (n,), stderr (n,))``."""
        from nitsjax import distribution_functions as df

        return df.log_prob_censored(self, params, lower, upper, context, key=key,
                                    num_samples=num_samples)

    def impute(self, params, key, x, mask, n: int, context=None, *,
               proposals: int = 1000) -> Array:
        """``n`` draws of the entries of ``x`` (rows, dim) where ``mask`` is True, given
        the others -> (n, rows, dim)."""
        from nitsjax import distribution_functions as df

        return df.impute(self, params, key, x, mask, n, context, proposals=proposals)

    def log_prob_discrete(self, params, x_int, bin_width=1.0, context=None) -> Array:
        """``sum_i log(F_i(x_i + w/2 | x_<i) - F_i(x_i - w/2 | x_<i))`` -> (n,)."""
        from nitsjax import distribution_functions as df

        return df.log_prob_discrete(self, params, x_int, bin_width, context)

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


# Compiled functions, keyed on the (static, hashable) flow: equal flows share them.
_init_compiled = jax.jit(lambda flow, key: flow._init_params(key), static_argnums=0)
_data_init_compiled = jax.jit(
    lambda flow, params, x, context: flow._data_init_params(params, x, context),
    static_argnums=0,
)
_needs_data_init_compiled = jax.jit(
    lambda flow, params: needs_data_init(flow.bijector, params["bijector"]), static_argnums=0
)
_log_prob_compiled = jax.jit(
    lambda flow, params, x, context: flow.log_prob_batch(params, x, context), static_argnums=0
)
_sample_compiled = jax.jit(
    lambda flow, params, key, n, context: flow.sample_batch(params, key, n, context),
    static_argnums=(0, 3),
)
