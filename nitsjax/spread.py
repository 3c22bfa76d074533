"""Spread divergence: maximum likelihood for models and data without a common density.

Zhang, Hayes, Bird, Habib & Barber, "Spread Divergence", ICML 2020 (arXiv 1811.08968).
For distributions ``p`` (data) and ``q`` (model) that have no density or different
supports, the spread divergence is ``D(p * K || q * K)``: the divergence between both
convolved with one noise kernel ``K`` (here Gaussian, ``N(0, sigma^2 I)``). With a kernel
of full support it is a proper divergence (zero iff ``p = q``) whenever ``K`` is
"spreading" (the Gaussian is). Minimising the spread KL is maximum likelihood of the
*spread model* ``q * K`` on *spread data* ``y = x + sigma * eps``:

    max_theta  E_{x ~ data, eps ~ N(0, I)} log (q_theta * K)(x + sigma * eps).

The paper was not readable here (no stored copy): this module is built from its abstract
and the construction above, and says where it estimates what the paper computes.

Models (``fit`` trains any of them; each gives an estimate of ``log (q * K)(y)``):

* ``LinearICA(data_dim, n_sources)``: deterministic mixing ``x = A s`` with independent
  unit-variance Laplace sources (square or undercomplete ``A``, shape
  ``(data_dim, n_sources)``, ``data_dim >= n_sources``). Undercomplete data lie on a
  subspace and have no density, so plain maximum likelihood is undefined; the spread model
  ``y = A s + sigma * eps`` is a noisy-ICA model. ``log (q * K)(y)`` is estimated by
  importance sampling over ``s`` with the Gaussian posterior of the linear-Gaussian model
  (sources replaced by ``N(0, I)``) as proposal, ``num_samples`` draws (an IWAE-style
  lower bound, tight as ``num_samples`` grows), optimised by stochastic gradients (the
  paper, as far as we recall it without the text, uses EM on the same objective).
* ``Generator(data_dim, latent_dim, hidden)``: a deep generator ``x = g(z)``, ``z ~ N(0,
  I)``, with no output noise (its samples lie on a ``latent_dim``-manifold). The spread
  model ``y = g(z) + sigma * eps`` is a VAE decoder with fixed noise ``sigma``;
  ``log (q * K)(y)`` is estimated by importance sampling with an amortised Gaussian
  encoder ``r(z | y)`` trained jointly (the IWAE bound; ``num_samples=1``: the ELBO).

The spread is ``N(0, sigma^2 I)`` by default, fixed. ``fit(..., learn_spread=True)``
learns it as the paper's abstract describes ("maximize the discriminatory power of a given
divergence by parameterizing and learning the spread"): the kernel becomes ``N(0, sigma^2
L L^T)`` with ``L = Q diag(s)`` (a rotation times scales) of unit determinant (its shape
is learned, its volume,
``sigma^d``, stays fixed: without that constraint the divergence grows without bound as the
noise shrinks onto degenerate data; and each direction's scale is kept within a factor
``SPREAD_MAX_RATIO`` of ``sigma``: a direction where data and model are both degenerate
would otherwise shrink to zero), and ``L`` is trained by gradient *ascent* on an
estimate of the spread KL between data and model, alternating with the model's descent
step (a min-max game, as a GAN's discriminator). The estimate, per minibatch ``x_1..x_B``
with ``y_i = x_i + sigma L eps_i``::

    KL ~ mean_i [ log (1/B) sum_j N(y_i; x_j, sigma^2 L L^T)  -  log (q * K)(y_i) ]

(the data's spread density as the kernel mixture over the minibatch, the model's as the
model's own estimate below). How the paper parameterises and estimates this was not
readable here (only its abstract): this is our construction from it. ``L`` is returned in
the params (``params["spread"]``, unconstrained; ``spread_factor(params)`` gives ``L``),
and every estimate uses it when present.

For flows, ``nitsjax.fit(..., spread=sigma)`` trains by the same objective with the
``SpreadNLL`` loss below; ``amari_distance`` scores a recovered mixing matrix.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nitsjax.validation import as_float_array, check_key, check_positive_int

#: ``SpreadNLL`` / ``fit(spread=)``: importance samples per row of ``log (q * K)(y)``
SPREAD_SAMPLES = 8
_LAPLACE_B = 1.0 / math.sqrt(2.0)  # scale of the unit-variance Laplace density


def check_sigma(sigma, name: str = "sigma") -> float:
    """``sigma`` as a float, or a ``ValueError`` unless it is a finite number > 0."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected the spread noise scale, a number > 0 (e.g. 0.1), "
                         f"got {sigma!r}")
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"{name}: expected the spread noise scale, a finite number > 0 "
                         f"(e.g. 0.1), got {sigma!r}; for plain maximum likelihood pass None")
    return sigma


