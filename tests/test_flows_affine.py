"""The affine flows (nitsjax/flows/affine.py: maf, iaf, realnvp) beyond the generic
contract: data init on badly scaled data, layer params named by layer, option errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import scaled_data

from nitsjax.flows.affine import iaf, maf, realnvp

KEY = jax.random.key(0)



@pytest.mark.parametrize("make", [maf, iaf, realnvp], ids=["maf", "iaf", "realnvp"])
def test_data_init_fits_badlyscaled_data(make):
    """With data at scale 1e3, data init must beat the identity start by a wide margin."""
    x = scaled_data(256, jnp.float32)[:, :3]
    flow = make(3, layers=2, hidden=(8,), actnorm=True, linear="lu", standardize=None)
    plain = flow.init(KEY)
    np.testing.assert_array_equal(plain["bijector"]["layers"]["actnorm"]["shift"], 0.0)
    fitted = flow.init(KEY, x=x)
    np.testing.assert_allclose(
        fitted["bijector"]["layers"]["actnorm"]["shift"][0], x.mean(0), rtol=1e-4
    )
    lp_plain = flow.log_prob(plain, x)
    lp_fit = flow.log_prob(fitted, x)
    if make is realnvp:  # gradients of the loss after data init are finite and non-zero
        grads = jax.jit(jax.grad(lambda p: -jnp.mean(flow.log_prob_batch(p, x))))(fitted)
        leaves = jax.tree_util.tree_leaves(grads)
        assert leaves and all(np.all(np.isfinite(g)) for g in leaves)
        # actnorm and LU leaves all get a signal (the coupling's zero-initialised output
        # layer blocks gradients to its hidden layers at init, so those are not checked)
        layer_grads = grads["bijector"]["layers"]
        named = [layer_grads["actnorm"], layer_grads["lu_linear"]]
        assert all(np.any(g != 0) for g in jax.tree_util.tree_leaves(named))
    assert np.all(np.isfinite(lp_fit))
    # a standardised Gaussian fit: about -(3/2) log(2 pi e) - sum(log std) per row
    expected = -1.5 * np.log(2 * np.pi * np.e) - np.log(np.asarray(x).std(0)).sum()
    assert abs(float(lp_fit.mean()) - expected) < 0.05 * abs(expected)
    assert float(lp_fit.mean()) > float(lp_plain.mean()) + 100.0


def test_flow_params_are_named_by_layer_and_options_checked():
    """Options add named entries; they never move the keys of the other layers."""
    def layer_keys(flow):
        return set(flow.init(KEY)["bijector"]["layers"])

    assert set(maf(2, layers=2, hidden=(4,)).init(KEY)["bijector"]) == {"standardize", "layers"}
    assert set(maf(2, layers=2, hidden=(4,), standardize=None).init(KEY)["bijector"]) == {
        "layers"
    }
    assert layer_keys(maf(2, layers=2, hidden=(4,))) == {"made", "reverse"}
    assert layer_keys(realnvp(2, layers=2, hidden=(4,), linear="lu")) == {
        "lu_linear", "coupling", "reverse"
    }
    assert layer_keys(iaf(2, layers=2, hidden=(4,), actnorm=True, linear="permute")) == {
        "actnorm", "permute", "made", "reverse"
    }
    with pytest.raises(
        ValueError, match=r"linear: expected one of \(None, 'lu', 'permute'\), got 'qr'"
    ):
        maf(2, linear="qr")
    with pytest.raises(ValueError, match="actnorm: expected True or False, got 1"):
        realnvp(2, actnorm=1)
    with pytest.raises(ValueError, match="standardize: expected one of"):
        realnvp(2, standardize="pca")
