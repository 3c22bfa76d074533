"""Two-step models: an autoencoder reduces dimension, then a density is fitted to the codes
(Loaiza-Ganem, Ross, Cresswell, Caterini, "Diagnosing and Fixing Manifold Overfitting in
Deep Generative Models", TMLR 2022, arXiv 2204.07172).

When the data lie on a low-dimensional manifold of R^D, maximum likelihood in the ambient
space is degenerate: the likelihood grows without bound as the density concentrates on
the manifold, whatever distribution it puts *along* it ("manifold overfitting", the
paper's theorem 1). The paper's fix is a two-step procedure: (1) a generalised
autoencoder ``f: R^D -> R^d``, ``g: R^d -> R^D`` (here deterministic, trained by
reconstruction) learns the manifold; (2) a density ``p_Z`` is fitted by maximum
likelihood to the codes ``f(x_i)`` in R^d, where the data are full-dimensional, so the
likelihood is well posed; samples are ``g(z)``, ``z ~ p_Z``. The pushforward ``g # p_Z``
has no density in R^D (it lives on the learned manifold): ``latent_log_prob(params, x) =
log p_Z(f(x))`` is the density of the codes, not of x.

Both stages are ``nj.fit`` runs (``TwoStep.fit``), so the scale rules, early stopping,
checkpoints and resume apply to each: stage 1 with ``reconstruction_loss``, stage 2 any
nitsjax density (a flow, NITS) by its NLL. Params ``{"autoencoder": ..., "density": ...}``.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any, Optional, Sequence

import jax
import numpy as np

from nitsjax import registry
from nitsjax.models.autoencoder import (
    Autoencoder,
    MLPMap,
    _no_context,
    autoencoder,
    reconstruction_loss,
)
from nitsjax.validation import check_data, check_key, check_positive_int

Array = jax.Array

#: rows per batch when encoding a split for stage 2
ENCODE_BATCH = 8192


@dataclasses.dataclass(frozen=True)
class TwoStep:
    """``x = g(z)``, ``z ~ p_Z``: a deterministic autoencoder ``(f, g)`` and a density
    ``p_Z`` on its codes.

    A value (equal models share compiled code). Params ``{"autoencoder": Autoencoder
    params, "density": density params}``.

    Attributes:
      autoencoder: the ``Autoencoder`` (stage 1).
      density: a flow (or another model with ``log_prob_batch``, ``sample_batch``,
        ``init``) on R^latent_dim (stage 2).
      autoencoder_steps: stage 1's ``steps`` (None: the ``steps`` given to ``fit``).
      autoencoder_learning_rate: stage 1's ``learning_rate`` (None: ``fit``'s).
      name: ``"two_step"``.
    """

    autoencoder: Autoencoder
    density: Any
    autoencoder_steps: Optional[int] = None
    autoencoder_learning_rate: Optional[float] = None
    name: str = "two_step"

    context_dim = None  # unconditional
    #: trained by its own two-stage ``fit`` (``nitsjax train`` calls it instead of ``nj.fit``)
    fits_in_stages = True

    def __post_init__(self):
        if not isinstance(self.autoencoder, Autoencoder):
            raise TypeError(f"autoencoder: expected a nitsjax.models.autoencoder.Autoencoder, "
                            f"got {type(self.autoencoder).__name__}")
        missing = [a for a in ("dim", "init", "log_prob_batch", "sample_batch")
                   if not hasattr(self.density, a)]
        if missing:
            raise TypeError(
                f"density: expected a nitsjax flow (e.g. nj.flows.nsf({self.latent_dim})) or "
                f"a model with a density and samples; {type(self.density).__name__} has no "
                f"{', '.join(missing)}"
            )
        if self.density.dim != self.latent_dim:
            raise ValueError(
                f"density: expected a density on R^{self.latent_dim} (the codes), got one on "
                f"R^{self.density.dim}; build it with dim={self.latent_dim}"
            )
        if getattr(self.density, "context_dim", None) is not None:
            raise ValueError("density: expected an unconditional density (context_dim=None)")
        if self.autoencoder_steps is not None:
            check_positive_int(self.autoencoder_steps, "autoencoder_steps")
        lr = self.autoencoder_learning_rate
        if lr is not None and not (isinstance(lr, (int, float)) and not isinstance(lr, bool)
                                   and 0 < lr < float("inf")):
            raise ValueError(f"autoencoder_learning_rate: expected a positive number or None, "
                             f"got {lr!r}")

    @property
    def dim(self) -> int:
        return self.autoencoder.dim

    @property
    def latent_dim(self) -> int:
        return self.autoencoder.latent_dim

    # --------------------------------------------------------------- pure functions
    def sample_batch(self, params, key, n: int, context=None) -> Array:
        """``n`` samples ``(n, dim)``: ``g(z)``, ``z ~ p_Z``. Pure, no checks."""
        z = self.density.sample_batch(params["density"], key, n)
        if isinstance(z, tuple):  # a Flow's (samples, log-densities)
            z = z[0]
        return self.autoencoder.decode_batch(params["autoencoder"], z)

    def latent_log_prob_batch(self, params, x) -> Array:
        """``log p_Z(f(x))`` ``(n,)`` of rows ``x`` ``(n, dim)``. Pure, no checks."""
        z = self.autoencoder.encode_batch(params["autoencoder"], x)
        return self.density.log_prob_batch(params["density"], z)

    # ------------------------------------------------------------- checked user API
    def init(self, key, x=None, context=None):
        """Fresh params of both stages (``fit`` sets the data-dependent layers)."""
        check_key(key, "key")
        _no_context(context)
        k_ae, k_density = jax.random.split(key)
        params = {"autoencoder": self.autoencoder.init(k_ae),
                  "density": self.density.init(k_density)}
        if x is not None:
            params["autoencoder"] = self.autoencoder.data_init(params["autoencoder"], x)
        return params

    def encode(self, params, x) -> Array:
        """Codes ``f(x)`` ``(n, latent_dim)`` of rows ``x`` ``(n, dim)``."""
        return self.autoencoder.encode(params["autoencoder"], x)

    def decode(self, params, z) -> Array:
        """Rows ``g(z)`` ``(n, dim)`` of codes ``z`` ``(n, latent_dim)``."""
        return self.autoencoder.decode(params["autoencoder"], z)

    def reconstruction_error(self, params, x) -> Array:
        """Per-row mean squared error ``(n,)`` of ``g(f(x))`` against ``x``, in the
        autoencoder's standardised units."""
        return self.autoencoder.reconstruction_error(params["autoencoder"], x)

    def latent_log_prob(self, params, x) -> Array:
        """``log p_Z(f(x))`` ``(n,)``: the log-density of the rows' codes under the latent
        density (not a density of ``x`` in R^dim: the model has none there)."""
        x = check_data(x, self.dim, "x")
        return _latent_log_prob_compiled(self, params, x)

    def sample(self, params, key, n: int, context=None) -> Array:
        """``n`` samples ``(n, dim)`` on the learned manifold: ``g(z)``, ``z ~ p_Z``."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        _no_context(context)
        return _sample_compiled(self, params, key, n)

    def fit(self, params, train, val=None, *, key, steps: int = 5000, checkpoint_dir=None,
            context=None, val_context=None, dequantize="auto", **fit_options):
        """Fit both stages by ``nj.fit``: the autoencoder by ``reconstruction_loss`` on
        ``train`` (stage 1), then the density by its objective on the codes of ``train``
        (validated on those of ``val``; stage 2).

        Args:
          params: ``init``'s params (or a previous fit's: fresh data-dependent layers are
            initialised, others kept).
          train, val: rows ``(n, dim)``, ``(m, dim)`` (``val`` optional: early stopping and
            restore-best for both stages).
          key: PRNG key (split between the stages).
          steps: stage 2's steps (stage 1: ``autoencoder_steps``, default the same).
          checkpoint_dir: each stage checkpoints (and resumes) in its own subfolder,
            ``autoencoder/`` and ``density/``.
          context, val_context: must be None (unconditional).
          dequantize: ``nj.fit``'s, for stage 1 (the codes are continuous: stage 2 never
            dequantises).
          **fit_options: the other ``nj.fit`` keywords, for both stages (``loss`` for
            stage 2 only; stage 1 always minimises the reconstruction error).

        Returns:
          ``(params, history)``: ``history`` is stage 2's ``History``; stage 1's is its
          ``autoencoder_history`` attribute.
        """
        from nitsjax.train import fit

        _no_context(context)
        _no_context(val_context)
        if "loss" in fit_options and fit_options.get("loss") is reconstruction_loss:
            raise ValueError("loss: stage 2 fits the latent density; leave loss unset ('nll')")
        train = check_data(train, self.dim, "train")
        if val is not None:
            val = check_data(val, self.dim, "val")
        k_ae, k_density = jax.random.split(key)
        sub = (lambda s: None) if checkpoint_dir is None else (
            lambda s: os.path.join(os.fspath(checkpoint_dir), s))
        ae_options = {k: v for k, v in fit_options.items() if k != "loss"}
        if self.autoencoder_learning_rate is not None:
            ae_options["learning_rate"] = self.autoencoder_learning_rate
        ae_params, ae_history = fit(
            self.autoencoder, params["autoencoder"], train, val, key=k_ae,
            steps=self.autoencoder_steps or steps, loss=reconstruction_loss,
            checkpoint_dir=sub("autoencoder"), dequantize=dequantize, **ae_options)
        codes = self._encode_rows(ae_params, train)
        val_codes = None if val is None else self._encode_rows(ae_params, val)
        density_params, history = fit(
            self.density, params["density"], codes, val_codes, key=k_density, steps=steps,
            checkpoint_dir=sub("density"), dequantize=False, **fit_options)
        history.autoencoder_history = ae_history
        return {"autoencoder": ae_params, "density": density_params}, history

    def _encode_rows(self, ae_params, x) -> np.ndarray:
        parts = [np.asarray(self.autoencoder.encode(ae_params, x[i:i + ENCODE_BATCH]))
                 for i in range(0, len(x), ENCODE_BATCH)]
        return np.concatenate(parts)


_latent_log_prob_compiled = jax.jit(lambda m, p, x: m.latent_log_prob_batch(p, x),
                                    static_argnums=0)
_sample_compiled = jax.jit(lambda m, p, key, n: m.sample_batch(p, key, n),
                           static_argnums=(0, 3))


def two_step(encoder: MLPMap, decoder: MLPMap, density, *,
             standardize: Optional[str] = "diagonal", autoencoder_steps: Optional[int] = None,
             autoencoder_learning_rate: Optional[float] = None) -> TwoStep:
    """A two-step model from its parts (Loaiza-Ganem et al., arXiv 2204.07172).

    Args:
      encoder: a map R^dim -> R^latent_dim (``nitsjax.models.autoencoder.mlp_map(dim,
        latent_dim)``, or any value with ``in_dim``, ``out_dim``, ``init(key)``,
        ``apply(params, x)``), ``latent_dim < dim``.
      decoder: a map R^latent_dim -> R^dim.
      density: a flow on R^latent_dim (e.g. ``nj.flows.nsf(latent_dim)``, ``nj.flows.nits``).
      standardize: the autoencoder's input scaling: ``"diagonal"``, ``"scalar"`` (images)
        or None (``nitsjax.models.autoencoder``).
      autoencoder_steps: stage 1's steps (None: ``fit``'s ``steps``).
      autoencoder_learning_rate: stage 1's learning rate (None: ``fit``'s).
    """
    return TwoStep(Autoencoder(encoder, decoder, standardize), density, autoencoder_steps,
                   autoencoder_learning_rate)


def two_step_mlp(dim: int, *, latent_dim: int = 1, hidden: Sequence[int] = (128, 64),
                 density: str = "nsf", density_layers: Optional[int] = None,
                 density_hidden: Optional[Sequence[int]] = None,
                 standardize: Optional[str] = "diagonal",
                 autoencoder_steps: Optional[int] = None,
                 autoencoder_learning_rate: Optional[float] = None,
                 context_dim: Optional[int] = None) -> TwoStep:
    """A two-step model with an MLP autoencoder and a registered flow on its codes
    (``model=two_step``; Loaiza-Ganem et al., arXiv 2204.07172).

    Args:
      dim: data size.
      latent_dim: code size (the manifold's dimension), ``1 <= latent_dim < dim``.
      hidden: the encoder's hidden widths (GELU); the decoder takes them reversed.
      density: the latent density: a registered flow's name (``"nsf"``, ``"maf"``,
        ``"nits"``, ...; ``nsf`` is autoregressive when ``latent_dim`` is 1), or a flow.
      density_layers: the flow's ``layers`` (None: its default).
      density_hidden: the flow's ``hidden`` widths (None: its default).
      standardize: the autoencoder's input scaling, ``"diagonal"``, ``"scalar"`` (images)
        or None.
      autoencoder_steps: stage 1's steps (None: ``train.steps``).
      autoencoder_learning_rate: stage 1's learning rate (None: ``train.learning_rate``).
      context_dim: must be None (two-step models are unconditional).
    """
    if context_dim is not None:
        raise ValueError("context_dim: two-step models are unconditional; leave data.target "
                         "null (context_dim=None)")
    ae = autoencoder(dim, latent_dim, hidden=hidden, standardize=standardize)
    flow = density
    if isinstance(density, str):
        flow = _latent_flow(density, ae.latent_dim, density_layers, density_hidden)
    elif density_layers is not None or density_hidden is not None:
        raise ValueError("density_layers, density_hidden: only with a flow's name as "
                         "density; a built flow already has its sizes")
    return TwoStep(ae, flow, autoencoder_steps, autoencoder_learning_rate)


def _latent_flow(name: str, latent_dim: int, layers, hidden):
    import nitsjax.flows  # noqa: F401  (registers the flows)

    try:
        ctor = registry.get(name, "flow")
    except KeyError:
        raise ValueError(f"density: unknown flow {name!r}; expected one of "
                         f"{registry.names('flow')}") from None
    accepted = inspect.signature(ctor).parameters
    kw = {}
    for opt, value in (("layers", layers), ("hidden", hidden)):
        if value is None:
            continue
        if opt not in accepted:
            raise ValueError(f"density_{opt}: the {name} flow has no {opt!r} argument; "
                             f"leave density_{opt} null")
        kw[opt] = tuple(value) if opt == "hidden" else value
    if name == "nsf" and latent_dim == 1:
        kw["autoregressive"] = True  # coupling needs two coordinates
    return ctor(latent_dim, **kw)