def amari_distance(a, b) -> float:
    """Amari distance between a true mixing matrix ``a`` and an estimate ``b``, in [0, 1].

    Both ``(data_dim, n_sources)`` with ``data_dim >= n_sources``. With ``P = pinv(b) @ a``
    (``n x n``; the identity up to scaling and permutation when ``b`` recovers ``a``),

        d = [sum_i (sum_j |P_ij| / max_j |P_ij| - 1) + sum_j (sum_i |P_ij| / max_i |P_ij| - 1)]
            / (2 n (n - 1)),

    zero iff ``P`` is a scaled permutation (Amari, Cichocki & Yang, NIPS 1996; normalised
    as in Bach & Jordan 2002). ``n = 1``: 0.
    """
    a = np.asarray(as_float_array(a, "a"), np.float64)
    b = np.asarray(as_float_array(b, "b"), np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < a.shape[1]:
        raise ValueError(f"a, b: expected two mixing matrices of one shape (data_dim, "
                         f"n_sources) with data_dim >= n_sources, got {a.shape} and {b.shape}")
    p = np.abs(np.linalg.pinv(b) @ a)
    n = p.shape[0]
    if n == 1:
        return 0.0
    rows = (p.sum(1) / p.max(1) - 1).sum()
    cols = (p.sum(0) / p.max(0) - 1).sum()
    return float((rows + cols) / (2 * n * (n - 1)))


def _log_normal(x, mean, sigma):
    """Sum over the last axis of ``log N(x; mean, sigma^2)`` (``sigma`` scalar or array)."""
    z = (x - mean) / sigma
    return jnp.sum(-0.5 * z**2 - jnp.log(sigma) - 0.5 * math.log(2 * math.pi), axis=-1)


def _log_mean_exp(a, axis=0):
    return jax.nn.logsumexp(a, axis=axis) - math.log(a.shape[axis])


# ------------------------------------------------------------ the learned spread
#: a learned spread's noise scale in any direction stays within [sigma / r, sigma * r]
SPREAD_MAX_RATIO = 10.0


def spread_factor(params):
    """``L = Q diag(s)`` (d, d) of a learned spread kernel ``N(0, sigma^2 L L^T)``, from
    the unconstrained ``params["spread"]`` ``w`` (d, d): ``Q = expm(A)`` a rotation,
    ``A = tril(w, -1) - tril(w, -1)^T``; ``log s = c - mean(c)``, ``c = (log r / 2)
    tanh(diag w)``, so ``det L = 1`` and every ``s_i`` lies in ``[1/r, r]``
    (``r = SPREAD_MAX_RATIO``; the strict upper triangle of ``w`` is unused). ``w = 0``
    gives ``L = I``. None when ``params`` has no learned spread (the kernel is
    ``N(0, sigma^2 I)``)."""
    if not isinstance(params, dict) or "spread" not in params:
        return None
    w = params["spread"]
    c = 0.5 * math.log(SPREAD_MAX_RATIO) * jnp.tanh(jnp.diagonal(w))
    low = jnp.tril(w, -1)
    return jax.scipy.linalg.expm(low - low.T) * jnp.exp(c - jnp.mean(c))[None, :]


def _whiten(factor, v):
    """``L^-1 v`` for the rows of ``v`` (..., d)."""
    flat = v.reshape(-1, v.shape[-1])
    return jnp.linalg.solve(factor, flat.T).T.reshape(v.shape)


def _log_spread_data(factor, y, x, sigma):
    """``log (1/B) sum_j N(y_i; x_j, sigma^2 L L^T)`` (B,): the spread density of the
    minibatch ``x`` (B, d) at ``y`` (B, d) (``factor=None``: ``L = I``)."""
    if factor is not None:
        y, x = _whiten(factor, y), _whiten(factor, x)
    d2 = jnp.sum((y[:, None, :] - x[None, :, :]) ** 2, -1)
    log_k = -0.5 * d2 / sigma**2 - y.shape[-1] * (jnp.log(sigma) + 0.5 * math.log(2 * math.pi))
    return _log_mean_exp(log_k, axis=1)


def spread_kl(model, params, x, sigma, key, num_samples: int = 16):
    """Estimate of the spread KL ``KL(p * K || q * K)`` (nats) between the rows of ``x``
    (B, d: the data's spread density is the kernel mixture over these rows) and ``model``
    (its ``spread_log_prob``); the kernel ``N(0, sigma^2 L L^T)`` of ``params``. What
    ``fit(learn_spread=True)`` maximises over ``L``."""
    k_noise, k_is = jax.random.split(key)
    factor = spread_factor(params)
    eps = jax.random.normal(k_noise, x.shape, x.dtype)
    y = x + sigma * (eps if factor is None else eps @ factor.T)
    return jnp.mean(_log_spread_data(factor, y, x, sigma)
                    - model.spread_log_prob(params, y, sigma, k_is, num_samples))


# ---------------------------------------------------------------------- models
@dataclasses.dataclass(frozen=True)
class LinearICA:
    """Linear ICA ``x = A s``, ``A`` ``(data_dim, n_sources)``, independent unit-variance
    Laplace sources. Params ``{"mixing": A}``."""

    data_dim: int
    n_sources: int

    def __post_init__(self):
        check_positive_int(self.data_dim, "data_dim")
        check_positive_int(self.n_sources, "n_sources")
        if self.n_sources > self.data_dim:
            raise ValueError(f"n_sources: at most data_dim={self.data_dim} sources (square "
                             f"or undercomplete mixing), got {self.n_sources}")

    name = "spread_ica"

    def init(self, key):
        a = jax.random.normal(key, (self.data_dim, self.n_sources)) / math.sqrt(self.n_sources)
        return {"mixing": a}

    @staticmethod
    def log_source(s):
        """Sum of unit-variance Laplace log-densities over the last axis."""
        return jnp.sum(-jnp.abs(s) / _LAPLACE_B - math.log(2 * _LAPLACE_B), axis=-1)

    def log_prob(self, params, x):
        """Exact ``log q(x)`` (n,) of the noiseless model; square mixing only."""
        a = params["mixing"]
        s = jnp.linalg.solve(a, x.T).T
        return self.log_source(s) - jnp.linalg.slogdet(a)[1]

    def sample(self, params, key, n):
        s = jax.random.laplace(key, (n, self.n_sources)) * _LAPLACE_B
        return s @ params["mixing"].T

    def spread_log_prob(self, params, y, sigma, key, num_samples):
        """Estimate of ``log (q * N(0, sigma^2 L L^T))(y)`` (n,) (``L = I`` unless
        ``params`` holds a learned spread): importance sampling over the sources with the
        linear-Gaussian posterior ``N(m, C)``, ``C = sigma^2 (A^T A + sigma^2 I)^-1``,
        ``m = C A^T y / sigma^2``, as proposal, in the coordinates ``L^-1 y`` where the
        noise is isotropic (``det L = 1``: no Jacobian)."""
        a = params["mixing"]
        factor = spread_factor(params)
        if factor is not None:
            a, y = _whiten(factor, a.T).T, _whiten(factor, y)
        d = self.n_sources
        prec = a.T @ a / sigma**2 + jnp.eye(d)
        chol_prec = jnp.linalg.cholesky(prec)
        m = jax.scipy.linalg.cho_solve((chol_prec, True), a.T @ y.T / sigma**2).T  # (n, d)
        eps = jax.random.normal(key, (num_samples,) + m.shape, y.dtype)
        # s = m + L^-T eps has covariance prec^-1
        s = m + jax.scipy.linalg.solve_triangular(chol_prec.T, eps.reshape(-1, d).T,
                                                  lower=False).T.reshape(eps.shape)
        log_r = (jnp.sum(-0.5 * eps**2 - 0.5 * math.log(2 * math.pi), -1)
                 + jnp.sum(jnp.log(jnp.diag(chol_prec))))
        log_w = self.log_source(s) + _log_normal(y, s @ a.T, sigma) - log_r
        return _log_mean_exp(log_w)


def _mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jax.random.normal(k, (i, o)) * math.sqrt(1.0 / i), "b": jnp.zeros(o)}
            for k, i, o in zip(keys, sizes[:-1], sizes[1:])]


