"""``gm_wae``: a Gaussian-mixture latent variable model trained as a Wasserstein
autoencoder (Gaujac, Feige, Barber, "Gaussian mixture models with Wasserstein distance",
arXiv 1806.04465), and the same model trained by the ELBO (a GM-VAE) for comparison.

The paper's text was not reachable here; this module is built from its abstract and the
WAE framework it uses (Tolstikhin et al., "Wasserstein Auto-Encoders", ICLR 2018):

Generative model: ``k ~ p_D(k) = 1/K``, ``z | k ~ N(mu_k, sigma^2 I)``, ``x = G(z)``
(a deterministic MLP decoder). Encoders: ``q_D(k | x)`` (a softmax over K) and
``q_C(z | k, x) = N(m_k(x), diag s_k(x)^2)`` (one Gaussian head per component on a shared
trunk). The WAE objective, with the discrete latent summed exactly over its K values
(no sampling of k, no relaxation)::

    L = E_x sum_k q_D(k|x) E_{q_C(z|k,x)} ||x - G(z)||^2  +  lam * MMD^2(Q_Z, P_Z)

where ``Q_Z = E_x sum_k q_D(k|x) q_C(z|k,x)`` is the aggregate posterior and ``P_Z`` the
mixture prior; MMD with the inverse multiquadratic kernel ``C / (C + ||z - z'||^2)``
summed over scales ``C = 2 latent_dim sigma^2 * {0.1, 0.2, 0.5, 1, 2, 5, 10}`` (the WAE
papers' choice), estimated without bias (pairs of distinct data rows / prior draws only,
every pair of components weighted by its probabilities: ``mmd2``); on batches of more
than ``MMD_BLOCK`` rows, the mean of the estimates on blocks of that size.

``objective="elbo"`` trains the same networks as a GM-VAE by the negative ELBO with a
Gaussian decoder of fixed scale ``obs_scale`` (also summed exactly over k)::

    -ELBO = sum_k q_D(k|x) [ E_q ||x - G(z)||^2 / (2 obs_scale^2)
                             + KL(q_C(z|k,x) || N(mu_k, sigma^2)) ]
            + KL(q_D(k|x) || 1/K) + dim/2 log(2 pi obs_scale^2)

The prior's means are fixed by default: ``latent_dim >= K``: ``mu_k = prior_distance /
sqrt(2) e_k`` (every pair of means ``prior_distance`` apart); otherwise K points of norm
``prior_distance / sqrt(2)`` drawn once from a fixed key. ``learn_prior=True`` makes the
means ``mu_k`` and one scale ``sigma_k`` per component parameters (``params["prior"]``:
``{"means": (K, latent_dim), "log_sigma": (K,)}``, starting at the fixed arrangement and
``prior_sigma``), trained by the same objective (the MMD's or the ELBO's gradient in
them). Whether the paper learns them could not be checked here (its text was not
reachable); the default keeps them fixed, and the MMD kernel's scales stay set by
``prior_sigma`` either way.

Training: ``nj.fit(model, params, train, val, loss="objective")`` (the registered loss
that minimises a model's own ``objective_batch``; ``nitsjax.losses.objective``); the CLI
does so by itself (``nitsjax train model=gm_wae data=mnist``: the model's
``default_loss``). The model has no density (``log_prob_batch``); the CLI reports the
energy distance of its samples.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.nn.mlp import MLP
from nitsjax.validation import check_data, check_hidden, check_key, check_positive_int

Array = jax.Array

OBJECTIVES = ("wae", "elbo")
#: multiples of ``2 latent_dim sigma^2`` at which the IMQ kernel is summed (WAE papers)
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: batches larger than this (evaluation on a split) average the MMD over blocks this size
MMD_BLOCK = 256


# ----------------------------------------------------------------------------- MMD
def imq_kernel(a: Array, b: Array, scale: float) -> Array:
    """Inverse multiquadratic kernel matrix ``sum_s C_s / (C_s + ||a_i - b_j||^2)``,
    ``C_s = scale * s`` for ``s`` in ``IMQ_SCALES``; ``a`` ``(n, d)``, ``b`` ``(m, d)`` ->
    ``(n, m)``."""
    d2 = jnp.maximum(jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :]
                     - 2.0 * a @ b.T, 0.0)
    return sum(c / (c + d2) for c in (scale * s for s in IMQ_SCALES))


def mmd2(zq: Array, wq: Array, zp: Array, wp: Array, scale: float) -> Array:
    """Unbiased squared MMD between two weighted mixtures of samples, the discrete index
    summed exactly.

    ``zq`` ``(n, K, d)``: for each of ``n`` independent rows, one draw per component;
    ``wq`` ``(n, K)`` their weights (each row sums to 1: ``q_D(k|x_i)``). ``zp``, ``wp``
    the same for the other distribution (``(m, K, d)``, ``(m, K)``; the prior: one draw
    per component, weights ``1/K``). Pairs of the same row (``i = j``) are left out of
    the within-distribution terms, so the estimate is unbiased (its mean is 0 when the two
    distributions are equal, and it can be negative).
    """
    n, k, d = zq.shape
    m = zp.shape[0]

    def within(z, w, rows):
        kz = imq_kernel(z.reshape(-1, d), z.reshape(-1, d), scale).reshape(rows, k, rows, k)
        ww = w[:, :, None, None] * w[None, None, :, :]
        total = jnp.sum(ww * kz)
        same = jnp.sum(jnp.einsum("ik,il,ikil->i", w, w, kz))  # pairs from one row
        return (total - same) / (rows * (rows - 1))

    kx = imq_kernel(zq.reshape(-1, d), zp.reshape(-1, d), scale).reshape(n, k, m, k)
    cross = jnp.sum(wq[:, :, None, None] * wp[None, None, :, :] * kx) / (n * m)
    return within(zq, wq, n) + within(zp, wp, m) - 2.0 * cross


# --------------------------------------------------------------------------- model
@dataclasses.dataclass(frozen=True)
class GMWAE:
    """A Gaussian-mixture latent variable model ``k -> z -> x`` with encoders ``q_D(k|x)``
    and ``q_C(z|k,x)`` (see the module docstring). A value: equal models share compiled
    code. Params ``{"encoder": ..., "decoder": ...}`` (flax params).

    Attributes:
      dim: size of ``x`` (flattened); image_shape: ``(H, W[, C])`` or None.
      K, latent_dim, hidden, objective, lam, prior_sigma, prior_distance, obs_scale,
        learn_prior: as given to ``gm_wae``.
    """

    dim: int
    K: int
    latent_dim: int
    hidden: tuple
    objective: str = "wae"
    lam: float = 10.0
    prior_sigma: float = 1.0
    prior_distance: float = 4.0
    obs_scale: float = 0.3
    image_shape: Optional[tuple] = None
    name: str = "gm_wae"
    context_dim: Optional[int] = None
    learn_prior: bool = False

    #: what ``nitsjax train`` passes as ``loss`` when ``train.loss`` is left at its default
    default_loss = "objective"

    # ------------------------------------------------------------------ pieces
    @property
    def encoder(self) -> MLP:
        return MLP(hidden=self.hidden, out_dim=self.K * (1 + 2 * self.latent_dim),
                   activation=nn.gelu)

    @property
    def decoder(self) -> MLP:
        return MLP(hidden=tuple(reversed(self.hidden)), out_dim=self.dim, activation=nn.gelu)

    def prior_means(self, params=None) -> Array:
        """``(K, latent_dim)``: the means ``mu_k`` of the prior's components (the learned
        ones of ``params`` with ``learn_prior``, else the fixed arrangement)."""
        if self.learn_prior and params is not None:
            return params["prior"]["means"]
        r = self.prior_distance / math.sqrt(2.0)
        if self.latent_dim >= self.K:
            return r * jnp.eye(self.K, self.latent_dim)
        u = np.random.default_rng(0).normal(size=(self.K, self.latent_dim))
        return jnp.asarray(r * u / np.linalg.norm(u, axis=1, keepdims=True), jnp.float32)

    def prior_sigmas(self, params=None) -> Array:
        """``(K,)``: the standard deviations ``sigma_k`` of the prior's components."""
        if self.learn_prior and params is not None:
            return jnp.exp(params["prior"]["log_sigma"])
        return jnp.full((self.K,), self.prior_sigma, jnp.float32)

    # --------------------------------------------------------------- pure functions
    def init(self, key, x=None, context=None):
        """Fresh params (``x``, ``context``: accepted for the models' protocol, unused)."""
        check_key(key, "key")
        if isinstance(key, jax.core.Tracer):
            return self._init_params(key)
        return _init_compiled(self, key)

    def _init_params(self, key):
        k_enc, k_dec = jax.random.split(key)
        params = {
            "encoder": self.encoder.init(k_enc, jnp.zeros((self.dim,), jnp.float32))["params"],
            "decoder": self.decoder.init(
                k_dec, jnp.zeros((self.latent_dim,), jnp.float32))["params"],
        }
        if self.learn_prior:  # starts at the fixed prior
            params["prior"] = {"means": self.prior_means(),
                               "log_sigma": jnp.log(self.prior_sigmas())}
        return params

    def encode(self, params, x: Array):
        """``(logits (n, K), means (n, K, latent_dim), log_scales (n, K, latent_dim))``:
        ``q_D(k|x) = softmax(logits)``, ``q_C(z|k,x) = N(means[:, k], exp(log_scales[:, k])^2)``.
        No input checks."""
        h = self.encoder.apply({"params": params["encoder"]}, x)
        n, k, d = x.shape[0], self.K, self.latent_dim
        logits = h[:, :k]
        mean = h[:, k:k + k * d].reshape(n, k, d)
        log_scale = jnp.clip(h[:, k + k * d:].reshape(n, k, d), -7.0, 3.0)
        return logits, mean, log_scale

    def decode(self, params, z: Array) -> Array:
        """``G(z)``: ``(n, latent_dim) -> (n, dim)``. No input checks."""
        return self.decoder.apply({"params": params["decoder"]}, z)

    def _posterior_draws(self, params, x, key):
        logits, mean, log_scale = self.encode(params, x)
        eps = jax.random.normal(key, mean.shape, mean.dtype)
        return logits, mean, log_scale, mean + jnp.exp(log_scale) * eps

    def _reconstruction_errors(self, params, x, z):
        """``(n, K)``: ``||x_i - G(z_ik)||^2``."""
        n = x.shape[0]
        y = self.decode(params, z.reshape(n * self.K, self.latent_dim)).reshape(n, self.K, -1)
        return jnp.sum((x[:, None, :] - y) ** 2, axis=-1)

    def wae_terms(self, params, x, key):
        """``(reconstruction cost, MMD^2)`` of the batch ``x`` ``(n, dim)``, n >= 2."""
        k_q, k_p = jax.random.split(key)
        logits, _, _, z = self._posterior_draws(params, x, k_q)
        q = jax.nn.softmax(logits, axis=-1)
        rec = jnp.mean(jnp.sum(q * self._reconstruction_errors(params, x, z), axis=-1))
        n = x.shape[0]
        zp = self.prior_means(params)[None] + self.prior_sigmas(params)[None, :, None] * \
            jax.random.normal(k_p, (n, self.K, self.latent_dim), z.dtype)
        wp = jnp.full((n, self.K), 1.0 / self.K, z.dtype)
        scale = 2.0 * self.latent_dim * self.prior_sigma ** 2
        if n <= MMD_BLOCK:
            return rec, mmd2(z, q, zp, wp, scale)
        # a large batch (evaluation on a whole split): the mean of the estimates on
        # consecutive blocks of MMD_BLOCK rows (memory O(n MMD_BLOCK K^2), not O(n^2 K^2))
        b = n // MMD_BLOCK
        blocks = [a[:b * MMD_BLOCK].reshape((b, MMD_BLOCK) + a.shape[1:]) for a in (z, q, zp, wp)]
        return rec, jnp.mean(jax.lax.map(lambda t: mmd2(*t, scale), tuple(blocks)))

    def neg_elbo_batch(self, params, x, key) -> Array:
        """``(n,)``: the negative ELBO of each row (nats), the sum over k exact."""
        return self.neg_elbo_given(params, x, *self._posterior_draws(params, x, key))

    def neg_elbo_given(self, params, x, logits, mean, log_scale, z) -> Array:
        """``(n,)``: the negative ELBO of each row for the encoder outputs ``logits``,
        ``mean``, ``log_scale`` (``encode``) and posterior draws ``z`` ``(n, K, latent_dim)``
        (one per component)."""
        q = jax.nn.softmax(logits, axis=-1)
        log_q = jax.nn.log_softmax(logits, axis=-1)
        s2 = self.obs_scale ** 2
        nll = (self._reconstruction_errors(params, x, z) / (2 * s2)
               + 0.5 * self.dim * math.log(2 * math.pi * s2))
        s2_prior = self.prior_sigmas(params)[None, :, None] ** 2
        var_ratio = jnp.exp(2 * log_scale) / s2_prior
        diff2 = (mean - self.prior_means(params)[None]) ** 2 / s2_prior
        kl_z = 0.5 * jnp.sum(var_ratio + diff2 - 1.0 - jnp.log(var_ratio), axis=-1)
        kl_k = jnp.sum(q * (log_q + math.log(self.K)), axis=-1)
        return jnp.sum(q * (nll + kl_z), axis=-1) + kl_k

    def objective_batch(self, params, x, context=None, key=None) -> Array:
        """The scalar training objective on the batch ``x`` ``(n, dim)`` (n >= 2): the WAE
        loss (``objective="wae"``) or the mean negative ELBO (``"elbo"``). Pure."""
        key = jax.random.key(0) if key is None else key
        if self.objective == "elbo":
            return jnp.mean(self.neg_elbo_batch(params, x, key))
        rec, mmd = self.wae_terms(params, x, key)
        return rec + self.lam * mmd

    def sample_batch(self, params, key, n: int, context=None, component=None) -> Array:
        """``n`` draws ``(n, dim)`` of ``x = G(z)``; ``component``: None (k uniform) or an
        int / ``(n,)`` int array fixing k. No input checks."""
        k_k, k_z = jax.random.split(key)
        if component is None:
            k = jax.random.randint(k_k, (n,), 0, self.K)
        else:
            k = jnp.broadcast_to(jnp.asarray(component, jnp.int32), (n,))
        dtype = jax.tree_util.tree_leaves(params["decoder"])[0].dtype
        z = self.prior_means(params)[k] + self.prior_sigmas(params)[k][:, None] * \
            jax.random.normal(k_z, (n, self.latent_dim), dtype)
        return self.decode(params, z)

    # ------------------------------------------------------------- checked user API
    def _rows(self, x, name="x"):
        x = jnp.asarray(x) if not isinstance(x, np.ndarray) else x
        if self.image_shape is not None and tuple(x.shape[1:]) == self.image_shape:
            x = x.reshape(x.shape[0], self.dim)
        return check_data(x, self.dim, name)

    def q_k(self, params, x) -> Array:
        """``q_D(k | x)``: ``(n, K)`` component probabilities of the rows ``x`` ``(n, dim)``
        (or ``(n, *image_shape)``)."""
        return _q_k_compiled(self, params, self._rows(x))

    def reconstruct(self, params, x, key=None) -> Array:
        """Reconstructions ``(n, dim)``: ``G(m_k(x))`` at the posterior mean of the most
        probable component ``k = argmax q_D(k|x)``, or with ``key`` a draw ``k ~ q_D``,
        ``z ~ q_C(z|k,x)``."""
        x = self._rows(x)
        if key is not None:
            check_key(key, "key")
        return _reconstruct_compiled(self, params, x, key)

    def sample(self, params, key, n: int, context=None, component=None) -> Array:
        """``n`` samples ``(n, dim)`` of the model; ``component`` (int in ``[0, K)``) draws
        them all from ``z ~ N(mu_k, sigma^2)``."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        if context is not None:
            raise ValueError("context: gm_wae is unconditional; pass context=None")
        if component is not None:
            if isinstance(component, bool) or not isinstance(component, (int, np.integer)) \
                    or not 0 <= int(component) < self.K:
                raise ValueError(f"component: expected an int in [0, {self.K}) (K={self.K}) "
                                 f"or None, got {component!r}")
            component = int(component)
        return _sample_compiled(self, params, key, n, component)

    def loss(self, params, x, key=None) -> Array:
        """The training objective (``objective_batch``) on the rows ``x`` ``(n, dim)``,
        n >= 2 (the MMD needs two rows)."""
        x = self._rows(x)
        if x.shape[0] < 2:
            raise ValueError(f"x: the objective needs at least 2 rows, got {x.shape[0]}")
        return _objective_compiled(self, params, x, key)


def _reconstruct(model: GMWAE, params, x, key):
    logits, mean, log_scale = model.encode(params, x)
    rows = jnp.arange(x.shape[0])
    if key is None:
        return model.decode(params, mean[rows, jnp.argmax(logits, axis=-1)])
    k_k, k_z = jax.random.split(key)
    k = jax.random.categorical(k_k, logits, axis=-1)
    z = mean[rows, k] + jnp.exp(log_scale[rows, k]) * jax.random.normal(
        k_z, mean[rows, k].shape, mean.dtype)
    return model.decode(params, z)


_init_compiled = jax.jit(lambda m, key: m._init_params(key), static_argnums=0)
_q_k_compiled = jax.jit(lambda m, p, x: jax.nn.softmax(m.encode(p, x)[0], axis=-1),
                        static_argnums=0)
_reconstruct_compiled = jax.jit(_reconstruct, static_argnums=0)
_sample_compiled = jax.jit(lambda m, p, key, n, c: m.sample_batch(p, key, n, None, c),
                           static_argnums=(0, 3, 4))
_objective_compiled = jax.jit(lambda m, p, x, key: m.objective_batch(p, x, None, key),
                              static_argnums=0)


def _positive_float(v, name) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(v)) or float(v) <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
    return float(v)


def gm_wae(dim: Union[int, Sequence[int]], *, K: int = 10, latent_dim: int = 8,
           hidden: Sequence[int] = (256, 256), objective: str = "wae", lam: float = 10.0,
           prior_sigma: float = 1.0, prior_distance: float = 4.0,
           obs_scale: float = 0.3, learn_prior: bool = False) -> GMWAE:
    """A Gaussian-mixture latent variable model trained as a WAE (Gaujac et al., arXiv
    1806.04465) or, with ``objective="elbo"``, as a GM-VAE.

    Args:
      dim: size of ``x``, or an image shape ``(H, W[, C])`` (rows are flattened).
      K: number of mixture components (the discrete latent), >= 1.
      latent_dim: size of the continuous latent ``z``.
      hidden: hidden widths of the encoder MLP (the decoder uses them reversed; GELU).
      objective: ``"wae"`` (reconstruction + ``lam`` MMD^2, IMQ kernel) or ``"elbo"``
        (the negative ELBO of the GM-VAE, Gaussian decoder of scale ``obs_scale``).
      lam: weight of the MMD term (``"wae"``).
      prior_sigma: standard deviation of each prior component ``N(mu_k, sigma^2 I)``.
      prior_distance: distance between the fixed prior means.
      obs_scale: the decoder's noise scale in the ELBO (``"elbo"``).
      learn_prior: learn the prior's means and per-component scales (``params["prior"]``,
        starting at the fixed arrangement and ``prior_sigma``) with the encoder and
        decoder; False: they stay fixed.
    """
    image_shape = None
    if isinstance(dim, (tuple, list)):
        image_shape = tuple(check_positive_int(s, "dim") for s in dim)
        if not 1 <= len(image_shape) <= 3:
            raise ValueError(f"dim: expected an int or an image shape (H, W[, C]), got {dim!r}")
        dim = int(np.prod(image_shape))
    dim = check_positive_int(dim, "dim")
    K = check_positive_int(K, "K")
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    hidden = check_hidden(hidden, "hidden")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    if not isinstance(learn_prior, (bool, np.bool_)):
        raise ValueError(f"learn_prior: expected True or False, got {learn_prior!r}")
    return GMWAE(dim, K, latent_dim, tuple(hidden), objective,
                 _positive_float(lam, "lam"), _positive_float(prior_sigma, "prior_sigma"),
                 _positive_float(prior_distance, "prior_distance"),
                 _positive_float(obs_scale, "obs_scale"), image_shape,
                 learn_prior=bool(learn_prior))
