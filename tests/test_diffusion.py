"""Tests of nj.diffusion (Lu et al., ICML 2022): the probability-flow ODE density of an exact
Gaussian score in closed form, the denoising score matching targets of orders 1-3 against
the exact derivatives of a Gaussian mixture's marginal score, the standardisation's
units, bad input; slow: short fits of each order improve on their initialisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj
from nitsjax import diffusion as dm

SDE = dm.VPSDE()


# ------------------------------------------------- probability-flow ODE, exact score
def _gaussian_noise_fn(s2):
    """``e(z, t) = -sigma_t * score`` of data N(0, s2 I): ``x_t ~ N(0, v_t I)``,
    ``v_t = alpha_t^2 s2 + sigma_t^2``."""

    def e(params, z, t):
        a, sig = SDE.marginal(t)
        return sig * z / (a**2 * s2 + sig**2)

    return e


def test_ode_log_prob_of_the_exact_gaussian_score():
    # with the exact score of N(0, s2 I) the ODE is the linear map z -> z sqrt(v_1 / v_t),
    # so the model is N(0, v_eps / v_1) exactly (v_1 = 1 + alpha_1^2 (s2 - 1), not 1)
    s2, eps = 4.0, 1e-3
    e = _gaussian_noise_fn(s2)
    a_eps, sig_eps = SDE.marginal(eps)
    a_1, sig_1 = SDE.marginal(1.0)
    var = (a_eps**2 * s2 + sig_eps**2) / (a_1**2 * s2 + sig_1**2)
    x = jnp.array([[0.3, -1.0], [2.0, 0.5], [-3.0, 4.0]])
    want = jnp.sum(jax.scipy.stats.norm.logpdf(x, scale=jnp.sqrt(var)), -1)
    got = dm.flow_log_prob(SDE, e, None, x, eps=eps, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, want, atol=2e-4)


@pytest.mark.slow
def test_ode_sample_of_the_exact_gaussian_score_is_the_linear_map():
    s2, eps = 4.0, 1e-3
    a_eps, sig_eps = SDE.marginal(eps)
    a_1, sig_1 = SDE.marginal(1.0)
    var = (a_eps**2 * s2 + sig_eps**2) / (a_1**2 * s2 + sig_1**2)
    z1 = jax.random.normal(jax.random.key(0), (3, 2))
    xs = dm.flow_sample(SDE, _gaussian_noise_fn(s2), None, z1, eps=eps, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(xs, z1 * jnp.sqrt(var), rtol=1e-3, atol=1e-4)


# ----------------------------------------- DSM targets against a mixture's exact score
W = jnp.array([0.3, 0.7])
MU = jnp.array([[-1.5, 0.5], [1.0, -0.5]])
S2 = 0.25


def _mixture_noise_fn(t_fixed):
    """``e = -sigma_t grad log q_t`` of the x_t-marginal of the mixture sum_k W_k N(MU_k,
    S2 I), in closed form (its derivatives by autodiff are exact)."""
    a, sig = SDE.marginal(t_fixed)
    var = a**2 * S2 + sig**2

    def log_q(y):
        comp = -0.5 * jnp.sum((y - a * MU) ** 2, -1) / var
        return jax.scipy.special.logsumexp(comp + jnp.log(W))

    def e(y, t):
        return -sig * jax.grad(log_q)(y)

    return e


def _moment_matched_noise_fn(t_fixed):
    """The exact score of the Gaussian with the mixture's mean and covariance (wrong for
    the mixture at every order)."""
    a, sig = SDE.marginal(t_fixed)
    mean = W @ MU
    cov = S2 * jnp.eye(2) + (W[:, None] * (MU - mean)).T @ (MU - mean)
    prec = jnp.linalg.inv(a**2 * cov + sig**2 * jnp.eye(2))

    def e(y, t):
        return sig * prec @ (y - a * mean)

    return e


def _residual_stats(noise_fn, t, order, trace, n=20000):
    """``(mean, stderr)`` of every residual entry times (1, x_t): zero in expectation at the
    true score, since each residual's conditional mean given x_t is zero."""
    k = jax.random.split(jax.random.key(1), 4)
    comp = jax.random.bernoulli(k[0], W[1], (n,)).astype(jnp.int32)
    x0 = MU[comp] + jnp.sqrt(S2) * jax.random.normal(k[1], (n, 2))
    noise = jax.random.normal(k[2], (n, 2))
    v = jax.random.rademacher(k[3], (n, 2), jnp.float32)
    a, sig = SDE.marginal(t)
    xt = a * x0 + sig * noise

    def one(x0i, ni, vi):
        r = dm.residuals(noise_fn, x0i, t, ni, vi, SDE, order, trace)
        return jnp.concatenate([jnp.ravel(r[key]) for key in sorted(r)])

    r = jax.jit(jax.vmap(one))(x0, noise, v)
    feats = jnp.concatenate([r, r * xt[:, :1], r * xt[:, 1:]], axis=1)
    return jnp.mean(feats, 0), jnp.std(feats, 0) / jnp.sqrt(n)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_dsm_targets_of_orders_1_to_3_match_the_exact_derivatives(trace):
    t = 0.2
    mean, se = _residual_stats(_mixture_noise_fn(t), t, 3, trace)
    assert float(jnp.max(jnp.abs(mean) / se)) < 4.5
    mean, se = _residual_stats(_moment_matched_noise_fn(t), t, 3, trace)
    assert float(jnp.max(jnp.abs(mean) / se)) > 6.0


