"""Image data sets: MNIST (IDX files), CIFAR-10 (binary release) and BSDS300 patches.

Images are returned flattened, float32 ``(n, D)``. With ``dequantize=True`` (default) the
integer pixel values ``x`` in ``0..255`` become ``(x + u) / 256``, ``u ~ U[0, 1)``, in
``[0, 1)`` with seeded noise (Uria et al., 2013; Theis et al., ICLR 2016); with
``dequantize=False`` they are the raw integer values as float32 (``0.0 .. 255.0``), for
fresh dequantisation noise every epoch with ``nitsjax.data.dequantize(x, key)``. To report
bits/dim, pass the model's NLL of the ``[0, 1)`` data together with
``scale_logdet(D)`` (plus the logit's log-det if one is used) to ``bits_per_dim``.

Validation splits are the LAST 10% of the official training set (``val_fraction``):
MNIST 54,000 / 6,000 / 10,000; CIFAR-10 45,000 / 5,000 / 10,000.

=================  =========================================================================
name               files under ``root``
=================  =========================================================================
mnist              ``train-images-idx3-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]`` (labels
                   ``*-labels-idx1-ubyte[.gz]`` only for :func:`read_mnist`); D = 784
cifar10            ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and ``test_batch.bin``
                   (records of 1 label byte + 3072 pixel bytes, R then G then B planes of
                   32x32, row-major); the python-pickle release ``cifar-10-batches-py/``
                   only with ``allow_pickle=True``; D = 3072 in that channel-major order
bsds300_images     ``train/*.jpg`` and ``test/*.jpg`` (BSDS300's 200 + 100 images, also
                   found under ``images/``); D = 63
=================  =========================================================================
"""

from __future__ import annotations

import pathlib
import pickle
import struct

import numpy as np

from nitsjax.data._files import (
    ALLOW_PICKLE_ENV,
    DataFormatError,
    DataNotFoundError,
    PathLike,
    find_file,
    make_splits,
    md5,
    pickle_allowed,
    read_bytes,
    require,
    resolve_root,
)
from nitsjax.data.preprocessing import (
    SeedLike,
    check_fraction,
    numpy_rng,
)
from nitsjax.data.preprocessing import (
    dequantize as dequantize_fn,
)

# ----------------------------------------------------------------------------- IDX / MNIST

_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

MNIST_URL = "https://yann.lecun.com/exdb/mnist/"
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", (60_000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", (60_000,)),
    "test_images": ("t10k-images-idx3-ubyte", (10_000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", (10_000,)),
}
#: md5 of the canonical UNCOMPRESSED image files
MNIST_MD5 = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "test_images": "2646ac647ad5339dbf082846283269ea",
}
MNIST_SOURCE = (f"Get the four IDX files of MNIST (e.g. from {MNIST_URL} or a mirror); gzip "
                f"(.gz) or uncompressed files both work.")


def read_idx(path: PathLike, *, return_md5: bool = False):
    """An IDX file (gzip or raw) as a numpy array, after checking its magic number and size.

    ``return_md5=True`` also returns the md5 of the uncompressed bytes.
    """
    path = pathlib.Path(path)
    raw = read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES or raw[3] == 0:
        magic = raw[:4].hex() if len(raw) >= 4 else raw.hex()
        raise DataFormatError(
            f"{path}: not an IDX file (magic number 0x{magic}, expected 0x0000TTNN with type "
            f"TT in {[hex(t) for t in _IDX_TYPES]}); download the file again")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, expected "
                              f"{header}); download the file again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[raw[2]]
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != want:
        what = "truncated" if got < want else "longer than its header says"
        raise DataFormatError(f"{path}: the file is {what}: the header says shape {dims} "
                              f"({want} data bytes) but it holds {got}; download it again")
    arr = np.frombuffer(raw, dtype=dtype, count=int(np.prod(dims)), offset=header)
    arr = arr.reshape(dims).astype(dtype.newbyteorder("="), copy=False)
    return (arr, md5(raw)) if return_md5 else arr


def _mnist_file(root, key: str) -> pathlib.Path:
    base = MNIST_FILES[key][0]
    dotted = base.replace("-idx", ".idx")  # some mirrors write train-images.idx3-ubyte
    return find_file(resolve_root(root, "mnist"), "mnist",
                     [f"{base}.gz", base, f"{dotted}.gz", dotted], dataset="mnist",
                     source=MNIST_SOURCE)


