"""The five density-estimation benchmarks of MAF (Papamakarios et al., NeurIPS 2017).

Read from the layout of the authors' archive, ``data.tar.gz`` of Zenodo record 1161203
(G. Papamakarios, "Preprocessed datasets for MAF experiments", 2018,
doi:10.5281/zenodo.1161203, https://zenodo.org/record/1161203/files/data.tar.gz, about
857 MB; its checksum is listed on the record page), extracted so that ``root`` (or its
``<folder>/`` child) holds:

==========  ===================================  ==========================================
name        file                                 train / val / test, d (published)
==========  ===================================  ==========================================
power       ``power/data.npy``                   1,659,917 / 184,435 / 204,928, d = 6
gas         ``gas/ethylene_CO.pickle`` (or the   852,174 / 94,685 / 105,206, d = 8
            ``ethylene_CO.npz`` made by
            :func:`convert_gas`)
hepmass     ``hepmass/1000_train.csv``,          315,123 / 35,013 / 174,987, d = 21
            ``hepmass/1000_test.csv``
miniboone   ``miniboone/data.npy``               29,556 / 3,284 / 3,648, d = 43
bsds300     ``BSDS300/BSDS300.hdf5`` (h5py)      1,000,000 / 50,000 / 250,000, d = 63
==========  ===================================  ==========================================

The preprocessing re-implements, step by step, the MAF code's ``datasets/*.py``:

* POWER: ``RandomState(42)`` shuffles the rows; columns 3 (global intensity) then 1
  (global reactive power) are deleted; uniform noise is drawn from the same generator in
  the published order (voltage ``0.01 U``, then active power ``0.001 U``, then the three
  sub-meterings ``U``; the time column gets none); split (test = last 10%, val = last 10%
  of the rest); standardised with the mean/std (ddof 0) of train + val.
* GAS: the columns ``Meth``, ``Eth``, ``Time`` are dropped; while some column has a
  correlation > 0.98 with another, the first such column is dropped; standardised with
  the whole table's mean/std (ddof 1, pandas' default); split in row order.
* HEPMASS: only rows of class 1 are kept and the label column dropped; the test file's
  extra last column is dropped; standardised with the training file's mean/std (ddof 1);
  features whose smallest (standardised) training value occurs more than 5 times are
  dropped; validation = last 10% of the training file.
* MINIBOONE: split (test = last 10%, val = last 10% of the rest); standardised with the
  mean/std (ddof 0) of train + val.
* BSDS300: the three splits are read as stored.

Prepared splits are cached as ``.npy`` (see ``nitsjax.data._files``). The GAS file is a
pandas pickle: unpickling can run arbitrary code, so it happens only with
``allow_pickle=True`` or ``NITSJAX_ALLOW_PICKLE=1``; :func:`convert_gas` turns it once
into a plain ``.npz`` that later loads need no pickle (nor pandas) for.
"""

from __future__ import annotations

import pathlib
from typing import Union

import numpy as np

from nitsjax.data._files import (
    ALLOW_PICKLE_ENV,
    DataFormatError,
    DataNotFoundError,
    PathLike,
    Splits,
    cached_splits,
    find_file,
    make_splits,
    pickle_allowed,
    require,
    resolve_root,
)
from nitsjax.data.preprocessing import split_rows
from nitsjax.data.tabular import read_table

ARCHIVE_URL = "https://zenodo.org/record/1161203/files/data.tar.gz"
ARCHIVE = (
    f"These files come from the MAF archive data.tar.gz (about 857 MB) of Zenodo record "
    f"1161203 (doi:10.5281/zenodo.1161203): download {ARCHIVE_URL}, check it against the "
    f"md5 checksum listed on https://zenodo.org/record/1161203, and extract it "
    f"(tar -xzf data.tar.gz); the files are then under data/<folder>/."
)

#: published split sizes (train, val, test) and dimension
PUBLISHED = {
    "power": (1_659_917, 184_435, 204_928, 6),
    "gas": (852_174, 94_685, 105_206, 8),
    "hepmass": (315_123, 35_013, 174_987, 21),
    "miniboone": (29_556, 3_284, 3_648, 43),
    "bsds300": (1_000_000, 50_000, 250_000, 63),
}

#: rows of the archive's files (POWER/GAS/MINIBOONE; HEPMASS: class-1 rows of train, test)
ARCHIVE_ROWS = {
    "power": 2_049_280,
    "gas": 1_052_065,
    "hepmass": (350_136, 174_987),
    "miniboone": 36_488,
}

FOLDERS = {"power": "power", "gas": "gas", "hepmass": "hepmass", "miniboone": "miniboone",
           "bsds300": "BSDS300"}

RECIPE_VERSION = 1
CacheArg = Union[bool, PathLike, None]  # noqa: UP007 - a runtime alias


