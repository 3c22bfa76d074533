"""MAF benchmark loaders on small synthetic files in the archive's layout."""

import numpy as np
import pytest
from data_fixtures import gas_table, write_hepmass

import nitsjax.data as nd
from nitsjax.data import maf


def _std(x, ddof=0):
    return x.std(axis=0, ddof=ddof)


# ----------------------------------------------------------------------------- POWER


def test_power_follows_the_published_recipe(tmp_path):
    n = 1000
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(n, 8)) * np.arange(1, 9) + 10.0
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", raw)
    s = nd.load("power", root=tmp_path, cache=False)
    assert [a.shape for a in s] == [(810, 6), (90, 6), (100, 6)]
    assert s.train.dtype == np.float32
    # independent reconstruction: shuffle == indexing with RandomState(42).permutation,
    # then the noise draws in MAF's order (voltage, active power, sub-meterings)
    rs = np.random.RandomState(42)
    x = raw[rs.permutation(n)][:, [0, 2, 4, 5, 6, 7]]
    voltage, active, sub = 0.01 * rs.rand(n, 1), 0.001 * rs.rand(n, 1), rs.rand(n, 3)
    x = x + np.hstack([active, voltage, sub, np.zeros((n, 1))])
    mu, sd = x[:900].mean(0), x[:900].std(0)
    np.testing.assert_allclose(np.concatenate(s), (x - mu) / sd, atol=2e-6)
    # the folder itself works as root too
    np.testing.assert_array_equal(nd.load("power", root=tmp_path / "power", cache=False).test,
                                  s.test)


def test_power_cache_is_used_and_never_stale(tmp_path, monkeypatch):
    folder = tmp_path / "power"
    folder.mkdir()
    np.save(folder / "data.npy", np.random.default_rng(0).normal(size=(300, 8)))
    cache = tmp_path / "cache"
    first = nd.load("power", root=folder, cache=cache)
    assert len(list(cache.glob("power-*/train.npy"))) == 1

    def boom(_):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(maf, "prepare_power", boom)
    again = nd.load("power", root=folder, cache=cache)
    np.testing.assert_array_equal(again.train, first.train)
    monkeypatch.undo()
    np.save(folder / "data.npy", np.random.default_rng(1).normal(size=(400, 8)))
    changed = nd.load("power", root=folder, cache=cache)
    assert len(changed.train) != len(first.train)


def test_power_wrong_shape_and_missing_file_errors(tmp_path):
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", np.zeros((50, 7)))
    with pytest.raises(nd.DataFormatError, match=r"shape \(50, 7\), expected \(n, 8\)"):
        nd.load("power", root=tmp_path, cache=False)
    with pytest.raises(nd.DataNotFoundError) as err:
        nd.load("miniboone", root=tmp_path / "nowhere")
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "data.npy") in msg
    assert "1161203" in msg and "data.tar.gz" in msg and "md5" in msg


def test_published_size_check_fires_only_for_archive_sized_files():
    good = nd.Splits(np.zeros((29_556, 43)), np.zeros((3_284, 43)), np.zeros((3_648, 43)))
    maf._check_published("miniboone", good, 36_488)
    bad = nd.Splits(np.zeros((29_556, 42)), np.zeros((3_284, 42)), np.zeros((3_648, 42)))
    maf._check_published("miniboone", bad, 1000)  # not the archive's file: no claim
    with pytest.raises(nd.DataFormatError, match="published"):
        maf._check_published("miniboone", bad, 36_488)


# ----------------------------------------------------------------------------- MINIBOONE


def test_miniboone_split_and_train_val_standardisation(tmp_path):
    raw = np.random.default_rng(0).gamma(2.0, size=(200, 5))
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    s = nd.load("miniboone", root=tmp_path, cache=False)
    assert [len(a) for a in s] == [162, 18, 20]
    tv = raw[:180]
    np.testing.assert_allclose(s.test, (raw[180:] - tv.mean(0)) / _std(tv), rtol=1e-5)
    np.testing.assert_allclose(np.concatenate([s.train, s.val]).mean(0), 0, atol=1e-5)


def test_miniboone_full_size_matches_published(tmp_path):
    (tmp_path / "miniboone").mkdir()
    raw = np.random.default_rng(1).normal(size=(36_488, 43))
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    s = nd.load("miniboone", root=tmp_path, cache=False)
    assert (*(len(a) for a in s), s.train.shape[1]) == maf.PUBLISHED["miniboone"]


# ----------------------------------------------------------------------------- GAS


def _expected_gas(data):
    x = data[:, [4, 5, 6, 7]]  # S2..S5: S1 goes (first of the correlated pair), S4=-S3 stays
    return (x - x.mean(0)) / x.std(0, ddof=1)


