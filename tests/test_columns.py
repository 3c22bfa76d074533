"""nitsjax.data.columns: constant, linearly dependent and lattice columns of a training table."""

import dataclasses

import numpy as np
import pytest

from nitsjax.data.columns import ColumnReport, describe_columns, lattice_steps


def rng(seed=0):
    return np.random.default_rng(seed)


def test_counts_ratings_and_binary_are_lattice_columns():
    r = rng()
    x = np.stack([r.poisson(3.0, 400), r.integers(1, 6, 400) * 0.5, r.integers(0, 2, 400)], 1)
    np.testing.assert_allclose(lattice_steps(x.astype(np.float64)), [1.0, 0.5, 1.0])


def test_standardised_integers_and_8bit_pixels_keep_their_step():
    r = rng(1)
    k = r.integers(0, 256, (3000, 2)).astype(np.float64)
    k[:, 1] = r.poisson(20.0, 3000)  # a column without every level: gaps of 1, 2, ...
    z = ((k - k.mean(0)) / k.std(0)).astype(np.float32)  # float32 standardised, a + k * s
    np.testing.assert_allclose(lattice_steps(z), 1.0 / k.std(0), rtol=1e-5)
    np.testing.assert_allclose(lattice_steps(k.astype(np.uint8)[:, :1]), [1.0])


def test_step_is_the_grid_not_the_smallest_gap():
    x = np.array([0.0, 2.0, 5.0] * 4)[:, None]  # gaps 2 and 3: integers, step 1
    np.testing.assert_allclose(lattice_steps(x), [1.0])


def test_continuous_columns_are_not_lattice_columns():
    r = rng(2)
    assert (lattice_steps(r.normal(size=(30, 4))) == 0).all()  # few rows
    assert (lattice_steps(r.normal(size=(30, 4)).round(1)[:3]) == 0).all()  # 3 rows
    # float32 values repeat at float resolution with many rows: not a lattice
    u = r.uniform(1.0, 2.0, (200_000, 1)).astype(np.float32)
    assert lattice_steps(u)[0] == 0.0
    # a constant column has no step; describe_columns reports it as constant
    assert lattice_steps(np.ones((10, 1)))[0] == 0.0


def table(dtype=np.float64):
    r = rng(3)
    a, b = r.normal(size=300), r.exponential(size=300)
    x = np.stack([a, np.full(300, 2.5), r.poisson(2.0, 300), b, 3.0 * a + 2.0 * b + 1.0], 1)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_describe_finds_constant_total_and_lattice(dtype):
    report = describe_columns(table(dtype), names=["a", "c", "n", "b", "total"])
    assert isinstance(report, ColumnReport)
    assert report.constant == (1,)
    assert report.dependent == (4,) and report.dependent_on == ((0, 3),)
    assert report.lattice == (2,) and report.steps[2] == pytest.approx(1.0)
    assert report.degenerate and not report.ok
    text = str(report)
    for word in ["1 ('c')", "constant", "drop", "4 ('total')", "0 ('a')", "3 ('b')",
                 "2 ('n', step 1)", "dequantize="]:
        assert word in text, (word, text)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.constant = ()
    # indices when no names are given
    assert "column 4 is a linear combination of column(s) 0, 3" in str(describe_columns(table()))


def test_describe_clean_table_is_ok_and_says_so():
    report = describe_columns(rng(4).normal(size=(200, 5)))
    assert report.ok and not report.degenerate
    assert (report.constant, report.dependent, report.lattice) == ((), (), ())
    assert "no constant" in str(report)


def test_more_columns_than_rows_are_dependent():
    report = describe_columns(rng(5).normal(size=(4, 6)))
    assert len(report.dependent) == 6 - 3  # centred rows span 3 dimensions


@pytest.mark.parametrize(
    "x, error, words",
    [
        (np.zeros(5), ValueError, ["x:", "(n, dim)", "x[:, None]"]),
        (np.zeros((0, 3)), ValueError, ["at least one row"]),
        (np.array([[0.0, np.nan]] * 3), ValueError, ["finite", "row 0, column 1"]),
        (np.array([["a", "b"]]), TypeError, ["dtype", "numbers"]),
        (np.ones((3, 2), bool), TypeError, ["dtype bool"]),
    ],
)
def test_bad_input_is_a_clear_error(x, error, words):
    for fn in (lattice_steps, describe_columns):
        with pytest.raises(error) as info:
            fn(x)
        for word in words:
            assert word in str(info.value), (word, str(info.value))
    with pytest.raises(ValueError, match="names: expected 2 column names"):
        describe_columns(np.zeros((3, 2)), names=["a"])


def test_report_of_a_wide_table_names_a_bounded_number_of_columns():
    """Image-like tables: every column on a lattice, many dependent columns; the report
    names at most ``LISTED`` per finding and says how many more there are."""
    from nitsjax.data.columns import LISTED, describe_columns

    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, (300, 60)).astype(np.float64)
    for j in range(30, 60):
        x[:, j] = x[:, 0] * j
    report = describe_columns(x)
    text = str(report)
    assert len(report.dependent) == 30 and len(report.lattice) == 60
    assert f"... and {30 - LISTED} more linearly dependent columns" in text
    assert f"... and {60 - LISTED} more" in text
    assert text.count("is a linear combination") == LISTED
