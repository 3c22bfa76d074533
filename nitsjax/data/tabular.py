"""Tabular data sets: scikit-learn's digits, UCI sets, and a user's own ``.npy``/``.csv`` file.

All go through :func:`prepare`: seeded row shuffle, uniform dequantisation of discrete
columns, the split of ``nitsjax.data.preprocessing`` (test = last ``test_fraction``,
validation = last ``val_fraction`` of the rest) and standardisation with statistics of
the training split only. Label columns are dropped.

=============  =================================================================  =========
name           file (under ``root``)                                              d
=============  =================================================================  =========
digits         scikit-learn's bundled 8x8 digits (1,797 images), no download      64
magic          ``magic04.data``: 10 real features, class g/h dropped (19,020)     10
htru2          ``HTRU_2.csv``: 8 real features, class dropped (17,898); with or   8
               without a header line and a leading index column
wine_red       ``winequality-red.csv``: 11 features, quality dropped (1,599)      11
wine_white     ``winequality-white.csv``: 11 features, quality dropped (4,898)    11
=============  =================================================================  =========

UCI's own wine files are semicolon separated with a header; copies that are comma
separated without a header are read too (the separator and header are detected).
"""

from __future__ import annotations

import gzip
import os
import pathlib
import warnings
import zipfile
from collections.abc import Sequence

import numpy as np

from nitsjax.data._files import (
    DataFormatError,
    DataNotFoundError,
    PathLike,
    Splits,
    find_file,
    make_splits,
    require,
    resolve_root,
)
from nitsjax.data.preprocessing import (
    SeedLike,
    check_fraction,
    column_resolution,
    numpy_rng,
    split_rows,
)
from nitsjax.data.preprocessing import (
    standardize as standardize_splits,
)

UCI = "https://archive.ics.uci.edu/dataset"


# ----------------------------------------------------------------------------- reading


def _is_number(field: str) -> bool:
    try:
        float(field)
        return True
    except ValueError:
        return False