def _read_mnist_part(root, key: str, verify: bool) -> np.ndarray:
    path = _mnist_file(root, key)
    arr, digest = read_idx(path, return_md5=True)
    shape = MNIST_FILES[key][1]
    if arr.dtype != np.uint8 or arr.ndim != len(shape) or arr.shape[1:] != shape[1:]:
        raise DataFormatError(f"mnist: {path} holds {arr.dtype} of shape {arr.shape}, expected "
                              f"uint8 of shape (n, {', '.join(map(str, shape[1:]))})")
    if verify:
        if arr.shape != shape:
            raise DataFormatError(f"mnist: {path} holds {arr.shape[0]} items, the canonical file "
                                  f"{shape[0]}; pass verify=False to use other IDX files in "
                                  f"the same layout")
        if key in MNIST_MD5 and digest != MNIST_MD5[key]:
            raise DataFormatError(
                f"mnist: {path} has md5 {digest} (of the uncompressed data), expected "
                f"{MNIST_MD5[key]}: the file is corrupt or not the original MNIST. Download it "
                f"again, or pass verify=False to use other IDX files in the same layout "
                f"(e.g. Fashion-MNIST)")
    return arr


def read_mnist(root: PathLike | None = None, *, verify: bool = True) -> dict:
    """The four MNIST arrays as uint8: ``train_images (60000, 28, 28)``, ``train_labels``,
    ``test_images``, ``test_labels``; ``verify`` checks canonical sizes and image md5s."""
    return {k: _read_mnist_part(root, k, verify) for k in MNIST_FILES}


def _image_splits(train_x, test_x, *, name, seed, dequantize, val_fraction):
    val_fraction = check_fraction(val_fraction, "val_fraction")
    n_val = int(val_fraction * len(train_x))
    parts = (train_x[:len(train_x) - n_val], train_x[len(train_x) - n_val:], test_x)
    if dequantize:
        rngs = numpy_rng(seed).spawn(3)
        parts = [dequantize_fn(p, r, 256) for p, r in zip(parts, rngs, strict=False)]
    return make_splits(*parts, name=name)


def load_mnist(root: PathLike | None = None, *, seed: SeedLike = 0, dequantize: bool = True,
               val_fraction: float = 0.1, verify: bool = True):
    """MNIST images, flattened to 784: dequantised ``(x + u) / 256`` in ``[0, 1)`` (default)
    or raw ``0..255`` floats; validation = last ``val_fraction`` of the training images."""
    train = _read_mnist_part(root, "train_images", verify).reshape(-1, 784)
    test = _read_mnist_part(root, "test_images", verify).reshape(-1, 784)
    splits = _image_splits(train, test, name="mnist", seed=seed, dequantize=dequantize,
                           val_fraction=val_fraction)
    return splits, {"name": "mnist", "dequantized": dequantize, "num_levels": 256,
                    "image_shape": (28, 28)}


# ----------------------------------------------------------------------------- CIFAR-10

CIFAR_BIN_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_BIN_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR_PY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_PY_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_SOURCE = (f"Download the binary release {CIFAR_BIN_URL} (md5 {CIFAR_BIN_MD5}) and extract "
                f"it (tar -xzf); it creates cifar-10-batches-bin/.")
_CIFAR_RECORD = 1 + 3072
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def _read_cifar_bin(path: pathlib.Path, verify: bool) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise DataFormatError(
            f"cifar10: {path} has {raw.size} bytes, not a whole number of {_CIFAR_RECORD}-byte "
            f"records (1 label + 3072 pixels); it is truncated or not a CIFAR-10 binary batch. "
            f"{CIFAR_SOURCE}")
    rec = raw.reshape(-1, _CIFAR_RECORD)
    if rec[:, 0].max() > 9:
        raise DataFormatError(f"cifar10: {path} has label bytes > 9, so it is not a CIFAR-10 "
                              f"binary batch (CIFAR-100's binary files have 2 label bytes)")
    if verify and len(rec) != 10_000:
        raise DataFormatError(f"cifar10: {path} holds {len(rec)} records, the canonical batch "
                              f"10000; pass verify=False to use other batches in this layout")
    return rec[:, 1:]


