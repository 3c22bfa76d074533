"""Spread divergence (nitsjax.spread): the Amari distance, the spread likelihood
estimates, and errors. Training to a result is slow-marked."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj
from nitsjax.spread import LinearICA, SpreadNLL, amari_distance


def test_amari_distance_closed_cases():
    a = np.array([[1.0, 0.5], [-0.3, 1.0]])
    assert amari_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    # columns permuted and rescaled: the same sources
    assert amari_distance(a, a[:, ::-1] * [2.0, -3.0]) == pytest.approx(0.0, abs=1e-12)
    # P = pinv(I) @ [[1, 1], [0, 1]]: one extra unit in row 0 and column 1 -> 2 / 4
    assert amari_distance(np.array([[1.0, 1.0], [0.0, 1.0]]), np.eye(2)) == pytest.approx(0.5)
    # undercomplete (3 x 2): pinv recovers P
    c = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert amari_distance(c, c @ np.diag([0.5, 4.0])) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="a, b"):
        amari_distance(np.eye(2), np.eye(3))


def test_linear_ica_spread_estimate_tends_to_exact_density():
    """Small spread, many importance samples: log (q * K)(y) ~ log q(y) (square A)."""
    model = LinearICA(2, 2)
    params = {"mixing": jnp.array([[1.0, 0.5], [-0.3, 1.0]])}
    y = jnp.array([[0.7, -0.4], [1.5, 0.9], [-0.2, 2.0]])
    est = model.spread_log_prob(params, y, 0.01, jax.random.key(0), 512)
    np.testing.assert_allclose(est, model.log_prob(params, y), atol=0.05)


class _Gaussian:
    """A standard normal 'flow' (hand-made, no compile cost)."""

    dim, context_dim, name = 1, None, "gaussian"

    def log_prob_batch(self, params, x, context=None, key=None):
        return jnp.sum(-0.5 * x**2 - 0.5 * math.log(2 * math.pi), -1)


def test_spread_nll_estimates_the_convolved_nll():
    """N(0, 1) * N(0, s^2) = N(0, 1 + s^2): at x = 0 the expected spread NLL is
    0.5 log(2 pi (1 + s^2)) + s^2 / (2 (1 + s^2))."""
    s = 0.8
    value = SpreadNLL(s, num_samples=128)(_Gaussian(), None, jnp.zeros((3000, 1)), None,
                                          jax.random.key(1))
    v = 1 + s**2
    assert float(value) == pytest.approx(0.5 * math.log(2 * math.pi * v) + s**2 / (2 * v),
                                         abs=0.03)
    assert SpreadNLL(s).__name__ == "spread_nll"


def test_errors():
    model = LinearICA(3, 2)
    params = model.init(jax.random.key(0))
    x = np.zeros((10, 3))
    for sigma in (-0.1, 0.0, float("nan"), "a"):
        with pytest.raises(ValueError, match="sigma"):
            nj.spread.fit(model, params, x, sigma=sigma, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"x: expected data of shape \(n, 3\)"):
        nj.spread.fit(model, params, np.zeros((10, 2)), sigma=0.1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="batch_size"):
        nj.spread.fit(model, params, x, sigma=0.1, key=jax.random.key(0), batch_size=11)
    with pytest.raises(ValueError, match="n_sources"):
        LinearICA(2, 3)
    with pytest.raises(TypeError, match="model"):
        nj.spread.fit(object(), params, x, sigma=0.1, key=jax.random.key(0))
    flow = nj.flows.maf(2, layers=1, hidden=(4,))
    p = None  # the arguments are checked before params are used
    with pytest.raises(ValueError, match="spread"):
        nj.fit(flow, p, np.zeros((10, 2)), key=jax.random.key(0), spread=-1.0)
    with pytest.raises(ValueError, match="spread: .*loss='nll'"):
        nj.fit(flow, p, np.zeros((10, 2)), key=jax.random.key(0), spread=0.1, loss="energy")


@pytest.mark.slow
def test_spread_ica_recovers_square_mixing():
    """Deterministic 2 x 2 mixing of Laplace sources: spread MLE finds A."""
    rng = np.random.default_rng(0)
    a = np.array([[1.0, 0.5], [-0.3, 1.0]])
    x = (rng.laplace(size=(2000, 2)) / np.sqrt(2)) @ a.T
    model = LinearICA(2, 2)
    params, losses = nj.spread.fit(model, model.init(jax.random.key(1)), x, sigma=0.1,
                                   key=jax.random.key(2), steps=1500, learning_rate=1e-2)
    assert losses.shape == (1500,) and losses[-100:].mean() < losses[:100].mean()
    assert amari_distance(a, params["mixing"]) < 0.1


@pytest.mark.slow
def test_fit_with_spread_on_a_circle():
    th = np.random.default_rng(0).uniform(0, 2 * np.pi, 600)
    x = np.c_[np.cos(th), np.sin(th)]
    flow = nj.flows.maf(2, layers=2, hidden=(16, 16))
    params, h = nj.fit(flow, flow.init(jax.random.key(0)), x[:400], x[400:],
                       key=jax.random.key(1), steps=300, batch_size=100, eval_every=100,
                       spread=0.05, progress=False)
    assert h.loss == "spread_nll" and h["val_loss"][-1] < h["val_loss"][0]
    r = np.linalg.norm(np.asarray(flow.sample(params, jax.random.key(2), 500)), axis=1)
    assert abs(np.median(r) - 1.0) < 0.1


# ------------------------------------------------------------------ learned spread
def test_learned_spread_kernel_is_the_full_covariance_gaussian():
    """``params["spread"]`` makes the kernel N(0, sigma^2 L L^T), det L = 1: the ICA
    estimate against brute-force Monte Carlo over the sources, and the data term against
    the Gaussian density with that covariance (scipy)."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    from nitsjax.spread import SPREAD_MAX_RATIO, _log_spread_data, spread_factor

    w = np.array([[2.0, 0.0, 0.0], [0.7, -0.2, 0.0], [-0.3, 0.5, -3.0]])
    sigma = 0.3
    y = np.array([[0.3, -0.2, 0.5], [1.0, 0.4, -0.6]])
    x0 = np.array([0.1, 0.2, -0.1])
    a = np.array([[1.0, 0.4], [-0.5, 1.0], [0.3, 0.8]])

    @jax.jit
    def ours(w, y):
        tril = spread_factor({"spread": w})
        data = _log_spread_data(tril, y, jnp.tile(x0, (3, 1)), sigma)  # one point
        est = LinearICA(3, 2).spread_log_prob({"mixing": a, "spread": w}, y, sigma,
                                              jax.random.key(0), 2048)
        return tril, data, est

    tril, data, est = (np.asarray(v, np.float64) for v in ours(w, y))
    assert np.linalg.det(tril) == pytest.approx(1.0, abs=1e-5)
    sv = np.linalg.svd(tril, compute_uv=False)
    assert sv.min() >= 1 / SPREAD_MAX_RATIO and sv.max() <= SPREAD_MAX_RATIO
    assert sv.max() > 1.05  # not the identity
    assert spread_factor({"mixing": w}) is None
    cov = sigma**2 * tril @ tril.T
    np.testing.assert_allclose(data, multivariate_normal(x0, cov).logpdf(y), atol=1e-4)
    s = np.random.default_rng(0).laplace(size=(40_000, 2)) / np.sqrt(2)
    lp = np.stack([multivariate_normal(np.zeros(3), cov).logpdf(yi - s @ a.T) for yi in y])
    np.testing.assert_allclose(est, logsumexp(lp, axis=1) - np.log(len(s)), atol=0.02)


