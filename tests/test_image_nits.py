"""Image NITS: causality of the PixelCNN conditioner, normalisation of the discretised
likelihood, samples, bits/dim both ways, layouts and input checks (the bijector contract
is in ``cases_image.py``). Shapes are tiny and the networks narrow: compile time rules."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nitsjax.flows.image_nits import image_nits
from nitsjax.nn.pixelcnn import PixelCNN, init_params


def _perturbed(params, scale, seed=2):
    """``params`` plus Gaussian noise (the zero-initialised head moves off zero)."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [a + scale * jax.random.normal(k, a.shape, a.dtype)
                                     for a, k in zip(leaves, keys)])


@pytest.mark.slow  # compiles the attention net's Jacobian: ~15-30 CPU-s
def test_pixelcnn_is_causal_and_sees_every_earlier_subpixel():
    """d out[i, j, c] / d x[i', j', c'] is zero unless (i', j', c') comes strictly before
    (i, j, c) (raster order, then channels), and nonzero for every earlier sub-pixel: no
    blind spot, through three resolutions (4 -> 2 -> 1) and the attention block."""
    h, w, c = 4, 4, 2
    net = PixelCNN(c, 1, filters=2, resnets=1, attention=True)
    x = jax.random.normal(jax.random.key(1), (1, h, w, c))
    variables = {"params": _perturbed(init_params(net, jax.random.key(0), (h, w, c)), 0.3)}
    jac = jax.jit(jax.jacrev(lambda a: net.apply(variables, a)[0, ..., 0]))(x)
    jac = np.abs(np.asarray(jac)).reshape(h * w * c, h * w * c)  # (out sub-pixel, in)
    earlier = np.tril(np.ones_like(jac, bool), k=-1)
    assert np.all(jac[~earlier] == 0), "an output depends on its own or a later sub-pixel"
    assert np.all(jac[earlier] > 0), "an output misses an earlier sub-pixel"


def _flow(shape, **kw):
    flow = image_nits(shape, filters=2, resnets=1, arch=(4,), stages=1, **kw)
    return flow, _perturbed(flow.init(jax.random.key(3)), 0.3)


@pytest.mark.slow  # float64 compile of the flow: ~15-30 CPU-s
def test_discrete_probabilities_sum_to_one():
    """float64, a 1 x 1 x 2 image (R, then G given R): the 256 bin probabilities of each
    sub-pixel's conditional sum to one (edge bins included), and so the joint pmf sums to
    one over all 65,536 images."""
    with jax.enable_x64(True):
        flow, params = _flow((1, 1, 2))
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        v = jnp.arange(256.0)
        grid = jnp.stack(jnp.meshgrid(v, v, indexing="ij"), -1).reshape(-1, 2)
        m = flow.model

        @jax.jit
        def run(params):
            lp = flow.log_prob_batch(params, grid)
            th = m.thetas(params["bijector"]["image_nits"], grid[::257][:8])  # (8, 2, P)
            masses = jax.vmap(jax.vmap(lambda t: jax.vmap(m._log_mass, (None, 0))(t, v)))(th)
            return lp, jax.scipy.special.logsumexp(masses, axis=-1)  # (8, 2)

        lp, per_subpixel = run(params)
        assert lp.dtype == jnp.float64
        np.testing.assert_allclose(per_subpixel, 0.0, atol=1e-12)
        np.testing.assert_allclose(float(jax.scipy.special.logsumexp(lp)), 0.0, atol=1e-10)


def test_samples_log_prob_bits_per_dim_and_input_checks():
    flow, params = _flow((2, 2, 1))
    xs, lp = flow.sample_and_log_prob(params, jax.random.key(1), 5)
    xs = np.asarray(xs)
    assert xs.shape == (5, 4) and np.all(xs == np.round(xs))
    assert xs.min() >= 0 and xs.max() <= 255
    images = np.asarray(flow.to_images(xs))
    assert images.shape == (5, 2, 2, 1)
    np.testing.assert_allclose(flow.log_prob(params, images), lp, rtol=1e-5)  # images in
    bpd = np.asarray(flow.bits_per_dim(params, xs))
    np.testing.assert_allclose(bpd, -np.asarray(lp) / (4 * math.log(2)), rtol=1e-5)
    # dequantised: a density at x + u - 1/2, on the same scale; its mean over u is below
    # log P(x) (Jensen), and a fixed key gives a fixed value
    deq = [np.asarray(flow.log_prob_dequantized(params, xs, jax.random.key(k))) for k in range(6)]
    assert np.all(np.mean(deq, 0) <= np.asarray(lp) + 0.1)
    np.testing.assert_array_equal(flow.bits_per_dim(params, xs, dequantized=True),
                                  flow.bits_per_dim(params, xs, dequantized=True))
    with pytest.raises(ValueError, match="integer pixel values 0..255"):
        flow.log_prob(params, np.full((1, 4), 0.5))
    with pytest.raises(ValueError, match="integer pixel values"):
        flow.log_prob(params, np.full((1, 4), 256.0))
    with pytest.raises(ValueError, match=r"rows \(n, 4\) or images \(n, 2, 2, 1\)"):
        flow.log_prob(params, np.zeros((1, 5)))
    with pytest.raises(ValueError, match="shape"):
        image_nits((2, 2, 0))


def test_channels_first_rows_are_transposed_images():
    """``channels_first`` reads rows in (C, H, W) order (CIFAR-10's layout): the model
    sees the same images as the (H, W, C) model does from the transposed rows."""
    hwc = image_nits((2, 3, 2)).model
    chw = image_nits((2, 3, 2), channels_first=True).model
    x = np.random.default_rng(0).integers(0, 256, (4, 2, 3, 2)).astype(np.float32)
    rows_chw = np.moveaxis(x, -1, 1).reshape(4, -1)
    np.testing.assert_array_equal(chw.to_images(jnp.asarray(rows_chw)), x)
    np.testing.assert_array_equal(hwc.to_images(jnp.asarray(x.reshape(4, -1))), x)
    np.testing.assert_array_equal(chw.to_rows(jnp.asarray(x)), rows_chw)
