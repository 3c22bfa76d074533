"""Checks at the public API boundary: clear errors before any tracing or compilation.

Each check names the argument, what was expected and what was given. Value checks
(NaN/inf) run only on concrete arrays; inside a user's ``jax.jit`` they are skipped, so
compiled code pays nothing for them.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def as_float_array(x, name: str):
    """``x`` as a floating array; integer, bool, object and string arrays are refused."""
    if _is_tracer(x):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
        return x
    if not isinstance(x, (np.ndarray, jax.Array)):
        try:
            x = np.asarray(x)
        except Exception as err:  # noqa: BLE001 - re-raised with the argument's name
            raise TypeError(f"{name}: expected an array, got {type(x).__name__}") from err
    if not np.issubdtype(x.dtype, np.floating):
        hint = (
            " (cast with x.astype('float32'); integer data such as pixel values should be "
            "dequantised first, see nitsjax.data)"
            if np.issubdtype(x.dtype, np.integer) or x.dtype == bool
            else ""
        )
        raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}{hint}")
    return x


def check_finite(x, name: str) -> None:
    """Raise if a concrete array holds NaN or inf, saying where the first one is."""
    if _is_tracer(x):
        return
    a = np.asarray(x)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name}: {int(bad.sum())} non-finite value(s) (NaN or inf), first at index {idx} "
            f"= {a[idx]}; drop or impute those rows before calling"
        )


def check_data(x, dim: int, name: str = "x"):
    """A batch of events: float array of shape (n, dim) with n >= 1, all finite."""
    x = as_float_array(x, name)
    if x.ndim != 2 or x.shape[1] != dim:
        fix = "; a single event needs x[None, :]" if x.ndim == 1 and x.shape == (dim,) else ""
        raise ValueError(
            f"{name}: expected shape (n, {dim}), got {tuple(x.shape)}{fix}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got an empty array of shape "
                         f"{tuple(x.shape)}")
    check_finite(x, name)
    return x


def check_context(context, context_dim: Optional[int], n: int, name: str = "context"):
    """A batch of contexts of shape (n, context_dim), or None for an unconditional flow."""
    if context_dim is None:
        if context is not None:
            raise ValueError(
                f"{name}: this flow is unconditional (context_dim=None) but a context was "
                f"given; build it with context_dim=... to condition on one"
            )
        return None
    if context is None:
        raise ValueError(
            f"{name}: this flow is conditional (context_dim={context_dim}); pass context "
            f"of shape (n, {context_dim})"
        )
    context = as_float_array(context, name)
    if context.ndim != 2 or context.shape != (n, context_dim):
        raise ValueError(
            f"{name}: expected shape ({n}, {context_dim}), got {tuple(context.shape)}"
        )
    check_finite(context, name)
    return context


def check_positive_int(v, name: str, minimum: int = 1) -> int:
    """An integer >= minimum (bools and floats are refused)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def check_hidden(hidden, name: str = "hidden") -> tuple[int, ...]:
    """Hidden layer widths: a sequence of positive integers (or a single int)."""
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        hidden = tuple(hidden)
    except TypeError as err:
        raise ValueError(f"{name}: expected a sequence of positive ints, got {hidden!r}") from err
    if not hidden:
        raise ValueError(f"{name}: expected at least one hidden layer width, got ()")
    for h in hidden:
        check_positive_int(h, f"{name} entry")
    return tuple(int(h) for h in hidden)


def check_key(key, name: str = "key") -> None:
    """A JAX PRNG key (new-style ``jax.random.key`` or legacy uint32[2])."""
    if _is_tracer(key):
        return
    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            return
        if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
            return
    raise TypeError(
        f"{name}: expected a PRNG key such as jax.random.key(0), got "
        f"{type(key).__name__}{getattr(key, 'shape', '')}"
    )
