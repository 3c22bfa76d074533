"""Score-based diffusion (VP SDE) trained by first-, second- and third-order denoising score
matching, with its exact likelihood through the probability-flow ODE.

Lu, Zheng, Bao, Chen, Li & Zhu, "Maximum Likelihood Training for Score-Based Diffusion ODEs
by High-Order Denoising Score Matching", ICML 2022, arXiv 2206.08265; the SDE and the ODE
are Song et al., ICLR 2021.

The forward (VP) SDE ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``, ``beta(t) = beta_min +
t (beta_max - beta_min)``, gives ``x_t = alpha_t x_0 + sigma_t noise`` with ``log alpha_t =
-t^2 (beta_max - beta_min) / 4 - t beta_min / 2`` and ``sigma_t^2 = 1 - alpha_t^2``. A network
``e(x, t)`` predicts the noise; the model's score is ``s = -e / sigma_t``. The model is the
probability-flow ODE ``dx/dt = -beta(t) (x + s(x, t)) / 2`` from the prior ``N(0, I)`` at
``t = 1`` down to the truncation time ``t = eps`` (1e-5, as in the paper's code): its density
``log p(x) = log N(z(1); 0, I) + int_eps^1 tr(df/dx) dt`` (``nitsjax.ode``, exact trace in low
dimension, Hutchinson's estimator above) is the exact density of that model, not a bound.

Denoising score matching of order k (with ``c = noise - stop_gradient(e)``, the conditional
noise left over; at the true score its mean given ``x_t`` is zero):

- order 1: ``r1 = noise - e``; the target of ``sigma s`` is ``-E[noise | x_t]``;
- order 2: ``sigma^2 ds/dx`` matches ``E[c c^T | x_t] - I`` (Tweedie's second moment):
  ``R2 = sigma^2 ds/dx + I - c c^T`` (its Frobenius norm) and its trace
  ``r2 = sigma^2 tr(ds/dx) + dim - |c|^2``;
- order 3: ``sigma^3 grad tr(ds/dx)`` matches the third conditional cumulant of the noise:
  ``r3 = sigma^3 grad tr(ds/dx) + |c|^2 c - (sigma^2 tr(ds/dx) + dim) c - 2 (sigma^2 ds/dx + I) c``
  (the lower-order estimates held fixed, the last two terms have mean zero).

The loss of order k adds the terms of orders <= k (the paper's ``loss1 + loss2 + loss3``),
each residual's square averaged as in the paper's code (``|r1|^2 / d``, ``|R2|_F^2 / d^2 +
r2^2 / d^2``, ``|r3|^2 / d^3``). With ``trace="hutchinson"`` every matrix ``M`` above is
replaced by ``M v`` and every trace by ``v^T M v`` for one Rademacher probe ``v`` per row
(the paper's estimator); ``"exact"`` uses the full Jacobian (``dim`` JVPs).

``nj.diffusion.fit(x, order=2, ...)`` returns a ``Diffusion`` with ``log_prob(x)`` and
``sample(key, n)``; ``diffusion(dim, ...)`` is the model value ``model=diffusion`` builds,
trained by ``nj.fit`` with ``DSMLoss`` through its ``fit`` method.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nitsjax import ode
from nitsjax.validation import (
    check_data,
    check_hidden,
    check_key,
    check_positive_int,
)

Array = jax.Array

ORDERS = (1, 2, 3)
TRACES = ("auto", "exact", "hutchinson")
STANDARDIZE = ("whiten", "diagonal", None)
#: ``trace="auto"`` is exact up to this dimension, Hutchinson's estimator above
EXACT_MAX_DIM = 16
#: seed of the fixed Hutchinson probes of ``log_prob`` when no key is given
EVAL_SEED = 0


# ------------------------------------------------------------------------------- SDE
@dataclasses.dataclass(frozen=True)
class VPSDE:
    """The variance-preserving SDE with a linear ``beta(t)`` on ``t in [0, 1]``."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def marginal(self, t):
        """``(alpha_t, sigma_t)`` of ``x_t | x_0 ~ N(alpha_t x_0, sigma_t^2 I)``."""
        la = self.log_alpha(t)
        return jnp.exp(la), jnp.sqrt(-jnp.expm1(2.0 * la))