def _open_text(path: pathlib.Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _split_line(line: str, delimiter: str | None) -> list[str]:
    fields = line.strip().split(delimiter) if delimiter else line.split()
    return [f.strip().strip('"').strip("'") for f in fields]


def _sniff(lines: list[str]) -> str | None:
    """The delimiter giving the same number (> 1) of fields on the sample lines."""
    for d in (",", ";", "\t"):
        counts = {len(_split_line(ln, d)) for ln in lines}
        if len(counts) == 1 and counts.pop() > 1:
            return d
    return None  # whitespace


def read_table(
    path: PathLike,
    *,
    delimiter: str | None = None,
    header: str | bool = "auto",
    warn_skipped: bool = False,
):
    """Numeric columns of a delimited text file as ``(x float64 (n, k), names, kept_indices)``.

    ``delimiter=None`` detects ``,``, ``;``, tab or whitespace. ``header="auto"`` treats the
    first line as column names when it has no number at all, or text where the second
    line has a number. Columns whose
    first data row is not numeric (class labels such as ``g``/``h``) are left out; any
    other non-numeric or missing value is an error naming the file and line.
    """
    path = pathlib.Path(path)
    if header not in ("auto", True, False):
        raise ValueError(f"header: expected 'auto', True or False, got {header!r}")
    head = []
    try:
        with _open_text(path) as f:
            for line in f:
                if line.strip():
                    head.append(line)
                if len(head) == 3:
                    break
    except (EOFError, OSError) as err:  # e.g. a .gz cut off within its first lines
        raise DataFormatError(
            f"{path}: cannot read it ({type(err).__name__}: {err}); the file is truncated or "
            f"corrupt. Download or write it again") from err
    if not head:
        raise DataFormatError(f"{path}: the file is empty")
    if delimiter is None:
        delimiter = _sniff(head[1:] if len(head) > 1 else head)
    first = _split_line(head[0], delimiter)
    if header == "auto":
        # a header line has a text field where the next line has a number (or no number)
        second = _split_line(head[1], delimiter) if len(head) > 1 else first
        has_header = (not any(_is_number(f) for f in first)) or any(
            not _is_number(a) and _is_number(b) for a, b in zip(first, second, strict=False))
    else:
        has_header = header
    data_line = head[1] if has_header else head[0]
    if has_header and len(head) < 2:
        raise DataFormatError(f"{path}: only a header line, no data rows")
    fields = _split_line(data_line, delimiter)
    names = first if has_header else [str(i) for i in range(len(fields))]
    if len(names) != len(fields):
        # pandas writes an index column with an empty header name: pad the names
        if has_header and len(names) == len(fields) - 1:
            names = [""] + names
        else:
            raise DataFormatError(f"{path}: the header has {len(names)} fields but the first "
                                  f"data row has {len(fields)}")
    kept = [i for i, v in enumerate(fields) if _is_number(v)]
    if not kept:
        raise DataFormatError(f"{path}: no numeric column in the first data row {fields}")
    if warn_skipped and len(kept) < len(fields):
        skipped = [names[i] for i in range(len(fields)) if i not in kept]
        warnings.warn(f"{path}: left out the non-numeric column(s) {skipped}", stacklevel=3)
    try:
        x = np.loadtxt(path, delimiter=delimiter, skiprows=1 if has_header else 0,
                       usecols=kept, dtype=np.float64, ndmin=2, comments=None)
    except ValueError as err:
        raise DataFormatError(
            f"{path}: could not read numeric columns {kept} ({err}); fix or remove the "
            f"offending rows (missing values are not imputed)") from err
    except (EOFError, OSError) as err:  # a cut-off or corrupt .gz
        raise DataFormatError(
            f"{path}: cannot read it ({type(err).__name__}: {err}); the file is truncated or "
            f"corrupt. Download or write it again") from err
    return x, [names[i] for i in kept], kept


def _column_index(spec, names: list[str], what: str) -> int:
    if isinstance(spec, str):
        if spec == "last":
            return len(names) - 1
        if spec == "first":
            return 0
        if spec in names:
            return names.index(spec)
        raise ValueError(f"{what}: no column named {spec!r}; the columns are {names}")
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if -len(names) <= spec < len(names):
            return int(spec) % len(names)
        raise ValueError(f"{what}: column {spec} is out of range for {len(names)} columns")
    raise TypeError(f"{what}: expected a column index, name, 'first' or 'last', got {spec!r}")


# ----------------------------------------------------------------------------- preparing


def prepare(
    x: np.ndarray,
    *,
    name: str,
    seed: SeedLike = 0,
    shuffle: bool = True,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    standardize: bool = True,
    dequantize: bool | str = True,
    columns: Sequence[str] | None = None,
):
    """Shuffle, dequantise, split and standardise a ``(n, d)`` table; returns ``(Splits, info)``.

    ``dequantize``: True / ``"integer"`` adds ``U[0, 1)`` noise to integer-valued columns,
    ``"decimal"`` adds noise of each column's decimal resolution, False adds nothing.
    ``info`` records the columns, the dequantisation steps and the standardisation
    ``mean``/``std`` (to map samples back: ``x = z * std + mean``).
    """
    val_fraction = check_fraction(val_fraction, "val_fraction")
    test_fraction = check_fraction(test_fraction, "test_fraction")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise DataFormatError(f"{name}: expected a 2-D table (n, d) with d >= 1, "
                              f"got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataFormatError(f"{name}: {int(bad.sum())} missing or non-finite value(s), first at "
                              f"row {r}, column {c}; drop or impute them first")
    rng = numpy_rng(seed)
    if shuffle:
        x = x[rng.permutation(len(x))]
    step = column_resolution(x, dequantize)
    if step.any():
        x = x + rng.random(x.shape) * step
    train, val, test = split_rows(x, val_fraction, test_fraction)
    if len(train) < 2:
        raise DataFormatError(f"{name}: only {len(train)} training row(s) out of {len(x)}; "
                              f"need at least 2")
    info = {"name": name, "columns": list(columns) if columns is not None else None,
            "dequantize_step": step, "mean": None, "std": None}
    if standardize:
        train, val, test, mean, std = standardize_splits(train, val, test, names=columns)
        info["mean"], info["std"] = mean, std
    return make_splits(train, val, test, name), info


# ----------------------------------------------------------------------------- built-ins


def load_digits(*, seed: SeedLike = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
                standardize: bool = False):
    """scikit-learn's 8x8 digits (1,797 x 64, values 0..16), bundled with scikit-learn.

    Dequantised as ``(x + u) / 17`` in ``[0, 1)`` (log-det of the scaling:
    ``scale_logdet(64, 17)``), or standardised with training statistics if
    ``standardize=True``. Split 1,437 / 180 / 180 by default (seeded shuffle).
    """
    datasets = require("sklearn.datasets", "digits: scikit-learn's bundled digits",
                       "scikit-learn")
    x = datasets.load_digits().data
    splits, info = prepare(x, name="digits", seed=seed, val_fraction=val_fraction,
                           test_fraction=test_fraction, standardize=standardize,
                           dequantize=True)
    if not standardize:
        splits = make_splits(*(s / np.float32(17.0) for s in splits), name="digits")
        info["scale"] = 17.0
    return splits, info


def _uci(name, root, folder, filenames, source, drop, *, seed, val_fraction, test_fraction,
         standardize, dequantize):
    path = find_file(resolve_root(root, folder), folder, filenames, dataset=name, source=source)
    x, names, _ = read_table(path)
    drop_idx = sorted({_column_index(d, names, "drop") for d in drop(names, x)})
    keep = [j for j in range(x.shape[1]) if j not in drop_idx]
    splits, info = prepare(x[:, keep], name=name, seed=seed, val_fraction=val_fraction,
                           test_fraction=test_fraction, standardize=standardize,
                           dequantize=dequantize, columns=[names[j] for j in keep])
    info["source"] = str(path)
    return splits, info


def _expect_width(name, path_hint, widths):
    def check(names, x):
        if x.shape[1] not in widths:
            raise DataFormatError(f"{name}: expected {' or '.join(map(str, widths))} numeric "
                                  f"columns in {path_hint}, got {x.shape[1]} ({names})")
    return check


def load_magic(root=None, *, seed: SeedLike = 0, val_fraction=0.1, test_fraction=0.1,
               standardize=True, dequantize=True):
    """MAGIC gamma telescope (UCI 159): 19,020 x 10 real features; the g/h class is dropped."""
    check = _expect_width("magic", "magic04.data", (10,))

    def drop(names, x):
        check(names, x)  # the class letter is non-numeric and already left out
        return []

    return _uci("magic", root, "magic04", ["magic04.data", "magic04.data.gz"],
                f"Download magic04.data from {UCI}/159/magic+gamma+telescope.", drop,
                seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                standardize=standardize, dequantize=dequantize)


def load_htru2(root=None, *, seed: SeedLike = 0, val_fraction=0.1, test_fraction=0.1,
               standardize=True, dequantize=True):
    """HTRU2 pulsar candidates (UCI 372): 17,898 x 8 real features; the class is dropped.

    Reads UCI's file (9 columns, no header) and copies with a header line and a leading
    row-index column (10 columns); the index column is dropped too.
    """
    check = _expect_width("htru2", "HTRU_2.csv", (9, 10))

    def drop(names, x):
        check(names, x)
        out = [x.shape[1] - 1]
        if x.shape[1] == 10:
            if not np.array_equal(x[:, 0], np.arange(len(x))):
                raise DataFormatError("htru2: 10 columns but the first is not a row index "
                                      "0..n-1; expected 8 features + class (+ index column)")
            out.append(0)
        return out

    return _uci("htru2", root, "htru2", ["HTRU_2.csv", "HTRU_2.csv.gz"],
                f"Download HTRU2.zip from {UCI}/372/htru2 and unzip HTRU_2.csv.", drop,
                seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                standardize=standardize, dequantize=dequantize)


def _wine(colour):
    def loader(root=None, *, seed: SeedLike = 0, val_fraction=0.1, test_fraction=0.1,
               standardize=True, dequantize=True):
        check = _expect_width(f"wine_{colour}", f"winequality-{colour}.csv", (12,))

        def drop(names, x):
            check(names, x)
            return [11]  # quality

        return _uci(f"wine_{colour}", root, f"winequality-{colour}",
                    [f"winequality-{colour}.csv", f"winequality-{colour}.csv.gz"],
                    f"Download winequality-{colour}.csv from {UCI}/186/wine+quality.", drop,
                    seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
                    standardize=standardize, dequantize=dequantize)

    loader.__name__ = f"load_wine_{colour}"
    loader.__doc__ = (f"Wine Quality, {colour} (UCI 186): 11 physico-chemical features; the "
                      f"quality score (column 12) is dropped. ``dequantize='decimal'`` also "
                      f"dequantises the features recorded to a few decimals.")
    return loader


load_wine_red = _wine("red")
load_wine_white = _wine("white")


# ----------------------------------------------------------------------------- user files


def _numpy_file(path: pathlib.Path, read):
    """``read()`` of a .npy/.npz file with the two ways it fails explained: an object array
    (needs pickle, refused) and a truncated or corrupt file."""
    try:
        return read()
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataFormatError(
                f"{path}: holds an object array, which only pickle can load; refused, since "
                f"unpickling can run code. Save the table as numbers: "
                f"np.save(path, np.asarray(x, dtype=np.float32))") from err
        raise DataFormatError(
            f"{path}: cannot read it ({err}); the file is truncated or not a NumPy file. "
            f"Write it again (np.save / np.savez)") from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataFormatError(
            f"{path}: cannot read it ({type(err).__name__}: {err}); the file is truncated or "
            f"not a NumPy file. Write it again (np.save / np.savez)") from err


def load_file(
    path: PathLike,
    *,
    label_column=None,
    drop_columns: Sequence = (),
    key: str | None = None,
    delimiter: str | None = None,
    header: str | bool = "auto",
    seed: SeedLike = 0,
    shuffle: bool = True,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    standardize: bool = True,
    dequantize: bool | str = True,
    return_info: bool = False,
):
    """A user's own table as ``Splits``: ``.npy``, ``.npz`` (pass ``key`` if it holds several
    arrays) or delimited text (``.csv``, ``.tsv``, ``.txt``, ``.data``, optionally ``.gz``).

    ``label_column`` (index, name, ``"first"`` or ``"last"``) and ``drop_columns`` are
    removed before anything else; non-numeric text columns are left out. Then
    :func:`prepare`: seeded shuffle, dequantisation of integer-valued columns, split,
    standardisation with training statistics. ``return_info=True`` also returns the
    columns kept and the standardisation mean/std.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(
            f"path: no such file {path}" + (" (it is a folder)" if path.is_dir() else "")
            + f"; pass the path of a .npy, .npz or delimited text file (relative paths start "
            f"in {pathlib.Path.cwd()})")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() == ".npy":
        x = _numpy_file(path, lambda: np.load(path, allow_pickle=False))
        names = None
    elif path.suffix.lower() == ".npz":
        def read_npz():
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                k = key
                if k is None:
                    if len(keys) != 1:
                        raise KeyError(f"key: {path} holds arrays {keys}; pass key=<one of them>")
                    k = keys[0]
                if k not in keys:
                    raise KeyError(f"key: {path} holds arrays {keys}, not {k!r}")
                return z[k]

        try:
            x = _numpy_file(path, read_npz)
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        names = None
    elif any(suffixes.endswith(s) for s in (".csv", ".tsv", ".txt", ".data", ".dat",
                                             ".csv.gz", ".tsv.gz", ".txt.gz", ".data.gz")):
        x, names, _ = read_table(path, delimiter=delimiter, header=header, warn_skipped=True)
    else:
        raise DataFormatError(f"{path}: unknown file type {path.suffix!r}; expected .npy, .npz "
                              f"or delimited text (.csv, .tsv, .txt, .data)")
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DataFormatError(f"{path}: expected a 2-D table (n, d), got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataFormatError(f"{path}: expected numbers, got dtype {x.dtype}")
    if names is None:
        names = [str(i) for i in range(x.shape[1])]
    drop = list(drop_columns) if not isinstance(drop_columns, (str, int)) else [drop_columns]
    if label_column is not None:
        drop.append(label_column)
    drop_idx = {_column_index(d, names, "drop_columns/label_column") for d in drop}
    keep = [j for j in range(x.shape[1]) if j not in drop_idx]
    if not keep:
        raise ValueError(f"drop_columns/label_column: every column of {path} would be dropped")
    splits, info = prepare(x[:, keep], name=path.name, seed=seed, shuffle=shuffle,
                           val_fraction=val_fraction, test_fraction=test_fraction,
                           standardize=standardize, dequantize=dequantize,
                           columns=[names[j] for j in keep])
    info["source"] = str(path)
    return (splits, info) if return_info else splits


__all__ = ["Splits", "load_digits", "load_file", "load_htru2", "load_magic", "load_wine_red",
           "load_wine_white", "prepare", "read_table"]
