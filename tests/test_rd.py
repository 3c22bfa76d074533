"""Rate-distortion sandwich bounds (nitsjax.rd): the Gaussian closed form, the input
checks, the lower-bound envelope; the bounds themselves against the closed form on a 2-D
Gaussian (slow)."""

import numpy as np
import pytest

from nitsjax import rd


def _water_fill_bisection(var, d):
    lo, hi = 0.0, float(np.max(var))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.minimum(mid, var).sum() < d else (lo, mid)
    return 0.5 * np.log(np.maximum(var / lo, 1.0)).sum()


def test_gaussian_rd_closed_form():
    # one coordinate: R(D) = log(var / D) / 2
    np.testing.assert_allclose(rd.gaussian_rd([2.0], [0.1, 1.0, 2.0, 3.0]),
                               [0.5 * np.log(20.0), 0.5 * np.log(2.0), 0.0, 0.0], atol=1e-12)
    # equal variances: every coordinate at D / dim
    np.testing.assert_allclose(rd.gaussian_rd(np.ones(4), 1.0), 2 * np.log(4.0), rtol=1e-12)
    # unequal variances: reverse water-filling against a bisection on the water level
    var = np.array([3.0, 1.0, 0.2, 0.05])
    d = np.array([0.01, 0.19, 0.3, 0.9, 2.0, 4.0, 4.25])
    want = [_water_fill_bisection(var, di) for di in d]
    got = rd.gaussian_rd(var, d)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert np.all(np.diff(got) < 0) and got.shape == d.shape
    assert rd.gaussian_rd(var, 5.0) == 0.0  # beyond the total variance: rate 0
    # the slope is -1 / (2 theta): finite differences at theta = 0.1 (three coordinates active)
    dd = 1e-6
    d0 = 0.1 * 3 + 0.05
    slope = (rd.gaussian_rd(var, d0 + dd) - rd.gaussian_rd(var, d0 - dd)) / (2 * dd)
    np.testing.assert_allclose(slope, -1 / (2 * 0.1), rtol=1e-5)


@pytest.mark.parametrize("variances, distortion, match", [
    ([1.0, -1.0], 0.5, "variances"),
    ([[1.0]], 0.5, "variances"),
    ([1.0], 0.0, "distortion"),
    ([1.0], [0.5, np.nan], "distortion"),
])
def test_gaussian_rd_refuses_bad_input(variances, distortion, match):
    with pytest.raises(ValueError, match=match):
        rd.gaussian_rd(variances, distortion)


X = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)


@pytest.mark.parametrize("fn", [rd.upper_bound, rd.lower_bound])
@pytest.mark.parametrize("x, lambdas, error, match", [
    (X, [1.0, 0.0], ValueError, "lambdas"),
    (X, [1.0, -2.0], ValueError, "lambdas"),
    (X, [[1.0, 2.0]], ValueError, "lambdas"),
    (X, [], ValueError, "lambdas"),
    (X, [np.nan], ValueError, "lambdas"),
    (X[:, 0], [1.0], ValueError, "shape"),
    (np.where(np.arange(128).reshape(64, 2) == 5, np.nan, X), [1.0], ValueError, "x"),
    (X.astype(np.int32), [1.0], TypeError, "x"),
])
def test_bounds_refuse_bad_input(fn, x, lambdas, error, match):
    with pytest.raises(error, match=match):
        fn(x, lambdas, steps=1, progress=False)


def test_lower_bound_needs_k_samples_per_part():
    with pytest.raises(ValueError, match="k=256"):
        rd.lower_bound(X, [1.0], k=256, progress=False)


def test_lower_bound_envelope():
    lb = rd.LowerBound(np.array([1.0, 4.0]), np.array([1.0, 2.0]), np.array([0.0, 0.0]), k=8)
    # lines 1 - D and 2 - 4 D cross at D = 1/3; below 0 the bound is 0
    np.testing.assert_allclose(lb.rate([0.0, 0.2, 1 / 3, 0.5, 2.0]),
                               [2.0, 1.2, 2 / 3, 0.5, 0.0], atol=1e-12)
    assert lb.points([0.1, 0.5]).shape == (2, 2)


# ------------------------------------------------------------------ slow: the sandwich
VAR = np.array([1.0, 0.25])
LAMBDAS = [1.0, 4.0]


@pytest.fixture(scope="module")
def gaussian_2d():
    return np.random.default_rng(1).normal(size=(20000, 2)) * np.sqrt(VAR)


@pytest.mark.slow
def test_upper_bound_above_gaussian_rd(gaussian_2d):
    ub = rd.upper_bound(gaussian_2d, LAMBDAS, steps=1000, progress=False)
    truth = rd.gaussian_rd(VAR, ub.distortion)
    # an achievable point: above R(D) up to Monte Carlo error (3 SE in both coordinates),
    # and close to it here
    floor = rd.gaussian_rd(VAR, ub.distortion + 3 * ub.distortion_se) - 3 * ub.rate_se
    assert np.all(ub.rate >= floor), (ub.points, truth)
    assert np.all(ub.rate <= truth + 0.1), (ub.points, truth)
    # near the point of slope -lambda (theta = 1 / (2 lambda))
    want_d = [np.minimum(1 / (2 * lam), VAR).sum() for lam in LAMBDAS]
    np.testing.assert_allclose(ub.distortion, want_d, rtol=0.15)
    assert ub.points.shape == (2, 2)


@pytest.mark.slow
def test_lower_bound_below_gaussian_rd(gaussian_2d):
    lb = rd.lower_bound(gaussian_2d, LAMBDAS, k=256, steps=300, progress=False)
    # the best line of slope -lambda under R(D) has intercept min_D R(D) + lambda D, reached
    # at the water level theta = 1 / (2 lambda)
    for lam, c, se in zip(LAMBDAS, lb.intercepts, lb.intercept_se):
        d = np.minimum(1 / (2 * lam), VAR).sum()
        best = rd.gaussian_rd(VAR, d) + lam * d
        assert c <= best + 3 * se + 0.01, (lam, c, best)
        assert c >= 0.6 * best, (lam, c, best)  # and not vacuous
    d = np.geomspace(0.05, 1.5, 20)
    assert np.all(lb.rate(d) <= rd.gaussian_rd(VAR, d) + 0.05)


def test_lower_bound_intercept_at_most_log_k():
    # tiny run: every code path of the estimator; the intercept can never exceed log k
    lb = rd.lower_bound(X, [0.5, 50.0], k=8, steps=2, hidden=(4,), ascent_steps=2,
                        eval_batches=2, seed=3, progress=False)
    assert lb.intercepts.shape == lb.intercept_se.shape == (2,) and lb.k == 8
    assert np.all(np.isfinite(lb.intercepts)) and np.all(lb.intercepts <= np.log(8) + 1e-5)
