"""Tensor-train densities built without optimisation, by sketching kernel density estimates.

The construction is the TT sketch of Hur, Hoskins, Lindsey, Stoudenmire & Khoo ("Generative
modeling via tensor train sketching", arXiv 2202.11788) as the tensorizing flow of Ren,
Zhao, Khoo & Ying ("High-dimensional density estimation with tensorizing flow", arXiv
2212.00759) uses it: the density is discretised on a tensor-product grid (``grid`` points a
dimension), and its tensor ``p[i_1, ..., i_d]`` is written as a tensor train

    p[i_1, ..., i_d] ~= G_1[:, i_1, :] G_2[:, i_2, :] ... G_d[:, i_d, :],   G_k: (r_{k-1}, n, r_k)

whose cores solve linear systems (the core-determining equations, solved by least squares)
assembled from kernel density estimates (KDEs) of two- and three-dimensional marginals only.
With the sketch functions of the neighbouring variable (``S_{k-1}`` keeps ``x_{k-1}`` and sums
out ``x_{<k-1}``, ``T_{k+1}`` keeps ``x_{k+1}``; the "Markov" sketch), for k = 2, ..., d-1:

    B~_k[a, i, b] = p(x_{k-1}=a, x_k=i, x_{k+1}=b)          (3-marginal KDE on the grid)
    V_k           = top ``rank`` right singular vectors of B~_k as an (n n, n) matrix (trimming)
    B_k           = B~_k V_k,     A_k = p(x_{k-1}, x_k) V_{k-1}     (2-marginal KDE)
    A_k G_k = B_k                                                   (least squares for G_k)

with ``G_1 = p(x_1, x_2) V_1`` and ``A_d G_d = p(x_{d-1}, x_d)``. The equations are exact
when the grid tensor has TT ranks <= ``rank`` and the marginals are exact (e.g. a Markov
chain along the coordinates); no iteration, no objective. (Built from the two papers'
abstracts and the TT-sketch construction as published; the full texts were not at hand, so
the sketch choice -- the neighbour's marginal -- and the nonnegativity rule below are ours.)

Continuous density. Between grid points the density is the multilinear interpolant of the
grid tensor (a TT whose cores are interpolated core slices). It is normalised exactly through
the TT: its integral is the contraction of the cores with the trapezoid weights. Outside the
grid box the density is 0 (``log_prob = -inf``); the box is the data range padded by
``0.1 * range + 4 * bandwidth`` on each side.

Nonnegativity. Solved cores can give small negative values. The density is defined through
its sequential conditionals ``q(x_k | x_{<k})``: the conditional's values at the grid points
of ``x_k`` (a TT contraction: interpolated left cores, the core ``G_k``, the trapezoid-
summed right cores) are clipped below at ``FLOOR`` (1e-6) times their largest value (so a
negative lobe becomes a tiny positive density instead of a hole with ``log q = -inf``),
interpolated linearly between grid points and renormalised by their trapezoid sum. So ``q =
prod_k q(x_k | x_{<k})`` is a normalised density, sampled exactly by the same conditionals
(a cell drawn from its trapezoid mass, then the position in the cell from the linear density
by its closed-form inverse CDF), and where the TT is nonnegative and above the floor it IS
the normalised multilinear interpolant (the rank-1 TT of a nonnegative KDE is nonnegative).
Kernel rows are renormalised to unit trapezoid mass on the grid, so no sample's mass is lost
at the box edges.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.validation import as_float_array, check_data, check_finite, check_key

Array = jax.Array

FLOOR = 1e-6  # a conditional's grid values are clipped below at FLOOR * its largest value


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class TensorTrain:
    """A tensor-train density on a tensor-product grid (module docstring).

    A pytree (its cores and grid are leaves), so it can be passed through ``jax.jit``; it
    hashes by identity (``eq=False``), so it can also key a compiled function.

    Attributes:
      cores: tuple of ``d`` arrays, ``cores[k]`` of shape ``(r_{k-1}, n, r_k)`` with
        ``r_0 = r_d = 1``.
      grid: (d, n) increasing grid points of each dimension.
      right: tuple of ``d`` arrays, ``right[k]`` (r_k,) the cores after ``k`` contracted with
        the trapezoid weights (``right[d-1] = [1]``).
      bandwidth: (d,) the KDE bandwidths used to build it.
    """

    cores: tuple
    grid: Array
    right: tuple
    bandwidth: Array

    @property
    def dim(self) -> int:
        return len(self.cores)

    @property
    def ranks(self) -> tuple:
        """The TT ranks ``(r_1, ..., r_{d-1})``."""
        return tuple(int(c.shape[2]) for c in self.cores[:-1])

    @property
    def low(self) -> Array:
        return self.grid[:, 0]

    @property
    def high(self) -> Array:
        return self.grid[:, -1]

    # ----------------------------------------------------------------- pure functions
    def log_prob_single(self, x: Array) -> Array:
        """log q(x) for one event ``x`` (d,). Pure and traceable; -inf outside the grid box."""
        lp = jnp.zeros((), x.dtype)
        left = jnp.ones((1,), self.grid.dtype)
        inside = jnp.all((x >= self.low) & (x <= self.high))
        for k in range(self.dim):
            values, mass = self._conditional(k, left)
            i, t = _cell(self.grid[k], x[k])
            dens = ((1 - t) * values[i] + t * values[i + 1]) / mass
            lp = lp + jnp.log(dens)
            left = self._advance(k, left, i, t, mass)
        return jnp.where(inside, lp, -jnp.inf)

    def sample_single(self, key: jax.Array) -> Array:
        """One exact sample (d,) by sequential conditional sampling. Pure and traceable."""
        xs = []
        left = jnp.ones((1,), self.grid.dtype)
        for k, kk in enumerate(jax.random.split(key, self.dim)):
            values, mass = self._conditional(k, left)
            g = self.grid[k]
            h = jnp.diff(g)
            cell_mass = h * (values[:-1] + values[1:]) / 2
            kc, ku = jax.random.split(kk)
            i = jax.random.categorical(kc, jnp.log(cell_mass))
            a, b = values[i], values[i + 1]
            u = jax.random.uniform(ku, dtype=g.dtype)
            # inverse CDF of the density a(1-t) + bt on [0, 1] (stable form of the root)
            t = u * (a + b) / (a + jnp.sqrt(a * a + (b - a) * u * (a + b)))
            t = jnp.clip(t, 0.0, 1.0)
            xs.append(g[i] + t * h[i])
            left = self._advance(k, left, i, t, mass)
        return jnp.stack(xs)

    def _conditional(self, k, left):
        """Clipped values of q(x_k | x_{<k}) (up to a constant) at the grid points, and
        their trapezoid mass."""
        values = jnp.einsum("a,ajb,b->j", left, self.cores[k], self.right[k])
        values = jnp.maximum(values, FLOOR * jnp.max(values))
        mass = jnp.sum(_trapezoid(self.grid[k]) * values)
        return values, mass

    def _advance(self, k, left, i, t, mass):
        """The left vector after fixing ``x_k`` (interpolated core slice), rescaled by the
        conditional's mass (the conditionals are scale-free, so this only avoids underflow)."""
        core = self.cores[k]
        new = left @ ((1 - t) * core[:, i, :] + t * core[:, i + 1, :])
        return new / mass

    # ------------------------------------------------------------- checked user API
    def log_prob(self, x) -> Array:
        """Log-density of each row of ``x`` (n, d) -> (n,); -inf outside the grid box."""
        x = check_data(x, self.dim, "x")
        return _log_prob(self, jnp.asarray(x, self.grid.dtype))

    def sample(self, key: jax.Array, n: int) -> Array:
        """``n`` exact samples, shape (n, d)."""
        check_key(key, "key")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n: expected a positive integer number of samples, got {n!r}")
        return _sample(self, key, int(n))

    def grid_values(self) -> Array:
        """The normalised density at every grid point, shape (n,) * d: the full tensor, for
        small ``d`` only (tests, figures)."""
        out = self.cores[0][0]
        for core in self.cores[1:]:
            out = jnp.tensordot(out, core, axes=([-1], [0]))
        out = out[..., 0]
        z = out
        for k in range(self.dim):
            z = jnp.tensordot(_trapezoid(self.grid[k]), z, axes=([0], [0]))
        return out / z


