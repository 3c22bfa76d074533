"""Writers of small synthetic files in the layouts the data loaders read (tests only)."""

from __future__ import annotations

import gzip
import pathlib
import struct

import numpy as np

SHARED = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SHARED = SHARED.resolve()
SHARED_REASON = f"the shared real data folder {SHARED} (../shared/data) is absent"


def write_idx(path: pathlib.Path, arr: np.ndarray, gz: bool = True) -> pathlib.Path:
    """An IDX file (uint8 data) holding ``arr``, gzip-compressed if ``gz``."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def write_mnist(root: pathlib.Path, n_train=50, n_test=20, seed=0, gz=True):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, a in arrays.items():
        write_idx(root / name, a, gz=gz)
    return arrays


def cifar_records(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 10, n).astype(np.uint8), rng.integers(0, 256, (n, 3072)).astype(np.uint8)


def write_cifar_bin(root: pathlib.Path, n_per_batch=20):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, stem in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        labels, pixels = cifar_records(n_per_batch, i)
        np.concatenate([labels[:, None], pixels], axis=1).tofile(folder / f"{stem}.bin")
        out[stem] = pixels
    return out


def write_hepmass(root: pathlib.Path, n_train=400, n_test=200, seed=0):
    """1000_train.csv (label + 5 features) and 1000_test.csv (same + an extra 'mass' column).

    Feature f2 is discrete (values -1, 0, 1), so MAF's rule drops it.
    """
    rng = np.random.default_rng(seed)
    folder = root / "hepmass"
    folder.mkdir(parents=True, exist_ok=True)

    def table(n):
        x = rng.standard_normal((n, 5))
        x[:, 2] = rng.integers(-1, 2, n)
        labels = rng.integers(0, 2, n).astype(float)
        return labels, x

    lab_tr, x_tr = table(n_train)
    lab_te, x_te = table(n_test)
    names = ["# label"] + [f"f{i}" for i in range(5)]
    with open(folder / "1000_train.csv", "w") as f:
        f.write(",".join(names) + "\n")
        for lab, row in zip(lab_tr, x_tr, strict=False):
            f.write(",".join([f"{lab:.1f}"] + [repr(float(v)) for v in row]) + "\n")
    with open(folder / "1000_test.csv", "w") as f:
        f.write(",".join(names + ["mass"]) + "\n")
        for lab, row in zip(lab_te, x_te, strict=False):
            f.write(",".join([f"{lab:.1f}"] + [repr(float(v)) for v in row] + ["1000"]) + "\n")
    return (lab_tr, x_tr), (lab_te, x_te)


def gas_table(n=500, seed=0):
    """Columns Time, Meth, Eth, S1..S5: S2 ~ S1 (corr > 0.98), S4 = -S3 (corr -1)."""
    rng = np.random.default_rng(seed)
    s1 = rng.standard_normal(n)
    s2 = 2.0 * s1 + 0.01 * rng.standard_normal(n)
    s3 = rng.standard_normal(n)
    s4 = -s3
    s5 = rng.standard_normal(n)
    time = np.arange(n, dtype=float)
    meth, eth = rng.random(n), rng.random(n)
    cols = ["Time", "Meth", "Eth", "S1", "S2", "S3", "S4", "S5"]
    return np.stack([time, meth, eth, s1, s2, s3, s4, s5], axis=1), cols