def _read_cifar_py(path: pathlib.Path, verify: bool) -> np.ndarray:
    with open(path, "rb") as f:
        try:
            batch = pickle.load(f, encoding="bytes")
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a format error
            raise DataFormatError(f"cifar10: cannot unpickle {path} ({err})") from err
    data = batch.get(b"data") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(f"cifar10: {path} is not a CIFAR-10 python batch (no b'data' "
                              f"array of shape (n, 3072))")
    if verify and len(data) != 10_000:
        raise DataFormatError(f"cifar10: {path} holds {len(data)} images, the canonical batch "
                              f"10000; pass verify=False to use other batches")
    return np.asarray(data, dtype=np.uint8)


def read_cifar10(root: PathLike | None = None, *, allow_pickle: bool | None = None,
                 verify: bool = True):
    """``(train (50000, 3072), test (10000, 3072))`` uint8 pixels of CIFAR-10."""
    base = resolve_root(root, "cifar10")
    try:
        first = find_file(base, "cifar10", ["cifar-10-batches-bin/data_batch_1.bin",
                                            "data_batch_1.bin"],
                          dataset="cifar10", source=CIFAR_SOURCE)
        reader, suffix = _read_cifar_bin, ".bin"
    except DataNotFoundError as missing_bin:
        try:
            first = find_file(base, "cifar10", ["cifar-10-batches-py/data_batch_1"],
                              dataset="cifar10", source=CIFAR_SOURCE)
        except DataNotFoundError:
            raise missing_bin from None
        if not pickle_allowed(allow_pickle):
            raise PermissionError(
                f"cifar10: only the python-pickle release was found ({first.parent}); "
                f"unpickling can run arbitrary code, so it is read only with "
                f"allow_pickle=True or {ALLOW_PICKLE_ENV}=1 (for a file you trust: "
                f"{CIFAR_PY_URL}, md5 {CIFAR_PY_MD5}). Or use the binary release: "
                f"{CIFAR_SOURCE}") from None
        reader, suffix = _read_cifar_py, ""
    folder = first.parent
    parts = []
    for stem in [*_CIFAR_TRAIN, "test_batch"]:
        p = folder / f"{stem}{suffix}"
        if not p.is_file():
            raise DataNotFoundError(f"cifar10: {p} is missing (found {first.name} in the same "
                                    f"folder). {CIFAR_SOURCE}")
        parts.append(reader(p, verify))
    return np.concatenate(parts[:5]), parts[5]


def load_cifar10(root: PathLike | None = None, *, seed: SeedLike = 0, dequantize: bool = True,
                 val_fraction: float = 0.1, allow_pickle: bool | None = None,
                 verify: bool = True):
    """CIFAR-10 images flattened to 3072 (channel-major: R, G, B planes of 32x32);
    dequantised to ``[0, 1)`` (default) or raw ``0..255`` floats; validation = last
    ``val_fraction`` of the 50,000 training images. To view: ``x.reshape(-1, 3, 32, 32)``."""
    train, test = read_cifar10(root, allow_pickle=allow_pickle, verify=verify)
    splits = _image_splits(train, test, name="cifar10", seed=seed, dequantize=dequantize,
                           val_fraction=val_fraction)
    return splits, {"name": "cifar10", "dequantized": dequantize, "num_levels": 256,
                    "image_shape": (3, 32, 32)}


# ----------------------------------------------------------------------------- BSDS300 patches

BSDS_URL = ("https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz")
BSDS_SOURCE = (f"Download BSDS300-images.tgz ({BSDS_URL}) and extract it; root should hold "
               f"train/ and test/ (or images/train and images/test) with the JPEG images.")
BSDS_PRESETS = {
    "full": (1_000_000, 50_000, 250_000),  # the sizes of MAF's BSDS300
    "small": (50_000, 5_000, 12_500),      # a 1/20 subset for quick experiments
}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def _image_folder(root: pathlib.Path, split: str) -> pathlib.Path:
    tried = []
    for base in (root, root / "images", root / "bsds300", root / "bsds300" / "images",
                 root / "BSDS300" / "images"):
        d = base / split
        tried.append(d)
        if d.is_dir() and any(p.suffix.lower() in _IMAGE_SUFFIXES for p in d.iterdir()):
            return d
    raise DataNotFoundError("bsds300_images: no folder of images found for the " + split
                            + " split. Looked in:\n  " + "\n  ".join(map(str, tried))
                            + f"\n{BSDS_SOURCE}")


