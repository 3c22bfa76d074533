"""Two-step models (nitsjax.models.two_step): the parts, the errors, and (slow) that the
two-stage fit learns a curve and the distribution along it, from Python and the CLI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj
from nitsjax.models.autoencoder import autoencoder, mlp_map


def arc(n, seed=0):
    """Rows on the arc (cos 3s, sin 3s), s ~ Beta(2, 5): a 1-D manifold in R^2, and s."""
    s = np.random.default_rng(seed).beta(2.0, 5.0, size=n)
    return np.stack([np.cos(3 * s), np.sin(3 * s)], 1).astype(np.float32), s


@pytest.fixture(scope="module")
def tiny():
    """A tiny two-step model, its data-initialised params and rows (compiled once)."""
    model = nj.models.two_step_mlp(2, latent_dim=1, hidden=(8,), density="maf",
                                   density_hidden=(4,), density_layers=1)
    x, _ = arc(16)
    return model, model.init(jax.random.key(0), x), x


def test_parts_agree(tiny):
    model, params, x = tiny
    ae, ae_p = model.autoencoder, params["autoencoder"]
    assert not ae.needs_data_init(ae_p)  # init(key, x) set the standardisation
    np.testing.assert_allclose(ae_p["frozen"]["shift"], x.mean(0), rtol=1e-5, atol=1e-6)
    z = model.encode(params, x)
    assert z.shape == (16, 1)
    x_hat = model.decode(params, z)
    std = (x - ae_p["frozen"]["shift"]) / ae_p["frozen"]["scale"]
    std_hat = (x_hat - ae_p["frozen"]["shift"]) / ae_p["frozen"]["scale"]
    np.testing.assert_allclose(model.reconstruction_error(params, x),
                               np.mean((std_hat - std) ** 2, 1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.latent_log_prob(params, x),
                               model.density.log_prob(params["density"], z), rtol=1e-5)
    s = model.sample(params, jax.random.key(1), 5)
    assert s.shape == (5, 2) and bool(jnp.all(jnp.isfinite(s)))
    # samples lie on the decoder's image: g of the latent samples
    zs = model.density.sample(params["density"], jax.random.key(1), 5)
    np.testing.assert_allclose(s, model.decode(params, zs), rtol=1e-5, atol=1e-6)


def test_two_step_from_parts_and_registry():
    enc, dec = mlp_map(3, 2, hidden=(4,)), mlp_map(2, 3, hidden=(4,))
    model = nj.models.two_step(enc, dec, nj.flows.maf(2, hidden=(4,)))
    assert (model.dim, model.latent_dim, model.context_dim) == (3, 2, None)
    assert model == nj.models.two_step(enc, dec, nj.flows.maf(2, hidden=(4,)))  # a value
    assert nj.registry.get_model("two_step") is nj.models.two_step_mlp
    assert nj.models.two_step_mlp(3, latent_dim=1).density.dim == 1  # nsf, autoregressive


def test_bad_input(tiny):
    model, params, x = tiny
    with pytest.raises(ValueError, match="latent_dim: .*< dim=2"):
        nj.models.two_step_mlp(2, latent_dim=2)
    with pytest.raises(ValueError, match="encoder: the latent size"):
        nj.models.two_step(mlp_map(2, 3), mlp_map(3, 2), nj.flows.maf(3))
    with pytest.raises(ValueError, match="decoder: expected a map R\\^1 -> R\\^2"):
        nj.models.two_step(mlp_map(2, 1), mlp_map(1, 3), nj.flows.maf(1))
    with pytest.raises(ValueError, match="density: expected a density on R\\^1"):
        nj.models.two_step(mlp_map(2, 1), mlp_map(1, 2), nj.flows.maf(2))
    with pytest.raises(TypeError, match="density: expected a nitsjax flow"):
        nj.models.two_step(mlp_map(2, 1), mlp_map(1, 2), object())
    with pytest.raises(ValueError, match="density: unknown flow 'nope'"):
        nj.models.two_step_mlp(2, density="nope")
    with pytest.raises(ValueError, match="density_layers: the nits flow has no 'layers'"):
        nj.models.two_step_mlp(2, density="nits", density_layers=2)
    with pytest.raises(ValueError, match="context_dim: two-step models are unconditional"):
        nj.models.two_step_mlp(2, context_dim=1)
    with pytest.raises(ValueError, match="standardize: expected one of"):
        autoencoder(2, 1, standardize="whiten")
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 2\)"):
        model.encode(params, x[:, :1])
    with pytest.raises(ValueError, match=r"z: expected shape \(n, 1\)"):
        model.decode(params, x)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="train"):
        model.fit(params, bad, key=jax.random.key(0), steps=1, batch_size=4)
    with pytest.raises(ValueError, match="x"):
        model.latent_log_prob(params, bad)
    with pytest.raises(ValueError, match="context: .*unconditional"):
        model.sample(params, jax.random.key(0), 2, context=np.zeros(1))


def ks_distance(a, b):
    """Two-sample Kolmogorov-Smirnov distance."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a)
                               - np.searchsorted(b, grid, "right") / len(b))))


@pytest.mark.slow
def test_fit_learns_the_arc_and_its_distribution(tmp_path):
    x, _ = arc(3000, seed=1)
    val, _ = arc(500, seed=2)
    model = nj.models.two_step_mlp(2, latent_dim=1, hidden=(64, 64), density="nsf",
                                   autoencoder_steps=2000)
    params, history = model.fit(model.init(jax.random.key(0)), x, val, key=jax.random.key(1),
                                steps=1000, batch_size=256, learning_rate=3e-3, progress=False,
                                checkpoint_dir=str(tmp_path))
    assert (tmp_path / "autoencoder").is_dir() and (tmp_path / "density").is_dir()
    ae_hist = history.autoencoder_history
    assert ae_hist["val_loss"][-1] < 0.01 * ae_hist["val_loss"][0]  # learned the curve
    s = np.asarray(model.sample(params, jax.random.key(2), 3000))
    radius = np.linalg.norm(s, axis=1)
    assert np.mean(np.abs(radius - 1.0)) < 0.05  # samples on the arc
    _, truth = arc(3000, seed=3)
    angle = np.arctan2(s[:, 1], s[:, 0]) / 3.0
    assert ks_distance(angle, truth) < 0.08  # and distributed along it as the data
    # resuming in the same folder returns the same params without training
    again, _ = model.fit(model.init(jax.random.key(0)), x, val, key=jax.random.key(1),
                         steps=1000, batch_size=256, learning_rate=3e-3, progress=False,
                         checkpoint_dir=str(tmp_path))
    np.testing.assert_allclose(model.sample(again, jax.random.key(2), 10), s[:10], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.slow
def test_cli_trains_two_step(tmp_path):
    from nitsjax.app.commands import run_eval, run_train
    from nitsjax.config import compose

    cfg = compose("train", ["model=two_step", "data=moons", "data.n_train=500",
                            "train.steps=20", "train.batch_size=100", "model.hidden=[8]",
                            "model.density=maf", "model.density_hidden=[4]",
                            "train.progress=false", "plots.enabled=false"])
    out = run_train(cfg, tmp_path / "run")
    m = run_eval(out)
    assert np.isfinite(m["energy_distance"]) and m["n"] > 0