def _find(root, name, files):
    folder = FOLDERS[name]
    return find_file(resolve_root(root, folder), folder, files, dataset=name, source=ARCHIVE)


def _check_published(name: str, splits: Splits, raw_rows) -> None:
    """With the archive's row count, the splits must have the published sizes."""
    if raw_rows != ARCHIVE_ROWS.get(name):
        return
    got = (*(len(s) for s in splits), splits.train.shape[1])
    if got != PUBLISHED[name]:
        raise DataFormatError(f"{name}: the prepared splits have sizes/dim {got}, not the "
                              f"published {PUBLISHED[name]}; the file differs from the "
                              f"archive's. {ARCHIVE}")


def _load_npy(path: pathlib.Path, name: str, width: int | None) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataFormatError(f"{name}: {path} is not a plain numeric .npy file ({err}). "
                              f"{ARCHIVE}") from err
    if x.ndim != 2 or (width is not None and x.shape[1] != width):
        want = f"(n, {width})" if width is not None else "(n, d)"
        raise DataFormatError(f"{name}: {path} holds an array of shape {x.shape}, expected "
                              f"{want}. {ARCHIVE}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataFormatError(f"{name}: {path} holds dtype {x.dtype}, expected numbers")
    return np.array(x, dtype=np.float64)  # a writable float64 copy, as MAF computed


# ----------------------------------------------------------------------------- POWER


def prepare_power(data: np.ndarray) -> Splits:
    """MAF's POWER recipe on the raw ``(N, 8)`` array of ``power/data.npy`` (see module doc)."""
    data = np.array(data, dtype=np.float64)
    rng = np.random.RandomState(42)
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    # noise is drawn in the published order; the columns are then
    # (active power, voltage, sub-metering 1..3, time)
    voltage = 0.01 * rng.rand(n, 1)
    active = 0.001 * rng.rand(n, 1)
    submetering = rng.rand(n, 3)
    data += np.hstack((active, voltage, submetering, np.zeros((n, 1))))
    train, val, test = split_rows(data)
    both = np.vstack((train, val))
    mu, s = both.mean(axis=0), both.std(axis=0)
    return make_splits((train - mu) / s, (val - mu) / s, (test - mu) / s, "power")


def load_power(root: PathLike | None = None, *, cache: CacheArg = True):
    """POWER (UCI household electric power consumption) as MAF prepared it; d = 6."""
    path = _find(root, "power", ["data.npy"])

    def build():
        raw = _load_npy(path, "power", 8)
        splits = prepare_power(raw)
        _check_published("power", splits, raw.shape[0])
        return splits

    splits = cached_splits("power", [path], {"v": RECIPE_VERSION}, build, cache)
    return splits, {"name": "power", "source": str(path)}


# ----------------------------------------------------------------------------- GAS


def read_gas_pickle(path: PathLike, *, allow_pickle: bool | None = None):
    """``(data float64 (n, k), column names)`` of MAF's pandas pickle; needs pandas and opt-in."""
    path = pathlib.Path(path)
    if not pickle_allowed(allow_pickle):
        raise PermissionError(
            f"gas: {path} is a pandas pickle, and unpickling a file can run arbitrary code, "
            f"so nitsjax reads it only when asked to. If you trust the file (it comes from "
            f"the MAF archive of Zenodo record 1161203), either convert it once with "
            f"nitsjax.data.maf.convert_gas({str(path)!r}, allow_pickle=True) (later loads "
            f"then use the plain ethylene_CO.npz next to it), or pass allow_pickle=True, or "
            f"set {ALLOW_PICKLE_ENV}=1.")
    pd = require("pandas", "gas: reading ethylene_CO.pickle (or convert it where pandas is "
                 "installed with nitsjax.data.maf.convert_gas)", extra="gas")
    try:
        df = pd.read_pickle(path)
    except Exception as err:  # noqa: BLE001 - any unpickling failure gets the same advice
        raise DataFormatError(
            f"gas: pandas {pd.__version__} could not read {path} ({type(err).__name__}: {err}). "
            f"The file was written by an old pandas (< 2); convert it in an environment with "
            f"one (pip install 'pandas<2'):\n  python -c \"import numpy as np, pandas as pd; "
            f"df = pd.read_pickle('ethylene_CO.pickle'); np.savez('ethylene_CO.npz', "
            f"data=df.to_numpy(dtype='float64'), columns=np.array([str(c) for c in "
            f"df.columns]))\"\nand put ethylene_CO.npz next to the pickle.") from err
    if not hasattr(df, "columns"):
        raise DataFormatError(f"gas: {path} holds a {type(df).__name__}, expected a DataFrame")
    return df.to_numpy(dtype=np.float64), [str(c) for c in df.columns]


def convert_gas(pickle_path: PathLike, out_path: PathLike | None = None, *,
                allow_pickle: bool | None = None) -> pathlib.Path:
    """Convert MAF's ``ethylene_CO.pickle`` to a plain ``.npz`` (``data``, ``columns``).

    Unpickles only with ``allow_pickle=True`` (or ``NITSJAX_ALLOW_PICKLE=1``) and needs
    pandas; the result loads with ``np.load(..., allow_pickle=False)`` and is found by
    ``load("gas")`` before the pickle. ``out_path`` defaults to ``ethylene_CO.npz`` next
    to the pickle. Returns the path written.
    """
    pickle_path = pathlib.Path(pickle_path).expanduser()
    if not pickle_path.is_file():
        raise DataNotFoundError(f"pickle_path: no such file {pickle_path}. {ARCHIVE}")
    data, columns = read_gas_pickle(pickle_path, allow_pickle=allow_pickle)
    out = pathlib.Path(out_path).expanduser() if out_path is not None else \
        pickle_path.with_name("ethylene_CO.npz")
    if out.suffix != ".npz":
        raise ValueError(f"out_path: expected a .npz path, got {out}")
    np.savez(out, data=data, columns=np.array(columns, dtype=str))
    return out


def _read_gas_npz(path: pathlib.Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            if "data" not in z or "columns" not in z:
                raise DataFormatError(f"gas: {path} must hold arrays 'data' and 'columns' "
                                      f"(as written by convert_gas), got {list(z.keys())}")
            data, columns = np.asarray(z["data"], np.float64), [str(c) for c in z["columns"]]
    except ValueError as err:
        raise DataFormatError(f"gas: cannot read {path} without pickle ({err}); write it "
                              f"again with nitsjax.data.maf.convert_gas") from err
    if data.ndim != 2 or data.shape[1] != len(columns):
        raise DataFormatError(f"gas: {path} has data of shape {data.shape} but "
                              f"{len(columns)} column names")
    return data, columns


def prepare_gas(data: np.ndarray, columns) -> tuple[Splits, list[str]]:
    """MAF's GAS recipe on the table and its column names (see module doc)."""
    columns = list(columns)
    missing = [c for c in ("Meth", "Eth", "Time") if c not in columns]
    if missing:
        raise DataFormatError(f"gas: the table has no column(s) {missing}; its columns are "
                              f"{columns}. {ARCHIVE}")
    keep = [j for j, c in enumerate(columns) if c not in ("Meth", "Eth", "Time")]
    data, columns = np.asarray(data, np.float64)[:, keep], [columns[j] for j in keep]

    def correlated_counts(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.corrcoef(x, rowvar=False)
        return (np.atleast_2d(c) > 0.98).sum(axis=1)  # NaN compares False, as in pandas

    counts = correlated_counts(data)
    while np.any(counts > 1):
        j = int(np.flatnonzero(counts > 1)[0])
        data = np.delete(data, j, axis=1)
        del columns[j]
        counts = correlated_counts(data)
    data = (data - data.mean(axis=0)) / data.std(axis=0, ddof=1)
    return make_splits(*split_rows(data), name="gas"), columns


def load_gas(root: PathLike | None = None, *, cache: CacheArg = True,
             allow_pickle: bool | None = None):
    """GAS (UCI gas sensor array under dynamic gas mixtures, ethylene + CO) as MAF prepared
    it; d = 8. Uses ``ethylene_CO.npz`` (from :func:`convert_gas`) when present, else the
    pickle with ``allow_pickle=True``."""
    try:
        path = _find(root, "gas", ["ethylene_CO.npz"])
    except DataNotFoundError:
        path = _find(root, "gas", ["ethylene_CO.pickle", "ethylene_CO.npz"])
    if path.suffix == ".pickle" and not pickle_allowed(allow_pickle):
        read_gas_pickle(path, allow_pickle=False)  # raises with the instructions
    kept = {}

    def build():
        if path.suffix == ".npz":
            data, columns = _read_gas_npz(path)
        else:
            data, columns = read_gas_pickle(path, allow_pickle=True)
        splits, kept["columns"] = prepare_gas(data, columns)
        _check_published("gas", splits, data.shape[0])
        return splits

    splits = cached_splits("gas", [path], {"v": RECIPE_VERSION}, build, cache)
    return splits, {"name": "gas", "source": str(path), "columns": kept.get("columns")}


# ----------------------------------------------------------------------------- HEPMASS


def _hepmass_signal(path: pathlib.Path, drop_last: bool) -> np.ndarray:
    x, names, _ = read_table(path)
    labels = x[:, 0]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise DataFormatError(f"hepmass: the first column of {path} ({names[0]!r}) should be "
                              f"the class label 0/1, got values such as "
                              f"{np.unique(labels)[:5].tolist()}. {ARCHIVE}")
    x = x[labels == 1.0, 1:]
    return x[:, :-1] if drop_last else x


def prepare_hepmass(train: np.ndarray, test: np.ndarray) -> tuple[Splits, list[int]]:
    """MAF's HEPMASS recipe on the class-1 feature rows (label and the test file's extra
    column already removed); returns the splits and the indices of the features kept."""
    if train.shape[1] != test.shape[1]:
        raise DataFormatError(
            f"hepmass: after dropping the label (and the test file's extra last column) the "
            f"training file has {train.shape[1]} features but the test file {test.shape[1]}. "
            f"{ARCHIVE}")
    mu, s = train.mean(axis=0), train.std(axis=0, ddof=1)
    s = np.where(s > 0, s, 1.0)  # a constant feature is dropped just below anyway
    train, test = (train - mu) / s, (test - mu) / s
    # drop features whose smallest value repeats more than 5 times (discrete features)
    keep = [j for j in range(train.shape[1])
            if np.count_nonzero(train[:, j] == train[:, j].min()) <= 5]
    train, test = train[:, keep], test[:, keep]
    n_val = int(0.1 * len(train))
    return make_splits(train[:len(train) - n_val], train[len(train) - n_val:], test,
                       "hepmass"), keep


def load_hepmass(root: PathLike | None = None, *, cache: CacheArg = True):
    """HEPMASS (UCI, mass 1000 subset, signal only) as MAF prepared it; d = 21."""
    train_path = _find(root, "hepmass", ["1000_train.csv", "1000_train.csv.gz"])
    test_path = _find(root, "hepmass", ["1000_test.csv", "1000_test.csv.gz"])
    kept = {}

    def build():
        train = _hepmass_signal(train_path, drop_last=False)
        test = _hepmass_signal(test_path, drop_last=True)
        splits, kept["features"] = prepare_hepmass(train, test)
        _check_published("hepmass", splits, (len(train), len(test)))
        return splits

    splits = cached_splits("hepmass", [train_path, test_path], {"v": RECIPE_VERSION}, build,
                           cache)
    return splits, {"name": "hepmass", "source": [str(train_path), str(test_path)],
                    "features": kept.get("features")}


# ----------------------------------------------------------------------------- MINIBOONE


def prepare_miniboone(data: np.ndarray) -> Splits:
    """MAF's MINIBOONE recipe on ``miniboone/data.npy`` (see module doc)."""
    train, val, test = split_rows(np.asarray(data, np.float64))
    both = np.vstack((train, val))
    mu, s = both.mean(axis=0), both.std(axis=0)
    return make_splits((train - mu) / s, (val - mu) / s, (test - mu) / s, "miniboone")


def load_miniboone(root: PathLike | None = None, *, cache: CacheArg = True):
    """MINIBOONE (UCI particle identification, outliers and discrete features already
    removed in the archive) as MAF prepared it; d = 43."""
    path = _find(root, "miniboone", ["data.npy"])

    def build():
        raw = _load_npy(path, "miniboone", None)
        splits = prepare_miniboone(raw)
        _check_published("miniboone", splits, raw.shape[0])
        return splits

    splits = cached_splits("miniboone", [path], {"v": RECIPE_VERSION}, build, cache)
    return splits, {"name": "miniboone", "source": str(path)}


# ----------------------------------------------------------------------------- BSDS300


def load_bsds300(root: PathLike | None = None):
    """BSDS300 8x8 patches (63 dims) from the archive's ``BSDS300.hdf5``; needs h5py.

    The file holds datasets ``train``, ``validation`` and ``test``; they are read as stored.
    To rebuild patches from the images instead, use ``load("bsds300_images")``.
    """
    path = _find(root, "bsds300", ["BSDS300.hdf5"])
    h5py = require("h5py", "bsds300: reading BSDS300.hdf5")
    parts = []
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("train", "validation", "test") if k not in f]
            if missing:
                raise DataFormatError(f"bsds300: {path} lacks dataset(s) {missing}; it holds "
                                      f"{list(f.keys())}. {ARCHIVE}")
            for k in ("train", "validation", "test"):
                d = f[k]
                if d.ndim != 2 or d.shape[1] != 63:
                    raise DataFormatError(f"bsds300: {path}[{k!r}] has shape {d.shape}, "
                                          f"expected (n, 63). {ARCHIVE}")
                parts.append(np.asarray(d[...], dtype=np.float32))
    except OSError as err:
        raise DataFormatError(f"bsds300: cannot read {path} as HDF5 ({err}); it is probably "
                              f"truncated. {ARCHIVE}") from err
    return make_splits(*parts, name="bsds300"), {"name": "bsds300", "source": str(path)}


__all__ = ["ARCHIVE_URL", "PUBLISHED", "convert_gas", "load_bsds300", "load_gas",
           "load_hepmass", "load_miniboone", "load_power", "prepare_gas", "prepare_hepmass",
           "prepare_miniboone", "prepare_power"]
