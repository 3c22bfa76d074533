"""Two-dimensional toy densities of the flow literature.

The eight densities popularised by FFJORD (Grathwohl et al., ICLR 2019) and the neural
spline flow paper (Durkan et al., NeurIPS 2019), each drawn i.i.d. from a seed:

=============  ===========================================================================
name           what
=============  ===========================================================================
moons          two interleaved half circles, Gaussian noise 0.1, centred and doubled
8gaussians     8 Gaussians (std 0.354) evenly spaced on a circle of radius 2.83
checkerboard   uniform on the 8 black squares of a 4x4 board covering [-4, 4]^2
pinwheel       5 curved arms (radial std 0.3, tangential std 0.1, rate 0.25), scaled by 2
2spirals       two interleaved Archimedean spirals (3 half turns), noise 0.1
rings          4 concentric rings of radii 0.75, 1.5, 2.25, 3 (equal weights), noise 0.08
circles        2 concentric circles of radii 1.5 and 3 (equal weights), noise 0.08 * 3
swissroll      the 2-D swiss roll ``t (cos t, sin t) / 5``, ``t ~ U[1.5 pi, 4.5 pi]``, noise 0.2
=============  ===========================================================================

All coordinates lie roughly in ``[-4, 4]^2``. ``sample`` returns float32 ``(n, 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nitsjax.data._files import Splits, make_splits
from nitsjax.data.preprocessing import SeedLike, numpy_rng


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    upper = rng.random(n) < 0.5
    t = math.pi * rng.random(n)
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x, y], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return 2.0 * (pts - np.array([0.5, 0.25]))


def _eight_gaussians(rng, n):
    k = rng.integers(0, 8, n)
    angle = 2.0 * math.pi * k / 8
    centres = 2.0 * math.sqrt(2.0) * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + (math.sqrt(2.0) / 4.0) * rng.standard_normal((n, 2))


def _checkerboard(rng, n):
    # black squares of side 2: (col + row) even on the 4x4 board of [-4, 4]^2
    cells = np.array([(c, r) for c in range(4) for r in range(4) if (c + r) % 2 == 0])
    pick = cells[rng.integers(0, len(cells), n)]
    return -4.0 + 2.0 * (pick + rng.random((n, 2)))


def _pinwheel(rng, n, arms=5, radial_std=0.3, tangential_std=0.1, rate=0.25):
    k = rng.integers(0, arms, n)
    r = 1.0 + radial_std * rng.standard_normal(n)
    s = tangential_std * rng.standard_normal(n)
    angle = 2.0 * math.pi * k / arms + rate * np.exp(r)
    c, si = np.cos(angle), np.sin(angle)
    pts = np.stack([c * r - si * s, si * r + c * s], axis=1)
    return 2.0 * pts


def _two_spirals(rng, n):
    t = np.sqrt(rng.random(n)) * 3.0 * math.pi  # 540 degrees
    arm = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) + 0.5 * rng.random((n, 2))
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    return sign * arm / 3.0 + 0.1 * rng.standard_normal((n, 2))


def _rings(rng, n):
    radius = 3.0 * np.array([0.25, 0.5, 0.75, 1.0])[rng.integers(0, 4, n)]
    t = 2.0 * math.pi * rng.random(n)
    pts = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return pts + 0.08 * rng.standard_normal((n, 2))


def _circles(rng, n):
    radius = np.where(rng.random(n) < 0.5, 1.0, 0.5)
    t = 2.0 * math.pi * rng.random(n)
    pts = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return 3.0 * (pts + 0.08 * rng.standard_normal((n, 2)))


def _swissroll(rng, n):
    t = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
    pts = t[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return (pts + rng.standard_normal((n, 2))) / 5.0


SAMPLERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "2spirals": _two_spirals,
    "rings": _rings,
    "circles": _circles,
    "swissroll": _swissroll,
}

NAMES = tuple(SAMPLERS)

#: default split sizes of ``load`` (train, val, test)
DEFAULT_SIZES = (20_000, 5_000, 5_000)


def _check_name(name: str) -> None:
    if name not in SAMPLERS:
        raise ValueError(f"name: expected one of the toy densities {list(NAMES)}, got {name!r}")


def _check_count(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{what}: expected a non-negative int, got {n!r}")
    return int(n)


def sample(name: str, n: int, seed: SeedLike = 0) -> np.ndarray:
    """``n`` i.i.d. points of toy density ``name`` as float32 ``(n, 2)``.

    ``seed`` is an int, a numpy Generator or a JAX PRNG key; the same seed gives the same
    points.
    """
    _check_name(name)
    n = _check_count(n, "n")
    rng = numpy_rng(seed)
    return np.ascontiguousarray(SAMPLERS[name](rng, n), dtype=np.float32)


def load(name: str, *, n_train: int = DEFAULT_SIZES[0], n_val: int = DEFAULT_SIZES[1],
         n_test: int = DEFAULT_SIZES[2], seed: SeedLike = 0) -> Splits:
    """Fixed-size train/val/test splits of toy density ``name``, independent draws."""
    _check_name(name)
    sizes = [_check_count(v, k) for k, v in
             (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    rng = numpy_rng(seed)
    parts = [sample(name, m, g) for m, g in zip(sizes, rng.spawn(3), strict=False)]
    return make_splits(*parts, name=name)
