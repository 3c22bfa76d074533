"""``load(name, root=None, **options)``: every data set by name, as float32 ``(n, d)`` splits."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

from nitsjax.data import images, maf, tabular, toys
from nitsjax.data._files import PathLike, Splits


class Entry(NamedTuple):
    loader: Callable  # returns (Splits, info)
    kind: str
    description: str


def _toy(name):
    def loader(**kw):
        return toys.load(name, **kw), {"name": name}

    loader.__signature__ = inspect.signature(toys.load).replace(
        parameters=list(inspect.signature(toys.load).parameters.values())[1:])
    return loader


def _file_loader(path: PathLike, **kw):
    return tabular.load_file(path, return_info=True, **kw)


_file_loader.__signature__ = inspect.signature(tabular.load_file)


REGISTRY: dict[str, Entry] = {
    **{n: Entry(_toy(n), "toy", f"2-D toy density '{n}' (nitsjax.data.toys)") for n in toys.NAMES},
    "digits": Entry(tabular.load_digits, "tabular",
                    "scikit-learn's 8x8 digits, dequantised to [0, 1), d=64, no download"),
    "magic": Entry(tabular.load_magic, "tabular", "UCI MAGIC gamma telescope, d=10"),
    "htru2": Entry(tabular.load_htru2, "tabular", "UCI HTRU2 pulsar candidates, d=8"),
    "wine_red": Entry(tabular.load_wine_red, "tabular", "UCI Wine Quality (red), d=11"),
    "wine_white": Entry(tabular.load_wine_white, "tabular", "UCI Wine Quality (white), d=11"),
    "power": Entry(maf.load_power, "maf", "MAF benchmark POWER, d=6"),
    "gas": Entry(maf.load_gas, "maf", "MAF benchmark GAS, d=8"),
    "hepmass": Entry(maf.load_hepmass, "maf", "MAF benchmark HEPMASS, d=21"),
    "miniboone": Entry(maf.load_miniboone, "maf", "MAF benchmark MINIBOONE, d=43"),
    "bsds300": Entry(maf.load_bsds300, "maf", "MAF benchmark BSDS300 (hdf5), d=63"),
    "bsds300_images": Entry(images.load_bsds300_images, "image",
                            "BSDS300 8x8 patches rebuilt from the JPEG images, d=63"),
    "mnist": Entry(images.load_mnist, "image", "MNIST from the IDX files, d=784"),
    "cifar10": Entry(images.load_cifar10, "image", "CIFAR-10 from the binary release, d=3072"),
    "file": Entry(_file_loader, "file", "a user's .npy/.npz/.csv table: load('file', path=...)"),
}


def names(kind: str | None = None) -> list[str]:
    """Every name ``load`` accepts (or those of one ``kind``: toy, tabular, maf, image, file)."""
    kinds = sorted({e.kind for e in REGISTRY.values()})
    if kind is not None and kind not in kinds:
        raise ValueError(f"kind: expected one of {kinds} or None, got {kind!r}")
    return [n for n, e in REGISTRY.items() if kind is None or e.kind == kind]


def describe(name: str) -> str:
    """One line on data set ``name`` and the options its loader takes."""
    entry = _entry(name)
    params = [p for p in inspect.signature(entry.loader).parameters if p != "return_info"]
    return f"{name}: {entry.description}; options: {', '.join(params) or 'none'}"


def _entry(name) -> Entry:
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"name: expected one of {names()}, got {name!r}")
    return REGISTRY[name]


def load(name: str, root: PathLike | None = None, *, return_info: bool = False, **options):
    """Train, validation and test splits of data set ``name`` as float32 ``(n, d)`` arrays.

    ``root`` is the folder of the data set's files (or its parent); ``None`` means
    ``$NITSJAX_DATA/<folder>`` or ``~/.nitsjax/data/<folder>``. Toys and ``digits`` need no
    files; ``load("file", path=...)`` reads a user's table. ``options`` go to the data
    set's loader (see :func:`describe`); unknown ones are an error. Returns a
    :class:`Splits` ``(train, val, test)``; with ``return_info=True`` also a dict with what
    was done (source files, columns kept, standardisation mean/std...).
    """
    entry = _entry(name)
    sig = inspect.signature(entry.loader)
    allowed = [p for p in sig.parameters if p not in ("return_info", "path")]
    takes_root = "root" in sig.parameters
    if root is not None and not takes_root:
        hint = " (pass path=... for 'file')" if name == "file" else " (it needs no files)"
        raise TypeError(f"root: data set {name!r} takes no root{hint}")
    unknown = sorted(set(options) - set(sig.parameters) - {"return_info"})
    if unknown:
        raise TypeError(f"load({name!r}): unknown option(s) {unknown}; it takes "
                        f"{[p for p in allowed if p != 'root']}"
                        + (" and path" if name == "file" else ""))
    if name == "file" and "path" not in options:
        raise TypeError("load('file'): pass path=<your .npy, .npz or .csv file>")
    if takes_root:
        options["root"] = root
    splits, info = entry.loader(**options)
    assert isinstance(splits, Splits)
    return (splits, info) if return_info else splits