@jax.jit
def _log_prob(tt, x):
    return jax.vmap(tt.log_prob_single)(x)


def _sample_impl(tt, key, n):
    return jax.vmap(tt.sample_single)(jax.random.split(key, n))


_sample = jax.jit(_sample_impl, static_argnums=2)


def _cell(g, x):
    """Index ``i`` of the grid cell holding ``x`` (clamped to the grid) and its offset ``t``
    in [0, 1]."""
    n = g.shape[0]
    i = jnp.clip(jnp.searchsorted(g, x, side="right") - 1, 0, n - 2)
    t = jnp.clip((x - g[i]) / (g[i + 1] - g[i]), 0.0, 1.0)
    return i, t


def _trapezoid(g):
    """Trapezoid weights of a 1-D grid: integral of the linear interpolant = weights @ values."""
    h = jnp.diff(g)
    return jnp.concatenate([h[:1] / 2, (h[:-1] + h[1:]) / 2, h[-1:] / 2])


# --------------------------------------------------------------------------- fitting
def scott_bandwidth(x: np.ndarray) -> np.ndarray:
    """Scott's rule per coordinate, ``sigma_k * N ** (-1 / (m + 4))`` with ``m = min(d, 3)``
    the dimension of the largest marginal the construction estimates."""
    n, d = x.shape
    sigma = x.std(axis=0, ddof=1) if n > 1 else np.ones(d)
    sigma = np.where(sigma > 0, sigma, 1.0)
    return sigma * n ** (-1.0 / (min(d, 3) + 4))


