"""The squashing maps of nitsjax/bijectors/elementwise.py at the extremes of the float
range: finite values, log-dets and gradients, exact ends, argument errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import perturbed_params
from hypothesis import given, settings
from hypothesis import strategies as st

from nitsjax.bijectors.actnorm import actnorm
from nitsjax.bijectors.base import chain
from nitsjax.bijectors.elementwise import logit, sigmoid, tanh
from nitsjax.bijectors.linear import lu_linear

KEY = jax.random.key(0)

F32_MAX = float(np.finfo(np.float32).max)
any_f32 = st.floats(-F32_MAX, F32_MAX, width=32, allow_nan=False, allow_infinity=False)


_SIG, _LOGIT, _TANH = sigmoid(), logit(), tanh()


def _value_and_grads(bij, inverse):
    """jit: x (1,) -> (y, logdet, dy/dx, d logdet/dx) of one elementwise map."""
    fn = bij.inverse if inverse else bij.forward

    def f(x):
        y, ld = fn({}, x)
        dy = jax.grad(lambda v: fn({}, v)[0][0])(x)
        dld = jax.grad(lambda v: fn({}, v)[1])(x)
        return y, ld, dy, dld

    return jax.jit(f)


_CHECKED = {
    name: _value_and_grads(b, inv)
    for name, b, inv in [
        ("sigmoid", _SIG, False), ("sigmoid_inv", _SIG, True), ("logit", _LOGIT, False),
        ("logit_inv", _LOGIT, True), ("tanh", _TANH, False), ("tanh_inv", _TANH, True),
    ]
}


def _all_finite(*arrays):
    return all(np.all(np.isfinite(np.asarray(a))) for a in arrays)


@settings(max_examples=150, deadline=None)
@given(any_f32)
def test_sigmoid_and_tanh_finite_over_float32_range(v):
    x = jnp.array([v], jnp.float32)
    for name, lo, hi in [("sigmoid", 0.0, 1.0), ("logit_inv", 0.0, 1.0), ("tanh", -1.0, 1.0)]:
        y, ld, dy, dld = _CHECKED[name](x)
        assert _all_finite(y, dy, dld), (name, v, y, ld, dy, dld)
        # tanh's log-det ~ -2|x| is only representable for |x| < 2^127
        assert np.isfinite(ld) or (name == "tanh" and abs(v) >= 2.0**127), (name, v, ld)
        assert lo <= float(y[0]) <= hi
        # squashing maps contract (up to float32 rounding of the log-det near 0)
        assert float(ld) <= 4 * np.finfo(np.float32).eps


@settings(max_examples=150, deadline=None)
@given(any_f32)
def test_logit_and_inverse_squashers_finite_for_any_float32_input(v):
    """Inside or outside (0, 1), a finite input never gives NaN/inf (the clip rule)."""
    x = jnp.array([v], jnp.float32)
    bound = np.log(1.0 / np.finfo(np.float32).epsneg) * (1 + 1e-6)
    for name in ["logit", "sigmoid_inv", "tanh_inv"]:
        y, ld, dy, dld = _CHECKED[name](x)
        assert _all_finite(y, ld, dy, dld), (name, v, y, ld, dy, dld)
        assert abs(float(y[0])) <= bound


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_squashers_exact_at_ends_and_round_trip_inside(dtype):
    with jax.enable_x64(dtype == "float64"):
        eps = np.finfo(dtype).epsneg
        ends = jnp.array([0.0, 1.0], dtype)
        z, ld = _LOGIT.forward({}, ends)
        np.testing.assert_allclose(z, [np.log(eps / (1 - eps)), -np.log(eps / (1 - eps))],
                                   rtol=1e-3)
        assert np.isfinite(ld) and z.dtype == dtype
        # alpha keeps the ends inside: logit(alpha) exactly, no clipping
        la = logit(-1.0, 2.0, alpha=0.05)
        z, _ = la.forward({}, jnp.array([-1.0, 2.0], dtype))
        np.testing.assert_allclose(z, [np.log(0.05 / 0.95), np.log(0.95 / 0.05)], rtol=1e-5)
        # logit is the inverse of sigmoid, log-dets included, for any event size
        u = jnp.linspace(1e-3, 1 - 1e-3, 7, dtype=dtype)
        za, lda = _LOGIT.forward({}, u)
        zb, ldb = _SIG.inverse({}, u)
        np.testing.assert_allclose(za, zb, rtol=1e-6)
        np.testing.assert_allclose(lda, ldb, rtol=1e-6)
        back, ld_back = _SIG.forward({}, za)
        np.testing.assert_allclose(back, u, rtol=1e-5 if dtype == "float32" else 1e-12)
        np.testing.assert_allclose(ld_back, -lda, rtol=1e-5)
        # tanh(x) = 2 sigmoid(2x) - 1: same log-det up to the constant log 4 per dim
        x = jnp.linspace(-5.0, 5.0, 5, dtype=dtype)
        zt, ldt = _TANH.forward({}, x)
        zs, lds = sigmoid(-1.0, 1.0).forward({}, 2 * x)
        np.testing.assert_allclose(zt, zs, atol=1e-6)
        np.testing.assert_allclose(ldt, lds + x.size * np.log(2.0), rtol=1e-5)


def test_logit_chain_gradients_finite_at_boundary_data():
    """A logit-preprocessed flow layer at data exactly on 0 and 1: finite loss and grads."""
    bij = chain([logit(alpha=1e-6), actnorm(2), lu_linear(2)])
    params = perturbed_params(bij, KEY, 0.3)
    x = jnp.array([[0.0, 1.0], [0.5, 0.25], [1.0, 0.0]])

    def loss(p):
        z, ld = jax.vmap(lambda xi: bij.forward(p, xi))(x)
        return jnp.mean(0.5 * jnp.sum(z**2, -1) - ld)

    val, g = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(val)
    assert all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves(g))


def test_elementwise_argument_errors():
    with pytest.raises(ValueError, match="alpha"):
        logit(alpha=0.5)
    with pytest.raises(ValueError, match=r"low < high, got low=1.0, high=0.0"):
        sigmoid(1.0, 0.0)
    with pytest.raises(ValueError, match="eps"):
        tanh(eps=0.7)
