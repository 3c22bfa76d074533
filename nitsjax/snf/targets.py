"""Unnormalised targets with a known normaliser, for testing samplers and ``log Z``.

Each ``Target`` has ``log_prob`` for ONE event ``(dim,) -> ()`` (unnormalised), the exact
``log_z``, an exact sampler and, where it has separated modes, their centres:

- ``double_well(dim=2)``: ``-(x_1^2 - 4)^2 / 2 - |x_{2:}|^2 / 2``, modes at ``x_1 = +-2``
  behind a barrier of height 8 nats (a Wu et al. 2020-style double well);
- ``gaussian_mixture(k=6, radius=5, scale=0.5)``: ``k`` equal, well-separated isotropic
  Gaussians on a circle in 2-D, unnormalised ``sum_j exp(-|x - m_j|^2 / (2 scale^2))``;
- ``funnel(dim=10)``: Neal's funnel ``v ~ N(0, 9)``, ``x_i | v ~ N(0, e^v)`` with the
  ``(2 pi)`` constants left out.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

Array = jax.Array


class Target(NamedTuple):
    """An unnormalised density with a known normaliser.

    Attributes:
      name, dim: as given.
      log_prob: ``(dim,) -> ()`` unnormalised log-density of one event.
      log_z: ``log`` of its integral (exact).
      sample: ``(key, n) -> (n, dim)`` exact samples.
      modes: ``(k, dim)`` centres of separated modes of equal mass, or None.
    """

    name: str
    dim: int
    log_prob: Callable[[Array], Array]
    log_z: float
    sample: Callable[[Array, int], np.ndarray]
    modes: Optional[np.ndarray] = None


_GRID = np.linspace(-6.0, 6.0, 200_001)


def _well_1d(t):
    return -((t**2 - 4.0) ** 2) / 2.0


def double_well(dim: int = 2) -> Target:
    """The double well on R^dim (dim >= 1); its 1-D normaliser by quadrature (1e-12)."""
    if dim < 1:
        raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
    dens = np.exp(_well_1d(_GRID))
    log_z = math.log(np.trapezoid(dens, _GRID)) + 0.5 * (dim - 1) * math.log(2 * math.pi)
    cdf = np.cumsum(dens)
    cdf /= cdf[-1]

    def log_prob(x):
        return _well_1d(x[0]) - 0.5 * jnp.sum(x[1:] ** 2)

    def sample(key, n):
        k1, k2 = jax.random.split(key)
        u = np.asarray(jax.random.uniform(k1, (n,)))
        first = np.interp(u, cdf, _GRID)[:, None]
        return np.concatenate([first, np.asarray(jax.random.normal(k2, (n, dim - 1)))], 1)

    modes = np.zeros((2, dim))
    modes[:, 0] = [-2.0, 2.0]
    return Target("double_well", dim, log_prob, log_z, sample, modes)


def gaussian_mixture(k: int = 6, radius: float = 5.0, scale: float = 0.5) -> Target:
    """``k`` equal isotropic Gaussians of std ``scale`` on a circle of ``radius`` in 2-D."""
    angles = 2 * np.pi * np.arange(k) / k
    means = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    m = jnp.asarray(means, jnp.float32)
    log_z = math.log(k * 2 * math.pi * scale**2)

    def log_prob(x):
        return logsumexp(-jnp.sum((x - m) ** 2, -1) / (2 * scale**2))

    def sample(key, n):
        k1, k2 = jax.random.split(key)
        j = np.asarray(jax.random.randint(k1, (n,), 0, k))
        return means[j] + scale * np.asarray(jax.random.normal(k2, (n, 2)))

    return Target("gaussian_mixture", 2, log_prob, log_z, sample, means)


def funnel(dim: int = 10) -> Target:
    """Neal's funnel on R^dim (dim >= 2): ``x_0 ~ N(0, 9)``, ``x_i | x_0 ~ N(0, e^x_0)``."""
    if dim < 2:
        raise ValueError(f"dim: expected an integer >= 2, got {dim!r}")
    log_z = 0.5 * math.log(2 * math.pi * 9.0) + 0.5 * (dim - 1) * math.log(2 * math.pi)

    def log_prob(x):
        v = x[0]
        return -v**2 / 18.0 - 0.5 * jnp.sum(x[1:] ** 2) * jnp.exp(-v) - 0.5 * (dim - 1) * v

    def sample(key, n):
        k1, k2 = jax.random.split(key)
        v = 3.0 * np.asarray(jax.random.normal(k1, (n, 1)))
        rest = np.exp(v / 2) * np.asarray(jax.random.normal(k2, (n, dim - 1)))
        return np.concatenate([v, rest], 1)

    return Target("funnel", dim, log_prob, log_z, sample)


TARGETS = {"double_well": double_well, "gaussian_mixture": gaussian_mixture, "funnel": funnel}


def target(name: str, **options) -> Target:
    """A target by name: ``double_well``, ``gaussian_mixture`` or ``funnel``."""
    if name not in TARGETS:
        raise ValueError(f"target: unknown name {name!r}; choose one of {sorted(TARGETS)}")
    return TARGETS[name](**options)


def mode_coverage(target: Target, samples, weights=None, *, min_mass: float = 0.25):
    """Mass per mode (nearest centre) of ``samples`` ``(n, dim)``, optionally weighted,
    and how many modes hold at least ``min_mass / k`` of it (all ``k`` modes have mass
    ``1 / k`` under the target). Returns ``(masses (k,), covered)``; None for a target
    without modes."""
    if target.modes is None:
        return None
    s = np.asarray(samples)
    d = ((s[:, None, :] - target.modes[None]) ** 2).sum(-1)
    j = d.argmin(1)
    w = np.full(len(s), 1.0 / len(s)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    k = len(target.modes)
    masses = np.bincount(j, weights=w, minlength=k)
    return masses, int((masses >= min_mass / k).sum())
