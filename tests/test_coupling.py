"""Coupling layers (nitsjax/bijectors/coupling.py) beyond the generic contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import perturbed_params

from nitsjax.bijectors.affine import affine_transformer
from nitsjax.bijectors.coupling import coupling

KEY = jax.random.key(0)


def test_coupling_dropout_only_with_a_key_and_invertible_per_key():
    layer = coupling(affine_transformer(), 4, (16, 16), dropout=0.5)
    plain = coupling(affine_transformer(), 4, (16, 16))
    params = perturbed_params(layer, KEY, 0.5)  # off the zero-initialised output layer
    x = jnp.array([0.3, -1.2, 0.8, 2.0])
    z, ld = layer.forward(params, x)
    z_plain, ld_plain = plain.forward(params, x)  # same params: dropout=0 layer, no key
    np.testing.assert_array_equal(z, z_plain)
    np.testing.assert_array_equal(ld, ld_plain)
    np.testing.assert_array_equal(layer.forward(params, x)[0], z)
    key = jax.random.key(5)
    z_key, ld_key = layer.forward(params, x, None, key)
    assert not np.allclose(z_key, z)
    x_back, ld_inv = layer.inverse(params, z_key, None, key)
    np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld_inv, -ld_key, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="dropout"):
        coupling(affine_transformer(), 4, dropout=1.0)
