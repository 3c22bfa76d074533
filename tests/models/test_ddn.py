"""Deconvolutional density network (nitsjax.models.ddn): normalisation over the bins,
sampling by the bin probabilities, data init of the bounds, errors. Training by
``nj.fit`` with a context: ``tests/test_cli.py::test_conditional_training_from_a_table``
(the command line's conditional path trains a ddn and checks that the NLL falls)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj
from nitsjax import registry

SMALL = dict(bins=8, hidden=(8,), channels=(4,), kernel=3)


def _perturbed(model, params, seed=0, scale=0.5):
    """``params`` with every network weight moved at random (a fresh DDN is uniform)."""
    leaves, tree = jax.tree_util.tree_flatten(params["net"])
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    net = [p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)]
    return {"net": jax.tree_util.tree_unflatten(tree, net), "frozen": params["frozen"]}


def _centres(params, model):
    edges = np.asarray(model.bin_edges(params))
    return (edges[:, :-1] + edges[:, 1:]) / 2, np.diff(edges, axis=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32) * 5 + 3
    y = rng.uniform(2.0, 12.0, size=(64, 2)).astype(np.float32)
    return x, y


@pytest.mark.parametrize("y_dim", [1, 2])
def test_density_sums_to_one_over_the_bins_and_fresh_is_uniform(data, y_dim):
    x, y = data
    model = nj.models.ddn(2, y_dim, **SMALL)
    fresh = model.init(jax.random.key(0), y[:, :y_dim], x)
    params = _perturbed(model, fresh)
    c, w = _centres(params, model)
    grid = np.stack(np.meshgrid(*c, indexing="ij"), -1).reshape(-1, y_dim)  # bin-major order
    vol = np.prod(w[:, 0])
    grid2 = np.concatenate([grid, grid])  # the same grid for two inputs x
    x2 = np.repeat(x[:2], len(grid), axis=0)
    lp = np.asarray(model.log_prob(params, grid2, x2)).reshape(2, -1)
    np.testing.assert_allclose(np.exp(lp).sum(1) * vol, 1.0, rtol=1e-5)
    if y_dim == 1:
        probs = np.asarray(model.bin_probs(params, x[:2])).reshape(2, -1)
        np.testing.assert_allclose(np.exp(lp) * vol, probs, rtol=1e-5)
    assert np.std(np.exp(lp[0])) > 1e-3  # the perturbed model is not uniform
    lp0 = np.asarray(model.log_prob(fresh, grid2, x2))  # the same compiled function
    np.testing.assert_allclose(lp0, -np.log(vol * model.bins**y_dim), rtol=1e-5)


def test_sampling_follows_the_bin_probabilities(data):
    x, y = data
    model = nj.models.ddn(2, 1, **SMALL)
    params = _perturbed(model, model.init(jax.random.key(0), y[:, :1], x), seed=1, scale=1.0)
    n = 4000
    draws = np.asarray(model.sample(params, jax.random.key(2), x[0], n))
    assert draws.shape == (n, 1)
    edges = np.asarray(model.bin_edges(params))[0]
    counts, _ = np.histogram(draws[:, 0], bins=edges)
    assert counts.sum() == n  # every draw inside the box
    p = np.asarray(model.bin_probs(params, x[:1]))[0]
    assert np.all(np.abs(counts / n - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-3), (counts / n, p)
    within = (draws[:, 0] - edges[0]) / (edges[1] - edges[0]) % 1  # uniform within a bin
    assert abs(within.mean() - 0.5) < 0.02
    many = model.sample(params, jax.random.key(3), x[:3], 5)
    assert many.shape == (5, 3, 1)


def test_data_init_sets_the_bounds_and_the_input_scale(data):
    x, y = data
    model = nj.models.ddn(2, 2, **SMALL)
    params = model.init(jax.random.key(0))
    assert model.needs_data_init(params)
    params = model.data_init(params, y, x)
    assert not model.needs_data_init(params)
    f = params["frozen"]
    span = y.max(0) - y.min(0)
    np.testing.assert_allclose(f["lower"], y.min(0) - 0.1 * span, rtol=1e-6)
    np.testing.assert_allclose(f["upper"], y.max(0) + 0.1 * span, rtol=1e-6)
    np.testing.assert_allclose(f["x_shift"], x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(f["x_scale"], x.std(0), rtol=1e-5)
    given = nj.models.ddn(2, 1, y_bounds=(-1.0, 20.0), **SMALL)
    p = given.data_init(given.init(jax.random.key(0)), y[:, :1], x)
    np.testing.assert_allclose([p["frozen"]["lower"], p["frozen"]["upper"]], [[-1.0], [20.0]])
    assert given == nj.models.ddn(2, 1, y_bounds=[-1, 20], **SMALL)  # a value
    assert registry.get_model("ddn") is nj.models.ddn


def test_bad_input_gets_clear_errors(data):
    x, y = data
    with pytest.raises(ValueError, match="y_bounds: axis 0 has lower=3.0 and upper=1.0"):
        nj.models.ddn(2, 1, y_bounds=(3.0, 1.0))
    with pytest.raises(ValueError, match=r"y_bounds: expected \(\(lower_1"):
        nj.models.ddn(2, 2, y_bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"y_dim: expected one of \(1, 2\), got 3"):
        nj.models.ddn(2, 3)
    with pytest.raises(ValueError, match="bins: 12 is not a multiple of 2\\*\\*len"):
        nj.models.ddn(2, 1, bins=12, channels=(8, 4, 2))
    model = nj.models.ddn(2, 1, **SMALL)
    with pytest.raises(ValueError, match="not set yet.*model.init\\(key, y, x\\)"):
        model.log_prob(model.init(jax.random.key(0)), y[:2, :1], x[:2])
    params = model.init(jax.random.key(0), y[:, :1], x)
    with pytest.raises(ValueError, match=r"y: expected shape \(n, 1\), got \(2, 2\)"):
        model.log_prob(params, y[:2], x[:2])
    with pytest.raises(ValueError, match=r"x: expected shape \(2, 2\), got \(2, 3\)"):
        model.log_prob(params, y[:2, :1], np.zeros((2, 3), np.float32))
    far = np.array([[5.0], [100.0], [-50.0]], np.float32)
    with pytest.raises(ValueError, match=r"2 row\(s\) outside.*rows 1 \(\[100.0\]\), 2 .*"
                                         r"y_bounds="):
        model.log_prob(params, far, x[:3])
    lp = jax.jit(model.log_prob_batch)(params, jnp.asarray(far), jnp.asarray(x[:3]))
    assert np.isfinite(lp[0]) and np.isneginf(lp[1:]).all()
