"""Fixed elementwise squashing bijectors: sigmoid, logit, tanh.

They have no parameters and no ``dim``: the maths is elementwise, so one bijector works
on events of any size. ``logit`` is the usual preprocessing of bounded data (pixels in
[0, 1] after dequantisation): Dinh et al., "Density estimation using Real NVP", ICLR 2017,
section 4.1, and Papamakarios et al., "Masked Autoregressive Flow", NeurIPS 2017,
section 4.3, map ``x`` to ``logit(alpha + (1 - 2 alpha) x)``.

Each is ``elementwise(transformer)`` of a scalar ``Transformer`` (``logistic_transformer``,
``tanh_transformer``), the one scalar-map abstraction; ``logit`` is ``invert(sigmoid)``.

Numerics. Log-derivatives use log-sigmoid forms, ``log s(x) = -softplus(-x)``, so they
are finite for every finite input (``sigmoid`` at ``x = -1e30`` has log-det ``-1e30``,
not ``-inf``).

Domain rule. Maps into a bounded interval cannot be inverted exactly once the result
rounds onto the boundary (``sigmoid(40.0)`` is exactly ``1.0`` in float32). Every map
*out of* a bounded interval (``logit`` forward, ``sigmoid``/``tanh`` inverse) therefore
clips its input, in the unit coordinate ``u``, to ``[eps, 1 - eps]`` (``tanh``: to
``[-1 + eps, 1 - eps]``) before taking logs, and reports the log-det at the clipped point.
``eps`` defaults to the gap below 1.0 of the input dtype (2^-24 in float32, 2^-53 in
float64), so ``1 - eps`` is the largest number below 1 and no representable value
between it and 1 is moved; the output is finite, at most ``log(1/eps)`` in magnitude
(16.6 in float32, 36.7 in float64). Inputs outside the
interval are clipped the same way, so a finite input never gives NaN or inf; such inputs
are outside the support and their log-det is not a density correction -- validate data
before training (all of it should lie strictly inside ``(low, high)``). Gradients
through the clip are zero outside ``[eps, 1 - eps]``, never NaN.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from nitsjax.bijectors.base import Bijector, Transformer, elementwise, invert


def _eps(dtype, eps: float | None):
    return jnp.finfo(dtype).epsneg if eps is None else eps


def _check_interval(low, high, name: str):
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(
            f"{name}: expected finite low < high, got low={low}, high={high}"
        )
    return low, high


def _check_eps(eps, name: str):
    if eps is None:
        return None
    eps = float(eps)
    if not 0.0 < eps < 0.5:
        raise ValueError(f"{name}: expected eps in (0, 0.5) or None, got eps={eps}")
    return eps


def _logit_unit(u, eps):
    """``u`` in (0, 1) -> (logit(u), log d logit/du), with ``u`` clipped to [eps, 1 - eps]."""
    u = jnp.clip(u, eps, 1 - eps)
    log_u, log_1mu = jnp.log(u), jnp.log1p(-u)
    return log_u - log_1mu, -(log_u + log_1mu)


def logistic_transformer(
    low: float = 0.0, high: float = 1.0, *, eps: float | None = None
) -> Transformer:
    """The scalar logistic map ``z = low + (high - low) sigmoid((x - loc) / scale)``.

    ``theta = (loc, log_scale)``, ``identity_params = (0, 0)`` (the plain sigmoid: this
    map is never the identity). ``log dz/dx = log(high - low) + log s(y) + log s(-y) -
    log_scale`` with ``y = (x - loc) / scale``, exact in the tails. The inverse follows
    the module's domain rule (``eps`` in the unit coordinate). ``sigmoid``, ``logit`` and
    the NITS logistic squash are this map.
    """
    low, high = _check_interval(low, high, "sigmoid")
    eps = _check_eps(eps, "sigmoid")
    width = high - low

    def forward(theta, x):
        loc, log_scale = theta[0], theta[1]
        y = (x - loc) * jnp.exp(-log_scale)
        ld = jax.nn.log_sigmoid(y) + jax.nn.log_sigmoid(-y) - log_scale
        return low + width * jax.nn.sigmoid(y), ld + jnp.log(jnp.asarray(width, x.dtype))

    def inverse(theta, z):
        loc, log_scale = theta[0], theta[1]
        y, ld = _logit_unit((z - low) / width, _eps(z.dtype, eps))
        x = loc + jnp.exp(log_scale) * y
        return x, ld + log_scale - jnp.log(jnp.asarray(width, z.dtype))

    return Transformer(2, forward, inverse, jnp.zeros(2))


def tanh_transformer(*, eps: float | None = None) -> Transformer:
    """The scalar ``z = tanh(x)`` (no params, ``num_params = 0``): log-derivative
    ``2 (log 2 - |x| - softplus(-2 |x|))``; the inverse ``atanh`` clips ``z`` to
    ``[-1 + eps, 1 - eps]`` (module docstring)."""
    eps = _check_eps(eps, "tanh")

    def forward(theta, x):
        a = jnp.abs(x)  # the even form: no softplus of a large positive argument
        log2 = jnp.log(jnp.asarray(2.0, x.dtype))
        return jnp.tanh(x), 2.0 * (log2 - a - jax.nn.softplus(-2.0 * a))

    def inverse(theta, z):
        e = _eps(z.dtype, eps)
        z = jnp.clip(z, -1 + e, 1 - e)
        lp, lm = jnp.log1p(z), jnp.log1p(-z)
        return 0.5 * (lp - lm), -(lp + lm)

    return Transformer(0, forward, inverse, jnp.zeros(0))


def sigmoid(
    low: float = 0.0, high: float = 1.0, *, eps: float | None = None
) -> Bijector:
    """Elementwise ``z = low + (high - low) * sigmoid(x)``: R -> (low, high).

    forward log-det ``sum(log(high - low) + log s(x) + log s(-x))``. The inverse is the
    logit, with the domain rule of the module docstring (``eps`` in the unit coordinate).
    No params (``init`` returns ``{}``); works for any event size. ``logistic_transformer``
    at ``theta = (0, 0)``.
    """
    return elementwise(logistic_transformer(low, high, eps=eps), name="sigmoid")


def logit(
    low: float = 0.0,
    high: float = 1.0,
    *,
    alpha: float = 0.0,
    eps: float | None = None,
) -> Bijector:
    """Elementwise ``z = logit(alpha + (1 - 2 alpha) (x - low) / (high - low))``: (low, high) -> R.

    ``alpha`` in [0, 0.5) shrinks the interval away from its ends first (RealNVP uses
    0.05 on CIFAR-10, MAF 1e-6 on MNIST); the log-det includes that affine step, so
    densities stay in the units of ``x``. Inputs are clipped by the module's domain rule
    (``eps`` in the unit coordinate). No params; works for any event size. It is the
    inverse of ``sigmoid`` on the interval widened by ``alpha`` on both sides.
    """
    low, high = _check_interval(low, high, "logit")
    eps = _check_eps(eps, "logit")
    alpha = float(alpha)
    if not 0.0 <= alpha < 0.5:
        raise ValueError(f"logit: expected alpha in [0, 0.5), got alpha={alpha}")
    pad = alpha * (high - low) / (1.0 - 2.0 * alpha)  # u = alpha at x = low
    return invert(sigmoid(low - pad, high + pad, eps=eps), name="logit")


def tanh(*, eps: float | None = None) -> Bijector:
    """Elementwise ``z = tanh(x)``: R -> (-1, 1).

    log-det ``sum(2 (log 2 - |x| - softplus(-2 |x|)))``, finite unless the true value
    ``~ -2 |x|`` is itself beyond the float range (|x| >= 2^127 in float32). The
    inverse ``atanh`` clips ``z`` to [-1 + eps, 1 - eps] (module docstring). No params.
    """
    return elementwise(tanh_transformer(eps=eps), name="tanh")
