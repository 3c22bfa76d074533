"""Where data files live, how they are found, checked and cached, and the errors raised.

Every loader takes ``root``: the folder holding that data set's files (for example the
``power`` folder of the MAF archive, holding ``data.npy``) or its parent (the ``data``
folder of the archive, or the folder ``NITSJAX_DATA`` points at); both are accepted.
``root=None`` means ``$NITSJAX_DATA/<folder>`` when the environment variable is set, else
``~/.nitsjax/data/<folder>``, where ``<folder>`` is the data set's conventional folder
name (``power``, ``BSDS300``, ``mnist``, ``magic04``...).

Prepared splits of the slow-to-build data sets are cached as ``.npy`` files under
``$NITSJAX_CACHE`` (default ``~/.cache/nitsjax``), keyed by the source files' path, size
and modification time and by the preprocessing version, so a changed file or a changed
recipe is never served stale.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pathlib
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]  # noqa: UP007 - a runtime alias

ALLOW_PICKLE_ENV = "NITSJAX_ALLOW_PICKLE"


class Splits(NamedTuple):
    """Train, validation and test arrays, each float32 of shape ``(n, d)``."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


class DataNotFoundError(FileNotFoundError):
    """A data file or folder is missing; the message says where it was looked for and
    where to get it."""


class DataFormatError(ValueError):
    """A data file exists but is truncated, has the wrong shape, layout or checksum."""


def require(module: str, purpose: str, package: str | None = None, extra: str = "data"):
    """Import an optional dependency where it is needed (the library core imports none);
    an ``ImportError`` naming the package and the extra that installs it if it is absent.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs {package or module}, which is not installed; install it with "
            f'pip install "nitsjax[{extra}]" (or pip install {package or module})'
        ) from err


def data_home() -> pathlib.Path:
    """The base data folder: ``$NITSJAX_DATA`` if set, else ``~/.nitsjax/data``."""
    env = os.environ.get("NITSJAX_DATA")
    return pathlib.Path(env).expanduser() if env else pathlib.Path("~/.nitsjax/data").expanduser()


def cache_home() -> pathlib.Path:
    """The cache folder: ``$NITSJAX_CACHE`` if set, else ``~/.cache/nitsjax``."""
    env = os.environ.get("NITSJAX_CACHE")
    return pathlib.Path(env).expanduser() if env else pathlib.Path("~/.cache/nitsjax").expanduser()


def resolve_root(root: PathLike | None, folder: str) -> pathlib.Path:
    """``root`` as a path, or the default ``data_home() / folder``."""
    if root is None:
        return data_home() / folder
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root: expected a folder path (str or os.PathLike) or None, "
                        f"got {type(root).__name__}")
    return pathlib.Path(root).expanduser()


def find_file(
    root: pathlib.Path,
    folder: str,
    candidates: Sequence[str],
    *,
    dataset: str,
    source: str,
) -> pathlib.Path:
    """The first existing file among ``root/c`` and ``root/folder/c`` for ``c`` in ``candidates``.

    Raises ``DataNotFoundError`` listing every path tried and ``source`` (where to get it).
    """
    tried = []
    for base in (root, root / folder):
        for c in candidates:
            p = base / c
            tried.append(p)
            if p.is_file():
                return p
    where = "" if root.is_dir() else f" (the folder {root} does not exist)"
    raise DataNotFoundError(
        f"{dataset}: no data file found{where}. Looked for:\n  "
        + "\n  ".join(str(p) for p in tried)
        + f"\n{source}\nPass root=<folder holding the files> or set NITSJAX_DATA to the "
        f"folder that holds '{folder}/'."
    )


def pickle_allowed(allow_pickle: bool | None) -> bool:
    """``allow_pickle`` if given, else whether ``$NITSJAX_ALLOW_PICKLE`` is ``1``/``true``."""
    if allow_pickle is not None:
        if not isinstance(allow_pickle, bool):
            raise TypeError(f"allow_pickle: expected True, False or None, got {allow_pickle!r}")
        return allow_pickle
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


def read_bytes(path: pathlib.Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``; truncation is reported."""
    try:
        if path.suffix == ".gz":
            return gzip.decompress(path.read_bytes())
        return path.read_bytes()
    except (EOFError, OSError, gzip.BadGzipFile) as err:
        raise DataFormatError(
            f"{path}: cannot read the file ({type(err).__name__}: {err}); it is probably "
            f"truncated or not a gzip file. Delete it and download it again."
        ) from err


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256_file(path: pathlib.Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def as_float32(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 2-D array; anything else is a ``DataFormatError``."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataFormatError(f"{name}: expected a 2-D array (n, d), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def make_splits(train, val, test, name: str) -> Splits:
    """Splits of float32 ``(n, d)`` arrays with the same ``d``; non-finite values refused."""
    parts = [as_float32(a, f"{name} {s}")
             for a, s in zip((train, val, test), Splits._fields, strict=True)]
    dims = {a.shape[1] for a in parts}
    if len(dims) != 1:
        raise DataFormatError(f"{name}: splits have different widths {[a.shape for a in parts]}")
    for a, s in zip(parts, Splits._fields, strict=False):
        if a.size and not np.isfinite(a).all():
            raise DataFormatError(f"{name}: the {s} split holds NaN or inf values")
    return Splits(*parts)


# ----------------------------------------------------------------------------- cache


def _cache_key(name: str, sources: Sequence[pathlib.Path], recipe: dict) -> str:
    parts = {"name": name, "recipe": recipe, "files": []}
    for p in sources:
        st = p.stat()
        parts["files"].append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def cached_splits(
    name: str,
    sources: Sequence[pathlib.Path],
    recipe: dict,
    build: Callable[[], Splits],
    cache: bool | PathLike | None,
) -> Splits:
    """``build()``'s splits, read from / written to the ``.npy`` cache unless ``cache`` is False.

    ``cache`` is True (use ``cache_home()``), False (no cache) or a folder. ``recipe`` holds
    every option that changes the result; it is part of the key. A cache that cannot be
    written (read-only home) only warns.
    """
    if cache is False or cache is None:
        return build()
    base = cache_home() if cache is True else pathlib.Path(cache).expanduser()
    folder = base / f"{name}-{_cache_key(name, sources, recipe)}"
    files = [folder / f"{s}.npy" for s in Splits._fields]
    if all(f.is_file() for f in files):
        try:
            return Splits(*(np.load(f, allow_pickle=False) for f in files))
        except (OSError, ValueError) as err:
            warnings.warn(f"{name}: ignoring an unreadable cache in {folder} ({err})", stacklevel=3)
    splits = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for f, a in zip(files, splits, strict=False):
            tmp = f.with_suffix(".tmp.npy")
            np.save(tmp, a, allow_pickle=False)
            os.replace(tmp, f)
        (folder / "recipe.json").write_text(
            json.dumps({"name": name, "recipe": recipe, "sources": [str(p) for p in sources]},
                       indent=1, default=str))
    except OSError as err:
        warnings.warn(f"{name}: could not write the cache in {folder} ({err}); pass cache=False "
                      f"or set NITSJAX_CACHE to a writable folder", stacklevel=3)
    return splits
