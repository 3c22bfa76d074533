"""Deterministic MLP autoencoders: the dimension-reduction step of a two-step model
(``nitsjax.models.two_step``; Loaiza-Ganem et al., TMLR 2022, arXiv 2204.07172).

An ``Autoencoder`` is an encoder ``f: R^dim -> R^latent_dim`` and a decoder ``g:
R^latent_dim -> R^dim`` (any ``MLPMap``-like values: ``in_dim``, ``out_dim``, ``init(key)``,
``apply(params, x)``), trained by reconstruction: ``nj.fit(ae, params, train, val,
loss=reconstruction_loss)`` minimises the mean squared error in standardised units, so
``fit``'s batching, early stopping and checkpoints apply as to a flow.

Scale-free like the flows: the rows are standardised before the encoder and the decoder's
output is mapped back, with statistics set from the training split by ``data_init`` (which
``nj.fit`` runs on fresh params) and kept under a ``"frozen"`` params key that ``fit``
never updates. ``standardize="diagonal"``: per-coordinate mean and standard deviation;
``"scalar"``: per-coordinate mean and one overall scale (images, whose border pixels are
almost constant); ``None``: the data's own units.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from nitsjax.nn.mlp import MLP
from nitsjax.validation import check_data, check_hidden, check_key, check_positive_int

Array = jax.Array

#: the ``standardize`` choices of an autoencoder
STANDARDIZE = ("diagonal", "scalar", None)


@dataclasses.dataclass(frozen=True)
class MLPMap:
    """A GELU MLP ``R^in_dim -> R^out_dim`` as a value (equal maps hash alike).

    ``init(key)`` gives flax params; ``apply(params, x)`` maps ``(..., in_dim)`` to
    ``(..., out_dim)``."""

    in_dim: int
    out_dim: int
    hidden: tuple = (64, 64)

    @property
    def net(self) -> MLP:
        return MLP(hidden=self.hidden, out_dim=self.out_dim, activation=nn.gelu)

    def init(self, key):
        return self.net.init(key, jnp.zeros((self.in_dim,), jnp.float32))["params"]

    def apply(self, params, x) -> Array:
        return self.net.apply({"params": params}, x)


def mlp_map(in_dim: int, out_dim: int, *, hidden: Sequence[int] = (64, 64)) -> MLPMap:
    """A GELU MLP from ``in_dim`` to ``out_dim`` inputs with hidden widths ``hidden``
    (an encoder ``mlp_map(dim, latent_dim)``, a decoder ``mlp_map(latent_dim, dim)``)."""
    return MLPMap(check_positive_int(in_dim, "in_dim"), check_positive_int(out_dim, "out_dim"),
                  check_hidden(hidden, "hidden"))


def _check_map(m, name: str) -> None:
    missing = [a for a in ("in_dim", "out_dim", "init", "apply") if not hasattr(m, a)]
    if missing:
        raise TypeError(
            f"{name}: expected a map with in_dim, out_dim, init(key) and apply(params, x) "
            f"(e.g. nitsjax.models.autoencoder.mlp_map(...)); {type(m).__name__} has no "
            f"{', '.join(missing)}"
        )


@dataclasses.dataclass(frozen=True)
class Autoencoder:
    """A deterministic autoencoder ``x -> g(f(x))`` on R^dim with a latent R^latent_dim.

    A value: equal autoencoders share compiled code. Params ``{"encoder": ..., "decoder":
    ..., "frozen": {"shift": (dim,), "scale": (dim,)}}`` (``"frozen"``: the standardising
    statistics, absent with ``standardize=None``).

    Attributes:
      encoder, decoder: the two maps (``in_dim``/``out_dim`` ``dim -> latent_dim`` and back).
      standardize: ``"diagonal"``, ``"scalar"`` or None (module docstring).
      name: ``"autoencoder"``.
    """

    encoder: MLPMap
    decoder: MLPMap
    standardize: Optional[str] = "diagonal"
    name: str = "autoencoder"

    context_dim = None  # unconditional

    def __post_init__(self):
        _check_map(self.encoder, "encoder")
        _check_map(self.decoder, "decoder")
        if self.decoder.in_dim != self.encoder.out_dim or self.decoder.out_dim != (
                self.encoder.in_dim):
            raise ValueError(
                f"decoder: expected a map R^{self.encoder.out_dim} -> R^{self.encoder.in_dim} "
                f"(the encoder's inverse direction), got R^{self.decoder.in_dim} -> "
                f"R^{self.decoder.out_dim}"
            )
        if self.encoder.out_dim >= self.encoder.in_dim:
            raise ValueError(
                f"encoder: the latent size ({self.encoder.out_dim}) must be smaller than the "
                f"data's ({self.encoder.in_dim}): the autoencoder reduces dimension; pick "
                f"latent_dim < {self.encoder.in_dim}"
            )
        if self.standardize not in STANDARDIZE:
            raise ValueError(f"standardize: expected one of {STANDARDIZE}, got "
                             f"{self.standardize!r}")

    @property
    def dim(self) -> int:
        return self.encoder.in_dim

    @property
    def latent_dim(self) -> int:
        return self.encoder.out_dim

    # --------------------------------------------------------------- pure functions
    def _init_params(self, key):
        k_enc, k_dec = jax.random.split(key)
        params = {"encoder": self.encoder.init(k_enc), "decoder": self.decoder.init(k_dec)}
        if self.standardize is not None:
            params["frozen"] = {"shift": jnp.zeros((self.dim,), jnp.float32),
                                "scale": jnp.ones((self.dim,), jnp.float32)}
        return params

    def encode_batch(self, params, x) -> Array:
        """Codes ``(n, latent_dim)`` of rows ``x`` ``(n, dim)``. Pure, no checks."""
        if self.standardize is not None:
            st = jax.lax.stop_gradient(params["frozen"])
            x = (x - st["shift"]) / st["scale"]
        return self.encoder.apply(params["encoder"], x)

    def decode_standardized(self, params, z) -> Array:
        """The decoder's output in standardised units (what the loss compares)."""
        return self.decoder.apply(params["decoder"], z)

    def decode_batch(self, params, z) -> Array:
        """Rows ``(n, dim)`` of codes ``z`` ``(n, latent_dim)``. Pure, no checks."""
        h = self.decode_standardized(params, z)
        if self.standardize is None:
            return h
        st = jax.lax.stop_gradient(params["frozen"])
        return h * st["scale"] + st["shift"]

    def reconstruction_error_batch(self, params, x) -> Array:
        """Per-row mean squared error ``(n,)`` between ``x`` and its reconstruction, in
        standardised units (the data's own with ``standardize=None``). Pure, no checks."""
        target = x
        if self.standardize is not None:
            st = jax.lax.stop_gradient(params["frozen"])
            target = (x - st["shift"]) / st["scale"]
        h = self.decode_standardized(params, self.encode_batch(params, x))
        return jnp.mean((h - target) ** 2, axis=-1)

    # ------------------------------------------------------------- checked user API
    def init(self, key, x=None, context=None):
        """Fresh params; with rows ``x`` ``(n, dim)``, the standardisation is set from them."""
        check_key(key, "key")
        _no_context(context)
        params = _init_compiled(self, key)
        return params if x is None else self.data_init(params, x)

    def data_init(self, params, x, context=None):
        """``params`` with the standardising statistics set from rows ``x`` ``(n, dim)``."""
        _no_context(context)
        x = check_data(x, self.dim, "x")
        if self.standardize is None:
            return params
        return _data_init_compiled(self, params, jnp.asarray(x, jnp.float32))

    def needs_data_init(self, params) -> bool:
        """True while the standardisation is at its fresh (identity) value."""
        if self.standardize is None:
            return False
        st = params["frozen"]
        return bool(jnp.all(st["shift"] == 0) & jnp.all(st["scale"] == 1))

    def encode(self, params, x) -> Array:
        """Codes ``(n, latent_dim)`` of rows ``x`` ``(n, dim)``."""
        return _encode_compiled(self, params, check_data(x, self.dim, "x"))

    def decode(self, params, z) -> Array:
        """Rows ``(n, dim)`` decoded from codes ``z`` ``(n, latent_dim)``."""
        return _decode_compiled(self, params, check_data(z, self.latent_dim, "z"))

    def reconstruction_error(self, params, x) -> Array:
        """Per-row mean squared reconstruction error ``(n,)`` of rows ``x`` ``(n, dim)``, in
        standardised units (``reconstruction_error_batch``)."""
        return _error_compiled(self, params, check_data(x, self.dim, "x"))


