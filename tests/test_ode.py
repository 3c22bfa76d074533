"""nitsjax.ode: the ODE state and its log-det against a linear field's closed form."""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

from nitsjax import ode

A = np.array([[-0.3, 1.0], [-0.5, 0.2]])


def linear(p, t, z, c):
    return p @ z


@pytest.mark.slow
def test_linear_field_float64_exact_and_inverse():
    """z(1) = expm(A) x and log_det = tr(A); integrating back returns x and -tr(A)."""
    with jax.enable_x64(True):
        a = jnp.asarray(A)
        x = jax.random.normal(jax.random.key(0), (3, 2), jnp.float64)
        z, ld = ode.log_det_flow(linear, a, x, 0.0, 1.0, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(z, x @ jsl.expm(a).T, atol=1e-7)
        np.testing.assert_allclose(ld, np.trace(A), atol=1e-7)
        xb, ldb = ode.log_det_flow(linear, a, z, 1.0, 0.0, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(xb, x, atol=1e-7)
        np.testing.assert_allclose(ldb, -np.trace(A), atol=1e-7)


@pytest.mark.slow
def test_hutchinson_unbiased_and_adjoints_agree():
    a = jnp.asarray(A, jnp.float32)
    x = jax.random.normal(jax.random.key(0), (256, 2))
    _, lh = ode.log_det_flow(linear, a, x, 0.0, 1.0, trace="hutchinson",
                             key=jax.random.key(1), probe="gaussian")
    assert abs(float(lh.mean()) - np.trace(A)) < 0.1  # SE of the mean ~ 0.04
    xs = x[:2]

    def loss(p, adjoint):
        return ode.log_prob(linear, p, xs, ode.standard_normal_log_prob, 0.0, 1.0,
                            adjoint=adjoint).sum()

    g1 = jax.grad(loss)(a, "recursive")
    g2 = jax.grad(loss)(a, "backsolve")
    np.testing.assert_allclose(g1, g2, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kw, word", [({"trace": "trace"}, "trace"), ({"rtol": -1.0}, "rtol"),
                                      ({"atol": 0.0}, "atol"), ({"solver": "rk4"}, "solver"),
                                      ({"adjoint": "x"}, "adjoint"),
                                      ({"trace": "hutchinson"}, "key")])
def test_bad_options_name_the_argument(kw, word):
    with pytest.raises(ValueError, match=word):
        ode.log_det_flow(linear, jnp.asarray(A), jnp.zeros((1, 2)), 0.0, 1.0, **kw)