@pytest.mark.slow
def test_learned_spread_raises_the_divergence_it_is_trained_on():
    """fit(learn_spread=True) on undercomplete ICA with the model all but frozen (learning
    rate 1e-9): the spread's ascent alone must raise the spread KL estimate of that model
    above its value under L = I, keeping det L = 1; a normal run stays finite."""
    from nitsjax.spread import spread_factor, spread_kl

    rng = np.random.default_rng(0)
    a = np.array([[1.0, 0.4], [-0.5, 1.0], [0.3, 0.8]])
    x = jnp.asarray((rng.laplace(size=(1000, 2)) / np.sqrt(2)) @ a.T, jnp.float32)
    model = LinearICA(3, 2)
    p0 = model.init(jax.random.key(1))
    params, _ = nj.spread.fit(model, p0, x, sigma=0.1, key=jax.random.key(2), steps=200,
                              learning_rate=1e-9, spread_learning_rate=3e-2,
                              learn_spread=True)
    np.testing.assert_allclose(params["mixing"], p0["mixing"], atol=1e-5)
    tril = spread_factor(params)
    assert float(jnp.linalg.det(tril)) == pytest.approx(1.0, abs=1e-4)
    keys = jax.random.split(jax.random.key(3), 8)
    kl = [np.mean([float(spread_kl(model, p, x[:256], 0.1, k)) for k in keys])
          for p in (params, p0)]
    assert kl[0] > kl[1] + 0.1, kl
    params, losses = nj.spread.fit(model, p0, x, sigma=0.05, key=jax.random.key(2),
                                   steps=300, learning_rate=1e-2, learn_spread=True)
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(params["mixing"]))
    with pytest.raises(ValueError, match="spread_learning_rate"):
        nj.spread.fit(model, params, x, sigma=0.05, key=jax.random.key(0),
                      learn_spread=True, spread_learning_rate=-1.0)