def _no_context(context) -> None:
    if context is not None:
        raise ValueError("context: autoencoders and two-step models are unconditional; "
                         "pass context=None")


def _data_init(ae: Autoencoder, params, x):
    shift = jnp.mean(x, axis=0)
    if ae.standardize == "diagonal":
        std = jnp.std(x, axis=0)
        scale = jnp.where(std > 1e-6 * jnp.max(std), std, 1.0)  # constant columns: 1
    else:
        scale = jnp.full((ae.dim,), jnp.sqrt(jnp.mean(jnp.var(x, axis=0))))
    scale = jnp.where(scale > 0, scale, 1.0)
    frozen = {"shift": shift.astype(jnp.float32), "scale": scale.astype(jnp.float32)}
    return {**params, "frozen": frozen}


_init_compiled = jax.jit(lambda ae, key: ae._init_params(key), static_argnums=0)
_data_init_compiled = jax.jit(_data_init, static_argnums=0)
_encode_compiled = jax.jit(lambda ae, p, x: ae.encode_batch(p, x), static_argnums=0)
_decode_compiled = jax.jit(lambda ae, p, z: ae.decode_batch(p, z), static_argnums=0)
_error_compiled = jax.jit(lambda ae, p, x: ae.reconstruction_error_batch(p, x),
                          static_argnums=0)


