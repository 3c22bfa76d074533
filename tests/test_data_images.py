"""Image loaders (MNIST IDX, CIFAR-10 binary/pickle, BSDS300 patches) on synthetic files."""

import pickle

import numpy as np
import pytest
from data_fixtures import write_cifar_bin, write_idx, write_mnist

import nitsjax.data as nd
from nitsjax.data.images import _read_mnist_part, read_idx, read_mnist

# ----------------------------------------------------------------------------- IDX / MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    a = np.random.default_rng(0).integers(0, 256, (7, 5, 3))
    p = write_idx(tmp_path / "x-idx3-ubyte", a, gz=gz)
    np.testing.assert_array_equal(read_idx(p), a)


def test_read_idx_rejects_bad_magic_truncation_and_bad_gzip(tmp_path):
    a = np.zeros((4, 28, 28), np.uint8)
    p = write_idx(tmp_path / "a-idx3-ubyte", a, gz=False)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(nd.DataFormatError, match="truncated.*download it again"):
        read_idx(p)
    p.write_bytes(b"\x1f\x00\x08\x03" + bytes(20))
    with pytest.raises(nd.DataFormatError, match="not an IDX file"):
        read_idx(p)
    g = write_idx(tmp_path / "b-idx3-ubyte", a, gz=True)
    g.write_bytes(g.read_bytes()[:-8])
    with pytest.raises(nd.DataFormatError, match="b-idx3-ubyte.gz.*truncated"):
        read_idx(g)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_dequantised_and_raw(tmp_path, gz):
    arrays = write_mnist(tmp_path / "mnist", n_train=50, n_test=20, gz=gz)
    s = nd.load("mnist", root=tmp_path, verify=False, seed=1)
    assert [a.shape for a in s] == [(45, 784), (5, 784), (20, 784)]
    train = arrays["train-images-idx3-ubyte"].reshape(50, 784)
    got = np.concatenate([s.train, s.val])
    assert got.min() >= 0 and got.max() < 1
    np.testing.assert_array_equal(np.floor(got * 256), train)  # val = last 10% of train
    raw = nd.load("mnist", root=tmp_path / "mnist", verify=False, dequantize=False)
    np.testing.assert_array_equal(raw.test, arrays["t10k-images-idx3-ubyte"].reshape(20, 784))
    assert raw.test.dtype == np.float32
    labels = read_mnist(tmp_path, verify=False)["train_labels"]
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte"])


def test_mnist_verify_checks_sizes_and_md5(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=10, n_test=10)
    with pytest.raises(nd.DataFormatError, match="verify=False"):
        nd.load("mnist", root=tmp_path)
    # a canonical-size test file with the wrong content fails the md5 check
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte",
              np.random.default_rng(0).integers(0, 256, (10_000, 28, 28)))
    with pytest.raises(nd.DataFormatError, match="md5 .* expected 2646ac647ad5339dbf"):
        _read_mnist_part(tmp_path, "test_images", True)
    with pytest.raises(nd.DataNotFoundError, match="elsewhere/train-images-idx3-ubyte.gz"):
        nd.load("mnist", root=tmp_path / "elsewhere")


# ----------------------------------------------------------------------------- CIFAR-10


def test_cifar10_binary_layout_and_validation_split(tmp_path):
    batches = write_cifar_bin(tmp_path / "cifar10", n_per_batch=20)
    s = nd.load("cifar10", root=tmp_path, verify=False, dequantize=False)
    assert [a.shape for a in s] == [(90, 3072), (10, 3072), (20, 3072)]
    train = np.concatenate([batches[f"data_batch_{k}"] for k in range(1, 6)])
    np.testing.assert_array_equal(s.val, train[90:])
    np.testing.assert_array_equal(s.test, batches["test_batch"])
    d = nd.load("cifar10", root=tmp_path / "cifar10" / "cifar-10-batches-bin", verify=False)
    np.testing.assert_array_equal(np.floor(d.train * 256), train[:90])
    with pytest.raises(nd.DataFormatError, match="canonical batch"):
        nd.load("cifar10", root=tmp_path)


def test_cifar10_bad_files(tmp_path):
    write_cifar_bin(tmp_path, n_per_batch=5)
    f = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(nd.DataFormatError, match="data_batch_3.bin.*whole number"):
        nd.load("cifar10", root=tmp_path, verify=False)
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").unlink()
    write_cifar_bin(tmp_path, n_per_batch=5)
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").unlink()
    with pytest.raises(nd.DataNotFoundError, match="test_batch.bin is missing"):
        nd.load("cifar10", root=tmp_path, verify=False)
    with pytest.raises(nd.DataNotFoundError, match="c32a1d4ab5d03f1284b67883e8d87530"):
        nd.load("cifar10", root=tmp_path / "none")


def test_cifar10_pickle_release_needs_opt_in(tmp_path, monkeypatch):
    monkeypatch.delenv("NITSJAX_ALLOW_PICKLE", raising=False)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = {}
    for stem in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data[stem] = rng.integers(0, 256, (10, 3072)).astype(np.uint8)
        with open(folder / stem, "wb") as f:
            pickle.dump({b"data": data[stem], b"labels": [0] * 10}, f)
    with pytest.raises(PermissionError, match="allow_pickle=True"):
        nd.load("cifar10", root=tmp_path, verify=False)
    s = nd.load("cifar10", root=tmp_path, verify=False, allow_pickle=True, dequantize=False)
    np.testing.assert_array_equal(s.test, data["test_batch"])


# ----------------------------------------------------------------------------- BSDS300 patches


def _write_images(folder, images, suffix):
    from PIL import Image

    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:03d}{suffix}")


def test_bsds300_images_patches(tmp_path):
    flat = [np.full((30, 40), 100 + 10 * i, np.uint8) for i in range(3)]  # train: constant
    board = np.kron((np.indices((6, 6)).sum(0) % 2) * 255, np.ones((5, 5))).astype(np.uint8)
    rgb = np.stack([board] * 3, axis=-1)  # test: high-contrast, RGB
    _write_images(tmp_path / "train", flat, ".png")
    _write_images(tmp_path / "test", [rgb, rgb], ".png")
    s = nd.load("bsds300_images", root=tmp_path, n_train=400, n_val=50, n_test=100, seed=3)
    assert [a.shape for a in s] == [(400, 63), (50, 63), (100, 63)]
    # patches of a constant image: only the dequantisation noise (< 1/256) survives
    assert np.abs(s.train).max() < 1 / 256 and np.abs(s.val).max() < 1 / 256
    assert s.test.std() > 0.3  # test patches come from the test images
    # mean subtracted: the dropped bottom-right pixel is minus the sum of the others,
    # and the full patch lies in [0, 1) after adding its mean back
    full = np.concatenate([s.test, -s.test.sum(1, keepdims=True)], axis=1)
    np.testing.assert_allclose(full.mean(1), 0, atol=1e-5)
    again = nd.load("bsds300_images", root=tmp_path, n_train=400, n_val=50, n_test=100, seed=3)
    np.testing.assert_array_equal(again.test, s.test)
    other = nd.load("bsds300_images", root=tmp_path, n_train=400, n_val=50, n_test=100, seed=4)
    assert not np.array_equal(other.test, s.test)
    with pytest.raises(ValueError, match="preset"):
        nd.load("bsds300_images", root=tmp_path, preset="huge")
    with pytest.raises(nd.DataNotFoundError, match="BSDS300-images.tgz"):
        nd.load("bsds300_images", root=tmp_path / "none")

