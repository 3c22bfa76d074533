"""gm_wae: the MMD estimator (against a brute-force sum and its unbiasedness), the exact
sum over the K components, shapes and input errors; training runs are slow-marked."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj
from nitsjax.models.gm_wae import IMQ_SCALES, mmd2

DIM, K, LATENT = 6, 3, 2


@pytest.fixture(scope="module")
def model_params():
    m = nj.models.gm_wae(DIM, K=K, latent_dim=LATENT, hidden=(8,))
    return m, m.init(jax.random.key(0))


def _mmd2_brute(zq, wq, zp, wp, scale):
    """Term by term in numpy: pairs of rows (distinct rows within a distribution) and every
    pair of components, each weighted by the product of its weights."""
    def k(a, b):
        return sum(c / (c + np.sum((a - b) ** 2)) for c in np.array(IMQ_SCALES) * scale)

    def within(z, w):
        n, kk = w.shape
        t = sum(w[i, a] * w[j, b] * k(z[i, a], z[j, b])
                for i, j in itertools.permutations(range(n), 2)
                for a in range(kk) for b in range(kk))
        return t / (n * (n - 1))

    n, m, kk = wq.shape[0], wp.shape[0], wq.shape[1]
    cross = sum(wq[i, a] * wp[j, b] * k(zq[i, a], zp[j, b])
                for i in range(n) for j in range(m) for a in range(kk) for b in range(kk))
    return within(zq, wq) + within(zp, wp) - 2 * cross / (n * m)


def test_mmd2_matches_brute_force_sum():
    rng = np.random.default_rng(0)
    zq, zp = rng.normal(size=(3, 2, 2)), rng.normal(size=(4, 2, 2)) + 1.0
    wq = rng.dirichlet(np.ones(2), size=3)
    wp = np.full((4, 2), 0.5)
    got = float(jax.jit(mmd2, static_argnums=4)(jnp.asarray(zq), jnp.asarray(wq),
                                                  jnp.asarray(zp), jnp.asarray(wp), 0.7))
    assert got == pytest.approx(_mmd2_brute(zq, wq, zp, wp, 0.7), rel=1e-5)


def test_mmd2_is_unbiased_for_equal_mixtures_and_positive_otherwise():
    # both sides draw from the same two-component mixture: the mean over many
    # independent estimates is ~0 (unbiased; single estimates are of both signs); a shifted
    # mixture gives a clearly positive value
    key = jax.random.key(1)
    means = jnp.array([[-2.0, 0.0], [2.0, 0.0]])
    w = jnp.full((16, 2), 0.5)

    def one(k, shift):
        a, b = jax.random.split(k)
        zq = means[None] + jax.random.normal(a, (16, 2, 2))
        zp = means[None] + shift + jax.random.normal(b, (16, 2, 2))
        return mmd2(zq, w, zp, w, 4.0)

    keys = jax.random.split(key, 200)
    both = jax.jit(jax.vmap(lambda k: jnp.stack([one(k, 0.0), one(k, 1.5)])))(keys)
    same, moved = both[:, 0], both[:, 1]
    se = float(jnp.std(same)) / np.sqrt(len(keys))
    assert abs(float(jnp.mean(same))) < 4 * se
    assert float(jnp.min(same)) < 0 < float(jnp.max(same))
    assert float(jnp.mean(moved)) > 10 * se


def test_wae_objective_sums_over_components_exactly(model_params):
    m, p = model_params
    x = jax.random.uniform(jax.random.key(2), (5, DIM))
    key = jax.random.key(3)

    @jax.jit
    def both(p, x):
        rec, mmd = m.wae_terms(p, x, key)
        # by hand: the same posterior draws decoded one component at a time, weighted by
        # q(k|x)
        logits, mean, log_scale = m.encode(p, x)
        eps = jax.random.normal(jax.random.split(key)[0], mean.shape)
        z = mean + jnp.exp(log_scale) * eps
        q = jax.nn.softmax(logits, -1)
        by_hand = sum(q[:, k] * jnp.sum((x - m.decode(p, z[:, k])) ** 2, -1) for k in range(K))
        return rec, mmd, by_hand

    rec, mmd, by_hand = both(p, x)
    np.testing.assert_allclose(rec, jnp.mean(by_hand), rtol=1e-5)
    assert np.isfinite(float(mmd))
    assert float(m.loss(p, x, key)) == pytest.approx(float(rec + m.lam * mmd), rel=1e-5)


def test_elbo_kl_terms_vanish_at_the_prior(model_params):
    # with q(k|x) uniform and q(z|k,x) the prior's component, -ELBO is the expected
    # Gaussian reconstruction NLL alone
    m, p = model_params
    m = nj.models.gm_wae(DIM, K=K, latent_dim=LATENT, hidden=(8,), objective="elbo")
    x = jax.random.uniform(jax.random.key(4), (3, DIM))
    prior = (jnp.zeros((3, K)), jnp.broadcast_to(m.prior_means(), (3, K, LATENT)),
             jnp.zeros((3, K, LATENT)))
    z = prior[1] + jax.random.normal(jax.random.key(5), prior[1].shape)
    nelbo = jax.jit(m.neg_elbo_given)(p, x, *prior, z)
    s2 = m.obs_scale ** 2
    nll = jax.jit(m._reconstruction_errors)(p, x, z) / (2 * s2) + 0.5 * DIM * np.log(2 * np.pi * s2)
    np.testing.assert_allclose(nelbo, jnp.mean(nll, -1), rtol=1e-5)


def test_shapes_and_methods(model_params):
    m, p = model_params
    x = np.random.default_rng(0).random((4, DIM)).astype(np.float32)
    q = m.q_k(p, x)
    assert q.shape == (4, K) and np.allclose(np.sum(q, -1), 1.0, atol=1e-5)
    assert m.reconstruct(p, x).shape == (4, DIM)
    assert m.reconstruct(p, x, key=jax.random.key(0)).shape == (4, DIM)
    assert m.sample(p, jax.random.key(0), 3).shape == (3, DIM)
    assert m.sample(p, jax.random.key(0), 3, component=K - 1).shape == (3, DIM)
    assert m.prior_means().shape == (K, LATENT)
    img = nj.models.gm_wae((2, 3), K=2, latent_dim=1, hidden=(4,))
    assert img.dim == 6 and img.image_shape == (2, 3)


def test_bad_input(model_params):
    m, p = model_params
    with pytest.raises(ValueError, match="K: expected an integer >= 1"):
        nj.models.gm_wae(DIM, K=0)
    with pytest.raises(ValueError, match="objective"):
        nj.models.gm_wae(DIM, objective="gan")
    with pytest.raises(ValueError, match="lam"):
        nj.models.gm_wae(DIM, lam=-1.0)
    with pytest.raises(ValueError, match="dim"):
        nj.models.gm_wae((0, 3))
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 6\)"):
        m.q_k(p, np.zeros((2, DIM + 1)))
    with pytest.raises(ValueError, match="x"):
        m.reconstruct(p, np.full((2, DIM), np.nan))
    with pytest.raises(ValueError, match="component"):
        m.sample(p, jax.random.key(0), 2, component=K)
    with pytest.raises(ValueError, match="at least 2 rows"):
        m.loss(p, np.zeros((1, DIM)))
    with pytest.raises(ValueError, match="no density.*loss=.objective."):
        nj.fit(m, p, np.zeros((4, DIM)), steps=1, batch_size=2, key=jax.random.key(0))


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["wae", "elbo"])
def test_fit_trains_on_two_clusters(objective):
    # two well-separated clusters in 4-D: training lowers the objective and the
    # reconstructions get close
    rng = np.random.default_rng(0)
    centers = np.array([[3.0, 0, 0, 0], [-3.0, 0, 0, 0]], np.float32)
    x = centers[rng.integers(0, 2, 512)] + 0.1 * rng.normal(size=(512, 4)).astype(np.float32)
    m = nj.models.gm_wae(4, K=2, latent_dim=2, hidden=(32,), objective=objective)
    p = m.init(jax.random.key(0))
    before = float(m.loss(p, x[:128], jax.random.key(1)))
    p, h = nj.fit(m, p, x, x[:128], loss="objective", steps=600, batch_size=64,
                  learning_rate=3e-3, key=jax.random.key(2), progress=False)
    after = float(m.loss(p, x[:128], jax.random.key(1)))
    assert after < before
    err = np.mean(np.sum((np.asarray(m.reconstruct(p, x[:128])) - x[:128]) ** 2, -1))
    assert err < 1.0


def test_learned_prior_starts_fixed_is_trained_and_sampled():
    m = nj.models.gm_wae(DIM, K=K, latent_dim=LATENT, hidden=(8,), learn_prior=True)
    x = jax.random.uniform(jax.random.key(2), (5, DIM))

    @jax.jit
    def run(key):  # one compilation: init, gradient, samples
        p = m.init(key)
        g = jax.grad(lambda p: m.objective_batch(p, x, None, jax.random.key(3)))(p)
        # sampling draws z from the learned components: sigma_k -> 0 gives G(mu_k)
        moved = {**p, "prior": {"means": p["prior"]["means"] + 3.0,
                                "log_sigma": jnp.full((K,), -30.0)}}
        s = m.sample_batch(moved, jax.random.key(4), 2, component=1)
        return p, g, s, m.decode(moved, jnp.tile(moved["prior"]["means"][1], (2, 1)))

    p, g, s, expected = run(jax.random.key(0))
    np.testing.assert_allclose(p["prior"]["means"], m.prior_means())  # the fixed start
    np.testing.assert_allclose(jnp.exp(p["prior"]["log_sigma"]), m.prior_sigma, rtol=1e-6)
    assert float(jnp.abs(g["prior"]["means"]).sum()) > 0  # the MMD pulls the means
    assert float(jnp.abs(g["prior"]["log_sigma"]).sum()) > 0
    np.testing.assert_allclose(s, expected, atol=1e-5)
    fixed = nj.models.gm_wae(DIM, K=K, latent_dim=LATENT, hidden=(8,))
    assert "prior" not in jax.eval_shape(fixed.init, jax.random.key(0))
    with pytest.raises(ValueError, match="learn_prior"):
        nj.models.gm_wae(DIM, learn_prior="yes")