def check_shape_options(rank, grid) -> None:
    """``rank`` an integer >= 1 and ``grid`` an integer >= 2, else a ValueError."""
    if not isinstance(rank, (int, np.integer)) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"rank: expected an integer >= 1 (the TT rank), got {rank!r}")
    if not isinstance(grid, (int, np.integer)) or isinstance(grid, bool) or grid < 2:
        raise ValueError(f"grid: expected an integer >= 2 (grid points a dimension), "
                         f"got {grid!r}")


def fit(x, *, rank: int, grid: int, bandwidth: Optional[float | Sequence[float]] = None,
        pad: float = 0.1) -> TensorTrain:
    """A tensor-train density from data by TT sketching of kernel density estimates.

    No optimisation: each core is the least-squares solution of a linear system built from
    Gaussian KDEs of 2- and 3-dimensional marginals on a tensor-product grid (module
    docstring; Hur et al., arXiv 2202.11788; Ren et al., arXiv 2212.00759).

    Args:
      x: (N, d) data, finite, N >= 2.
      rank: the TT rank (>= 1), capped at ``grid`` (a core's rank cannot exceed it).
      grid: grid points a dimension (>= 2), spanning the data range padded on each side by
        ``pad * range + 4 * bandwidth``.
      bandwidth: the Gaussian kernel's bandwidth, a float or one per dimension (d,);
        None is Scott's rule (``scott_bandwidth``).
      pad: the relative padding of the grid box beyond the data range.

    Returns:
      A ``TensorTrain`` with ``log_prob(x)`` and ``sample(key, n)``.
    """
    check_shape_options(rank, grid)
    x = as_float_array(x, "x")
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x: expected shape (N, d) with N >= 2 rows, got {tuple(x.shape)}"
                         + ("; a 1-D data set needs x[:, None]" if x.ndim == 1 else ""))
    check_finite(x, "x")
    if not pad >= 0:
        raise ValueError(f"pad: expected a nonnegative number, got {pad!r}")
    x = np.asarray(x, np.float64)
    n_data, d = x.shape
    if bandwidth is None:
        h = scott_bandwidth(x)
    else:
        h = np.broadcast_to(np.asarray(bandwidth, np.float64), (d,)).copy() \
            if np.ndim(bandwidth) == 0 or np.shape(bandwidth) == (d,) else None
        if h is None or not np.all(np.isfinite(h)) or not np.all(h > 0):
            raise ValueError(f"bandwidth: expected a positive number or {d} positive numbers "
                             f"(one per dimension), or None for Scott's rule; got {bandwidth!r}")
    lo, hi = x.min(0), x.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    g = np.linspace(lo - pad * span - 4 * h, hi + pad * span + 4 * h, grid, axis=1)  # (d, n)
    # kernel matrices K_k[s, j] = N(g_kj; x_sk, h_k), each row of unit trapezoid mass
    kern = []
    for k in range(d):
        wk = np.asarray(_trapezoid(jnp.asarray(g[k])), np.float64)
        kk = np.exp(-0.5 * ((g[k][None, :] - x[:, k:k + 1]) / h[k]) ** 2)
        kern.append(kk / (kk @ wk)[:, None])
    cores = _sketch_cores(kern, min(int(rank), grid), n_data)
    dtype = jnp.result_type(float)
    grid_arr = jnp.asarray(g, dtype)
    cores = tuple(jnp.asarray(c, dtype) for c in cores)
    return TensorTrain(cores, grid_arr, _right_environments(cores, grid_arr),
                       jnp.asarray(h, dtype))