# --------------------------------------------------------------------------- network
class NoiseNet(nn.Module):
    """``e(x, t)``: an MLP of ``[x, sin(w t), cos(w t)]`` (``w = pi 2^k``), swish (smooth,
    for the ODE solver and the derivatives the high-order losses take)."""

    hidden: Sequence[int]
    dim: int
    frequencies: int = 8

    @nn.compact
    def __call__(self, x, t):
        w = jnp.pi * 2.0 ** jnp.arange(self.frequencies, dtype=x.dtype)
        tw = jnp.asarray(t, x.dtype) * w
        h = jnp.concatenate([x, jnp.sin(tw), jnp.cos(tw)], axis=-1)
        for width in self.hidden:
            h = nn.swish(nn.Dense(width)(h))
        return nn.Dense(self.dim)(h)


# ------------------------------------------------------------------ residuals (DSM)
def residuals(noise_fn, x0: Array, t, noise: Array, v: Array, sde: VPSDE, order: int,
              trace: str = "exact") -> dict:
    """The denoising score matching residuals of ONE example (module docstring).

    Args:
      noise_fn: ``e(x, t)`` for one event, (dim,) -> (dim,) (the score is ``-e / sigma_t``).
      x0: a data point, (dim,).
      t: its time (scalar in (0, 1]).
      noise: the forward noise, (dim,): ``x_t = alpha_t x0 + sigma_t noise``.
      v: a Rademacher probe (dim,) (used when ``trace="hutchinson"``).
      sde: the ``VPSDE``.
      order: 1, 2 or 3.
      trace: ``"exact"`` or ``"hutchinson"``.

    Returns:
      ``{"r1": (dim,)}`` and for order >= 2 ``"r2": (dim, dim) or (dim,)`` (the Frobenius
      residual, projected on ``v`` for Hutchinson) and ``"r2_trace": ()``, for order 3
      ``"r3": (dim,)``. At the true score each has mean zero given ``x_t``.
    """
    alpha, sigma = sde.marginal(t)
    xt = alpha * x0 + sigma * noise
    d = x0.shape[-1]

    def e(y):
        return noise_fn(y, t)

    out = {}
    if trace == "exact":
        eye = jnp.eye(d, dtype=x0.dtype)
        e0, lin = jax.linearize(e, xt) if order >= 2 else (e(xt), None)
        out["r1"] = noise - e0
        if order == 1:
            return out
        jac = jax.vmap(lin, out_axes=1)(eye)  # de/dx, (d, d)
        c = noise - jax.lax.stop_gradient(e0)
        h = -sigma * jac  # sigma^2 ds/dx
        out["r2"] = h + eye - jnp.outer(c, c)
        out["r2_trace"] = jnp.trace(h) + d - jnp.dot(c, c)
        if order == 3:
            grad_tr = jax.grad(lambda y: jnp.trace(jax.jacfwd(e)(y)))(xt)
            h0 = jax.lax.stop_gradient(h)
            out["r3"] = (-sigma**2 * grad_tr + jnp.dot(c, c) * c
                         - (jnp.trace(h0) + d) * c - 2.0 * (h0 @ c + c))
        return out
    if order == 1:
        out["r1"] = noise - e(xt)
        return out
    e0, jv = jax.jvp(e, (xt,), (v,))
    out["r1"] = noise - e0
    c = noise - jax.lax.stop_gradient(e0)
    cv = jnp.dot(c, v)
    hv = -sigma * jv  # sigma^2 (ds/dx) v
    vv = jnp.dot(v, v)
    out["r2"] = hv + v - cv * c
    out["r2_trace"] = jnp.dot(v, hv) + vv - cv**2
    if order == 3:
        grad_vjv = jax.grad(lambda y: jnp.dot(v, jax.jvp(e, (y,), (v,))[1]))(xt)
        hv0 = jax.lax.stop_gradient(hv)
        out["r3"] = (-sigma**2 * grad_vjv + cv**2 * c - (jnp.dot(v, hv0) + vv) * c
                     - 2.0 * cv * (hv0 + v))
    return out


