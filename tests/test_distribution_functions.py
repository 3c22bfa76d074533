"""Distribution functions of triangular flows (``nitsjax.distribution_functions``) against
closed forms (a one-layer MAF at its data init is the fitted Gaussian) and numerical
integration of the joint density (a perturbed NITS), in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import cast, perturbed_params
from scipy import stats
from scipy.integrate import simpson

from nitsjax.flows import iaf, maf, nits, nsf, realnvp

KEY = jax.random.key(0)


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    mix = np.triu(rng.normal(size=(d, d)) * 0.6) + np.eye(d)
    return rng.normal(size=(n, d)) @ mix * np.arange(1, d + 1) + 2.0


def _conditional(mean, cov, i, given, rows):
    """Mean (n,) and sd of coordinate ``i`` given the coordinates ``given`` of a Gaussian."""
    if not given:
        return np.full(len(rows), mean[i]), np.sqrt(cov[i, i])
    g = list(given)
    w = np.linalg.solve(cov[np.ix_(g, g)], cov[g, i])
    return mean[i] + (rows[:, g] - mean[g]) @ w, np.sqrt(cov[i, i] - cov[g, i] @ w)


@pytest.fixture(scope="module")
def gaussian():
    """A one-layer MAF at its data init is exactly N(m, S) (S: the 1/n covariance with the
    whitening jitter, see test_flow), with known conditionals and marginals."""
    with jax.enable_x64(True):
        x = _data(300, 3)
        flow = maf(3, layers=1, hidden=(8,))
        params = flow.data_init(cast(flow.init(KEY), jnp.float64), x)
    cov = np.cov(x.T, bias=True)
    return flow, params, x[:6], x.mean(0), cov + 1e-6 * np.diag(np.diag(cov))


def test_gaussian_cdf_quantile_marginal_and_last_censored_are_the_closed_forms(gaussian):
    flow, params, x, m, cov = gaussian
    assert flow.is_triangular
    with jax.enable_x64(True):
        u = np.asarray(flow.cdf(params, x))
        want = np.stack([stats.norm.cdf(x[:, i], *_conditional(m, cov, i, range(i), x))
                         for i in range(3)], axis=1)
        np.testing.assert_allclose(u, want, atol=1e-12)
        np.testing.assert_allclose(flow.quantile(params, u), x, atol=1e-10)
        np.testing.assert_allclose(
            flow.marginal_log_prob(params, x[:, :2]),
            stats.multivariate_normal(m[:2], cov[:2, :2]).logpdf(x[:, :2]), atol=1e-10)
        np.testing.assert_allclose(flow.marginal_log_prob(params, x), flow.log_prob(params, x),
                                   atol=1e-10)
        lo, hi = x.copy(), x.copy()
        lo[:, 2], hi[:, 2] = x[:, 2] - 0.5, np.inf
        got = flow.log_prob_censored(params, lo, hi)
        mu, sd = _conditional(m, cov, 2, [0, 1], x)
        want = (stats.multivariate_normal(m[:2], cov[:2, :2]).logpdf(x[:, :2])
                + stats.norm.logsf(lo[:, 2], mu, sd))
        np.testing.assert_allclose(got.log_prob, want, atol=1e-10)
        assert np.all(np.asarray(got.stderr) == 0)


def test_gaussian_censored_and_imputed_middle_coordinate_by_importance_sampling(gaussian):
    """Coordinate 1 censored / missing, coordinate 2 observed after it: the estimator."""
    flow, params, x, m, cov = gaussian
    with jax.enable_x64(True):
        lo, hi = x.copy(), x.copy()
        lo[:, 1], hi[:, 1] = x[:, 1] - 1.0, x[:, 1] + 2.0
        got = flow.log_prob_censored(params, lo, hi, key=KEY, num_samples=400)
        # exact: p(x0, x2) * P(lo1 < X1 <= hi1 | x0, x2)
        mu, sd = _conditional(m, cov, 1, [0, 2], x)
        want = (stats.multivariate_normal(m[[0, 2]], cov[np.ix_([0, 2], [0, 2])])
                .logpdf(x[:, [0, 2]])
                + np.log(stats.norm.cdf(hi[:, 1], mu, sd) - stats.norm.cdf(lo[:, 1], mu, sd)))
        se = np.asarray(got.stderr)
        assert np.all(se > 0) and np.all(se < 0.05)
        assert np.all(np.abs(got.log_prob - want) < 4 * se + 1e-3)

        mask = np.zeros(x.shape, bool)
        mask[:, 1] = True
        draws = np.asarray(flow.impute(params, jax.random.key(1), x, mask, 400,
                                       proposals=400))
        assert draws.shape == (400, 6, 3)
        np.testing.assert_array_equal(draws[:, :, [0, 2]], np.broadcast_to(
            x[:, [0, 2]], (400, 6, 2)))
        assert np.all(np.abs(draws[:, :, 1].mean(0) - mu) < 4 * sd / np.sqrt(400) + 0.02)
        np.testing.assert_allclose(draws[:, :, 1].std(0), sd, rtol=0.2)


def test_gaussian_imputed_suffix_is_exact_ancestral_sampling(gaussian):
    flow, params, x, m, cov = gaussian
    with jax.enable_x64(True):
        x = x.copy()
        x[:, 1:] = np.nan  # missing entries may hold NaN
        mask = np.isnan(x)
        draws = np.asarray(flow.impute(params, KEY, x, mask, 400))
    mu, sd = _conditional(m, cov, 1, [0], x)
    assert np.all(np.abs(draws[:, :, 1].mean(0) - mu) < 4 * sd / np.sqrt(400))
    pooled = (draws[:, :, 1] - mu) / sd
    assert stats.kstest(pooled.ravel(), "norm").pvalue > 1e-3


@pytest.fixture(scope="module")
def small_nits():
    """A 2-D NITS in float64 with perturbed (non-identity) params."""
    with jax.enable_x64(True):
        x = _data(200, 2, seed=1)
        flow = nits(2, arch=(4,), hidden=8, blocks=1)
        params = flow.data_init(cast(perturbed_params(flow, KEY, 0.5), jnp.float64), x)
    return flow, params, x


def test_nits_cdf_and_marginal_against_numerical_integration(small_nits):
    """F_1(x_1 | x_0) and log p(x_0) from Simpson's rule on the joint density, F_0 from
    Simpson's rule on the marginal density (itself integrating to 1)."""
    flow, params, x = small_nits
    rows = x[:3]
    lo, hi, m = -40.0, 50.0, 2001  # the data: mean 2, sd up to ~3
    # grids[0]: the whole line; grids[1 + 2 r], grids[2 + 2 r]: up to rows[r, 0], rows[r, 1]
    grids = [np.linspace(lo, hi, m)] + [np.linspace(lo, b, m) for b in rows.ravel()]
    with jax.enable_x64(True):
        u = np.asarray(flow.cdf(params, rows))
        # one call each (one compilation): marginal of x_0, joint along x_1 given each x_0
        first = np.concatenate([rows[:, 0], *grids])[:, None]
        with pytest.warns(RuntimeWarning, match="marginal_log_prob"):  # grid's far tails
            marg = np.asarray(flow.marginal_log_prob(params, first))
        marg, p0 = marg[:3], np.exp(marg[3:].reshape(len(grids), m))
        x1 = np.concatenate([np.r_[grids[0], grids[2 + 2 * r]] for r in range(3)])
        pts = np.stack([np.repeat(rows[:, 0], 2 * m), x1], axis=1)
        joint = np.exp(np.asarray(flow.log_prob(params, pts))).reshape(3, 2, m)
    np.testing.assert_allclose(simpson(p0[0], x=grids[0]), 1.0, atol=1e-8)
    for r in range(3):
        total = simpson(joint[r, 0], x=grids[0])
        np.testing.assert_allclose(marg[r], np.log(total), atol=1e-8)
        np.testing.assert_allclose(u[r, 1], simpson(joint[r, 1], x=grids[2 + 2 * r]) / total,
                                   atol=1e-8)
        np.testing.assert_allclose(u[r, 0], simpson(p0[1 + 2 * r], x=grids[1 + 2 * r]),
                                   atol=1e-8)


