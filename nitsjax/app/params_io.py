"""Params pytrees on disk: one ``.npz`` array per leaf, named by its pytree path (no
pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import jax
import numpy as np

PathLike = Union[str, Path]


def save_params(path: PathLike, params) -> Path:
    """Write a params pytree as ``.npz``: one array per leaf, named by its pytree path."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    arrays = {jax.tree_util.keystr(p): np.asarray(v) for p, v in flat}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_params(path: PathLike, template):
    """Read ``save_params``' file into the structure of ``template`` (a params pytree or
    its ``jax.eval_shape``); every leaf must be present with the template's shape."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    with np.load(Path(path), allow_pickle=False) as z:
        stored = set(z.files)
        leaves = []
        for p, t in flat:
            k = jax.tree_util.keystr(p)
            if k not in stored:
                raise ValueError(
                    f"{path}: has no array for parameter {k}; was it written for another model "
                    f"config? (it holds {len(stored)} arrays, the model needs {len(flat)})"
                )
            a = z[k]
            if tuple(a.shape) != tuple(t.shape):
                raise ValueError(
                    f"{path}: parameter {k} has shape {a.shape}, the model needs {tuple(t.shape)}"
                )
            leaves.append(jax.numpy.asarray(a, dtype=t.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)
