"""Training checkpoints with orbax: atomic, finite-only, resumable.

Layout of a ``checkpoint_dir``::

    checkpoint_dir/
      checkpoints/<step>/state   arrays: params, optimiser state, EMA, best params, RNG key
      checkpoints/<step>/meta    JSON: step, counters, early-stopping state, history, config
      history.jsonl              one line per evaluation (rewritten atomically)

orbax writes each step into a temporary directory and renames it when complete, so a
crash mid-save leaves the previous checkpoint as the latest one. ``Checkpointer.save``
refuses states with non-finite parameters, so a diverged state never replaces the last
good one. The two newest checkpoints are kept.

orbax is an optional dependency (the ``cli`` extra): it is imported when a
``Checkpointer`` is made, and its absence is an ``ImportError`` naming the install.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.train.history import History

#: ``check_writable`` refuses a folder with less free space than this (bytes); override
#: with the environment variable ``NITSJAX_MIN_FREE_MB``.
MIN_FREE_BYTES = 50 * 2**20
MIN_FREE_ENV = "NITSJAX_MIN_FREE_MB"


def min_free_bytes() -> int:
    """The free-space floor: ``$NITSJAX_MIN_FREE_MB`` megabytes if set, else 50 MB."""
    env = os.environ.get(MIN_FREE_ENV, "").strip()
    if not env:
        return MIN_FREE_BYTES
    try:
        mb = float(env)
    except ValueError as err:
        raise ValueError(f"{MIN_FREE_ENV}: expected a number of megabytes, got {env!r}") from err
    return max(0, int(mb * 2**20))


def check_writable(path, name: str = "checkpoint_dir", min_free: int | None = None) -> str:
    """Create ``path`` if needed, prove a file can be written there and that the disk has
    at least ``min_free`` bytes free (default ``min_free_bytes()``); the absolute path.

    Raises ``ValueError`` naming the argument, the folder and (for a full disk) the free
    space, before any training starts, not after hours of it.
    """
    path = os.path.abspath(os.fspath(path))
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(
            f"{name}: cannot write to {path!r} ({err.strerror or err}); pass a writable "
            f"directory" + (" or checkpoint_dir=None" if name == "checkpoint_dir" else "")
        ) from err
    floor = min_free_bytes() if min_free is None else int(min_free)
    free = shutil.disk_usage(path).free
    if free < floor:
        raise ValueError(
            f"{name}: only {free / 2**20:.1f} MB free on the disk holding {path!r}; need at "
            f"least {floor / 2**20:.0f} MB for checkpoints and results. Free some space, "
            f"pass another directory, or lower the floor with {MIN_FREE_ENV}=<megabytes>"
        )
    return path


@jax.jit
def _all_finite(tree):
    leaves = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(leaf.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def tree_is_finite(tree) -> bool:
    """True if every floating leaf of ``tree`` is finite (one compiled call, one sync)."""
    return bool(_all_finite(tree))


INSTALL_HINT = 'pip install "nitsjax[cli]"  (or "nitsjax[all]")'


def _orbax():
    try:
        import orbax.checkpoint as ocp
    except ImportError as err:
        raise ImportError(
            f"checkpoint_dir: checkpoints need orbax-checkpoint, which is not installed; "
            f"{INSTALL_HINT}, or pass checkpoint_dir=None"
        ) from err
    return ocp


class Checkpointer:
    """Save and restore ``(state pytree, meta dict)`` pairs under ``directory``."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = check_writable(directory)
        self.history_path = os.path.join(self.directory, "history.jsonl")
        self._ocp = ocp = _orbax()
        self._manager = ocp.CheckpointManager(
            os.path.join(self.directory, "checkpoints"),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict, history: History) -> bool:
        """Write a checkpoint at ``step``; returns False (and writes nothing) if the
        params in ``state`` are not all finite."""
        if not tree_is_finite(state["params"]):
            return False
        ocp = self._ocp
        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self._manager.wait_until_finished()
        history.write_jsonl(self.history_path)
        return True

    def latest_meta(self) -> dict | None:
        """The ``meta`` dict of the latest checkpoint (no arrays read); None if empty."""
        step = self._manager.latest_step()
        if step is None:
            return None
        ocp = self._ocp
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored.meta)

    def restore(self, template: Any) -> tuple[Any, dict] | None:
        """The latest ``(state, meta)``, arrays shaped like ``template``; None if empty."""
        step = self._manager.latest_step()
        if step is None:
            return None
        ocp = self._ocp
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        # Rebuild the template's exact tree structure (NamedTuple optimiser states), with
        # arrays placed like freshly created ones, so jitted code sees the same input
        # shardings as in an uninterrupted run and does not recompile.
        treedef = jax.tree_util.tree_structure(template)
        leaves = [jnp.asarray(np.asarray(a)) for a in jax.tree_util.tree_leaves(restored.state)]
        state = jax.tree_util.tree_unflatten(treedef, leaves)
        return state, dict(restored.meta)

    def close(self) -> None:
        self._manager.close()


def restore_run(ckpt: Checkpointer, template: Any, fingerprint: dict):
    """The latest ``(state, meta)`` of ``ckpt`` (None if empty), checked against the run.

    Raises ``ValueError`` naming ``checkpoint_dir`` when the saved arrays do not fit
    ``template`` or the saved ``meta["config"]`` differs from ``fingerprint`` (the setup
    that fixes the state's structure and meaning: flow, data size, batch size, optimizer,
    EMA, validation, dequantisation)."""
    meta = ckpt.latest_meta()
    if meta is None:
        return None
    saved = meta.get("config", {})
    diff = {k: (saved.get(k), v) for k, v in fingerprint.items() if saved.get(k) != v}
    if diff:
        raise ValueError(
            f"checkpoint_dir: {ckpt.directory} holds a run with a different setup "
            f"(saved vs now: {diff}); use a new checkpoint_dir to start afresh"
        )
    try:
        return ckpt.restore(template)
    except Exception as err:  # noqa: BLE001 - re-raised with the argument's name
        raise ValueError(
            f"checkpoint_dir: could not restore the checkpoint in {ckpt.directory} into "
            f"params of this flow ({type(err).__name__}: {err}); use a new checkpoint_dir "
            f"to start afresh"
        ) from err