@pytest.mark.filterwarnings("ignore:log_prob_discrete")  # the grid reaches the far tails
def test_nits_discrete_probabilities_sum_to_one(small_nits):
    flow, params, x = small_nits
    a = np.arange(-25.0, 35.0)  # unit bins, ~10 sd either side
    grid = np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
    with jax.enable_x64(True):
        total = np.exp(np.asarray(flow.log_prob_discrete(params, grid))).sum()
    np.testing.assert_allclose(total, 1.0, atol=1e-9)


@pytest.mark.slow
def test_nits_quantile_and_narrow_bins_in_the_tails(small_nits):
    """``quantile`` inverts ``cdf``; bins of width 1e-4 match the density times the area,
    also in the tails where float64 no longer resolves the CDF difference and the
    Gauss-Legendre fallback answers; beyond, where the CDF itself rounds to 0 or 1, a
    warning names the rows (the documented tail limit)."""
    flow, params, x = small_nits
    a = np.arange(-25.0, 35.0)
    grid = np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
    with jax.enable_x64(True):
        u = np.asarray(flow.cdf(params, x[:5]))
        np.testing.assert_allclose(flow.quantile(params, u), x[:5], atol=1e-8)
        with pytest.warns(RuntimeWarning, match=r"log_prob_discrete: in \d+ row\(s\)"):
            narrow = np.asarray(flow.log_prob_discrete(params, grid, bin_width=1e-4))
        want = np.asarray(flow.log_prob(params, grid)) + 2 * np.log(1e-4)
        u = np.asarray(flow.cdf(params, grid))
    resolved = np.all((u > 0) & (u < 1), axis=1)
    assert want[resolved].min() < -60  # bin probabilities far below float64's resolution
    np.testing.assert_allclose(narrow[resolved], want[resolved], atol=1e-5)