def dsm_terms(r: dict, dim: int) -> dict:
    """Per-example squared residuals as the paper averages them: ``loss1``, ``loss2``,
    ``loss3`` (the keys present in ``r``)."""
    out = {"loss1": jnp.sum(r["r1"] ** 2) / dim}
    if "r2" in r:
        out["loss2"] = jnp.sum(r["r2"] ** 2) / dim**2 + r["r2_trace"] ** 2 / dim**2
    if "r3" in r:
        out["loss3"] = jnp.sum(r["r3"] ** 2) / dim**3
    return out


# --------------------------------------------------------- probability-flow ODE
def probability_flow(sde: VPSDE, noise_fn):
    """The probability-flow ODE's field ``f(t, z) = -beta(t) (z - e(z, t) / sigma_t) / 2``
    (the score is ``-e / sigma_t``) as ``nitsjax.ode`` takes it:
    ``field(params, t, z, context)``, with ``noise_fn(params, z, t)`` for one event."""

    def field(params, t, z, context):
        _, sigma = sde.marginal(t)
        return -0.5 * sde.beta(t) * (z - noise_fn(params, z, t) / sigma)

    return field


def flow_log_prob(sde: VPSDE, noise_fn, params, z, *, eps: float = 1e-5,
                  trace: str = "exact", key=None, **solve) -> Array:
    """``log p_eps(z)`` (n,) of the model whose prior ``N(0, I)`` at ``t = 1`` is carried to
    ``t = eps`` by the probability-flow ODE (``nitsjax.ode.log_prob``): rows ``z`` (n, dim).
    ``solve``: ``nitsjax.ode``'s solver options."""
    return ode.log_prob(probability_flow(sde, noise_fn), params, z,
                        ode.standard_normal_log_prob, float(eps), 1.0, trace=trace,
                        key=key if trace == "hutchinson" else None, **solve)


def flow_sample(sde: VPSDE, noise_fn, params, z1, *, eps: float = 1e-5, **solve) -> Array:
    """The ODE's solution at ``t = eps`` (n, dim) from prior draws ``z1`` (n, dim) at 1."""
    return ode.integrate(probability_flow(sde, noise_fn), params, z1, 1.0, float(eps),
                         **solve)


# ------------------------------------------------------------------------- the model
def _check_choice(value, choices, name, hint=""):
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}{hint}")


