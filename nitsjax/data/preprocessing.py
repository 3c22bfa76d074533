"""Preprocessing for density estimation: splits, standardisation, dequantisation, logit.

Density values change under every invertible preprocessing map ``y = f(x)``:
``log p_x(x) = log p_y(f(x)) + log|det df/dx|``. The image helpers therefore return the
log-determinant of what they did, and :func:`bits_per_dim` adds it back so reported
bits/dim refer to the original pixel space ``[0, 256)^D`` (Theis et al., ICLR 2016;
Papamakarios et al., NeurIPS 2017, appendix E.2; Dinh et al., ICLR 2017, section 4.1).

Conventions used throughout ``nitsjax.data``:

* splits are taken from the END of the (shuffled) rows, as the MAF code does:
  ``n_test = int(test_fraction * n)`` last rows are the test set, then
  ``n_val = int(val_fraction * (n - n_test))`` last remaining rows the validation set;
* standardisation statistics are fitted on the training split only (the MAF benchmark
  loaders keep their published, slightly different recipes; see ``nitsjax.data.maf``);
* uniform dequantisation adds ``u ~ U[0, 1)`` (times the column's resolution) to
  discrete values, turning a probability mass function into a density (Uria et al., 2013).
"""

from __future__ import annotations

import math
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.data._files import DataFormatError

SeedLike = Union[int, np.random.Generator, jax.Array, None]  # noqa: UP007


# ----------------------------------------------------------------------------- seeds


def numpy_rng(seed: SeedLike, name: str = "seed") -> np.random.Generator:
    """A numpy Generator from an int, a Generator (returned as is) or a JAX PRNG key."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an int, a numpy Generator or a JAX key, got {seed!r}")
    if isinstance(seed, (int, np.integer)):
        if seed < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {seed}")
        return np.random.default_rng(int(seed))
    if isinstance(seed, jax.Array):
        if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
            data = np.asarray(jax.random.key_data(seed))
        elif seed.dtype == jnp.uint32 and seed.shape == (2,):
            data = np.asarray(seed)
        else:
            raise TypeError(f"{name}: a JAX array seed must be a PRNG key, got dtype {seed.dtype} "
                            f"shape {seed.shape}")
        return np.random.default_rng([int(v) for v in data.ravel()])
    raise TypeError(f"{name}: expected an int, a numpy Generator or a JAX key, "
                    f"got {type(seed).__name__}")


# ----------------------------------------------------------------------------- splits


def check_fraction(value, name: str) -> float:
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
        raise TypeError(f"{name}: expected a number in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value}")
    return float(value)


def split_sizes(n: int, val_fraction: float = 0.1, test_fraction: float = 0.1):
    """``(n_train, n_val, n_test)`` with MAF's rounding: test first, then val from the rest."""
    n_test = int(test_fraction * n)
    n_val = int(val_fraction * (n - n_test))
    return n - n_test - n_val, n_val, n_test


def split_rows(x: np.ndarray, val_fraction: float = 0.1, test_fraction: float = 0.1):
    """``(train, val, test)`` views of ``x``: test = last rows, val = last rows of the rest."""
    n_train, n_val, _ = split_sizes(len(x), val_fraction, test_fraction)
    return x[:n_train], x[n_train:n_train + n_val], x[n_train + n_val:]


