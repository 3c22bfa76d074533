"""Data-parallel training helpers: a one-axis device mesh, sharded data, replicated params.

``fit(..., data_parallel=True)`` trains on every device JAX sees (``jax.devices()``: the
local ones, or, after ``jax.distributed.initialize()``, those of all processes) with the
usual single-program data parallelism of ``jax.sharding``:

* a ``Mesh`` with one axis, ``"data"`` (``data_mesh``);
* the training rows resident on the devices, split along rows (``put_rows``, padded with
  copies of row 0 so that every device holds the same number; padding rows are never
  drawn, since the permutations only range over the real rows);
* each minibatch split along its batch axis: ``gather_rows`` collects the rows of a
  global index vector from the row shards (each device takes the rows it holds, a
  reduce-scatter over ``"data"`` hands every device its slice of the batch, one
  ``batch x dim`` exchange per step, never the whole data set) and returns the batch
  sharded ``P("data")``;
* params, optimiser state and EMA replicated (``replicate``). ``jit`` (GSPMD) partitions the
  loss along the batch and inserts the all-reduce of the gradient of the mean loss.

Every device draws the same permutation and step keys, so a data-parallel run takes the
same minibatches as a single-device run of the same seed and differs from it only by
the order of floating-point sums (tests/test_sharding.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


def resolve_devices(data_parallel) -> list | None:
    """The devices of ``fit``'s ``data_parallel`` argument: ``False``/``None``/``0`` -> None
    (single-device path), ``True`` -> ``jax.devices()``, an int ``k`` -> the first ``k``
    of them, a sequence of ``jax.Device`` -> those devices."""
    if data_parallel is None or data_parallel is False:
        return None
    available = jax.devices()
    if data_parallel is True:
        return list(available)
    if isinstance(data_parallel, (int, np.integer)):
        k = int(data_parallel)
        if k == 0:
            return None
        if not 1 <= k <= len(available):
            raise ValueError(
                f"data_parallel: expected True, False or a device count in [1, "
                f"{len(available)}] (devices available: {len(available)} "
                f"{available[0].platform}), got {k}"
            )
        return list(available[:k])
    if isinstance(data_parallel, Sequence) and data_parallel and all(
        isinstance(d, jax.Device) for d in data_parallel
    ):
        return list(data_parallel)
    raise ValueError(
        f"data_parallel: expected True, False, a device count or a list of jax devices, "
        f"got {data_parallel!r}"
    )


def data_mesh(devices: Sequence) -> Mesh:
    """A one-dimensional mesh named ``"data"`` over ``devices``."""
    return Mesh(np.asarray(devices, dtype=object), (AXIS,))


def batch_spec(ndim: int, axis: int = 0) -> P:
    """PartitionSpec splitting dimension ``axis`` of an ``ndim``-array along ``"data"``."""
    return P(*[AXIS if i == axis else None for i in range(ndim)])


def put_rows(a, mesh: Mesh, axis: int = 0) -> jax.Array:
    """Host array ``a`` onto ``mesh`` split along ``axis`` (its length must divide by the
    device count). Built shard by shard from ``a`` with ``make_array_from_callback``, so in
    a multi-process run every process passes the same full array and places its part."""
    a = np.asarray(a)
    sharding = NamedSharding(mesh, batch_spec(a.ndim, axis))
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def pad_rows(a, multiple: int) -> np.ndarray:
    """``a`` with copies of row 0 appended until its length is a multiple of ``multiple``."""
    a = np.asarray(a)
    pad = -a.shape[0] % multiple
    if pad:
        a = np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
    return a


def replicate(tree, mesh: Mesh):
    """Every array leaf of ``tree`` replicated on all devices of ``mesh``."""
    sharding = NamedSharding(mesh, P())

    def put(leaf):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(
                put(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf)
            )
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
            if jax.process_count() == 1:
                return jax.device_put(leaf, sharding)
            host = np.asarray(leaf)  # every process holds the same value
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
        return leaf

    return jax.tree_util.tree_map(put, tree)


def gather_rows(x: jax.Array, idx: jax.Array, mesh: Mesh) -> jax.Array:
    """``x[idx]`` for ``x`` sharded along rows and a replicated index vector ``idx``
    (``(batch,)``, ``batch`` divisible by the device count); the result is sharded along
    its rows. Each device gathers the requested rows it holds (zeros for the others) and a
    reduce-scatter sums them into per-device batch slices: adding zeros is exact, so the
    batch equals ``x[idx]`` bit for bit (non-finite rows included)."""

    def local(xl, ids):
        m = xl.shape[0]
        local_ids = ids - jax.lax.axis_index(AXIS) * m
        inside = (local_ids >= 0) & (local_ids < m)
        rows = jnp.take(xl, jnp.clip(local_ids, 0, m - 1), axis=0)
        mask = inside.reshape(inside.shape + (1,) * (rows.ndim - 1))
        rows = jnp.where(mask, rows, jnp.zeros((), rows.dtype))
        return jax.lax.psum_scatter(rows, AXIS, scatter_dimension=0, tiled=True)

    spec = batch_spec(x.ndim)
    return jax.shard_map(local, mesh=mesh, in_specs=(spec, P()), out_specs=spec)(x, idx)


def constrain_batch(x: jax.Array, mesh: Mesh, axis: int = 0) -> jax.Array:
    """``x`` (inside ``jit``) constrained to be split along ``axis`` over ``"data"``."""
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, batch_spec(x.ndim, axis)))
