"""The energy objective (nitsjax.losses.energy): estimators against closed forms,
differentiable flow sampling against finite differences, training, and bad input."""

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj

en = importlib.import_module("nitsjax.losses.energy")  # nj.losses.energy is the loss


def _normal_abs_mean(mu, sd):
    """E|Z| for Z ~ N(mu, sd^2)."""
    return (sd * math.sqrt(2 / math.pi) * math.exp(-mu**2 / (2 * sd**2))
            + mu * math.erf(mu / (sd * math.sqrt(2))))


def test_energy_distance_of_two_gaussians_matches_the_closed_form():
    """1-D N(0, 1) vs N(1, 1): D = 2 E|X - Y| - E|X - X'| - E|Y - Y'| in closed form; the
    score is half the distance plus half the data's own term (an identity per sample)."""
    # stratified samples (normal quantiles at (i + 1/2) / n, shuffled): the Monte Carlo
    # error is far below that of random draws
    u = (np.arange(1000) + 0.5) / 1000
    q = np.asarray(jax.scipy.special.ndtri(u))[:, None]
    rng = np.random.default_rng(0)
    x, y = rng.permutation(q), rng.permutation(q) + 1.0
    exact = 2 * _normal_abs_mean(1.0, math.sqrt(2)) - 2 * 2 / math.sqrt(math.pi)
    d = float(en.energy_distance(x, y))
    assert abs(d - exact) < 0.005, (d, exact)
    within_x = float(en._mean_within(jnp.asarray(x), 1.0))
    np.testing.assert_allclose(float(en.energy_score(x, y)), 0.5 * d + 0.5 * within_x,
                               rtol=1e-5)


def test_energy_distance_is_zero_in_expectation_for_one_law():
    """Unbiased U-statistics: the mean over 20 pairs of samples from one 3-D law is within
    3 standard errors of 0 (a V-statistic would be biased upwards by about E||X - X'||/n)."""
    rng = np.random.default_rng(1)
    d = np.array([float(en.energy_distance(rng.normal(size=(50, 3)), rng.normal(size=(50, 3))))
                  for _ in range(20)])
    assert abs(d.mean()) < 3 * d.std(ddof=1) / math.sqrt(d.size)


def test_sliced_estimate_is_unbiased_for_the_energy_score():
    """E|v . w| = c_d ||w|| with c_3 = 1/2 (v_1 is uniform on [-1, 1] in 3-D); the sorting
    path (beta = 1) equals the pairwise one; the sliced mean over directions matches."""
    assert en.projection_constant(1, 1.0) == pytest.approx(1.0)
    assert en.projection_constant(3, 1.0) == pytest.approx(0.5)
    assert en.projection_constant(2, 1.0) == pytest.approx(2 / math.pi)
    rng = np.random.default_rng(2)
    a, b = jnp.asarray(rng.normal(size=(40,))), jnp.asarray(rng.normal(size=(30,)) + 0.3)
    np.testing.assert_allclose(float(en._score_1d(a, b, 1.0)),
                               float(en._energy_1d_pairwise(a, b, 1.0)), rtol=1e-5)
    x = rng.normal(size=(200, 3))
    y = rng.normal(size=(150, 3)) * 1.5 + 0.5
    sliced = jax.jit(en.sliced_energy_score, static_argnums=(3, 4))(x, y, jax.random.key(0),
                                                                     1.0, 512)
    assert float(sliced) == pytest.approx(float(en.energy_score(x, y)), rel=0.03)


