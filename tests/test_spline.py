"""Rational-quadratic spline transformer and ``nsf``: identity, knots, monotonicity,
inverse accuracy, derivative vs autodiff, a cross-check against distrax's spline, and
hypothesis property tests that values and gradients stay finite for any finite input."""

import math

import distrax
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from nitsjax.bijectors.spline import (
    PARAM_BOUND,
    rational_quadratic_transformer,
    spline_knots,
)
from nitsjax.flows.spline import nsf

K, B = 5, 2.0
T = rational_quadratic_transformer(bins=K, bound=B)


def _theta(seed, scale=1.0, dtype=jnp.float32, t=T):
    return (scale * jax.random.normal(jax.random.key(seed), (t.num_params,))).astype(dtype)


def _dtype_ctx(dtype):
    return jax.enable_x64(dtype == "float64")


# One compiled program per (function, dtype), shared by the tests below: every probe
# vector is padded to N points, so different lengths do not recompile.
N = 4096


def _padded(fn):
    fn = jax.jit(jax.vmap(fn, (None, 0)))

    def run(theta, x):
        n = x.shape[0]
        assert n <= N, n
        out = fn(theta, jnp.zeros(N, x.dtype).at[:n].set(x))
        return jax.tree_util.tree_map(lambda a: a[:n], out)

    return run


_fwd = _padded(T.forward)
_inv = _padded(T.inverse)
_dfwd = _padded(jax.grad(lambda th, x: T.forward(th, x)[0], argnums=1))
_dinv = _padded(jax.grad(lambda th, z: T.inverse(th, z)[0], argnums=1))
_dld = _padded(jax.grad(lambda th, x: T.forward(th, x)[1], argnums=1))


def _special_points(theta, dtype):
    """Knots of both axes, their float neighbours, +-B, huge values and float extremes."""
    xk, yk, _ = spline_knots(theta, K, B)
    big = np.finfo(dtype).max
    pts = [xk, yk, jnp.nextafter(xk, jnp.inf), jnp.nextafter(xk, -jnp.inf),
           jnp.nextafter(yk, jnp.inf), jnp.nextafter(yk, -jnp.inf),
           jnp.asarray([B, -B, 0.0, 1e30, -1e30, big, -big, np.finfo(dtype).tiny], dtype)]
    return jnp.concatenate([p.astype(dtype) for p in pts])


# ----------------------------------------------------------------------- construction
def test_num_params_and_identity_params_shape():
    for bins in (2, 3, 8, 16):
        t = rational_quadratic_transformer(bins=bins)
        assert t.num_params == 3 * bins - 1
        assert t.identity_params.shape == (3 * bins - 1,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(bins=1), "bins: expected an integer >= 2, got 1"),
        (dict(bins=2.0), "bins"),
        (dict(bins=True), "bins"),
        (dict(bound=0.0), "bound: expected a finite number > 0, got 0.0"),
        (dict(bound=-1.0), "bound"),
        (dict(bound=float("inf")), "bound"),
        (dict(bound="3"), "bound"),
        (dict(min_width=0.0), "min_width"),
        (dict(bins=10, min_width=0.1), "min_width: expected 0 < min_width < 1 / bins"),
        (dict(min_height=-1e-3), "min_height"),
        (dict(min_derivative=0.0), "min_derivative"),
        (dict(min_derivative=1.5), "min_derivative"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rational_quadratic_transformer(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dim=1), "dim: coupling spline layers need dim >= 2, got dim=1"),
        (dict(dim=2, bins=1), "bins: expected an integer >= 2"),
        (dict(dim=2, bound=0), "bound: expected a finite number > 0, got 0"),
        (dict(dim=0, autoregressive=True), "dim"),
        (dict(dim=2, layers=0), "layers"),
        (dict(dim=2, hidden=()), "hidden"),
        (dict(dim=2, context_dim=0), "context_dim"),
        (dict(dim=2, residual=True), "residual: only autoregressive=True"),
        (dict(dim=2, dropout=1.0), "dropout: expected 0 <= dropout < 1"),
        (dict(dim=2, linear="qr"), "linear: expected one of"),
        (dict(dim=2, degrees="random"), "degrees: only autoregressive=True"),
        (dict(dim=2, autoregressive=True, residual=True, hidden=(8, 16)), "hidden: residual"),
        (dict(dim=2, autoregressive=1), "autoregressive: expected True or False"),
    ],
)
def test_nsf_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nsf(**kwargs)


# ---------------------------------------------------------------------------- identity
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_identity_params_give_the_identity(dtype):
    with _dtype_ctx(dtype):
        x = jnp.concatenate([jnp.linspace(-2 * B, 2 * B, 401, dtype=dtype),
                             jnp.asarray([B, -B, 1e30], dtype)])
        theta = T.identity_params.astype(dtype)
        eps = np.finfo(dtype).eps
        _, _, d = spline_knots(theta, K, B)
        np.testing.assert_allclose(d, 1.0, rtol=0, atol=4 * eps)
        z, ld = _fwd(theta, x)
        assert z.dtype == dtype and ld.dtype == dtype
        np.testing.assert_allclose(z, x, rtol=8 * eps, atol=8 * eps * B)
        np.testing.assert_allclose(ld, 0.0, atol=16 * eps)
        x2, ld2 = _inv(theta, x)
        np.testing.assert_allclose(x2, x, rtol=8 * eps, atol=8 * eps * B)
        np.testing.assert_allclose(ld2, 0.0, atol=16 * eps)


def test_fresh_nsf_is_the_standard_normal():
    x = np.random.RandomState(0).normal(size=(16, 3)).astype(np.float32) * 2
    ref = -0.5 * (x**2).sum(1) - 1.5 * math.log(2 * math.pi)
    for ar in (False, True):
        flow = nsf(3, layers=2, hidden=(8,), bins=4, autoregressive=ar)
        lp = flow.log_prob(flow.init(jax.random.key(0)), x)
        np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-5)


def test_nsf_one_dimensional_autoregressive_trains_a_spline():
    flow = nsf(1, layers=1, hidden=(8,), bins=4, autoregressive=True)
    assert flow.name == "nsf_autoregressive"
    params = flow.init(jax.random.key(0))
    xs, lp = flow.sample_and_log_prob(params, jax.random.key(1), 32)
    np.testing.assert_allclose(flow.log_prob(params, xs), lp, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- knots and tails
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_spline_interpolates_knots_and_tails_are_identity(dtype):
    with _dtype_ctx(dtype):
        theta = _theta(3, 1.5, dtype)
        xk, yk, d = spline_knots(theta, K, B)
        assert xk[0] == -B and xk[-1] == B and yk[0] == -B and yk[-1] == B
        assert np.all(np.diff(xk) > 0) and np.all(np.diff(yk) > 0) and np.all(d > 0)
        tol = 64 * np.finfo(dtype).eps
        z, ld = _fwd(theta, xk)
        np.testing.assert_allclose(z, yk, atol=tol * B, rtol=0)
        np.testing.assert_allclose(ld, jnp.log(d), atol=tol * 10, rtol=0)
        x, ld_inv = _inv(theta, yk)
        np.testing.assert_allclose(x, xk, atol=tol * B / float(d.min()), rtol=0)
        tails = jnp.asarray([-1e30, -7.0, -B - 1e-3, B + 1e-3, 5.0, 1e30], dtype)
        for fn in (_fwd, _inv):
            out, ld = fn(theta, tails)
            np.testing.assert_array_equal(out, tails)
            np.testing.assert_array_equal(ld, 0.0)


# --------------------------------------------------------------------- monotonicity
@pytest.mark.parametrize("seed", range(4))
def test_monotone_float64(seed):
    with jax.enable_x64(True):
        theta = _theta(seed, 2.0, "float64")
        x = jnp.linspace(-B - 1, B + 1, N, dtype="float64")
        z, ld = _fwd(theta, x)
        assert np.all(np.diff(z) > 0)
        # and the inverse is monotone too
        x2, _ = _inv(theta, jnp.linspace(-B - 1, B + 1, N, dtype="float64"))
        assert np.all(np.diff(x2) > 0)


@pytest.mark.parametrize("seed", range(4))
def test_monotone_float32_up_to_rounding(seed):
    """In float32 a very flat bin can round one step down by an ulp; never more."""
    theta = _theta(seed, 2.0)
    x = jnp.linspace(-B - 1, B + 1, N)
    z, _ = _fwd(theta, x)
    z = np.asarray(z)
    drop = np.diff(z)
    ulp = np.spacing(np.abs(z[1:]).astype(np.float32))
    assert np.all(drop >= -2 * ulp)
    assert z[-1] - z[0] > 2 * B


# ------------------------------------------------------------------ inverse accuracy
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_inverse_accuracy(dtype, scale):
    """inverse(forward(x)) == x to within the conditioning of the map: the error times
    dz/dx is a few ulps of z (backward stability); the inverse log-det is minus the
    forward log-det at the recovered point, up to the rounding of that point."""
    with _dtype_ctx(dtype):
        eps = np.finfo(dtype).eps
        for seed in range(2):
            theta = _theta(10 + seed, scale, dtype)
            x = jnp.concatenate([jnp.linspace(-B - 0.5, B + 0.5, 2001, dtype=dtype),
                                 _special_points(theta, dtype)])
            z, ld = _fwd(theta, x)
            x2, ld2 = _inv(theta, z)
            x64, x2_64, z64 = (np.asarray(a, np.float64) for a in (x, x2, z))
            err = np.abs(x2_64 - x64)
            scaled = err * np.exp(np.asarray(ld, np.float64)) / (eps * np.maximum(np.abs(z64), 1))
            assert scaled.max() < 16, scaled.max()
            _, ld_back = _fwd(theta, x2)
            tol = 64 * eps * (1 + np.abs(np.asarray(_dld(theta, x2), np.float64))
                              * np.maximum(np.abs(x2_64), 1))
            assert np.all(np.abs(np.asarray(ld2, np.float64) + np.asarray(ld_back)) <= tol)
            if scale <= 0.3:  # well conditioned: plain round trip
                np.testing.assert_allclose(x2, x, atol=64 * eps * B, rtol=4 * eps)
                np.testing.assert_allclose(ld2, -ld, atol=256 * eps, rtol=0)


# ------------------------------------------------------------ derivative vs autodiff
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_derivative_matches_autodiff(dtype):
    with _dtype_ctx(dtype):
        for seed in range(2):
            theta = _theta(20 + seed, 1.0, dtype)
            x = jnp.concatenate([
                jax.random.uniform(jax.random.key(seed), (200,), dtype, -B - 1, B + 1),
                _special_points(theta, dtype),
            ])
            z, ld = _fwd(theta, x)
            g = _dfwd(theta, x)
            rtol = 1e-4 if dtype == "float32" else 1e-10
            np.testing.assert_allclose(g, np.exp(ld), rtol=rtol, atol=0)
            # inverse: dx/dz from autodiff against exp(inverse log-det), at the images
            # of those points and at the y-knots themselves
            zz = jnp.concatenate([z, spline_knots(theta, K, B)[1].astype(dtype)])
            _, ld_inv = _inv(theta, zz)
            np.testing.assert_allclose(_dinv(theta, zz), np.exp(ld_inv), rtol=10 * rtol, atol=0)


def test_log_derivative_is_continuous_at_knots():
    """C1: one-sided derivatives at every knot agree (and equal 1 at +-B)."""
    with jax.enable_x64(True):
        theta = _theta(7, 1.5, "float64")
        xk, _, d = spline_knots(theta, K, B)
        h = 1e-10
        _, ld_left = _fwd(theta, xk - h)
        _, ld_right = _fwd(theta, xk + h)
        np.testing.assert_allclose(ld_left, ld_right, atol=1e-6)
        np.testing.assert_allclose(np.exp(ld_left), d, rtol=1e-6)


# ---------------------------------------------------------- independent cross-check
def test_matches_distrax_rational_quadratic_spline():
    """Same spline as distrax's RationalQuadraticSpline with identity boundary slopes (both
    parameterise slopes as softplus shifted so that 0 gives slope 1; distrax takes the two
    boundary slope parameters too, ignored in its identity mode)."""
    with jax.enable_x64(True):
        theta = _theta(30, 1.5, "float64")
        min_w = 1e-3
        slopes = jnp.concatenate([jnp.zeros(1), theta[2 * K:], jnp.zeros(1)])
        dparams = jnp.concatenate([theta[:2 * K], slopes])
        ref = distrax.RationalQuadraticSpline(
            dparams, -B, B, boundary_slopes="identity", min_bin_size=min_w * 2 * B,
            min_knot_slope=1e-3,
        )
        x = jnp.linspace(-B + 1e-9, B - 1e-9, 997, dtype="float64")
        z, ld = _fwd(theta, x)
        z_ref, ld_ref = jax.jit(jax.vmap(ref.forward_and_log_det))(x)
        np.testing.assert_allclose(z, z_ref, atol=1e-12)
        np.testing.assert_allclose(ld, ld_ref, atol=1e-9)
        x2, ld2 = _inv(theta, z_ref)
        x_ref, ld2_ref = jax.jit(jax.vmap(ref.inverse_and_log_det))(z_ref)
        np.testing.assert_allclose(x2, x_ref, atol=1e-10)
        np.testing.assert_allclose(ld2, ld2_ref, atol=1e-8)


# ------------------------------------------------------------- hypothesis properties
def _all_finite(theta, v):
    """Values, and gradients w.r.t. params and input, of forward and inverse are finite.

    The gradient of ``y + logdet`` is checked: a NaN or inf in either part's gradient
    makes the sum non-finite (inf - inf is NaN), so one backward pass covers both."""
    outs = []
    for fn in (T.forward, T.inverse):
        outs.append(fn(theta, v))
        outs.append(jax.grad(lambda p, x, fn=fn: sum(fn(p, x)), argnums=(0, 1))(theta, v))
    return jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(outs)]).all()


@jax.jit
def _check_finite(theta, extra):
    v = jnp.concatenate([_special_points(theta, theta.dtype), extra])
    return v, jax.vmap(_all_finite, (None, 0))(theta, v)

_specials = [0.0, 1.0, -1.0, 1e3, -1e3, PARAM_BOUND * 2, 1e30, -1e30, 3e38, -3e38]
_param = st.one_of(
    st.floats(-20, 20, allow_nan=False, width=32),
    st.floats(-1e4, 1e4, allow_nan=False, width=32),
    st.sampled_from(_specials),
)
_extra_input = st.one_of(
    st.floats(-4 * B, 4 * B, allow_nan=False, width=32),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([B, -B, 1e30, -1e30, float(np.finfo(np.float32).max),
                     -float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)]),
)


@settings(max_examples=60, deadline=None)
@given(
    params=st.lists(_param, min_size=T.num_params, max_size=T.num_params),
    extra=st.lists(_extra_input, min_size=4, max_size=4),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_values_and_gradients_finite_for_any_finite_input(params, extra, dtype):
    with _dtype_ctx(dtype):
        v, ok = _check_finite(jnp.asarray(params, dtype), jnp.asarray(extra, dtype))
        ok = np.asarray(ok)
        assert ok.all(), np.asarray(v)[~ok]


@settings(max_examples=40, deadline=None)
@given(
    params=st.lists(st.floats(-6, 6, allow_nan=False, width=32),
                    min_size=T.num_params, max_size=T.num_params),
    xs=st.lists(st.floats(-3 * B, 3 * B, allow_nan=False, width=32), min_size=8, max_size=8),
)
def test_property_roundtrip_and_monotone_float64(params, xs):
    with jax.enable_x64(True):
        theta = jnp.asarray(params, "float64")
        x = jnp.sort(jnp.asarray(xs, "float64"))
        z, ld = _fwd(theta, x)
        assert np.all(np.diff(z)[np.diff(x) > 1e-4] > 0)
        x2, ld2 = _inv(theta, z)
        slope = np.exp(np.asarray(ld))
        err = np.abs(np.asarray(x2 - x)) * slope
        assert np.all(err <= 64 * np.finfo(np.float64).eps * np.maximum(np.abs(z), 1.0))
        _, ld_back = _fwd(theta, x2)
        np.testing.assert_allclose(ld2, -ld_back, atol=1e-9)