def reconstruction_loss(model, params, x, context=None, key=None) -> Array:
    """``nj.fit``'s objective for an ``Autoencoder``: the mean over the batch of the
    per-row mean squared reconstruction error (standardised units)."""
    del context, key
    return jnp.mean(model.reconstruction_error_batch(params, x))


def _check_reconstruction(model) -> None:
    if not callable(getattr(model, "reconstruction_error_batch", None)):
        raise ValueError(
            f"loss: reconstruction_loss trains autoencoders (nitsjax.models.autoencoder); "
            f"{type(model).__name__} has no reconstruction_error_batch"
        )


reconstruction_loss.check = _check_reconstruction


def autoencoder(dim: int, latent_dim: int, *, hidden: Sequence[int] = (128, 64),
                standardize: Optional[str] = "diagonal") -> Autoencoder:
    """An MLP autoencoder R^dim -> R^latent_dim -> R^dim (GELU); the decoder mirrors the
    encoder's widths.

    Args:
      dim: data size.
      latent_dim: code size, ``1 <= latent_dim < dim``.
      hidden: the encoder's hidden widths (the decoder takes them reversed).
      standardize: ``"diagonal"``, ``"scalar"`` or None (module docstring).
    """
    dim = check_positive_int(dim, "dim")
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    if latent_dim >= dim:
        raise ValueError(f"latent_dim: expected a code smaller than the data (< dim={dim}), "
                         f"got {latent_dim}; a two-step model reduces dimension")
    hidden = check_hidden(hidden, "hidden")
    return Autoencoder(MLPMap(dim, latent_dim, hidden), MLPMap(latent_dim, dim, hidden[::-1]),
                       standardize)
