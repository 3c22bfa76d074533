"""Loaders on the real files of ../shared/data (read in place; skipped when absent)."""

import numpy as np
import pytest
from data_fixtures import SHARED, SHARED_REASON

import nitsjax.data as nd
from nitsjax.data.tabular import read_table

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=SHARED_REASON)


@pytest.mark.parametrize(
    "name, folder, rows, dim",
    [("magic", "magic04", 19_020, 10), ("htru2", "htru2", 17_898, 8),
     ("wine_red", "winequality-red", 1_599, 11), ("wine_white", "winequality-white", 4_898, 11)],
)
def test_uci_tables(name, folder, rows, dim):
    s, info = nd.load(name, root=SHARED / folder, seed=0, return_info=True)
    assert sum(len(a) for a in s) == rows and s.train.shape[1] == dim
    assert all(a.dtype == np.float32 for a in s)
    np.testing.assert_allclose(s.train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(s.train.std(0), 1, atol=1e-4)
    # the parent folder works as root too, and the seed fixes the split
    again = nd.load(name, root=SHARED, seed=0)
    np.testing.assert_array_equal(again.test, s.test)
    # mapping back reproduces rows of the file's feature columns (labels, index dropped)
    x, _, _ = read_table(info["source"])
    feats = {"magic": x, "htru2": x[:, 1:9], "wine_red": x[:, :11], "wine_white": x[:, :11]}[name]
    back = np.concatenate(s).astype(np.float64) * info["std"] + info["mean"]
    err = np.abs(np.sort(back, axis=0) - np.sort(feats, axis=0)) / np.abs(feats).max(0)
    assert err.max() < 1e-5


def test_mnist_real_files_pass_the_checksums():
    s = nd.load("mnist", root=SHARED, seed=0)
    assert [a.shape for a in s] == [(54_000, 784), (6_000, 784), (10_000, 784)]
    assert min(a.min() for a in s) >= 0 and max(a.max() for a in s) < 1
    raw = nd.load("mnist", root=SHARED / "mnist", dequantize=False)
    np.testing.assert_array_equal(np.floor(s.test * 256), raw.test)
    assert raw.train.max() == 255 and np.array_equal(raw.train, np.round(raw.train))


def test_bsds300_patches_from_the_real_images():
    s, info = nd.load("bsds300_images", root=SHARED / "bsds300", n_train=2000, n_val=200,
                      n_test=500, seed=0, return_info=True)
    assert info["n_images"] == (200, 100)
    assert [a.shape for a in s] == [(2000, 63), (200, 63), (500, 63)]
    # patch values are differences from the patch mean of [0, 1) pixels
    assert np.abs(np.concatenate(s)).max() < 1
    assert 0.01 < s.train.std() < 0.5
