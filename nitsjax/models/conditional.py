"""``ConditionalModel``: what the conditional density models ``ddn`` and ``mdn`` share.

A model of ``p(y | x)`` for targets ``y`` of shape ``(n, y_dim)`` given inputs ``x`` of
shape ``(n, x_dim)``, in the protocol of ``nitsjax.models`` (``dim = y_dim``,
``context_dim = x_dim``), so ``nj.fit(model, params, y_train, y_val, context=x_train,
val_context=x_val)`` trains it by maximum likelihood.

Params are ``{"net": <flax params>, "frozen": {...}}``. The ``"frozen"`` subtree holds the
constants set from training rows by ``data_init`` (the inputs' mean and standard
deviation, the targets' scale or bin range, and ``ready``: 1 once set); ``nj.fit``
never moves them (``nitsjax.bijectors.trainable_mask``), so every trained weight sees the
same numbers whatever the units of ``x`` and ``y``.

The checked methods (``init``, ``data_init``, ``log_prob``, ``sample``) refuse bad input
with an error naming the argument; ``log_prob_batch`` / ``sample_per_row`` are the
unchecked, traceable versions for use inside ``jit`` (training uses ``log_prob_batch``).
There is no ``sample_batch``: draws pick a bin or a component at random, so they are not
reparameterised and these models are trained by the likelihood, not by a sample-based
loss. Compiled functions live in
module-level caches keyed on the model (a frozen dataclass: equal models share them).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.validation import check_context, check_data, check_key, check_positive_int


@dataclasses.dataclass(frozen=True)
class ConditionalModel:
    """Base of ``DDN`` and ``MDN`` (subclasses define ``_net``, ``_init_frozen``,
    ``_data_init_frozen``, ``log_prob_batch`` and ``sample_per_row``)."""

    x_dim: int
    y_dim: int

    name = "conditional"

    @property
    def dim(self) -> int:
        """Size of the modelled variable ``y`` (``nj.fit``'s ``dim``)."""
        return self.y_dim

    @property
    def context_dim(self) -> int:
        """Size of the conditioning input ``x`` (``nj.fit``'s ``context_dim``)."""
        return self.x_dim

    # ----------------------------------------------------------- pure functions
    def _init_params(self, key):
        x = jnp.zeros((1, self.x_dim))
        net = self._net().init({"params": key}, x, deterministic=True)["params"]
        frozen = {"x_shift": jnp.zeros(self.x_dim), "x_scale": jnp.ones(self.x_dim),
                  "ready": jnp.zeros(()), **self._init_frozen()}
        return {"net": net, "frozen": frozen}

    def _data_init_params(self, params, y, x):
        mean = jnp.mean(x, axis=0)
        std = jnp.std(x, axis=0)
        frozen = dict(params["frozen"])
        frozen.update(x_shift=mean, x_scale=jnp.where(std > 0, std, 1.0),
                      ready=jnp.ones(()), **self._data_init_frozen(params["frozen"], y))
        return {"net": params["net"], "frozen": frozen}

    def _apply(self, params, x, key=None):
        """The network's output for inputs ``x`` (n, x_dim), standardised by the frozen
        statistics; with ``key`` in training mode (dropout)."""
        f = params["frozen"]
        xs = (x - f["x_shift"]) / f["x_scale"]
        rngs = None if key is None else {"dropout": key}
        return self._net().apply({"params": params["net"]}, xs, deterministic=key is None,
                                 rngs=rngs)

    # ---------------------------------------------------------------- checked API
    def init(self, key, y=None, x=None):
        """Fresh params. With training rows ``y`` (n, y_dim) and ``x`` (n, x_dim) the
        data-dependent constants are set from them (``data_init``); without, they stay
        at placeholders until ``data_init`` (``nj.fit`` runs it on fresh params)."""
        check_key(key, "key")
        if y is not None or x is not None:
            y, x = self._check_pair(y, x)
        params = _init_compiled(self, key)
        if y is not None:
            params = _data_init_compiled(self, params, y, x)
        return params

    def data_init(self, params, y, x):
        """``params`` with the frozen constants set from training rows ``y`` (n, y_dim)
        and ``x`` (n, x_dim); the network's weights are returned unchanged."""
        y, x = self._check_pair(y, x)
        return _data_init_compiled(self, params, y, x)

    def needs_data_init(self, params) -> bool:
        """True while ``data_init`` has not run on ``params`` (``nj.fit`` then runs it on
        the training split)."""
        return not bool(np.asarray(params["frozen"]["ready"]) > 0)

    def log_prob(self, params, y, x) -> jax.Array:
        """``log p(y | x)`` of each row: ``y`` (n, y_dim), ``x`` (n, x_dim) -> (n,)."""
        y, x = self._check_pair(y, x)
        self._check_ready(params)
        lp = _log_prob_compiled(self, params, y, x)
        if isinstance(lp, jax.core.Tracer):
            return lp
        self._check_support(params, np.asarray(y), np.asarray(lp))
        return lp

    def sample(self, params, key, x, n: int) -> jax.Array:
        """``n`` draws of ``y`` given ``x``: ``x`` of shape (x_dim,) -> (n, y_dim);
        ``x`` of shape (m, x_dim) -> (n, m, y_dim) (``n`` draws for each row)."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        single = np.ndim(x) == 1
        xs = check_context(x[None] if single else x, self.x_dim,
                           1 if single else np.shape(x)[0], "x")
        self._check_ready(params)
        out = _sample_compiled(self, params, key, xs, n)
        return out[:, 0] if single else out

    # ------------------------------------------------------------------ helpers
    def _check_pair(self, y, x):
        y = check_data(y, self.y_dim, "y")
        x = check_context(x, self.x_dim, y.shape[0], "x")
        return jnp.asarray(y), jnp.asarray(x)

    def _check_ready(self, params) -> None:
        if self.needs_data_init(params):
            raise ValueError(
                f"params: the {self.name} model's data-dependent constants are not set yet "
                "(fresh params); pass training rows: model.init(key, y, x), or "
                "params = model.data_init(params, y, x) (nj.fit does it)"
            )

    def _check_support(self, params, y, lp) -> None:
        """Hook: a model with a bounded support raises for rows outside it."""


def _check_dims(x_dim, y_dim, allowed=None) -> tuple[int, int]:
    x_dim = check_positive_int(x_dim, "x_dim")
    y_dim = check_positive_int(y_dim, "y_dim")
    if allowed is not None and y_dim not in allowed:
        raise ValueError(f"y_dim: expected one of {allowed}, got {y_dim}")
    return x_dim, y_dim


# Compiled functions, keyed on the (static, hashable) model: equal models share them.
_init_compiled = jax.jit(lambda m, key: m._init_params(key), static_argnums=0)
_data_init_compiled = jax.jit(lambda m, p, y, x: m._data_init_params(p, y, x),
                              static_argnums=0)
_log_prob_compiled = jax.jit(lambda m, p, y, x: m.log_prob_batch(p, y, x), static_argnums=0)
_sample_compiled = jax.jit(lambda m, p, key, x, n: m.sample_per_row(p, key, x, n),
                           static_argnums=(0, 4))


__all__ = ["ConditionalModel"]


def hidden_layers(h, hidden, dropout: float, deterministic: bool):
    """The trunk the conditional models share: ELU ``Dense`` layers of widths ``hidden``,
    each followed by dropout when ``dropout > 0``. Call it inside a module's
    ``nn.compact`` method (the layers become that module's submodules)."""
    for width in hidden:
        h = nn.elu(nn.Dense(width)(h))
        if dropout > 0:
            h = nn.Dropout(dropout)(h, deterministic=deterministic)
    return h