def test_gas_from_npz_drops_correlated_columns_and_splits_in_order(tmp_path):
    data, cols = gas_table()
    (tmp_path / "gas").mkdir()
    np.savez(tmp_path / "gas" / "ethylene_CO.npz", data=data, columns=np.array(cols))
    s, info = nd.load("gas", root=tmp_path, cache=False, return_info=True)
    assert info["columns"] == ["S2", "S3", "S4", "S5"]
    assert [len(a) for a in s] == [405, 45, 50]
    np.testing.assert_allclose(np.concatenate(s), _expected_gas(data), rtol=1e-5, atol=1e-6)


def test_gas_pickle_needs_opt_in_and_converts(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    monkeypatch.delenv("NITSJAX_ALLOW_PICKLE", raising=False)
    data, cols = gas_table(n=300, seed=2)
    (tmp_path / "gas").mkdir()
    pkl = tmp_path / "gas" / "ethylene_CO.pickle"
    pd.DataFrame(data, columns=cols).to_pickle(pkl)
    with pytest.raises(PermissionError) as err:
        nd.load("gas", root=tmp_path, cache=False)
    assert "allow_pickle=True" in str(err.value) and "convert_gas" in str(err.value)
    with pytest.raises(PermissionError):
        nd.convert_gas(pkl)
    direct = nd.load("gas", root=tmp_path, cache=False, allow_pickle=True)
    np.testing.assert_allclose(np.concatenate(direct), _expected_gas(data), rtol=1e-5, atol=1e-6)
    monkeypatch.setenv("NITSJAX_ALLOW_PICKLE", "1")
    out = nd.convert_gas(pkl)
    monkeypatch.delenv("NITSJAX_ALLOW_PICKLE")
    assert out == tmp_path / "gas" / "ethylene_CO.npz"
    with np.load(out, allow_pickle=False) as z:
        assert list(z["columns"]) == cols
    converted = nd.load("gas", root=tmp_path, cache=False)  # uses the npz, no opt-in needed
    for a, b in zip(converted, direct, strict=False):
        np.testing.assert_array_equal(a, b)


def test_gas_missing_columns_error(tmp_path):
    (tmp_path / "gas").mkdir()
    np.savez(tmp_path / "gas" / "ethylene_CO.npz", data=np.zeros((10, 2)),
             columns=np.array(["A", "B"]))
    with pytest.raises(nd.DataFormatError, match=r"no column\(s\) \['Meth', 'Eth', 'Time'\]"):
        nd.load("gas", root=tmp_path, cache=False)


# ----------------------------------------------------------------------------- HEPMASS


def test_hepmass_signal_rows_train_statistics_and_discrete_feature_dropped(tmp_path):
    (lab_tr, x_tr), (lab_te, x_te) = write_hepmass(tmp_path)
    s, info = nd.load("hepmass", root=tmp_path, cache=False, return_info=True)
    assert info["features"] == [0, 1, 3, 4]  # f2 takes 3 values: dropped
    tr, te = x_tr[lab_tr == 1], x_te[lab_te == 1]
    mu, sd = tr.mean(0), tr.std(0, ddof=1)
    z_tr, z_te = ((tr - mu) / sd)[:, [0, 1, 3, 4]], ((te - mu) / sd)[:, [0, 1, 3, 4]]
    n_val = int(0.1 * len(z_tr))
    np.testing.assert_allclose(s.train, z_tr[:-n_val], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.val, z_tr[-n_val:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.test, z_te, rtol=1e-5, atol=1e-6)


def test_hepmass_width_mismatch_is_explained(tmp_path):
    write_hepmass(tmp_path)
    test_csv = tmp_path / "hepmass" / "1000_test.csv"
    lines = test_csv.read_text().splitlines()
    test_csv.write_text("\n".join(ln.rsplit(",", 1)[0] for ln in lines) + "\n")  # no extra col
    with pytest.raises(nd.DataFormatError, match="5 features but the test file 4"):
        nd.load("hepmass", root=tmp_path, cache=False)


# ----------------------------------------------------------------------------- BSDS300 (hdf5)


def test_bsds300_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    (tmp_path / "BSDS300").mkdir()
    path = tmp_path / "BSDS300" / "BSDS300.hdf5"
    arrays = {k: rng.normal(size=(m, 63)) for k, m in
              (("train", 40), ("validation", 10), ("test", 20))}
    with h5py.File(path, "w") as f:
        for k, a in arrays.items():
            f.create_dataset(k, data=a)
    s = nd.load("bsds300", root=tmp_path)
    np.testing.assert_allclose(s.val, arrays["validation"].astype(np.float32))
    assert [len(a) for a in s] == [40, 10, 20]
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=np.zeros((4, 64)))
        f.create_dataset("validation", data=np.zeros((4, 63)))
    with pytest.raises(nd.DataFormatError, match=r"lacks dataset\(s\) \['test'\]"):
        nd.load("bsds300", root=tmp_path)
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(nd.DataFormatError, match="truncated"):
        nd.load("bsds300", root=tmp_path)