def read_gray_images(folder: pathlib.Path) -> list[np.ndarray]:
    """All images of ``folder`` (sorted by name) as uint8 grayscale arrays (ITU-R 601 luma)."""
    Image = require("PIL.Image", "bsds300_images: reading the JPEG images", "pillow")

    out = []
    for p in sorted(q for q in folder.iterdir() if q.suffix.lower() in _IMAGE_SUFFIXES):
        try:
            with Image.open(p) as im:
                g = np.asarray(im.convert("L"), dtype=np.uint8)
        except OSError as err:
            raise DataFormatError(f"bsds300_images: cannot read the image {p} ({err})") from err
        if g.shape[0] < 8 or g.shape[1] < 8:
            raise DataFormatError(f"bsds300_images: {p} is {g.shape}, smaller than one 8x8 patch")
        out.append(g)
    return out


def sample_patches(images: list[np.ndarray], n: int, rng: np.random.Generator,
                   size: int = 8, chunk: int = 100_000) -> np.ndarray:
    """``n`` random ``size x size`` patches of uniformly chosen images, dequantised,
    scaled to ``[0, 1)``, patch mean subtracted, bottom-right pixel dropped:
    float32 ``(n, size*size - 1)``."""
    d = size * size
    out = np.empty((n, d - 1), dtype=np.float32)
    offsets = np.arange(size)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        which = rng.integers(0, len(images), m)
        patches = np.empty((m, size, size), dtype=np.uint8)
        for i in np.unique(which):
            rows = np.flatnonzero(which == i)
            h, w = images[i].shape
            r = rng.integers(0, h - size + 1, len(rows))
            c = rng.integers(0, w - size + 1, len(rows))
            patches[rows] = images[i][(r[:, None, None] + offsets[None, :, None]),
                                      (c[:, None, None] + offsets[None, None, :])]
        x = dequantize_fn(patches.reshape(m, d), rng, 256)
        x -= x.mean(axis=1, keepdims=True)
        out[start:start + m] = x[:, :-1]
    return out


def load_bsds300_images(root: PathLike | None = None, *, preset: str = "small",
                        n_train: int | None = None, n_val: int | None = None,
                        n_test: int | None = None, seed: SeedLike = 0):
    """BSDS300 patches rebuilt from the images, as in MAF (Papamakarios et al., 2017, app. E)
    after Uria et al. (2013): random 8x8 grayscale patches, uniform dequantisation, scaled
    to ``[0, 1)``, patch mean subtracted, bottom-right pixel dropped (63 dims). Train and
    validation patches come from the training images, test patches from the test images.

    ``preset`` sets the sizes: ``"full"`` (1,000,000 / 50,000 / 250,000, as MAF) or
    ``"small"`` (50,000 / 5,000 / 12,500); ``n_train``/``n_val``/``n_test`` override it.
    Independent draws of the same seed give the same patches.
    """
    if preset not in BSDS_PRESETS:
        raise ValueError(f"preset: expected one of {list(BSDS_PRESETS)}, got {preset!r}")
    sizes = list(BSDS_PRESETS[preset])
    for i, (k, v) in enumerate((("n_train", n_train), ("n_val", n_val), ("n_test", n_test))):
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{k}: expected a positive int, got {v!r}")
            sizes[i] = int(v)
    base = resolve_root(root, "bsds300")
    train_imgs = read_gray_images(_image_folder(base, "train"))
    test_imgs = read_gray_images(_image_folder(base, "test"))
    r_train, r_val, r_test = numpy_rng(seed).spawn(3)
    splits = make_splits(sample_patches(train_imgs, sizes[0], r_train),
                         sample_patches(train_imgs, sizes[1], r_val),
                         sample_patches(test_imgs, sizes[2], r_test), name="bsds300_images")
    return splits, {"name": "bsds300_images", "n_images": (len(train_imgs), len(test_imgs))}