def test_dsm_third_order_residual_sees_the_gradient_of_the_trace():
    # e + (sigma / 2) |y - y0|^2 (1, 1) has the value and Jacobian of e at y0 but
    # grad tr(de/dx) larger by sigma (1, 1): only r3 changes there, by -sigma^3 (1, 1)
    t = 0.2
    true = _mixture_noise_fn(t)
    a, sig = SDE.marginal(t)
    y0 = jnp.array([0.2, -0.1])

    def bumped(y, tt):
        return true(y, tt) + 0.5 * sig * jnp.sum((y - y0) ** 2) * jnp.ones(2)

    x0, noise, v = y0 / a, jnp.zeros(2), jnp.ones(2)  # x_t = y0
    r_true, r_bump = (jax.jit(lambda f=f: dm.residuals(f, x0, t, noise, v, SDE, 3, "exact"))()
                      for f in (true, bumped))
    for key in ("r1", "r2", "r2_trace"):
        np.testing.assert_allclose(r_bump[key], r_true[key], atol=1e-5)
    np.testing.assert_allclose(r_bump["r3"] - r_true["r3"], -sig**3 * jnp.ones(2), rtol=1e-4)


# ------------------------------------------------------------- units and the model
@pytest.mark.slow
def test_log_prob_is_in_the_data_units():
    model = dm.diffusion(2, hidden=(8,), eps=1e-3, rtol=1e-4, atol=1e-4)
    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    params = model.init(jax.random.key(0))
    pa = model.data_init(params, x)
    pb = model.data_init(params, 3.0 * x + 1.0)
    lp_a = model.log_prob(pa, x[:4])
    lp_b = model.log_prob(pb, 3.0 * x[:4] + 1.0)
    # equal up to the solver's tolerance (rtol 1e-4); the log-Jacobian is 2 log 3 = 2.2
    np.testing.assert_allclose(lp_b, lp_a - 2 * np.log(3.0), atol=1e-2)
    assert model.sample(pb, jax.random.key(1), 3).shape == (3, 2)


# ------------------------------------------------------------------------- errors
def test_bad_input_is_refused_with_the_argument_named():
    x = np.zeros((8, 2), np.float32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="order"):
        dm.fit(x, order=4, key=key)
    with pytest.raises(ValueError, match="x: 2 non-finite"):
        dm.fit(np.where(np.eye(8, 2) > 0, np.nan, x), key=key)
    with pytest.raises(ValueError, match=r"x: expected training rows of shape \(n, dim\)"):
        dm.fit(np.zeros(8, np.float32), key=key)
    with pytest.raises(ValueError, match="steps"):
        dm.fit(x, steps=0, key=key)
    with pytest.raises(ValueError, match="learning_rate"):
        dm.fit(x, learning_rate=-1e-3, key=key)
    with pytest.raises(ValueError, match="x_val: expected shape"):
        dm.fit(x, np.zeros((4, 3), np.float32), key=key)
    with pytest.raises(ValueError, match="trace"):
        dm.diffusion(2, trace="approx")
    with pytest.raises(ValueError, match="eps"):
        dm.diffusion(2, eps=0.0)
    with pytest.raises(ValueError, match="beta_max"):
        dm.diffusion(2, beta_min=1.0, beta_max=0.5)
    with pytest.raises(ValueError, match="context"):
        dm.diffusion(2, context_dim=1)
    model = dm.diffusion(2)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 2\)"):
        model.log_prob({}, np.zeros((3, 3), np.float32))
    assert nj.registry.kind_of("diffusion") == "model"


# ------------------------------------------------------------------------ training
@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2, 3])
def test_short_fit_of_each_order_improves_on_its_initialisation(order):
    from sklearn.datasets import make_moons

    x = make_moons(1200, noise=0.05, random_state=0)[0].astype(np.float32)
    train, test = x[:1000], x[1000:]
    key = jax.random.key(order)
    model = dm.diffusion(2, order=order, hidden=(64, 64), eps=1e-3, rtol=1e-4, atol=1e-4)
    init = model.init(jax.random.key(0), train)
    fitted = dm.fit(train, order=order, key=key, steps=400, hidden=(64, 64), eps=1e-3,
                    rtol=1e-4, atol=1e-4)
    before = float(jnp.mean(model.log_prob(init, test)))
    after = float(jnp.mean(fitted.log_prob(test)))
    assert np.isfinite(after) and after > before + 0.3
    s = np.asarray(fitted.sample(jax.random.key(5), 500))
    assert np.all(np.isfinite(s)) and abs(s[:, 0].mean() - 0.5) < 0.3


@pytest.mark.slow
def test_hutchinson_log_prob_is_unbiased_for_the_exact_one():
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    exact = dm.diffusion(3, hidden=(8,), eps=1e-3, rtol=1e-4, atol=1e-4, trace="exact")
    hutch = dm.diffusion(3, hidden=(8,), eps=1e-3, rtol=1e-4, atol=1e-4, trace="hutchinson")
    params = exact.init(jax.random.key(0), x)
    want = exact.log_prob(params, x[:2])
    draws = np.stack([np.asarray(hutch.log_prob(params, x[:2], key=k))
                      for k in jax.random.split(jax.random.key(1), 64)])
    se = draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - np.asarray(want)) < 4 * se + 1e-3)
    assert np.all(se > 0)
