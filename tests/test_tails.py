"""``nj.tails`` (Hill's tail index, heavy/light), the ``marginal_t`` base and ``mtaf``'s
tails: the mask estimated at data init, polynomial tails kept, bad input refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import nitsjax as nj
from nitsjax.distributions.marginal_t import marginal_t, tails_pending, with_tails


def _t_columns(n, dfs, gaussian=0, seed=0):
    rng = np.random.default_rng(seed)
    cols = [rng.standard_t(df, n) for df in dfs] + [rng.standard_normal(n)
                                                     for _ in range(gaussian)]
    return np.column_stack(cols)


def test_hill_recovers_known_tail_indices():
    """Student-t with df 2 and 3 (tail index = df) and an exact Pareto(2.5) tail."""
    x = _t_columns(20000, (2.0, 3.0))
    pareto = np.random.default_rng(1).pareto(2.5, 20000) + 1.0
    est = nj.tails.estimate_tail_index(np.column_stack([x, pareto]))
    np.testing.assert_allclose(est, [2.0, 3.0, 2.5], atol=0.45)
    assert abs(est[2] - 2.5) < 0.25  # Pareto: Hill's estimator is unbiased for its tail


def test_sides_and_heavy_mask():
    rng = np.random.default_rng(2)
    skew = np.where(rng.random(5000) < 0.5, rng.pareto(1.5, 5000), -np.abs(rng.normal(size=5000)))
    up, low = (nj.tails.estimate_tail_index(skew, side=s)[0] for s in ("upper", "lower"))
    assert up < 2.0 < 4.0 < low
    x = _t_columns(5000, (1.5, 2.0), gaussian=2, seed=3)
    np.testing.assert_array_equal(nj.tails.is_heavy(x), [True, True, False, False])
    np.testing.assert_array_equal(nj.tails.is_heavy(x, threshold=1.0), [False] * 4)
    assert 5.0 < nj.tails.gaussian_reference(1000) < nj.tails.gaussian_reference(100000) < 12


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.zeros((5, 2))), "at least 20 rows"),
    (dict(x=np.full((50, 2), np.nan)), "x"),
    (dict(x=np.ones((50, 2)), k=50), "k: expected an integer with 2 <= k < n = 50"),
    (dict(x=np.ones((50, 2)), side="left"), "side"),
])
def test_estimate_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nj.tails.estimate_tail_index(**kwargs)
    with pytest.raises(ValueError, match="threshold"):
        nj.tails.is_heavy(np.ones((50, 2)), threshold=-1.0)


def test_marginal_t_base_matches_scipy():
    base = marginal_t(3, heavy=[True, False, True], df=[2.0, 9.0, 3.5], learn_df=True)
    params = base.init(jax.random.key(0))
    params["log_df"] = jnp.asarray([np.log(2.0), 0.0, 0.0], jnp.float32)  # df 2 -> 4
    z = np.array([0.3, -1.2, 7.0])
    want = stats.t.logpdf(0.3, 4.0) + stats.norm.logpdf(-1.2) + stats.t.logpdf(7.0, 3.5)
    np.testing.assert_allclose(jax.jit(base.log_prob)(params, jnp.asarray(z)), want, rtol=1e-5)
    unknown = marginal_t(3).init(jax.random.key(0))  # Gaussian until the tails are set
    np.testing.assert_allclose(jax.jit(marginal_t(3).log_prob)(unknown, jnp.zeros(3)),
                               3 * stats.norm.logpdf(0.0), rtol=1e-6)
    assert bool(tails_pending(unknown))
    assert not bool(tails_pending(with_tails(unknown, jnp.ones(3), jnp.full(3, 3.0))))


def test_mtaf_estimates_the_mask_at_init_and_keeps_polynomial_tails():
    x = _t_columns(4000, (2.0,), gaussian=1, seed=4)[:, ::-1].copy().astype(np.float32)
    flow = nj.flows.mtaf(2, layers=1, hidden=(8,), bins=4)
    fresh = flow.init(jax.random.key(0))
    assert flow.needs_data_init(fresh)
    params = flow.init(jax.random.key(0), x)
    assert not flow.needs_data_init(params)
    heavy, df = flow.tails(params)
    np.testing.assert_array_equal(heavy, [False, True])
    np.testing.assert_allclose(df, nj.tails.estimate_tail_index(x), rtol=1e-3)  # scale-free
    # beyond the spline bound the map is affine: log p falls like -(df + 1) log|x|
    far = np.array([[0.0, 1e4], [0.0, 2e4]], np.float32)
    lp = np.asarray(flow.log_prob(params, far), np.float64)
    np.testing.assert_allclose(lp[1] - lp[0], -(df[1] + 1) * np.log(2.0), atol=0.02)


@pytest.mark.parametrize("kwargs, match", [
    (dict(df=0.0), "df: degrees of freedom must be finite and > 0"),
    (dict(df=[3.0, -1.0]), "df: degrees of freedom must be finite and > 0"),
    (dict(heavy=[True, False, True]), r"heavy: expected None .* or 2 booleans"),
    (dict(heavy=[0.5, 1.0]), "heavy: expected None"),
    (dict(standardize="whiten"), "standardize: .*would mix heavy- and light-tailed"),
    (dict(order=[0, 0]), r"order: expected None or a permutation of range\(2\)"),
    (dict(learn_df=1), "learn_df"),
])
def test_mtaf_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nj.flows.mtaf(2, **kwargs)