def test_the_gradient_is_finite_at_coincident_samples():
    y = jnp.array([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
    x = jnp.array([[0.0, 1.0], [1.0, 1.0]])
    g = jax.jit(jax.grad(lambda y: en.energy_score(x, y, 1.5)))(y)
    assert bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.parametrize("build", [
    lambda: nj.flows.iaf(2, layers=1, hidden=(4,)),
    pytest.param(lambda: nj.flows.nits(2, arch=(2,), hidden=8, blocks=1),
                 marks=pytest.mark.slow),
], ids=["iaf", "nits"])
def test_flow_samples_are_differentiable_in_params(build):
    """The loss's samples (Flow.sample_batch) against central finite differences along a
    random direction of the trainable params (float64): IAF by its closed-form inverse,
    NITS by the implicit gradient of its inverse CDF."""
    flow = build()
    with jax.enable_x64(True):
        p = flow.init(jax.random.key(0), np.random.default_rng(0).normal(size=(32, 2)))
        p = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p)
        leaves, tree = jax.tree_util.tree_flatten(p)
        mask = jax.tree_util.tree_leaves(nj.bijectors.trainable_mask(p))
        keys = jax.random.split(jax.random.key(1), len(leaves))
        p = tree.unflatten([a + 0.1 * jax.random.normal(k, a.shape, a.dtype) * m
                            for a, k, m in zip(leaves, keys, mask)])
        v = tree.unflatten([jax.random.normal(jax.random.fold_in(k, 1), a.shape, a.dtype) * m
                            for a, k, m in zip(leaves, keys, mask)])

        @jax.jit
        def f(p):
            return jnp.sum(jnp.sin(en.model_samples(flow, p, jax.random.key(2), 3)))

        grad = jax.grad(f)(p)
        directional = sum(jnp.vdot(g, d) for g, d in
                          zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(v)))
        eps = 1e-6
        shifted = [jax.tree_util.tree_map(lambda a, d, s=s: a + s * eps * d, p, v)
                   for s in (1, -1)]
        fd = (f(shifted[0]) - f(shifted[1])) / (2 * eps)
        np.testing.assert_allclose(float(directional), float(fd), rtol=1e-5, atol=1e-7)


@pytest.mark.slow  # the generator test covers fit(loss="energy") in make test
def test_fit_by_energy_lowers_the_energy_distance_of_an_iaf():
    rng = np.random.default_rng(3)
    train = np.concatenate([rng.normal(size=(300, 2)) * 0.3 + [2.0, 0.0],
                            rng.normal(size=(300, 2)) * 0.3 - [2.0, 0.0]]).astype(np.float32)
    flow = nj.flows.iaf(2, layers=1, hidden=(8,), standardize="diagonal")
    p0 = flow.init(jax.random.key(0), train)
    p, h = nj.fit(flow, p0, train, key=jax.random.key(1), loss="energy", steps=40,
                  batch_size=128, learning_rate=1e-2, progress=False)
    assert h.loss == "energy" and h["train_loss"][-1] is not None
    distance = jax.jit(lambda p: en.energy_distance(
        train, en.model_samples(flow, p, jax.random.key(5), 600)))
    assert float(distance(p)) < float(distance(p0))


def test_bad_input_is_refused_with_a_clear_error():
    x = np.zeros((4, 2))
    for beta in (0.0, 2.0, -1.0):
        with pytest.raises(ValueError, match=r"beta: expected 0 < beta < 2"):
            en.energy_score(x, x, beta)
    with pytest.raises(ValueError, match="beta"):
        en.EnergyLoss(beta=2.5)
    with pytest.raises(ValueError, match="projections"):
        en.EnergyLoss(projections=0)
    with pytest.raises(ValueError, match="y: expected 2 columns"):
        en.energy_score(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="at least 2 model samples"):
        en.energy_score(x, np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"x: expected rows of shape \(n, d\)"):
        en.energy_distance(np.zeros(4), x)

    class NoSampler:
        name, dim, context_dim = "nosampler", 2, None

    with pytest.raises(ValueError, match="loss='energy'.*nosampler.*generator"):
        nj.losses.check(nj.losses.energy, NoSampler())

    class Rounded(NoSampler):  # image_nits: samples rounded to 8-bit values
        name, discrete, reparameterized = "rounded", True, True

        def sample_batch(self, params, key, n, context=None):
            raise AssertionError("not called")

    with pytest.raises(ValueError, match="rounded.*discrete"):
        nj.losses.check(nj.losses.energy, Rounded())
    assert nj.registry.get("energy", "loss") is nj.losses.energy
    assert en.EnergyLoss(beta=1.5) == en.EnergyLoss(beta=1.5)
    assert en.EnergyLoss(beta=1.5).__name__ == "energy(beta=1.5)"