def standardize(train: np.ndarray, *others: np.ndarray, ddof: int = 0, names=None):
    """Subtract the training mean and divide by the training std, column-wise.

    Returns ``(train, *others, mean, std)``. A column with zero spread in the training
    split is an error naming it (drop it first); silently dividing by zero gives NaN.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0, ddof=ddof)
    bad = np.flatnonzero(~(std > 0))
    if bad.size:
        label = [names[i] for i in bad] if names is not None else bad.tolist()
        raise DataFormatError(
            f"column(s) {label} are constant in the training split, so they cannot be "
            f"standardised; drop them (drop_columns=...) or pass standardize=False")
    out = [(a - mean) / std for a in (train, *others)]
    return (*out, mean, std)


# ----------------------------------------------------------------------------- dequantisation


def column_resolution(x: np.ndarray, mode: bool | str, max_decimals: int = 6):
    """Per-column quantisation step for dequantisation, or 0 where nothing is added.

    ``mode`` is False (no dequantisation), True / ``"integer"`` (step 1 for columns whose
    values are all integers) or ``"decimal"`` (the coarsest step ``10**-k``, ``k <=
    max_decimals``, on whose grid all of the column's values lie, e.g. 0.01 for a pH
    recorded to two decimals).
    """
    if mode is False:
        return np.zeros(x.shape[1])
    if mode is True or mode == "integer":
        return np.all(x == np.round(x), axis=0).astype(np.float64)
    if mode != "decimal":
        raise ValueError(f"dequantize: expected True, False, 'integer' or 'decimal', got {mode!r}")
    step = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        col = x[:, j]
        for k in range(max_decimals + 1):
            scaled = col * 10.0**k
            if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6):
                step[j] = 10.0**-k
                break
    return step


def dequantize(x, seed: SeedLike, num_levels: int | None = 256):
    """Uniform dequantisation ``(x + u) / num_levels`` with ``u ~ U[0, 1)``.

    ``x`` holds integer values (pixel values ``0..num_levels-1``, any dtype). With a JAX key
    the result is a JAX array (jit-friendly, fresh noise per call is the usual practice for
    images); with an int seed or a numpy Generator it is a float32 numpy array.
    ``num_levels=None`` skips the scaling and returns ``x + u``.
    The scaling's log-determinant is :func:`scale_logdet`; dequantisation itself has none
    (it is a lower bound on the discrete log-likelihood, Theis et al., ICLR 2016).
    """
    scale = 1.0 if num_levels is None else float(num_levels)
    # Rounding to float may carry x + u (u close to 1) onto the next level, x + 1; every
    # value is therefore clamped to the largest float below (x + 1) / num_levels, so that
    # floor(y * num_levels) == x holds exactly.
    if isinstance(seed, jax.Array) and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        x = jnp.asarray(x)
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        xf = x.astype(dtype)
        u = jax.random.uniform(seed, x.shape, dtype=dtype)
        inv = jnp.asarray(1.0 / scale, dtype)
        hi = jnp.nextafter((xf + 1) * inv, jnp.zeros((), dtype))
        return jnp.minimum((xf + u) * inv, hi)
    rng = numpy_rng(seed)
    x = np.asarray(x)
    inv = np.float32(1.0 / scale)
    out = rng.random(x.shape, dtype=np.float32)
    out += x
    out *= inv
    hi = np.asarray(x, dtype=np.float32) + np.float32(1)
    hi *= inv
    np.minimum(out, np.nextafter(hi, np.float32(0), out=hi), out=out)
    return out


def scale_logdet(dim: int, num_levels: int = 256) -> float:
    """``log|det|`` of ``x -> x / num_levels`` on ``dim`` coordinates: ``-dim log num_levels``."""
    return -float(dim) * math.log(num_levels)


def logit_transform(x, alpha: float = 1e-6):
    """``z = logit(alpha + (1 - 2 alpha) x)`` for ``x`` in ``[0, 1]``, and its exact log-det.

    Returns ``(z, logdet)`` with ``logdet = sum_i log|dz_i/dx_i|`` over the last axis:
    ``log(1 - 2 alpha) - log y - log(1 - y)`` per coordinate, ``y = alpha + (1 - 2 alpha) x``.
    ``alpha`` keeps ``z`` finite at the ends (MAF uses 1e-6 for MNIST, RealNVP 0.05 for
    CIFAR-10). Works on numpy and JAX arrays (returns JAX arrays).
    """
    if not 0.0 <= alpha < 0.5:
        raise ValueError(f"alpha: expected a number in [0, 0.5), got {alpha}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    y = alpha + (1.0 - 2.0 * alpha) * x
    log_y, log_1my = jnp.log(y), jnp.log1p(-y)
    z = log_y - log_1my
    logdet = jnp.sum(math.log1p(-2.0 * alpha) - log_y - log_1my, axis=-1)
    return z, logdet


def logit_inverse(z, alpha: float = 1e-6):
    """Inverse of :func:`logit_transform`: ``x = (sigmoid(z) - alpha) / (1 - 2 alpha)``.

    Returns ``(x, logdet)`` with ``logdet = log|det dx/dz|`` (minus the forward one).
    """
    if not 0.0 <= alpha < 0.5:
        raise ValueError(f"alpha: expected a number in [0, 0.5), got {alpha}")
    z = jnp.asarray(z)
    y = jax.nn.sigmoid(z)
    x = (y - alpha) / (1.0 - 2.0 * alpha)
    # log y + log(1-y) = -softplus(-z) - softplus(z), stable for large |z|
    logdet = jnp.sum(-jax.nn.softplus(-z) - jax.nn.softplus(z) - math.log1p(-2.0 * alpha),
                     axis=-1)
    return x, logdet


def preprocess_images(x, seed: SeedLike, alpha: float | None = None, num_levels: int = 256):
    """Integer pixels -> dequantised ``[0, 1)`` values (-> logit if ``alpha`` is given).

    Returns ``(y, logdet)``: ``logdet[i] = log|det dy/dx|`` of row ``i`` relative to the
    dequantised pixel space ``[0, num_levels)^D``, to pass to :func:`bits_per_dim`.
    """
    y = dequantize(x, seed, num_levels)
    dim = y.shape[-1]
    logdet = jnp.full(y.shape[:-1], scale_logdet(dim, num_levels))
    if alpha is not None:
        y, ld = logit_transform(y, alpha)
        logdet = logdet + ld
    return y, logdet


def bits_per_dim(nll_nats, dim: int, preprocessing_logdet=0.0):
    """Bits per dimension in the original data space.

    ``nll_nats`` is the model's negative log-likelihood (nats, per example or averaged) of
    the PREPROCESSED data ``y = f(x)``; ``preprocessing_logdet`` is ``log|det dy/dx|`` of
    that preprocessing relative to the space bits/dim is reported in (for 8-bit images the
    dequantised pixel space ``[0, 256)^D``): ``-D log 256`` for the scaling to ``[0, 1)``
    (:func:`scale_logdet`) plus the logit's log-det, as returned by :func:`preprocess_images`.
    ``-log p_x(x) = nll_nats - preprocessing_logdet``; bits/dim divides by ``D log 2``.
    """
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim: expected a positive int, got {dim!r}")
    nll_x = jnp.asarray(nll_nats) - jnp.asarray(preprocessing_logdet)
    return nll_x / (dim * math.log(2.0))