def _check_positive_float(value, name, example):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not 0 < float(value) < float("inf"):
        raise ValueError(f"{name}: expected a positive number such as {example}, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class ScoreModel:
    """The noise network ``e(x, t)`` behind the data-side standardisation: the part of a
    ``DiffusionModel`` that ``nj.fit`` trains (no density, so ``fit`` evaluates the DSM
    loss on the validation rows, not an ODE likelihood). Params as ``DiffusionModel``."""

    dim: int
    hidden: tuple = (128, 128)
    standardize: Optional[str] = "whiten"
    name: str = "diffusion_score"

    context_dim = None

    @property
    def net(self) -> NoiseNet:
        return NoiseNet(hidden=self.hidden, dim=self.dim)

    def init(self, key, x=None, context=None):
        """Fresh params ``{"net": flax params, "frozen": standardisation}``; with ``x``
        (n, dim) the standardisation is set from it."""
        check_key(key, "key")
        d = self.dim
        net = self.net.init(key, jnp.zeros(d), jnp.zeros(()))
        frozen = {"shift": jnp.zeros(d), "scale_tril": jnp.eye(d), "ready": jnp.zeros(())}
        params = {"net": net, "frozen": frozen}
        return params if x is None else self.data_init(params, x)

    def data_init(self, params, x, context=None):
        """``params`` with the standardisation set from rows ``x`` (n, dim): the mean and
        the Cholesky factor of the covariance (``"whiten"``) or the standard deviations
        (``"diagonal"``); the identity for ``standardize=None``. Never trained."""
        x = np.asarray(check_data(x, self.dim, "x"), np.float64)
        d = self.dim
        if self.standardize is None:
            shift, tril = np.zeros(d), np.eye(d)
        elif self.standardize == "diagonal" or len(x) < 2:
            shift = x.mean(0)
            sd = x.std(0) if len(x) > 1 else np.ones(d)
            tril = np.diag(np.where(sd > 0, sd, 1.0))
        else:
            shift = x.mean(0)
            cov = np.atleast_2d(np.cov(x, rowvar=False))
            cov = cov + 1e-6 * np.mean(np.diag(cov)) * np.eye(d) + 1e-12 * np.eye(d)
            tril = np.linalg.cholesky(cov)
        dtype = jax.tree_util.tree_leaves(params["net"])[0].dtype
        frozen = {"shift": jnp.asarray(shift, dtype), "scale_tril": jnp.asarray(tril, dtype),
                  "ready": jnp.ones((), dtype)}
        return {"net": params["net"], "frozen": frozen}

    def needs_data_init(self, params) -> bool:
        return self.standardize is not None and not bool(
            np.asarray(params["frozen"]["ready"]) > 0)

    # ----------------------------------------------------------- pure helpers
    def standardized(self, params, x):
        """``(z, log|det dz/dx|)``: rows (n, dim) in the network's units, and the scalar
        log-Jacobian of the standardisation."""
        f = params["frozen"]
        tril = f["scale_tril"]
        z = jax.scipy.linalg.solve_triangular(tril, (x - f["shift"]).T, lower=True).T
        return z, -jnp.sum(jnp.log(jnp.abs(jnp.diag(tril))))

    def unstandardized(self, params, z):
        f = params["frozen"]
        return z @ f["scale_tril"].T + f["shift"]

    def noise_of(self, params):
        """``e(z, t)`` for one standardised event (dim,) and a scalar time."""
        net = self.net

        def e(z, t):
            return net.apply(params["net"], z, t).astype(z.dtype)

        return e


class DSMLoss:
    """``nj.fit``'s loss for a ``ScoreModel``: denoising score matching of ``order``
    (1, 2, 3; the lower orders' terms included) at times ``t ~ U(eps, 1)``, a fresh
    Gaussian noise and Rademacher probe per row. Hashable by its options."""

    def __init__(self, order: int = 1, trace: str = "exact", eps: float = 1e-5,
                 sde: VPSDE = VPSDE()):
        _check_choice(order, ORDERS, "order", "; 1: first-order DSM, 2 and 3 add the "
                      "second- and third-order terms of Lu et al. (2022)")
        _check_choice(trace, ("exact", "hutchinson"), "trace")
        self.order, self.trace, self.eps, self.sde = int(order), trace, float(eps), sde
        self.__name__ = f"dsm{self.order}"

    def _key(self):
        return (self.order, self.trace, self.eps, self.sde)

    def __eq__(self, other):
        return isinstance(other, DSMLoss) and self._key() == other._key()

    def __hash__(self):
        return hash(("DSMLoss",) + self._key())

    def check(self, model):
        if not isinstance(model, ScoreModel):
            raise ValueError(f"loss: DSMLoss trains a nitsjax.diffusion.ScoreModel, got "
                             f"{type(model).__name__}")

    def terms(self, model: ScoreModel, params, x, key) -> dict:
        """Per-row terms ``{"loss1": (n,), ...}`` on rows ``x`` (n, dim) in data units."""
        from nitsjax.losses import eval_key

        key = eval_key(key)
        z, _ = model.standardized(params, x)
        n, d = z.shape
        kt, kn, kv = jax.random.split(key, 3)
        t = jax.random.uniform(kt, (n,), z.dtype, minval=self.eps, maxval=1.0)
        noise = jax.random.normal(kn, z.shape, z.dtype)
        v = jax.random.rademacher(kv, z.shape, z.dtype)
        e = model.noise_of(params)

        def one(z0, ti, ni, vi):
            return dsm_terms(residuals(e, z0, ti, ni, vi, self.sde, self.order, self.trace),
                             d)

        return jax.vmap(one)(z, t, noise, v)

    def __call__(self, model, params, x, context, key):
        return sum(jnp.mean(v) for v in self.terms(model, params, x, key).values())


@dataclasses.dataclass(frozen=True)
class DiffusionModel:
    """A VP-SDE score model and its probability-flow ODE density (module docstring).

    A value (equal models share compiled code). Params ``{"net": flax params of the noise
    network, "frozen": {"shift", "scale_tril", "ready"}}`` (the data-side standardisation,
    set from the training rows and never trained). Densities are in the data's units
    (the standardisation's log-Jacobian included).

    Attributes:
      dim: event size.
      order: denoising score matching order used by ``fit`` (1, 2 or 3).
      hidden: widths of the noise network.
      trace: "exact", "hutchinson" or "auto" (exact when ``dim <= 16``): the trace of the
        high-order losses and of the ODE's log-density.
      eps: the truncation time: training times are ``U(eps, 1)`` and the ODE runs on
        ``[eps, 1]``.
      beta_min, beta_max: the VP SDE's linear ``beta(t)``.
      standardize: "whiten", "diagonal" or None.
      rtol, atol, solver, max_steps: the ODE solve (``nitsjax.ode``).
    """

    dim: int
    order: int = 1
    hidden: tuple = (128, 128)
    trace: str = "auto"
    eps: float = 1e-5
    beta_min: float = 0.1
    beta_max: float = 20.0
    standardize: Optional[str] = "whiten"
    rtol: float = 1e-5
    atol: float = 1e-5
    solver: str = "tsit5"
    max_steps: int = 4096
    name: str = "diffusion"

    context_dim = None
    #: trained by its own ``fit`` (``nj.fit`` on the score model with ``DSMLoss``)
    fits_in_stages = True

    def __post_init__(self):
        check_positive_int(self.dim, "dim")
        _check_choice(self.order, ORDERS, "order", "; 1: first-order DSM, 2 and 3 add "
                      "the second- and third-order terms of Lu et al. (2022)")
        object.__setattr__(self, "hidden", check_hidden(self.hidden))
        _check_choice(self.trace, TRACES, "trace", "; 'auto' is exact for dim <= "
                      f"{EXACT_MAX_DIM}")
        _check_choice(self.standardize, STANDARDIZE, "standardize")
        eps = _check_positive_float(self.eps, "eps", 1e-5)
        if not eps < 1:
            raise ValueError(f"eps: expected a truncation time in (0, 1) such as 1e-5, got {eps}")
        bmin = _check_positive_float(self.beta_min, "beta_min", 0.1)
        bmax = _check_positive_float(self.beta_max, "beta_max", 20.0)
        if not bmax > bmin:
            raise ValueError(f"beta_max: expected a value above beta_min={bmin}, got {bmax}")
        ode.check_options(solver=self.solver, rtol=self.rtol, atol=self.atol,
                          max_steps=self.max_steps)

    # ----------------------------------------------------------------- parts
    @property
    def sde(self) -> VPSDE:
        return VPSDE(float(self.beta_min), float(self.beta_max))

    @property
    def score_model(self) -> ScoreModel:
        return ScoreModel(self.dim, self.hidden, self.standardize)

    @property
    def resolved_trace(self) -> str:
        if self.trace == "auto":
            return "exact" if self.dim <= EXACT_MAX_DIM else "hutchinson"
        return self.trace

    @property
    def loss(self) -> DSMLoss:
        return DSMLoss(self.order, self.resolved_trace, float(self.eps), self.sde)

    def init(self, key, x=None, context=None):
        _no_context(context)
        return self.score_model.init(key, x)

    def data_init(self, params, x, context=None):
        return self.score_model.data_init(params, x)

    def needs_data_init(self, params) -> bool:
        return self.score_model.needs_data_init(params)

    def noise_fn(self, net_params, z, t):
        """``e(z, t)``: the noise network on ONE standardised event (dim,) at time t."""
        return self.score_model.net.apply(net_params, z, t).astype(z.dtype)

    # ------------------------------------------------------------ pure functions
    def log_prob_batch(self, params, x, context=None, key=None) -> Array:
        """``log p(x)`` (n,) of rows (n, dim): the ODE from ``eps`` to 1, ``N(0, I)`` at 1.
        With Hutchinson's trace, ``key`` draws the probes (None: a fixed key)."""
        z, log_det_std = self.score_model.standardized(params, x)
        trace = self.resolved_trace
        if trace == "hutchinson" and key is None:
            key = jax.random.key(EVAL_SEED)
        lp = flow_log_prob(self.sde, self.noise_fn, params["net"], z, eps=float(self.eps),
                           trace=trace, key=key, **self._solve)
        return lp + log_det_std

    def sample_batch(self, params, key, n: int, context=None) -> Array:
        """``n`` samples (n, dim): ``N(0, I)`` at ``t = 1`` through the ODE to ``eps``."""
        dtype = params["frozen"]["shift"].dtype
        z1 = jax.random.normal(key, (n, self.dim), dtype)
        z = flow_sample(self.sde, self.noise_fn, params["net"], z1, eps=float(self.eps),
                        **self._solve)
        return self.score_model.unstandardized(params, z)

    @property
    def _solve(self) -> dict:
        return dict(solver=self.solver, rtol=self.rtol, atol=self.atol,
                    max_steps=self.max_steps)

    # ------------------------------------------------------------- checked API
    def log_prob(self, params, x, context=None, key=None) -> Array:
        """Exact ODE log-density (n,) of rows ``x`` (n, dim), in the data's units."""
        x = check_data(x, self.dim, "x")
        _no_context(context)
        if key is not None:
            check_key(key, "key")
        return _log_prob_compiled(self, params, jnp.asarray(x), key)

    def sample(self, params, key, n: int, context=None) -> Array:
        """``n`` samples (n, dim) by the probability-flow ODE from the prior."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        _no_context(context)
        return _sample_compiled(self, params, key, n)

    def fit(self, params, train, val=None, *, key, context=None, val_context=None,
            loss="nll", **fit_options):
        """Train the noise network by ``nj.fit`` with ``DSMLoss(order)`` (``val``: the DSM
        loss on the validation rows drives early stopping and restore-best).

        Args:
          params: ``init``'s params (fresh standardisation is set from ``train``).
          train, val: rows (n, dim), (m, dim).
          key: PRNG key.
          context, val_context: must be None (unconditional).
          loss: must be ``"nll"`` (the CLI's default, meaning the model's own objective).
          **fit_options: ``nj.fit``'s other keywords (``steps``, ``batch_size``,
            ``learning_rate``, ``schedule``, ``ema_decay``, ``checkpoint_dir``, ...).

        Returns:
          ``(params, history)`` of ``nj.fit``.
        """
        from nitsjax.train import fit

        _no_context(context)
        _no_context(val_context)
        if loss not in ("nll", None) and loss != self.loss:
            raise ValueError(f"loss: a diffusion model trains by denoising score matching of "
                             f"its order ({self.order}); leave loss unset, got {loss!r}")
        return fit(self.score_model, params, train, val, key=key, loss=self.loss,
                   **fit_options)


def _no_context(context):
    if context is not None:
        raise ValueError("context: diffusion models are unconditional; leave context None "
                         "(data.target null)")


_log_prob_compiled = jax.jit(lambda m, p, x, k: m.log_prob_batch(p, x, None, k),
                             static_argnums=0)
_sample_compiled = jax.jit(lambda m, p, k, n: m.sample_batch(p, k, n), static_argnums=(0, 3))


def diffusion(dim: int, *, order: int = 1, hidden: Sequence[int] = (128, 128),
              trace: str = "auto", eps: float = 1e-5, beta_min: float = 0.1,
              beta_max: float = 20.0, standardize: Optional[str] = "whiten",
              rtol: float = 1e-5, atol: float = 1e-5, solver: str = "tsit5",
              max_steps: int = 4096, context_dim: Optional[int] = None) -> DiffusionModel:
    """A score-based diffusion model (VP SDE) on R^dim, trained by denoising score matching
    of ``order`` and evaluated by its probability-flow ODE (Lu et al., ICML 2022).

    Args:
      dim: event size.
      order: 1, 2 or 3: first-order DSM, plus the second-order (score Jacobian and its
        trace), plus the third-order (gradient of the trace) terms.
      hidden: widths of the noise network's MLP.
      trace: "auto" (exact for dim <= 16), "exact" or "hutchinson": the high-order losses'
        and the ODE log-density's trace.
      eps: truncation time (training times U(eps, 1); the ODE runs on [eps, 1]).
      beta_min: the VP SDE's beta(0).
      beta_max: the VP SDE's beta(1).
      standardize: data-side standardisation: "whiten", "diagonal" or None.
      rtol: the ODE solver's relative tolerance.
      atol: the ODE solver's absolute tolerance.
      solver: the ODE solver (tsit5, dopri5, dopri8, bosh3, heun).
      max_steps: the most solver steps per ODE solve.
      context_dim: must be None (unconditional).
    """
    if context_dim is not None:
        _no_context(context_dim)
    return DiffusionModel(dim, order, hidden, trace, eps, beta_min, beta_max, standardize,
                          rtol, atol, solver, max_steps)


# ------------------------------------------------------------------ the user API
@dataclasses.dataclass
class Diffusion:
    """A trained diffusion model: ``log_prob(x)`` and ``sample(key, n)`` in data units.

    Attributes:
      model: the ``DiffusionModel``.
      params: its trained params.
      history: ``nj.fit``'s ``History`` (``train_loss``/``val_loss``: the DSM loss).
    """

    model: DiffusionModel
    params: Any
    history: Any = None

    def log_prob(self, x, key=None) -> Array:
        """Exact probability-flow ODE log-density (n,) of rows ``x`` (n, dim)."""
        return self.model.log_prob(self.params, x, key=key)

    def sample(self, key, n: int) -> Array:
        """``n`` samples (n, dim)."""
        return self.model.sample(self.params, key, n)


def fit(x, x_val=None, *, order: int = 1, key, steps: int = 2000, batch_size: int = 256,
        learning_rate: float = 1e-3, hidden: Sequence[int] = (128, 128), trace: str = "auto",
        eps: float = 1e-5, beta_min: float = 0.1, beta_max: float = 20.0,
        standardize: Optional[str] = "whiten", rtol: float = 1e-5, atol: float = 1e-5,
        **fit_options) -> Diffusion:
    """Fit a VP-SDE diffusion model to rows ``x`` (n, dim) by denoising score matching of
    ``order`` (Lu et al., ICML 2022, arXiv 2206.08265).

    Args:
      x: training rows (n, dim), finite floats (continuous data).
      x_val: optional validation rows (m, dim): the DSM loss on them drives early stopping
        and restore-best.
      order: 1, 2 or 3 (see ``diffusion``).
      key: PRNG key (initialisation and training).
      steps, batch_size, learning_rate: ``nj.fit``'s (positive).
      hidden, trace, eps, beta_min, beta_max, standardize, rtol, atol: ``diffusion``'s.
      **fit_options: other ``nj.fit`` keywords (``schedule``, ``ema_decay``,
        ``eval_every``, ``patience``, ``progress``, ...).

    Returns:
      a ``Diffusion`` with ``log_prob(x)`` and ``sample(key, n)``.
    """
    check_key(key, "key")
    x = check_data(x, _dim_of(x), "x")
    if x_val is not None:
        x_val = check_data(x_val, x.shape[1], "x_val")
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    _check_positive_float(learning_rate, "learning_rate", 1e-3)
    model = diffusion(x.shape[1], order=order, hidden=hidden, trace=trace, eps=eps,
                      beta_min=beta_min, beta_max=beta_max, standardize=standardize,
                      rtol=rtol, atol=atol)
    k_init, k_fit = jax.random.split(key)
    params = model.init(k_init)
    fit_options.setdefault("progress", False)
    params, history = model.fit(params, np.asarray(x), None if x_val is None else
                                np.asarray(x_val), key=k_fit, steps=steps,
                                batch_size=batch_size,
                                learning_rate=learning_rate, **fit_options)
    return Diffusion(model, params, history)


def _dim_of(x) -> int:
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    if len(shape) != 2:
        raise ValueError(f"x: expected training rows of shape (n, dim), got shape "
                         f"{tuple(shape)}")
    return int(shape[1])
