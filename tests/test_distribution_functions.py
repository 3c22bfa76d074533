"""Distribution functions of triangular flows (``nitsjax.distribution_functions``) against
closed forms (a one-layer MAF at its data init is the fitted Gaussian) and numerical
integration of the joint density (a perturbed NITS), in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import cast
from scipy import stats
from scipy.integrate import simpson

from nitsjax.flows import iaf, maf, nits, nsf, realnvp

KEY = jax.random.key(0)


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    mix = np.triu(rng.normal(size=(d, d)) * 0.6) + np.eye(d)
    return rng.normal(size=(n, d)) @ mix * np.arange(1, d + 1) + 2.0


def _perturbed(flow, scale, dtype=np.float64):
    """Fresh params plus noise (NumPy: no compilation), away from the identity init; the
    standardising layer is left fresh, for ``data_init`` to set."""
    rng = np.random.default_rng(0)
    fresh = flow.init(KEY)
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(np.asarray(a, dtype) + scale * rng.normal(size=a.shape)), fresh)
    if "standardize" in params["bijector"]:
        params["bijector"]["standardize"] = jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, dtype), fresh["bijector"]["standardize"])
    return params


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


def _log_density(flow, params, pts, chunk=4096):
    """``flow.log_prob`` in chunks of one shape (one compilation for every test here)."""
    n = len(pts)
    pad = np.zeros((-n % chunk, pts.shape[1]), pts.dtype)
    full = np.concatenate([pts, pad])
    return np.concatenate([np.asarray(flow.log_prob(params, full[i:i + chunk]))
                           for i in range(0, len(full), chunk)])[:n]


@pytest.fixture(scope="module")
def small_nits():
    """A 2-D NITS in float64 with perturbed (non-identity) params."""
    with jax.enable_x64(True):
        x = _data(200, 2, seed=1)
        flow = nits(2, arch=(4,), hidden=8, blocks=1)
        params = flow.data_init(_perturbed(flow, 0.5), x)
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
        joint = np.exp(_log_density(flow, params, pts)).reshape(3, 2, m)
    np.testing.assert_allclose(simpson(p0[0], x=grids[0]), 1.0, atol=1e-8)
    for r in range(3):
        total = simpson(joint[r, 0], x=grids[0])
        np.testing.assert_allclose(marg[r], np.log(total), atol=1e-8)
        np.testing.assert_allclose(u[r, 1], simpson(joint[r, 1], x=grids[2 + 2 * r]) / total,
                                   atol=1e-8)
        np.testing.assert_allclose(u[r, 0], simpson(p0[1 + 2 * r], x=grids[1 + 2 * r]),
                                   atol=1e-8)


@pytest.mark.filterwarnings("ignore:log_prob_discrete")  # the grid reaches the far tails
def test_nits_discrete_probabilities_sum_to_one_and_narrow_bins_match_the_density(small_nits):
    """Unit bins on a 60 x 60 grid (~10 sd either side) sum to 1. Bins of width 1e-4
    match the density times the area, also where float64 no longer resolves the CDF
    difference (bin probabilities below 1.5e-8) and the Gauss-Legendre fallback answers;
    checked down to densities of e^-25, short of where the CDF itself rounds to 0 or 1
    (the documented tail limit)."""
    flow, params, x = small_nits
    a = np.arange(-25.0, 35.0)
    grid = np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
    with jax.enable_x64(True):
        total = np.exp(np.asarray(flow.log_prob_discrete(params, grid))).sum()
        narrow = np.asarray(flow.log_prob_discrete(params, grid, bin_width=1e-4))
        log_f = _log_density(flow, params, grid)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    check = log_f > -25
    assert np.sum(check & (log_f < np.log(1.5e-8 / 1e-4) - 2)) > 10  # fallback rows
    np.testing.assert_allclose(narrow[check], log_f[check] + 2 * np.log(1e-4), atol=1e-5)


def test_maf_discrete_is_stable_in_the_gaussian_tails(gaussian):
    """A bin 40 sd out, where Phi rounds to 1: log(Phi(b) - Phi(a)) reflected into the
    lower tail; the other coordinates continuous (width 0: their density)."""
    flow, params, x, m, cov = gaussian
    with jax.enable_x64(True):
        far = x + np.array([[40.0, 0.0, 0.0]]) * np.sqrt(cov[0, 0])
        got = np.asarray(flow.log_prob_discrete(params, far, bin_width=[1e-3, 0.0, 0.0]))
        want = np.asarray(flow.log_prob(params, far)) + np.log(1e-3)
    assert np.all(np.isfinite(got)) and np.all(want < -700)
    np.testing.assert_allclose(got, want, atol=1e-3)


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


def test_conditional_flow_takes_a_context_everywhere():
    flow = maf(2, layers=1, hidden=(8,), context_dim=1)
    params = _perturbed(flow, 0.3, np.float32)
    x = np.array([[0.3, -1.0], [1.5, 0.2], [-0.4, 2.0]], np.float32)
    c = np.array([[0.0], [1.0], [-2.0]], np.float32)
    u = flow.cdf(params, x, c)
    np.testing.assert_allclose(flow.quantile(params, u, c), x, atol=1e-4)
    with pytest.raises(ValueError, match="context: this flow is conditional"):
        flow.cdf(params, x)


@pytest.mark.slow  # ~10 s: the NITS particle sampler compiled
def test_nits_censored_and_imputed_against_numerical_integration(small_nits):
    """2-D NITS: x_0 censored with x_1 observed (importance sampling) and x_0 imputed
    given x_1 (resampling), against Simpson's rule on the joint (the exact path, last
    coordinate censored, is the same code as for the Gaussian MAF above)."""
    flow, params, x = small_nits
    rows = x[:3]
    lo_end, hi_end, m = -40.0, 50.0, 2001
    grids, pts = [], []
    for a, b in rows:  # per row: x_0 on the whole line and on (a - 1, inf), given b
        g = [np.linspace(lo_end, hi_end, m), np.linspace(a - 1.0, hi_end, m)]
        grids.append(g)
        pts += [np.stack([g[0], np.full(m, b)], 1), np.stack([g[1], np.full(m, b)], 1)]
    with jax.enable_x64(True):
        dens = np.exp(_log_density(flow, params, np.concatenate(pts))).reshape(3, 2, m)
        lo, hi = rows.copy(), rows.copy()
        lo[:, 0], hi[:, 0] = rows[:, 0] - 1.0, np.inf
        first = flow.log_prob_censored(params, lo, hi, key=KEY, num_samples=500)
        mask = np.array([[True, False]] * 3)
        draws = np.asarray(flow.impute(params, KEY, rows, mask, 500, proposals=500))
    for r in range(3):
        g, f = grids[r], dens[r]
        want = np.log(simpson(f[1], x=g[1]))
        se = float(first.stderr[r])
        assert 0 < se < 0.1 and abs(float(first.log_prob[r]) - want) < 4 * se + 1e-6
        total = simpson(f[0], x=g[0])
        mean = simpson(g[0] * f[0], x=g[0]) / total
        sd = np.sqrt(simpson((g[0] - mean) ** 2 * f[0], x=g[0]) / total)
        assert abs(draws[:, r, 0].mean() - mean) < 5 * sd / np.sqrt(500) + 0.05 * sd


@pytest.mark.slow  # ~9 s: four flows compiled
def test_one_layer_flows_are_triangular_in_the_data_order():
    """For each qualifying constructor (perturbed params), F_i depends on x_<=i only, and
    on x_i increasingly: changing the last coordinate moves only the last CDF."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    x2 = x.copy()
    x2[:, 2] += 0.5
    for flow in (iaf(3, layers=1, hidden=(4,)), realnvp(3, layers=1, hidden=(4,)),
                 nsf(3, layers=1, hidden=(4,), linear=None),
                 nsf(3, layers=1, hidden=(4,), linear=None, autoregressive=True)):
        params = _perturbed(flow, 0.3, np.float32)
        both = np.asarray(flow.cdf(params, np.concatenate([x, x2])))
        np.testing.assert_array_equal(both[:8, :2], both[8:, :2])
        assert np.all(both[8:, 2] > both[:8, 2]), flow.name
