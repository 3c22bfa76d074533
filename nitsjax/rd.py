"""Rate-distortion sandwich bounds from i.i.d. samples (Yang & Mandt, "Towards Empirical
Sandwich Bounds on the Rate-Distortion Function", ICLR 2022, arXiv 2111.12166).

Conventions (every function here): the distortion is the squared error summed over the
coordinates of one sample, ``rho(x, y) = ||x - y||^2`` (NOT averaged over coordinates:
divide by ``dim`` for a per-coordinate MSE), ``D = E[rho(X, Y)]``; rates are in nats per
sample (divide by ``log 2`` for bits). ``lambdas`` are the slopes: the point of either
bound at ``lambda`` is where the curve has slope ``dR/dD = -lambda``.

* ``upper_bound`` trains, for each ``lambda``, a beta-VAE-style compressor: a Gaussian
  encoder ``q(z|x)``, a deterministic decoder ``y = g(z)`` and a learned latent density
  ``p(z)`` (a nitsjax flow), minimising ``E[KL(q(z|x) || p(z))] + lambda E[rho(x, g(z))]``.
  Any such model gives an achievable point: ``R = E KL(q||p) >= I(X; Z) >= I(X; Y)``, so
  ``(D, R)`` lies on or above ``R(D)`` (paper, section 3). Both are estimated on held-out
  samples (Monte Carlo over ``z``), with standard errors.
* ``lower_bound`` maximises the paper's relaxation of Csiszar's dual (paper, eqs. 5-8):
  for any ``u > 0``, ``R(D) >= E[-log u(X)] - log c(u) - lambda D`` with
  ``c(u) = sup_y E[exp(-lambda rho(X, y)) / u(X)]``. ``c`` is replaced by
  ``E[C_k]``, ``C_k = sup_y (1/k) sum_i exp(-lambda rho(X_i, y)) / u(X_i)`` over ``k``
  samples (``E[C_k] >= c(u)``: still a lower bound), and ``-log E[C_k]`` by its
  linearisation ``-E[C_k]/alpha - log alpha + 1`` (<= it for every ``alpha > 0``), which
  has an unbiased sample mean: the bias-corrected estimate ``tilde ell_k`` of the paper
  (eq. 8, Algorithm 1). ``alpha`` is set from ``M`` batches and the intercept estimated on
  ``M`` other batches. ``-log u`` is an MLP; the ``sup_y`` is a Gaussian-mixture mode
  search (squared error), done by mean-shift (Carreira-Perpinan, 2007) from the data points.

Caveats of the lower bound (as in the paper): it holds in expectation over the Monte Carlo
batches (the returned standard error says how far the estimate may stray); it needs the
global ``sup_y``, which mean-shift from every point of the batch finds for a Gaussian
mixture in practice but not provably (``eval_starts`` smaller than ``k`` may miss it and
over-estimate the bound); and for large ``lambda`` (small ``D``) or high dimension it
needs ``k`` growing exponentially, else ``E[C_k]`` is far above ``c(u)`` and the bound is
loose (valid but weak). In particular the intercept never exceeds ``log k`` (put ``y`` at
the batch point with the largest ``-log u``: ``C_k >= max_i exp(-log u(X_i)) / k``), so a
rate above ``log k - lambda D`` nats cannot be certified: ``k`` must grow like
``exp(R(D) + lambda D)``. Sample sizes: training draws ``steps`` batches of ``k``; the
estimate uses ``2 * eval_batches`` batches of ``k`` held-out samples.

``gaussian_rd`` is the closed form for a Gaussian source (reverse water-filling), for
checking both bounds.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nitsjax.flow import Flow
from nitsjax.nn.mlp import MLP
from nitsjax.validation import check_finite, check_hidden, check_positive_int

__all__ = ["LowerBound", "UpperBound", "gaussian_rd", "lower_bound", "plot", "upper_bound"]


# ------------------------------------------------------------------------ input checks
def _check_x(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected samples of shape (n, dim) with n >= 2, got shape "
                         f"{x.shape} (flatten images to (n, H*W*C))")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype} "
                        f"(cast with x.astype('float32'))")
    check_finite(x, name)
    return x.astype(np.float32)


def _check_lambdas(lambdas) -> np.ndarray:
    lam = np.asarray(lambdas, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError(f"lambdas: expected a 1-D sequence of slopes, got shape {lam.shape} "
                         f"(e.g. lambdas=[0.5, 1, 2, 4])")
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"lambdas: every slope must be finite and > 0 (the point at lambda has "
                         f"dR/dD = -lambda), got {lam.tolist()}")
    return lam


def _check_fraction(v, name: str) -> float:
    if not (isinstance(v, (int, float)) and 0.0 < v < 1.0):
        raise ValueError(f"{name}: expected a fraction in (0, 1), got {v!r}")
    return float(v)


def _split(x: np.ndarray, eval_fraction: float, seed: int):
    perm = np.random.default_rng(seed).permutation(len(x))
    n_eval = max(1, int(round(eval_fraction * len(x))))
    if len(x) - n_eval < 2:
        raise ValueError(f"x: {len(x)} samples leave no training set after holding out "
                         f"eval_fraction={eval_fraction}; pass more samples")
    return x[perm[n_eval:]], x[perm[:n_eval]]


# --------------------------------------------------------------------- the closed form
def gaussian_rd(variances, distortion) -> np.ndarray:
    """R(D) in nats of a Gaussian source with independent coordinates (or the eigenvalues
    of its covariance) under summed squared error: reverse water-filling (Cover & Thomas,
    Theorem 10.3.3), ``R(D) = sum_i max(0, log(var_i / theta) / 2)`` with the water level
    ``theta`` solving ``sum_i min(theta, var_i) = D``; 0 for ``D >= sum_i var_i``.

    Args:
      variances: (dim,) positive variances.
      distortion: a positive scalar or array of total squared-error distortions.

    Returns: an array of the shape of ``distortion``.
    """
    var = np.asarray(variances, dtype=np.float64)
    if var.ndim != 1 or var.size == 0 or not np.all(np.isfinite(var)) or np.any(var <= 0):
        raise ValueError(f"variances: expected a 1-D array of finite positive variances, got "
                         f"{var!r}")
    d = np.asarray(distortion, dtype=np.float64)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError(f"distortion: expected finite positive distortions (R(0) is "
                         f"infinite for a continuous source), got {d!r}")
    s = np.sort(var)
    # water level: on [s_{j-1}, s_j] the filled volume is sum_{i<j} s_i + (dim - j) theta
    below = np.concatenate([[0.0], np.cumsum(s)[:-1]])
    volume_at = below + s * (var.size - np.arange(var.size))  # filled volume at theta = s_j
    j = np.searchsorted(volume_at, d.ravel(), side="left")
    j = np.minimum(j, var.size - 1)
    theta = (d.ravel() - below[j]) / (var.size - j)
    theta = np.where(d.ravel() >= s.sum(), np.inf, theta)
    rate = 0.5 * np.log(np.maximum(var[None, :] / theta[:, None], 1.0)).sum(axis=1)
    return rate.reshape(d.shape)


# ------------------------------------------------------------------------- upper bound
@dataclasses.dataclass(frozen=True)
class UpperBound:
    """Achievable (D, R) points, one per ``lambda``: on or above R(D).

    Attributes:
      lambdas: (L,) the slopes trained for.
      distortion, rate: (L,) held-out ``E[||x - g(z)||^2]`` and ``E[KL(q(z|x) || p(z))]``
        (nats), per sample.
      distortion_se, rate_se: (L,) their standard errors over the held-out samples.
      params: per-lambda trained params ``{"encoder", "decoder", "prior"}``.
    """

    lambdas: np.ndarray
    distortion: np.ndarray
    rate: np.ndarray
    distortion_se: np.ndarray
    rate_se: np.ndarray
    params: tuple = dataclasses.field(repr=False, default=())

    @property
    def points(self) -> np.ndarray:
        """(L, 2) array of ``(distortion, rate)``."""
        return np.stack([self.distortion, self.rate], axis=1)


def _gaussian_encoder_log_q(z, mean, log_scale):
    return jnp.sum(-0.5 * ((z - mean) / jnp.exp(log_scale)) ** 2 - log_scale
                   - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def upper_bound(
    x,
    lambdas: Sequence[float],
    *,
    latent_dim: Optional[int] = None,
    hidden: Sequence[int] = (64, 64),
    prior: Optional[Flow] = None,
    steps: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    eval_fraction: float = 0.2,
    eval_draws: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> UpperBound:
    """An upper bound on R(D): one beta-VAE-style compressor per ``lambda`` (module
    docstring), latent prior a nitsjax flow.

    Args:
      x: (n, dim) i.i.d. samples of the source; ``eval_fraction`` of them are held out for
        the estimates.
      lambdas: (L,) positive slopes; each gets ``steps`` Adam steps, warm-started from the
        previous (ascending) lambda's model.
      latent_dim: size of ``z`` (default ``dim``).
      hidden: widths of the encoder and decoder MLPs (GELU).
      prior: a flow on R^latent_dim for ``p(z)`` (default ``nj.flows.maf(latent_dim,
        layers=3, hidden=(32, 32), standardize=None)``); it must need no data init.
      steps, batch_size, learning_rate: the optimisation per lambda.
      eval_draws: ``z`` draws per held-out sample in the estimates.
      seed: data split and initialisation.
      progress: a tqdm bar over lambdas and steps.

    Returns: an ``UpperBound`` (``.points`` is the (L, 2) array of (distortion, rate)).
    """
    x = _check_x(x)
    lam = _check_lambdas(lambdas)
    dim = x.shape[1]
    latent_dim = dim if latent_dim is None else check_positive_int(latent_dim, "latent_dim")
    hidden = check_hidden(hidden)
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    eval_draws = check_positive_int(eval_draws, "eval_draws")
    eval_fraction = _check_fraction(eval_fraction, "eval_fraction")
    if prior is None:
        from nitsjax.flows import maf

        prior = maf(latent_dim, layers=3, hidden=(32, 32), standardize=None)
    if not isinstance(prior, Flow) or prior.dim != latent_dim or prior.context_dim is not None:
        raise ValueError(f"prior: expected an unconditional nitsjax Flow of dim latent_dim="
                         f"{latent_dim}, got {prior!r}")
    train, held = _split(x, eval_fraction, seed)

    encoder = MLP(hidden, 2 * latent_dim, activation=nn.gelu)
    decoder = MLP(hidden, dim, activation=nn.gelu)
    key = jax.random.PRNGKey(seed)
    k_enc, k_dec, k_pri, key = jax.random.split(key, 4)
    params = {
        "encoder": encoder.init(k_enc, jnp.zeros((1, dim))),
        "decoder": decoder.init(k_dec, jnp.zeros((1, latent_dim))),
        "prior": prior.init(k_pri),
    }
    if prior.needs_data_init(params["prior"]):
        raise ValueError("prior: the flow has data-initialised layers (e.g. standardize="
                         "'whiten'); build it with standardize=None")
    optimizer = optax.adam(learning_rate)

    def per_sample(p, xb, k):
        """(rate, distortion) per sample, one z draw each."""
        out = encoder.apply(p["encoder"], xb)
        mean, log_scale = out[:, :latent_dim], jnp.clip(out[:, latent_dim:], -12.0, 5.0)
        z = mean + jnp.exp(log_scale) * jax.random.normal(k, mean.shape)
        rate = _gaussian_encoder_log_q(z, mean, log_scale) - prior.log_prob_batch(p["prior"], z)
        dist = jnp.sum((xb - decoder.apply(p["decoder"], z)) ** 2, axis=-1)
        return rate, dist

    def loss(p, xb, lam_, k):
        rate, dist = per_sample(p, xb, k)
        return jnp.mean(rate + lam_ * dist)

    chunk = min(steps, 100)

    @jax.jit
    def run(p, opt_state, lam_, k, data):
        def step(carry, k):
            p, s = carry
            kb, kz = jax.random.split(k)
            idx = jax.random.randint(kb, (batch_size,), 0, data.shape[0])
            value, grads = jax.value_and_grad(loss)(p, data[idx], lam_, kz)
            updates, s = optimizer.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        (p, opt_state), values = jax.lax.scan(step, (p, opt_state), jax.random.split(k, chunk))
        return p, opt_state, values[-1]

    @jax.jit
    def evaluate(p, k, data):
        rates, dists = jax.vmap(lambda kk: per_sample(p, data, kk))(
            jax.random.split(k, eval_draws))
        return rates.mean(0), dists.mean(0)

    from tqdm.auto import tqdm

    order = np.argsort(lam)
    n_chunks = -(-steps // chunk)
    results, kept = {}, {}
    train_j = jnp.asarray(train)
    with tqdm(total=len(lam) * n_chunks * chunk, disable=not progress, desc="rd upper",
              unit="step") as bar:
        for i in order:
            opt_state = optimizer.init(params)
            lam_i = jnp.asarray(lam[i], jnp.float32)
            for _ in range(n_chunks):
                key, k = jax.random.split(key)
                params, opt_state, value = run(params, opt_state, lam_i, k, train_j)
                bar.update(chunk)
            key, k = jax.random.split(key)
            rates, dists = (np.asarray(a, np.float64) for a in evaluate(params, k, held))
            if not (np.all(np.isfinite(rates)) and np.all(np.isfinite(dists))):
                raise FloatingPointError(f"upper_bound: training at lambda={lam[i]} diverged "
                                         f"(non-finite rate or distortion); lower learning_rate")
            bar.set_postfix(lam=f"{lam[i]:.3g}", D=f"{dists.mean():.4g}", R=f"{rates.mean():.4g}")
            results[i] = (dists.mean(), rates.mean(), dists.std() / np.sqrt(len(dists)),
                          rates.std() / np.sqrt(len(rates)))
            kept[i] = params
    cols = np.array([results[i] for i in range(len(lam))]).T
    return UpperBound(lam, cols[0], cols[1], cols[2], cols[3],
                      tuple(kept[i] for i in range(len(lam))))


# ------------------------------------------------------------------------- lower bound
@dataclasses.dataclass(frozen=True)
class LowerBound:
    """Lines ``R(D) >= intercept - lambda D``, one per ``lambda``; the bound is their upper
    envelope (and 0).

    Attributes:
      lambdas: (L,) slopes.
      intercepts: (L,) the bias-corrected estimates ``tilde ell_k`` (nats).
      intercept_se: (L,) their standard errors over the ``eval_batches`` batches.
      k: the batch size of ``C_k``.
      params: per-lambda params of the network ``-log u``.
    """

    lambdas: np.ndarray
    intercepts: np.ndarray
    intercept_se: np.ndarray
    k: int
    params: tuple = dataclasses.field(repr=False, default=())

    def rate(self, distortion) -> np.ndarray:
        """The lower bound at ``distortion`` (any shape): ``max(0, max_l intercept_l -
        lambda_l D)``."""
        d = np.asarray(distortion, dtype=np.float64)
        lines = self.intercepts[:, None] - self.lambdas[:, None] * d.ravel()[None, :]
        return np.maximum(lines.max(axis=0), 0.0).reshape(d.shape)

    def points(self, distortion) -> np.ndarray:
        """(n, 2) array of ``(distortion, rate)`` on the bound at the (n,) ``distortion``."""
        d = np.asarray(distortion, dtype=np.float64).ravel()
        return np.stack([d, self.rate(d)], axis=1)


def _sup_point(f, xb, lam_, starts, ascent_steps):
    """``log C_k`` for one batch: ``max_y log (1/k) sum_i exp(f_i - lam ||x_i - y||^2)`` by
    mean-shift from each row of ``starts`` (S, dim); the maximiser is not differentiated
    (Danskin: the gradient in ``f`` at the sup is the gradient at the maximiser)."""
    f = jax.lax.stop_gradient(f)
    sq = jnp.sum(xb ** 2, axis=1)

    def log_terms(y):  # (S, k)
        d2 = jnp.sum(y ** 2, axis=1)[:, None] - 2 * y @ xb.T + sq[None, :]
        return f[None, :] - lam_ * jnp.maximum(d2, 0.0)

    def shift(_, y):
        return jax.nn.softmax(log_terms(y), axis=1) @ xb

    y = jax.lax.fori_loop(0, ascent_steps, shift, starts)
    values = jax.scipy.special.logsumexp(log_terms(y), axis=1)
    return jax.lax.stop_gradient(y[jnp.argmax(values)])


def _log_c(f, xb, lam_, y):
    k = xb.shape[0]
    return jax.scipy.special.logsumexp(f - lam_ * jnp.sum((xb - y) ** 2, axis=1)) - jnp.log(k)


def _top_starts(f, xb, lam_, n):
    """The ``n`` batch points with the largest objective (the paper's 'quick' starts)."""
    sq = jnp.sum(xb ** 2, axis=1)
    d2 = jnp.maximum(sq[:, None] - 2 * xb @ xb.T + sq[None, :], 0.0)
    values = jax.scipy.special.logsumexp(f[None, :] - lam_ * d2, axis=1)
    return xb[jax.lax.top_k(values, n)[1]]


def lower_bound(
    x,
    lambdas: Sequence[float],
    *,
    hidden: Sequence[int] = (64, 64),
    k: int = 256,
    steps: int = 1000,
    learning_rate: float = 1e-3,
    train_starts: int = 16,
    eval_starts: Optional[int] = None,
    ascent_steps: int = 30,
    eval_batches: int = 32,
    alpha_momentum: float = 0.2,
    eval_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> LowerBound:
    """A lower bound on R(D): the paper's dual estimator with a neural ``-log u`` (an MLP),
    one line ``R(D) >= intercept - lambda D`` per ``lambda`` (module docstring).

    Training (per lambda, Algorithm 1 of the paper with ``M = 1``) maximises
    ``mean_i(-log u(X_i)) - C_k/alpha - log alpha + 1`` over batches of ``k``, ``alpha`` a
    moving average (``alpha_momentum`` of the old value kept) of past ``C_k``. The estimate
    on held-out samples: ``alpha`` = mean of ``C_k`` over ``eval_batches`` batches, the
    intercept = mean over ``eval_batches`` other batches of ``mean(-log u) - C_k/alpha -
    log alpha + 1`` (unbiased for ``tilde ell_k <= E[-log u] - log E[C_k]``).

    Args:
      x: (n, dim) i.i.d. samples; ``eval_fraction`` of them (at least ``k``) are held out.
      lambdas: (L,) positive slopes.
      hidden: widths of the MLP ``-log u`` (GELU).
      k: samples per ``C_k`` (larger: tighter and slower; see the module caveats).
      steps, learning_rate: Adam steps per lambda and their rate.
      train_starts: mean-shift starts per batch in training (the best batch points).
      eval_starts: starts in the estimate (default ``k``: every batch point, the paper's
        exhaustive search; fewer is faster but may miss the sup and over-estimate).
      ascent_steps: mean-shift iterations per start.
      eval_batches: ``M``; the estimate uses ``2 M`` batches.
      alpha_momentum: in [0, 1).
      seed: data split, initialisation and batches.
      progress: a tqdm bar over lambdas and steps.

    Returns: a ``LowerBound`` (``.rate(D)``, ``.points(D)``).
    """
    x = _check_x(x)
    lam = _check_lambdas(lambdas)
    hidden = check_hidden(hidden)
    k = check_positive_int(k, "k", minimum=2)
    steps = check_positive_int(steps, "steps")
    train_starts = min(check_positive_int(train_starts, "train_starts"), k)
    eval_starts = k if eval_starts is None else min(
        check_positive_int(eval_starts, "eval_starts"), k)
    ascent_steps = check_positive_int(ascent_steps, "ascent_steps", minimum=0)
    eval_batches = check_positive_int(eval_batches, "eval_batches")
    eval_fraction = _check_fraction(eval_fraction, "eval_fraction")
    if not (isinstance(alpha_momentum, (int, float)) and 0.0 <= alpha_momentum < 1.0):
        raise ValueError(f"alpha_momentum: expected a number in [0, 1), got {alpha_momentum!r}")
    train, held = _split(x, eval_fraction, seed)
    for part, name in ((train, "training"), (held, "held-out")):
        if len(part) < k:
            raise ValueError(f"k: each batch needs k={k} distinct samples but the {name} part "
                             f"of x has {len(part)} (x has {len(x)}, eval_fraction="
                             f"{eval_fraction}); pass more samples or a smaller k")
    dim = x.shape[1]
    net = MLP(hidden, 1, activation=nn.gelu)
    f_of = lambda p, xb: net.apply(p, xb)[:, 0]  # -log u(x)
    optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(learning_rate))
    beta = float(alpha_momentum)

    def batch(kk, data):
        return data[jax.random.choice(kk, data.shape[0], (k,), replace=False)]

    def log_c_of(p, xb, lam_, n_starts):
        f = f_of(p, xb)
        y = _sup_point(f, xb, lam_, _top_starts(f, xb, lam_, n_starts), ascent_steps)
        return f, _log_c(f, xb, lam_, y), y

    chunk = min(steps, 50)

    @jax.jit
    def run(p, opt_state, log_alpha, lam_, key, data):
        def step(carry, kk):
            p, s, log_alpha = carry
            xb = batch(kk, data)
            _, _, y = log_c_of(p, xb, lam_, train_starts)

            def objective(p):
                f = f_of(p, xb)
                log_c = _log_c(f, xb, lam_, y)
                return -jnp.mean(f) + jnp.exp(log_c - log_alpha) + log_alpha - 1.0, log_c

            (value, log_c), grads = jax.value_and_grad(objective, has_aux=True)(p)
            updates, s = optimizer.update(grads, s, p)
            log_c = jax.lax.stop_gradient(log_c)
            log_alpha = jnp.logaddexp(log_alpha + jnp.log(beta + 1e-30), log_c + jnp.log1p(-beta))
            return (optax.apply_updates(p, updates), s, log_alpha), value

        (p, opt_state, log_alpha), values = jax.lax.scan(
            step, (p, opt_state, log_alpha), jax.random.split(key, chunk))
        return p, opt_state, log_alpha, values[-1]

    @jax.jit
    def first_log_c(p, kk, data, lam_):
        return log_c_of(p, batch(kk, data), lam_, train_starts)[1]

    @jax.jit
    def sample_terms(p, lam_, key, data):
        """(mean f, log C_k) of ``2 M`` batches with the exhaustive search."""
        def one(kk):
            f, log_c, _ = log_c_of(p, batch(kk, data), lam_, eval_starts)
            return jnp.mean(f), log_c

        return jax.lax.map(one, jax.random.split(key, 2 * eval_batches))

    from tqdm.auto import tqdm

    key = jax.random.PRNGKey(seed)
    n_chunks = -(-steps // chunk)
    train_j, held_j = jnp.asarray(train), jnp.asarray(held)
    intercepts, ses, kept = [], [], []
    with tqdm(total=len(lam) * n_chunks * chunk, disable=not progress, desc="rd lower",
              unit="step") as bar:
        for lam_i in lam:
            key, k_init, k_first = jax.random.split(key, 3)
            params = net.init(k_init, jnp.zeros((1, dim)))
            opt_state = optimizer.init(params)
            lam_j = jnp.asarray(lam_i, jnp.float32)
            log_alpha = first_log_c(params, k_first, train_j, lam_j)
            for _ in range(n_chunks):
                key, kk = jax.random.split(key)
                params, opt_state, log_alpha, value = run(params, opt_state, log_alpha, lam_j,
                                                          kk, train_j)
                bar.update(chunk)
            key, kk = jax.random.split(key)
            mean_f, log_c = (np.asarray(a, np.float64)
                             for a in sample_terms(params, lam_j, kk, held_j))
            m = eval_batches
            log_a = np.logaddexp.reduce(log_c[:m]) - np.log(m)
            xi = mean_f[m:] - np.exp(log_c[m:] - log_a) - log_a + 1.0
            if not np.all(np.isfinite(xi)):
                raise FloatingPointError(f"lower_bound: the estimate at lambda={lam_i} is not "
                                         f"finite; lower learning_rate or raise k")
            intercepts.append(xi.mean())
            ses.append(xi.std(ddof=1) / np.sqrt(m) if m > 1 else np.nan)
            kept.append(params)
            bar.set_postfix(lam=f"{lam_i:.3g}", intercept=f"{xi.mean():.4g}")
    return LowerBound(lam, np.array(intercepts), np.array(ses), k, tuple(kept))


# ---------------------------------------------------------------------------- figure
def plot(upper: Optional[UpperBound] = None, lower: Optional[LowerBound] = None, *,
         truth=None, bits: bool = False, title: str = "", path=None):
    """A figure of the bounds: upper-bound points (with error bars), the lower-bound
    envelope, and ``truth`` (a callable ``D -> R`` in nats, e.g. ``lambda d:
    gaussian_rd(var, d)``) if given; saved as PNG at ``path``. Needs matplotlib (the
    ``plots`` extra)."""
    from nitsjax.data._files import require

    figure = require("matplotlib.figure", "nitsjax.rd.plot", "matplotlib", extra="plots")
    fig = figure.Figure(figsize=(5.0, 3.8))
    ax = fig.add_subplot()
    scale = 1.0 / np.log(2.0) if bits else 1.0
    ds = []
    if upper is not None:
        ax.errorbar(upper.distortion, upper.rate * scale, xerr=upper.distortion_se,
                    yerr=upper.rate_se * scale, fmt="o-", ms=4, label="upper bound (beta-VAE)")
        ds.append(upper.distortion)
    grid_hi = max([d.max() for d in ds], default=1.0) * 1.3
    grid_lo = min([d.min() for d in ds], default=0.01) * 0.5
    if lower is not None:
        grid_lo = min(grid_lo, float(np.min(lower.intercepts.clip(0) / lower.lambdas)) * 0.2
                      + 1e-6)
        d = np.geomspace(max(grid_lo, 1e-6), grid_hi, 300)
        ax.plot(d, lower.rate(d) * scale, "-", label=f"lower bound (dual, k={lower.k})")
    if truth is not None:
        d = np.geomspace(max(grid_lo, 1e-6), grid_hi, 300)
        ax.plot(d, np.asarray(truth(d)) * scale, "k--", lw=1, label="R(D) (closed form)")
    ax.set_xlabel("distortion D = E||x - y||^2 (per sample)")
    ax.set_ylabel("rate (bits)" if bits else "rate (nats)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=8)
    if path is not None:
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig
