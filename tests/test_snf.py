"""nj.snf: path log-ratios against closed forms, MH invariance, exact log Z, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj
from nitsjax.bijectors.base import Bijector

M = np.array([1.0, -2.0], np.float32)
S = np.array([0.5, 2.0], np.float32)
LOG_Z = float(np.sum(np.log(S)) + math.log(2 * math.pi))  # of the unnormalised N(M, S^2)


def gaussian(x):
    """Unnormalised N(M, diag S^2) of one event."""
    return -0.5 * jnp.sum(((x - M) / S) ** 2)


def affine(m=M, s=S):
    """x = m + s z as a bijector (data -> latent forward): maps N(0, I) onto N(m, s^2)."""
    return Bijector(
        init=lambda key: {},
        forward=lambda p, x, c=None, k=None: ((x - m) / s, -jnp.sum(jnp.log(s))),
        inverse=lambda p, z, c=None, k=None: (m + s * z, jnp.sum(jnp.log(s))),
        event_size=2, name="affine")


@pytest.fixture(scope="module")
def exact_mh():
    """An exact flow followed by MALA and random-walk MH layers on its own target."""
    ch = nj.snf.chain([affine(), nj.snf.metropolis("mala", 0.2, n_steps=5),
                       nj.snf.metropolis("rw", 0.8, n_steps=5)])
    fit = nj.snf.fit_reverse(ch, ch.init(jax.random.key(0)), gaussian, key=jax.random.key(1),
                             steps=0, n_samples=2000, progress=False)
    return ch, fit


def test_exact_chain_log_z_and_mh_invariance(exact_mh):
    _, fit = exact_mh
    # MH ratios telescope: every path's weight is Z exactly, whatever the moves.
    np.testing.assert_allclose(fit.log_weights, LOG_Z, atol=2e-4)
    np.testing.assert_allclose(fit.log_z, LOG_Z, atol=2e-4)
    assert float(fit.ess) == pytest.approx(2000, rel=1e-3)
    assert float(fit.log_z_se) < 1e-3
    # The MH steps leave N(M, S^2) invariant.
    x = np.asarray(fit.samples)
    assert np.all(np.abs(x.mean(0) - M) < 4 * S / np.sqrt(len(x)))
    np.testing.assert_allclose(x.std(0), S, rtol=0.08)


def test_langevin_log_ratio_closed_form():
    eps = 0.1
    layer = nj.snf.langevin(eps, n_steps=1)
    log_pi = lambda x: -0.5 * jnp.sum(x**2)  # noqa: E731  grad = -x

    def closed(x, y):  # log N(x; (1-eps) y, 2 eps) - log N(y; (1-eps) x, 2 eps)
        return (np.sum((y - (1 - eps) * x) ** 2) - np.sum((x - (1 - eps) * y) ** 2)) / (4 * eps)

    x = np.array([0.3, -1.2], np.float32)
    y, r = layer.forward({}, jnp.asarray(x), jax.random.key(3), log_pi)
    np.testing.assert_allclose(r, closed(x, np.asarray(y)), rtol=1e-4, atol=1e-5)
    xb, rb = layer.backward({}, jnp.asarray(x), jax.random.key(4), log_pi)  # x is x_t here
    np.testing.assert_allclose(rb, closed(np.asarray(xb), x), rtol=1e-4, atol=1e-5)


def test_stochastic_weights_unbiased_and_bound_exact():
    # Langevin + an untrained VAE layer: w is unbiased for Z, so log Z within a few SE.
    ch = nj.snf.chain([affine(M * 0.5, S * 0.8), nj.snf.vae_layer(2, hidden=(4,)),
                       nj.snf.langevin(0.05, n_steps=1)])
    fit = nj.snf.fit_reverse(ch, ch.init(jax.random.key(0)), gaussian, key=jax.random.key(2),
                             steps=0, n_samples=4000, progress=False)
    assert abs(float(fit.log_z) - LOG_Z) < 4 * float(fit.log_z_se) + 0.01
    assert 1 < float(fit.ess) < 4000
    # A bijector-only chain: the forward bound is the exact log-density.
    exact = nj.snf.chain([affine()])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)), jnp.float32)
    bound = nj.snf.log_prob_bound(exact, {"affine": {}}, x, jax.random.key(0))
    np.testing.assert_allclose(bound, jax.vmap(gaussian)(x) - LOG_Z, rtol=1e-5)


def test_errors(exact_mh):
    ch, fit = exact_mh
    with pytest.raises(ValueError, match="step_size"):
        nj.snf.langevin(-0.1)
    with pytest.raises(ValueError, match="step_size"):
        nj.snf.metropolis("rw", step_size=0.0)
    with pytest.raises(ValueError, match="step_size"):
        nj.snf.metropolis("mala", step_size=-0.05)
    with pytest.raises(ValueError, match="step_size"):
        nj.snf.langevin(float("nan"))
    with pytest.raises(ValueError, match="beta"):
        nj.snf.langevin(0.1, beta=1.5)
    with pytest.raises(ValueError, match="n_steps"):
        nj.snf.metropolis("mala", 0.1, n_steps=0)
    with pytest.raises(ValueError, match="proposal"):
        nj.snf.metropolis("hmc", 0.1)
    with pytest.raises(ValueError, match="log_target.*shape"):
        nj.snf.fit_reverse(ch, fit.params, lambda x: x, key=jax.random.key(0), steps=0,
                           progress=False)
    with pytest.raises(ValueError, match="log_target.*NaN"):
        nj.snf.fit_reverse(ch, fit.params, lambda x: jnp.log(x[0] - 100.0),
                           key=jax.random.key(0), steps=0, progress=False)
    with pytest.raises(ValueError, match="log_target.*-inf on all"):
        nj.snf.fit_reverse(ch, fit.params, lambda x: jnp.where(x[0] > 100.0, 0.0, -jnp.inf),
                           key=jax.random.key(0), steps=0, progress=False)
    with pytest.raises(ValueError, match="log_target: NaN"):  # also before forward training
        nj.snf.fit_forward(ch, fit.params, np.zeros((4, 2)), log_target=lambda x: x[0] * jnp.nan,
                           key=jax.random.key(0), steps=1)
    with pytest.raises(ValueError, match="log_target"):
        nj.snf.fit_forward(ch, fit.params, np.zeros((4, 2)), key=jax.random.key(0), steps=1)
    with pytest.raises(ValueError, match="steps"):
        nj.snf.fit_reverse(ch, fit.params, gaussian, key=jax.random.key(0), steps=-1)
    with pytest.raises(ValueError, match="batch_size"):
        nj.snf.fit_reverse(ch, fit.params, gaussian, key=jax.random.key(0), batch_size=0)
    with pytest.raises(ValueError, match="dim"):
        nj.snf.chain([nj.snf.langevin(0.1)])
    with pytest.raises(ValueError, match="x: expected"):
        nj.snf.fit_forward(nj.snf.chain([affine()]), {"affine": {}}, np.zeros((4, 3)),
                           key=jax.random.key(0), steps=1)


@pytest.mark.slow
def test_fit_reverse_double_well_learns():
    target = nj.snf.targets.double_well()
    flow = nj.flows.realnvp(2, layers=3, hidden=(32, 32), standardize=None)
    ch = nj.snf.chain([flow.bijector, nj.snf.metropolis("mala", 0.02, n_steps=5),
                       nj.snf.langevin(0.01, n_steps=2)])
    params = ch.init(jax.random.key(0))
    before = nj.snf.fit_reverse(ch, params, target.log_prob, key=jax.random.key(1), steps=0,
                                progress=False)
    fit = nj.snf.fit_reverse(ch, params, target.log_prob, key=jax.random.key(1), steps=400,
                             batch_size=128, learning_rate=3e-3, progress=False)
    # The mean of -log w is dominated by rare tail paths (the target's tails are quartic),
    # so the loss falls by little (~0.8 nats here) while the ESS doubles (370 -> 815).
    assert fit.losses[-50:].mean() < fit.losses[:50].mean() - 0.5
    assert float(fit.ess) > 1.8 * float(before.ess)
    assert fit.batch_ess.shape == (400,) and before.batch_ess.shape == (0,)
    assert np.all((fit.batch_ess >= 1) & (fit.batch_ess <= 128))
    assert fit.batch_ess[-50:].mean() > 1.3 * fit.batch_ess[:5].mean()
    # the batch ESS fraction at the end agrees with the fresh 4096 paths' fraction
    assert abs(fit.batch_ess[-50:].mean() / 128 - float(fit.ess) / 4096) < 0.1
    # Reverse KL may drop a mode; then log Z is low by about log 2 at most.
    assert -math.log(2) - 0.1 < float(fit.log_z) - target.log_z < 0.05


@pytest.mark.slow
def test_fit_forward_vae_layers_learn():
    rng = np.random.default_rng(0)
    x = (M + S * rng.normal(size=(2000, 2))).astype(np.float32)
    ch = nj.snf.chain([nj.snf.vae_layer(2, hidden=(32, 32)), nj.snf.vae_layer(2, hidden=(32, 32))])
    params, losses = nj.snf.fit_forward(ch, ch.init(jax.random.key(0)), x, key=jax.random.key(1),
                                        steps=600, batch_size=256, learning_rate=3e-3,
                                        progress=False)
    bound = nj.snf.log_prob_bound(ch, params, x[:500], jax.random.key(2), n_paths=32)
    truth = jax.vmap(gaussian)(jnp.asarray(x[:500])) - LOG_Z
    assert losses[-50:].mean() < losses[:50].mean()
    assert float(jnp.mean(truth) - jnp.mean(bound)) < 0.3  # the bound is near the truth
