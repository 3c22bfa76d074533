"""nj.models.generator: a non-invertible sampler trained by the energy objective."""

import importlib

import jax
import numpy as np
import pytest

import nitsjax as nj

en = importlib.import_module("nitsjax.losses.energy")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, np.pi, 600)
    x = np.stack([np.cos(t), np.sin(t)], 1) + 0.1 * rng.normal(size=(600, 2))
    return (x * [3.0, 0.5] + [10.0, -4.0]).astype(np.float32)  # raw scale, not standardised


def test_a_value_with_checked_arguments():
    g = nj.models.generator(2, latent_dim=3, hidden=[8])
    assert g == nj.models.generator(2, latent_dim=3, hidden=(8,)) and hash(g) == hash(
        nj.models.generator(2, latent_dim=3, hidden=(8,)))
    assert nj.models.generator(4).latent_dim == 4  # default: dim
    assert nj.registry.get_model("generator") is nj.models.generator
    assert not hasattr(g, "log_prob_batch")  # no density
    with pytest.raises(ValueError, match="latent_dim"):
        nj.models.generator(2, latent_dim=0)
    with pytest.raises(ValueError, match="hidden"):
        nj.models.generator(2, hidden=[])
    with pytest.raises(ValueError, match="standardize"):
        nj.models.generator(2, standardize="minmax")


def test_the_output_layer_is_data_initialised_and_scale_free(data):
    """Fresh params: the anchor is the identity (needs_data_init); set from ``a x + b`` the
    same latents give exactly ``a`` times the samples plus ``b``."""
    g = nj.models.generator(2, latent_dim=3, hidden=(8,))
    p = g.init(jax.random.key(0))
    assert g.needs_data_init(p)
    p1 = g.data_init(p, data)
    assert not g.needs_data_init(p1)
    p2 = g.data_init(p, 7.0 * data + 2.0)
    key = jax.random.key(1)
    s1, s2 = g.sample(p1, key, 50), g.sample(p2, key, 50)
    assert s1.shape == (50, 2)
    np.testing.assert_allclose(s2, 7.0 * s1 + 2.0, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="n:"):
        g.sample(p1, key, 0)
    with pytest.raises(ValueError, match="context"):
        g.sample(p1, key, 5, context=np.zeros((5, 1)))


def test_fit_by_energy_lowers_the_energy_distance_and_keeps_the_anchor(data):
    g = nj.models.generator(2, latent_dim=2, hidden=(16,))
    p0 = g.init(jax.random.key(0))
    p, h = nj.fit(g, p0, data, key=jax.random.key(1), loss="energy", steps=80,
                  batch_size=128, learning_rate=1e-2, progress=False)
    assert h.data_initialized and h.loss == "energy"
    anchor = g.data_init(p0, data[:len(data)])["output"]["frozen"]
    jax.tree_util.tree_map(np.testing.assert_array_equal, p["output"]["frozen"], anchor)

    distance = jax.jit(lambda p: en.energy_distance(
        data, en.model_samples(g, p, jax.random.key(5), 600)))
    assert float(distance(p)) < float(distance(g.data_init(p0, data)))


def test_nll_is_refused_and_a_conditional_generator_scores_per_row(data):
    g = nj.models.generator(2, hidden=(4,))
    with pytest.raises(ValueError, match="loss='nll'.*generator.*no density.*energy"):
        nj.fit(g, g.init(jax.random.key(0)), data, key=jax.random.key(1), steps=2,
               progress=False)
    gc = nj.models.generator(2, hidden=(4,), context_dim=1)
    pc = gc.init(jax.random.key(0))
    with pytest.raises(ValueError, match="conditional"):
        gc.sample(pc, jax.random.key(1), 3)
    loss = nj.losses.energy(gc, pc, data[:8], np.ones((8, 1), np.float32), None)
    assert np.isfinite(float(loss))