def _sketch_cores(kern, rank, n_data):
    """The TT cores from the kernel matrices (module docstring's equations), float64 numpy."""
    d = len(kern)
    n = kern[0].shape[1]
    if d == 1:
        return [kern[0].mean(0)[None, :, None]]

    def p2(k):  # p(x_k, x_{k+1}) on the grid, (n, n)
        return kern[k].T @ kern[k + 1] / n_data

    def p3(k):  # p(x_{k-1}, x_k, x_{k+1}), (n, n, n)
        return np.einsum("sa,si,sb->aib", kern[k - 1], kern[k], kern[k + 1]) / n_data

    def trim(mat):  # top right singular vectors of a matrix whose columns index x_{k+1}
        _, _, vt = np.linalg.svd(mat, full_matrices=False)
        return vt[:rank].T

    cores = []
    b0 = p2(0)
    v_prev = trim(b0)                            # (n, r_1)
    cores.append((b0 @ v_prev)[None])            # (1, n, r_1)
    for k in range(1, d - 1):
        bt = p3(k)                               # (n, n, n)
        v = trim(bt.reshape(n * n, n))           # (n, r_k)
        b = bt @ v                               # (n, n, r_k)
        a = p2(k - 1) @ v_prev                   # (n, r_{k-1})
        sol = np.linalg.lstsq(a, b.reshape(n, -1), rcond=None)[0]
        cores.append(sol.reshape(a.shape[1], n, v.shape[1]))
        v_prev = v
    a = p2(d - 2) @ v_prev
    sol = np.linalg.lstsq(a, p2(d - 2), rcond=None)[0]
    cores.append(sol[:, :, None])                # (r_{d-1}, n, 1)
    return cores


def _right_environments(cores, grid):
    """``right[k]``: the cores after ``k`` contracted with the trapezoid weights, (r_k,)."""
    d = len(cores)
    right = [None] * d
    right[d - 1] = jnp.ones((1,), grid.dtype)
    for k in range(d - 1, 0, -1):
        right[k - 1] = jnp.einsum("ajb,j,b->a", cores[k], _trapezoid(grid[k]), right[k])
    return tuple(right)
