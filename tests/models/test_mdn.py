"""Mixture density network (nitsjax.models.mdn): normalisation, the Gaussian (mixture)
closed form, sampling, scale-freedom, errors, training by nj.fit.

Each model is evaluated on one array shape (grid and data rows together), so every test
compiles each function once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import nitsjax as nj


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 2)) * 4 - 1).astype(np.float32)
    y = (rng.normal(size=(64, 2)) * np.array([3.0, 0.2]) + 5).astype(np.float32)
    return x, y


def _perturbed(params, seed=0, scale=0.3):
    leaves, tree = jax.tree_util.tree_flatten(params["net"])
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    net = [p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)]
    return {"net": jax.tree_util.tree_unflatten(tree, net), "frozen": params["frozen"]}


def test_diagonal_mixture_integrates_to_one_matches_its_closed_form_and_is_scale_free(data):
    x, y = data
    model = nj.models.mdn(2, 1, components=3, hidden=(8,))
    params = _perturbed(model.init(jax.random.key(0), y[:, :1], x))
    g = np.linspace(-40, 50, 1501, dtype=np.float32)[:, None]
    rows = np.concatenate([g, y[:4, :1]])  # grid (given x[0]) and four data rows
    xs = np.concatenate([np.repeat(x[:1], len(g), 0), x[:4]])
    lp = np.asarray(model.log_prob(params, rows, xs))
    np.testing.assert_allclose(np.trapezoid(np.exp(lp[: len(g)]), g[:, 0]), 1.0, atol=2e-3)
    logw, means, chol = jax.jit(model.mixture)(params, jnp.asarray(xs[-4:]))
    f = params["frozen"]
    shift, scale = float(f["y_shift"][0]), float(f["y_scale"][0])
    comp = stats.norm.logpdf(y[:4, :1], np.asarray(means[..., 0]) * scale + shift,
                             np.asarray(chol[..., 0, 0]) * scale)
    np.testing.assert_allclose(lp[-4:], logsumexp(np.asarray(logw) + comp, axis=1), rtol=1e-4)
    # the same model fitted to y * 100 + 7 given x * 1e3: densities differ by log 100
    big = model.init(jax.random.key(0), y[:, :1] * 100 + 7, x * 1e3)
    big = {"net": params["net"], "frozen": big["frozen"]}
    lp_big = np.asarray(model.log_prob(big, rows * 100 + 7, xs * 1e3))
    np.testing.assert_allclose(lp[-4:] - np.log(100.0), lp_big[-4:], rtol=1e-4, atol=1e-4)


def test_full_covariance_component_is_the_gaussian_closed_form(data):
    x, y = data
    model = nj.models.mdn(2, 2, components=1, hidden=(8,), covariance="full")
    params = _perturbed(model.init(jax.random.key(1), y, x), seed=2, scale=0.1)
    a, b = np.linspace(-25, 35, 121), np.linspace(3, 7, 121)
    grid = np.stack(np.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
    rows = np.concatenate([grid, y[:4]])
    xs = np.concatenate([np.repeat(x[:1], len(grid), 0), x[:4]])
    lp = np.asarray(model.log_prob(params, rows, xs))
    mass = np.exp(lp[: len(grid)]).sum() * (a[1] - a[0]) * (b[1] - b[0])
    np.testing.assert_allclose(mass, 1.0, atol=2e-2)
    _, means, chol = jax.jit(model.mixture)(params, jnp.asarray(xs[-4:]))
    f = params["frozen"]
    shift, scale = np.asarray(f["y_shift"]), np.asarray(f["y_scale"])
    for i in range(4):
        L = np.asarray(chol[i, 0], np.float64)
        assert L[0, 1] == 0 and L[1, 0] != 0  # lower triangular, correlated
        cov = np.diag(scale) @ L @ L.T @ np.diag(scale)
        mean = np.asarray(means[i, 0]) * scale + shift
        np.testing.assert_allclose(lp[-4 + i], stats.multivariate_normal(mean, cov).logpdf(y[i]),
                                   rtol=1e-4, atol=1e-4)
    draws = np.asarray(model.sample(params, jax.random.key(3), x[0], 4000))
    assert draws.shape == (4000, 2)
    L = np.asarray(chol[0, 0])  # x[0] is the first of the four rows
    sd = scale * np.sqrt(np.diag(L @ L.T))
    np.testing.assert_allclose(draws.mean(0), np.asarray(means[0, 0]) * scale + shift,
                               atol=float(np.max(4 * sd / np.sqrt(4000))))
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.1)


def test_bad_input_gets_clear_errors(data):
    x, y = data
    with pytest.raises(ValueError, match="covariance: expected one of"):
        nj.models.mdn(2, 1, covariance="spherical")
    with pytest.raises(ValueError, match="components: expected an integer >= 1"):
        nj.models.mdn(2, 1, components=0)
    model = nj.models.mdn(2, 2, components=1, hidden=(8,), covariance="full")
    with pytest.raises(ValueError, match=r"y: expected shape \(n, 2\)"):
        model.log_prob(model.init(jax.random.key(1), y, x), y[:, :1], x)


def test_fit_with_context_lowers_the_nll():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 1)).astype(np.float32)
    y = (np.sign(x) * 2 + 0.3 * rng.normal(size=(256, 1))).astype(np.float32)
    model = nj.models.mdn(1, 1, components=2, hidden=(8,))
    params, h = nj.fit(model, model.init(jax.random.key(0)), y[:192], y[192:],
                       context=x[:192], val_context=x[192:], key=jax.random.key(1), steps=40,
                       batch_size=64, learning_rate=1e-2, eval_every=40, progress=False)
    assert h.data_initialized
    assert h["val_nll"][-1] < h["val_nll"][0] - 0.3, h["val_nll"]