def _mlp(layers, x):
    for layer in layers[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


@dataclasses.dataclass(frozen=True)
class Generator:
    """Deep generator ``x = g(z)``, ``z ~ N(0, I_latent_dim)``, ``g`` a tanh MLP with
    ``hidden`` widths; with the amortised encoder ``r(z | y)`` (Gaussian, same widths) of
    the spread likelihood estimate. Params ``{"decoder": ..., "encoder": ...}``."""

    data_dim: int
    latent_dim: int
    hidden: tuple = (64, 64)

    name = "spread_generator"

    def __post_init__(self):
        check_positive_int(self.data_dim, "data_dim")
        check_positive_int(self.latent_dim, "latent_dim")
        object.__setattr__(self, "hidden", tuple(check_positive_int(h, "hidden")
                                                 for h in self.hidden))

    def init(self, key):
        kd, ke = jax.random.split(key)
        return {"decoder": _mlp_init(kd, (self.latent_dim, *self.hidden, self.data_dim)),
                "encoder": _mlp_init(ke, (self.data_dim, *self.hidden, 2 * self.latent_dim))}

    def generate(self, params, z):
        return _mlp(params["decoder"], z)

    def sample(self, params, key, n):
        """``n`` samples of the noiseless generator, (n, data_dim)."""
        return self.generate(params, jax.random.normal(key, (n, self.latent_dim)))

    def spread_log_prob(self, params, y, sigma, key, num_samples):
        """IWAE estimate of ``log (q * N(0, sigma^2 L L^T))(y)`` (n,) with the encoder
        (``L = I`` unless ``params`` holds a learned spread)."""
        out = _mlp(params["encoder"], y)
        mu, log_sd = out[:, :self.latent_dim], jnp.clip(out[:, self.latent_dim:], -7.0, 2.0)
        eps = jax.random.normal(key, (num_samples,) + mu.shape, y.dtype)
        z = mu + jnp.exp(log_sd) * eps
        log_r = _log_normal(z, mu, jnp.exp(log_sd))
        g = self.generate(params, z)
        factor = spread_factor(params)
        if factor is not None:  # N(y; g, sigma^2 L L^T) = N(L^-1 y; L^-1 g, sigma^2 I)
            y, g = _whiten(factor, y), _whiten(factor, g)
        log_w = _log_normal(z, 0.0, 1.0) + _log_normal(y, g, sigma) - log_r
        return _log_mean_exp(log_w)


# ------------------------------------------------------------------------- fit
@functools.partial(jax.jit, static_argnames=("model", "tx", "tx_spread", "steps",
                                             "batch_size", "num_samples"))
def _train(model, tx, tx_spread, params, x, key, sigma, *, steps, batch_size, num_samples):
    """Adam on the spread NLL; with ``tx_spread`` (a learned spread) each step first
    takes an ascent step of the spread (``params["spread"]``) on ``spread_kl``, then the
    model's descent step under the updated spread."""
    learn = tx_spread is not None
    params = dict(params)
    spread = params.pop("spread", None)  # the kernel's factor: never a descent variable

    def loss_fn(p, xb, k):
        k_noise, k_is = jax.random.split(k)
        factor = spread_factor(p)
        eps = jax.random.normal(k_noise, xb.shape, xb.dtype)
        y = xb + sigma * (eps if factor is None else eps @ factor.T)
        return -jnp.mean(model.spread_log_prob(p, y, sigma, k_is, num_samples))

    def with_spread(p, w):
        return p if w is None else {**p, "spread": w}

    def step(carry, k):
        p, opt, w, opt_w = carry
        k_batch, k_loss, k_kl = jax.random.split(k, 3)
        idx = jax.random.choice(k_batch, x.shape[0], (batch_size,), replace=False)
        xb = x[idx]
        if learn:  # ascent of the spread on the KL estimate, the model held fixed
            g_w = jax.grad(lambda w: -spread_kl(model, with_spread(p, w), xb, sigma, k_kl,
                                                num_samples))(w)
            u_w, opt_w = tx_spread.update(g_w, opt_w, w)
            w = optax.apply_updates(w, u_w)
        w_fixed = None if w is None else jax.lax.stop_gradient(w)
        value, grads = jax.value_and_grad(lambda p: loss_fn(with_spread(p, w_fixed), xb,
                                                            k_loss))(p)
        updates, opt = tx.update(grads, opt, p)
        return (optax.apply_updates(p, updates), opt, w, opt_w), value

    opt_w = tx_spread.init(spread) if learn else None
    (params, _, spread, _), values = jax.lax.scan(
        step, (params, tx.init(params), spread, opt_w), jax.random.split(key, steps))
    return with_spread(params, spread), values


def fit(model, params, x, *, sigma: float, key, steps: int = 2000, batch_size: int = 256,
        learning_rate: float = 1e-3, num_samples: int = 16, learn_spread: bool = False,
        spread_learning_rate: float | None = None):
    """Spread maximum likelihood: train ``model`` (``LinearICA``, ``Generator``) on
    ``x`` ``(n, data_dim)`` by maximising the estimate of ``log (q * K)(x + sigma * eps)``,
    ``K = N(0, sigma^2 I)``, fresh noise every step (Adam, one jitted scan); with
    ``learn_spread`` the kernel ``N(0, sigma^2 L L^T)`` is learned to maximise the spread
    divergence, alternating with the model's steps (module docstring).

    Args:
      model: a ``LinearICA`` or ``Generator`` (anything with ``data_dim`` and
        ``spread_log_prob(params, y, sigma, key, num_samples)``).
      params: initial params (``model.init(key)``).
      x: data ``(n, data_dim)``, e.g. noiseless mixtures or points on a manifold.
      sigma: the spread (noise scale), > 0, in the units of ``x``.
      key: PRNG key (minibatches, spread noise, importance samples).
      steps, batch_size, learning_rate: Adam optimisation (``batch_size <= n``).
      num_samples: importance samples per row of the spread likelihood estimate.
      learn_spread: learn the kernel's shape ``L`` (``det L = 1``: the volume ``sigma^d``
        stays) by gradient ascent on ``spread_kl``, one ascent step before each model
        step; starts from ``params["spread"]`` if present, else ``L = I``. False: the
        kernel is fixed (``N(0, sigma^2 I)``, or ``params["spread"]`` if present).
      spread_learning_rate: Adam rate of the spread's ascent (default ``learning_rate``).

    Returns:
      ``(params, losses)``: trained params (with ``"spread"``, the unconstrained
      ``L``, when learned: ``spread_factor(params)``) and the per-step spread NLL estimate
      ``(steps,)`` (nats per row).
    """
    dim = getattr(model, "data_dim", None)
    if dim is None or not callable(getattr(model, "spread_log_prob", None)):
        raise TypeError(f"model: expected a nitsjax.spread model (LinearICA, Generator), got "
                        f"{type(model).__name__}")
    x = as_float_array(x, "x")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x: expected data of shape (n, {dim}), got {x.shape}")
    sigma = check_sigma(sigma)
    check_key(key, "key")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    num_samples = check_positive_int(num_samples, "num_samples")
    if batch_size > x.shape[0]:
        raise ValueError(f"batch_size: {batch_size} is larger than the number of rows "
                         f"n={x.shape[0]}; pass batch_size <= {x.shape[0]}")
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate: expected a number > 0, got {learning_rate!r}")
    if not isinstance(learn_spread, bool):
        raise ValueError(f"learn_spread: expected True or False, got {learn_spread!r}")
    rate_w = learning_rate if spread_learning_rate is None else spread_learning_rate
    if not (isinstance(rate_w, (int, float)) and not isinstance(rate_w, bool) and rate_w > 0):
        raise ValueError(f"spread_learning_rate: expected a number > 0 or None, got "
                         f"{spread_learning_rate!r}")
    tx = _adam(float(learning_rate))
    x = jnp.asarray(x, jnp.result_type(float))
    params = dict(params)
    if learn_spread and "spread" not in params:
        params["spread"] = jnp.zeros((dim, dim), x.dtype)  # L = I: the fixed spread
    if "spread" in params and np.shape(params["spread"]) != (dim, dim):
        raise ValueError(f"params['spread']: expected the ({dim}, {dim}) spread factor, got "
                         f"shape {np.shape(params['spread'])}")
    params, losses = _train(model, tx, _adam(float(rate_w)) if learn_spread else None,
                            params, x, key, jnp.asarray(sigma, x.dtype),
                            steps=steps, batch_size=batch_size, num_samples=num_samples)
    return params, np.asarray(losses)


@functools.lru_cache(maxsize=16)
def _adam(learning_rate):  # one object per rate: repeated fits reuse the compiled scan
    return optax.adam(learning_rate)


# ------------------------------------------------------------ flows: nj.fit(spread=)
@dataclasses.dataclass(frozen=True)
class SpreadNLL:
    """The spread NLL of a flow, the loss of ``nitsjax.fit(..., spread=sigma)``.

    For a minibatch ``x`` it draws spread data ``y = x + sigma * eps_0`` and returns

        -(1/n) sum_i log (1/M) sum_m q(y_i - sigma * eps_m),   eps ~ N(0, I),

    an importance-sampling estimate of ``-log (q * K)(y)`` with the kernel itself as
    proposal (``M = num_samples``). It is a stochastic upper bound on the spread NLL
    (Jensen), tight as ``M`` grows: what is trained is the flow ``q`` as a model of the
    *noiseless* data, scored through its noise-convolved density. ``M = 1`` reduces to
    plain maximum likelihood on data with noise of scale ``sqrt(2) sigma``, which models
    the noisy data and not ``q * K``. At evaluation (``key=None``) the noise is a fixed
    draw, so validation values are comparable along training.
    """

    sigma: float
    num_samples: int = SPREAD_SAMPLES

    __name__ = "spread_nll"

    def __call__(self, flow, params, x, context=None, key=None):
        from nitsjax.losses import eval_key

        k_data, k_is, k_drop = jax.random.split(eval_key(key), 3)
        y = x + self.sigma * jax.random.normal(k_data, x.shape, x.dtype)
        eps = jax.random.normal(k_is, (self.num_samples,) + x.shape, x.dtype)
        ys = (y[None] - self.sigma * eps).reshape(-1, x.shape[-1])
        cs = None if context is None else jnp.tile(context, (self.num_samples, 1))
        lp = flow.log_prob_batch(params, ys, cs, None if key is None else k_drop)
        return -jnp.mean(_log_mean_exp(lp.reshape(self.num_samples, -1)))

    @staticmethod
    def check(model):
        from nitsjax.losses.likelihood import _check_nll

        _check_nll(model)


__all__ = ["Generator", "LinearICA", "SPREAD_MAX_RATIO", "SPREAD_SAMPLES", "SpreadNLL",
           "amari_distance", "check_sigma", "fit", "spread_factor", "spread_kl"]
