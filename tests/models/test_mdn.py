"""Mixture density network (nitsjax.models.mdn): normalisation, the one-component
Gaussian closed form, sampling, errors, training by nj.fit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

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


def test_density_integrates_to_one_on_a_grid(data):
    x, y = data
    m1 = nj.models.mdn(2, 1, components=3, hidden=(8,))
    p1 = _perturbed(m1.init(jax.random.key(0), y[:, :1], x))
    g = np.linspace(-40, 50, 1501, dtype=np.float32)[:, None]
    lp = np.asarray(m1.log_prob(p1, g, np.repeat(x[:1], len(g), 0)))
    np.testing.assert_allclose(np.trapezoid(np.exp(lp), g[:, 0]), 1.0, atol=2e-3)

    m2 = nj.models.mdn(2, 2, components=3, hidden=(8,), covariance="full")
    p2 = _perturbed(m2.init(jax.random.key(0), y, x), scale=0.1)
    a = np.linspace(-25, 35, 121)
    b = np.linspace(3, 7, 121)
    grid = np.stack(np.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
    lp = np.asarray(m2.log_prob(p2, grid, np.repeat(x[:1], len(grid), 0)))
    mass = np.exp(lp).sum() * (a[1] - a[0]) * (b[1] - b[0])
    np.testing.assert_allclose(mass, 1.0, atol=2e-2)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_one_component_is_the_gaussian_closed_form(data, covariance):
    x, y = data
    model = nj.models.mdn(2, 2, components=1, hidden=(8,), covariance=covariance)
    params = _perturbed(model.init(jax.random.key(1), y, x), seed=2)
    _, means, chol = jax.jit(model.mixture)(params, jnp.asarray(x[:4]))
    f = params["frozen"]
    shift, scale = np.asarray(f["y_shift"]), np.asarray(f["y_scale"])
    lp = np.asarray(model.log_prob(params, y[:4], x[:4]))
    for i in range(4):
        L = np.asarray(chol[i, 0], np.float64)
        cov = np.diag(scale) @ L @ L.T @ np.diag(scale)
        mean = np.asarray(means[i, 0]) * scale + shift
        np.testing.assert_allclose(lp[i], stats.multivariate_normal(mean, cov).logpdf(y[i]),
                                   rtol=1e-4, atol=1e-4)
    if covariance == "diagonal":
        assert np.count_nonzero(np.asarray(chol) - np.diagonal(chol, 0, 2, 3)[..., None]
                                * np.eye(2)) == 0
    draws = np.asarray(model.sample(params, jax.random.key(3), x[0], 4000))
    assert draws.shape == (4000, 2)
    L = np.asarray(chol[0, 0])
    np.testing.assert_allclose(draws.mean(0), np.asarray(means[0, 0]) * scale + shift,
                               atol=float(np.max(4 * scale * np.sqrt(np.diag(L @ L.T) / 4000))))


def test_scale_free_and_errors(data):
    x, y = data
    model = nj.models.mdn(2, 2, components=2, hidden=(8,))
    p = model.init(jax.random.key(0), y, x)
    p_big = model.init(jax.random.key(0), y * 100 + 7, x * 1e3)
    lp, lp_big = model.log_prob(p, y[:5], x[:5]), model.log_prob(p_big, y[:5] * 100 + 7,
                                                                  x[:5] * 1e3)
    np.testing.assert_allclose(lp - 2 * np.log(100.0), lp_big, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="covariance: expected one of"):
        nj.models.mdn(2, 1, covariance="spherical")
    with pytest.raises(ValueError, match="components: expected an integer >= 1"):
        nj.models.mdn(2, 1, components=0)
    with pytest.raises(ValueError, match=r"y: expected shape \(n, 2\)"):
        model.log_prob(p, y[:, :1], x)


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
