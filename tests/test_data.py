"""nitsjax.data: toys, preprocessing (dequantise / logit / bits per dim), tables, registry."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax.data as nd
from nitsjax.data import toys
from nitsjax.data.preprocessing import split_sizes, standardize
from nitsjax.data.tabular import load_file, read_table

# ----------------------------------------------------------------------------- toys


@pytest.mark.parametrize("name", toys.NAMES)
def test_toy_sample_shape_seed_and_range(name):
    a = toys.sample(name, 500, seed=1)
    assert a.shape == (500, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, toys.sample(name, 500, seed=1))
    assert not np.array_equal(a, toys.sample(name, 500, seed=2))
    assert np.isfinite(a).all() and np.abs(a).max() < 6.0
    # a JAX key works as a seed, deterministically
    k = jax.random.key(3)
    np.testing.assert_array_equal(toys.sample(name, 10, k), toys.sample(name, 10, k))


def test_toy_shapes_are_the_advertised_ones():
    cb = toys.sample("checkerboard", 4000, 0)
    cell = np.floor((cb + 4.0) / 2.0).astype(int)
    assert ((cell.sum(axis=1) % 2) == 0).all()  # only black squares
    r = np.linalg.norm(toys.sample("rings", 4000, 0), axis=1)
    nearest = np.min(np.abs(r[:, None] - np.array([0.75, 1.5, 2.25, 3.0])), axis=1)
    assert np.quantile(nearest, 0.95) < 0.25
    g = toys.sample("8gaussians", 4000, 0)
    angles = 2 * np.pi * np.arange(8) / 8
    centres = 2 * math.sqrt(2) * np.stack([np.cos(angles), np.sin(angles)], 1)
    d = np.min(np.linalg.norm(g[:, None] - centres[None], axis=2), axis=1)
    assert np.median(d) < 0.6
    m = toys.sample("moons", 4000, 0)
    assert abs(m.mean(axis=0)).max() < 0.15  # centred


def test_toy_load_fixed_splits_and_errors():
    s = nd.load("pinwheel", n_train=300, n_val=50, n_test=70, seed=4)
    assert [a.shape for a in s] == [(300, 2), (50, 2), (70, 2)]
    assert isinstance(s, nd.Splits) and s.train.dtype == np.float32
    np.testing.assert_array_equal(s.test, nd.load("pinwheel", n_train=300, n_val=50, n_test=70,
                                                  seed=4).test)
    with pytest.raises(ValueError, match="toy densities"):
        toys.sample("banana", 10)
    with pytest.raises(ValueError, match="n: expected a non-negative int"):
        toys.sample("moons", -1)
    with pytest.raises(TypeError, match="seed"):
        toys.sample("moons", 3, seed="zero")


# ----------------------------------------------------------------------------- preprocessing


def test_split_sizes_give_the_published_maf_sizes():
    from nitsjax.data.maf import ARCHIVE_ROWS, PUBLISHED

    for name in ("power", "gas", "miniboone"):
        assert split_sizes(ARCHIVE_ROWS[name]) == PUBLISHED[name][:3]
    n_train_file, n_test = ARCHIVE_ROWS["hepmass"]
    n_val = int(0.1 * n_train_file)
    assert (n_train_file - n_val, n_val, n_test) == PUBLISHED["hepmass"][:3]


def test_dequantize_numpy_and_jax_stay_in_the_right_bin():
    x = np.random.default_rng(0).integers(0, 256, (200, 7)).astype(np.uint8)
    x[0] = 255
    y = nd.dequantize(x, 0)
    assert y.dtype == np.float32 and (y >= 0).all() and (y < 1).all()
    np.testing.assert_array_equal(np.floor(y * 256).astype(int), x)
    np.testing.assert_array_equal(y, nd.dequantize(x, 0))
    yj = nd.dequantize(jnp.asarray(x), jax.random.key(0))
    assert isinstance(yj, jax.Array)
    np.testing.assert_array_equal(np.floor(np.asarray(yj) * 256).astype(int), x)
    raw = nd.dequantize(x, 1, num_levels=None)
    assert (raw - x >= 0).all() and (raw - x < 1).all()


@pytest.mark.parametrize("alpha", [0.0, 1e-6, 0.05])
def test_logit_transform_logdet_is_exact_and_inverts(alpha):
    x = jnp.asarray(np.random.default_rng(1).uniform(0.01, 0.99, (5, 6)))
    z, ld = nd.logit_transform(x, alpha)
    jac = jax.vmap(jax.jacfwd(lambda v: nd.logit_transform(v, alpha)[0]))(x)
    np.testing.assert_allclose(ld, jnp.linalg.slogdet(jac)[1], rtol=1e-5)
    xb, ldi = nd.logit_inverse(z, alpha)
    np.testing.assert_allclose(xb, x, atol=1e-5)
    np.testing.assert_allclose(ldi, -ld, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="alpha"):
        nd.logit_transform(x, 0.5)


def test_bits_per_dim_accounts_for_scaling_and_logit():
    dim = 784
    # the uniform density on [0, 1)^D is 8 bits/dim in pixel space [0, 256)^D
    bpd = nd.bits_per_dim(0.0, dim, nd.scale_logdet(dim))
    np.testing.assert_allclose(bpd, 8.0, rtol=1e-6)
    # the same density pushed through the logit: -log p_z(z) = logdet_logit(y)
    x = np.random.default_rng(2).integers(0, 256, (4, dim))
    z, logdet = nd.preprocess_images(x, 0, alpha=1e-6)
    y = nd.dequantize(x, 0)
    _, ld_logit = nd.logit_transform(y, 1e-6)
    np.testing.assert_allclose(nd.bits_per_dim(ld_logit, dim, logdet), 8.0, rtol=1e-5)
    with pytest.raises(ValueError, match="dim"):
        nd.bits_per_dim(1.0, 0)


def test_standardize_uses_training_statistics_and_refuses_constant_columns():
    rng = np.random.default_rng(0)
    tr, te = rng.normal(3, 2, (100, 3)), rng.normal(3, 2, (50, 3))
    a, b, mean, std = standardize(tr, te)
    np.testing.assert_allclose(a.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(a.std(0), 1, atol=1e-12)
    np.testing.assert_allclose(b, (te - tr.mean(0)) / tr.std(0))
    tr[:, 1] = 4.0
    with pytest.raises(nd.DataFormatError, match=r"column\(s\) \['b'\] are constant"):
        standardize(tr, names=["a", "b", "c"])


# ----------------------------------------------------------------------------- tables / files


def _csv(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_table_detects_header_separator_and_text_columns(tmp_path):
    p = _csv(tmp_path, '"a";"b";"c"\n1.5;2;x\n3;4;y\n5;6.25;x\n')
    x, names, kept = read_table(p)
    assert names == ["a", "b"] and kept == [0, 1] and x.shape == (3, 2)
    # the first row has a text label but is data, not a header (magic04's layout)
    q = _csv(tmp_path, "1.0,2.0,g\n3.0,4.0,h\n", "m.data")
    x, names, _ = read_table(q)
    assert x.shape == (2, 2)
    bad = _csv(tmp_path, "1,2\n3,oops\n", "bad.csv")
    with pytest.raises(nd.DataFormatError, match="bad.csv"):
        read_table(bad)


def test_load_file_csv_splits_standardises_and_dequantises(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    cont = rng.normal(5, 3, n)
    counts = rng.poisson(3, n)  # integer-valued: dequantised
    label = rng.integers(0, 2, n)
    rows = zip(cont, counts, label, strict=True)
    lines = ["x,count,label"] + [f"{float(a)!r},{c},{l}" for a, c, l in rows]
    p = _csv(tmp_path, "\n".join(lines) + "\n")
    s, info = load_file(p, label_column="label", seed=3, return_info=True)
    assert [a.shape for a in s] == [(324, 2), (36, 2), (40, 2)]
    assert info["columns"] == ["x", "count"]
    np.testing.assert_array_equal(info["dequantize_step"], [0.0, 1.0])
    np.testing.assert_allclose(s.train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(s.train.std(0), 1, atol=1e-5)
    assert len(np.unique(np.concatenate(s)[:, 1])) == n  # no ties left
    # undo the standardisation: counts come back within [c, c + 1)
    back = np.concatenate(s)[:, 1] * info["std"][1] + info["mean"][1]
    np.testing.assert_array_equal(np.sort(np.floor(back + 1e-6)), np.sort(counts))
    s2 = nd.load("file", path=p, label_column=-1, seed=3)
    np.testing.assert_array_equal(s2.val, s.val)
    assert not np.array_equal(nd.load("file", path=p, label_column=2, seed=4).val, s.val)


def test_load_file_npy_npz_and_errors(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 3))
    np.save(tmp_path / "a.npy", x)
    s = load_file(tmp_path / "a.npy", shuffle=False, standardize=False, dequantize=False,
                  val_fraction=0.2, test_fraction=0.1)
    np.testing.assert_allclose(np.concatenate(s), x, rtol=1e-6)  # row order kept
    assert [len(a) for a in s] == [72, 18, 10]
    np.savez(tmp_path / "b.npz", u=x, v=x[:, :2])
    assert load_file(tmp_path / "b.npz", key="v").train.shape[1] == 2
    with pytest.raises(ValueError, match="pass key="):
        load_file(tmp_path / "b.npz")
    with pytest.raises(nd.DataNotFoundError, match="no such file"):
        load_file(tmp_path / "missing.csv")
    (tmp_path / "c.xyz").write_text("1")
    with pytest.raises(nd.DataFormatError, match="unknown file type"):
        load_file(tmp_path / "c.xyz")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(nd.DataFormatError, match="refused"):
        load_file(tmp_path / "o.npy")
    y = x.copy()
    y[5, 1] = np.nan
    np.save(tmp_path / "nan.npy", y)
    with pytest.raises(nd.DataFormatError, match="row 5, column 1"):
        load_file(tmp_path / "nan.npy", shuffle=False)
    with pytest.raises(ValueError, match="every column"):
        load_file(tmp_path / "a.npy", drop_columns=[0, 1, 2])
    with pytest.raises(ValueError, match="out of range"):
        load_file(tmp_path / "a.npy", label_column=7)


def test_digits_is_embedded_dequantised_and_seeded():
    s = nd.load("digits")
    assert sum(len(a) for a in s) == 1797 and s.train.shape[1] == 64
    allx = np.concatenate(s)
    assert allx.min() >= 0 and allx.max() < 1
    # every value sits in its bin [v/17, (v+1)/17) of the original 0..16 grid
    from sklearn.datasets import load_digits

    raw = np.sort(load_digits().data.ravel())
    gap = np.sort(allx.ravel()).astype(np.float64) * 17 - raw  # sorting keeps bin order
    assert gap.min() > -1e-4 and gap.max() < 1 + 1e-4
    np.testing.assert_array_equal(nd.load("digits", seed=1).train, nd.load("digits", seed=1).train)
    z = nd.load("digits", standardize=True)
    np.testing.assert_allclose(z.train.mean(0), 0, atol=1e-5)


# ----------------------------------------------------------------------------- registry


def test_names_cover_every_family_and_describe():
    required = {"moons", "8gaussians", "checkerboard", "pinwheel", "2spirals", "rings",
                "circles", "swissroll", "digits", "magic", "htru2", "wine_red", "wine_white",
                "power", "gas", "hepmass", "miniboone", "bsds300", "bsds300_images", "mnist",
                "cifar10", "file"}
    assert required <= set(nd.names())
    assert set(nd.names("maf")) == {"power", "gas", "hepmass", "miniboone", "bsds300"}
    assert "preset" in nd.describe("bsds300_images")
    with pytest.raises(ValueError, match="kind"):
        nd.names("video")


def test_load_rejects_unknown_names_options_and_roots(tmp_path):
    with pytest.raises(ValueError, match="name: expected one of"):
        nd.load("imagenet")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['n_trian'\]"):
        nd.load("moons", n_trian=5)
    with pytest.raises(TypeError, match="takes no root"):
        nd.load("digits", root=tmp_path)
    with pytest.raises(TypeError, match="path="):
        nd.load("file")


def test_default_root_follows_nitsjax_data(monkeypatch, tmp_path):
    monkeypatch.setenv("NITSJAX_DATA", str(tmp_path))
    assert nd.data_home() == tmp_path
    with pytest.raises(nd.DataNotFoundError) as err:
        nd.load("magic")
    assert str(tmp_path / "magic04" / "magic04.data") in str(err.value)
    assert "archive.ics.uci.edu" in str(err.value)