def test_maf_discrete_is_stable_in_the_gaussian_tails(gaussian):
    flow, params, x, m, cov = gaussian
    with jax.enable_x64(True):
        far = x + np.array([[40.0, 0.0, 0.0]]) * np.sqrt(cov[0, 0])  # Phi rounds to 1
        got = np.asarray(flow.log_prob_discrete(params, far, bin_width=1e-3))
        want = np.asarray(flow.log_prob(params, far)) + 3 * np.log(1e-3)
        # width 0: a continuous coordinate (its density), here all but the first
        mixed = np.asarray(flow.log_prob_discrete(params, far, bin_width=[1e-3, 0.0, 0.0]))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, atol=1e-3)
    np.testing.assert_allclose(mixed, want - 2 * np.log(1e-3), atol=1e-3)


def test_which_flows_qualify_and_bad_input_errors(gaussian):
    flow, params, x, _, _ = gaussian
    for ok in (nits(2, hidden=4, blocks=0), iaf(2, layers=1), realnvp(2, layers=1),
               nsf(2, layers=1, linear=None), nsf(2, layers=1, linear=None, autoregressive=True),
               maf(2, layers=1, actnorm=True, standardize="diagonal")):
        assert ok.is_triangular
    for bad, why in ((maf(2), "layers=5"), (maf(2, layers=1, linear="permute"), "mixes"),
                     (nsf(2, layers=1), "linear='lu'"),
                     (nits(2, hidden=4, blocks=0, rotate=True), "rotate=True")):
        assert not bad.is_triangular
        with pytest.raises(ValueError, match=rf"{why}.*Supported: nits\(\.\.\.\) without"):
            bad.cdf(None, np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"u: expected probabilities in the open interval "
                                         r"\(0, 1\).*index \(0, 1\) = 1\.0"):
        flow.quantile(params, np.array([[0.5, 1.0, 0.2]]))
    lo, hi = x.copy(), x.copy()
    hi[2, 1] -= 1.0
    with pytest.raises(ValueError, match=r"lower > upper at row 2, coordinate 1"):
        flow.log_prob_censored(params, lo, hi)
    hi[2, 1] += 2.0
    with pytest.raises(ValueError, match=r"key: row 2 has coordinate 1 censored"):
        flow.log_prob_censored(params, lo, hi)
    with pytest.raises(ValueError, match=r"mask: expected a boolean array of the shape of x, "
                                         r"\(6, 3\)"):
        flow.impute(params, KEY, x, np.zeros((6, 2), bool), 3)
    with pytest.raises(ValueError, match=r"x: a non-finite value at index \(0, 0\)"):
        flow.impute(params, KEY, np.where(np.eye(6, 3) > 0, np.nan, x),
                    np.zeros((6, 3), bool), 3)
    with pytest.raises(ValueError, match=r"x_prefix: expected shape \(n, k\) .* got \(6, 4\)"):
        flow.marginal_log_prob(params, np.zeros((6, 4)))
    with pytest.raises(ValueError, match=r"bin_width: expected a finite number > 0"):
        flow.log_prob_discrete(params, x, bin_width=0.0)
    with pytest.raises(ValueError, match=r"numbers >= 0 \(0: a continuous coordinate\)"):
        flow.log_prob_discrete(params, x, bin_width=[1.0, -1.0, 1.0])
