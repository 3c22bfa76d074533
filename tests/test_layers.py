"""Behaviour of the standard layers beyond the generic contract: ActNorm data init (alone
and through Flow.init -> stack -> chain), the LU linear map against dense linear algebra,
and the squashing maps at the extremes of the float range."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import perturbed_params
from hypothesis import given, settings
from hypothesis import strategies as st

from nitsjax.bijectors.actnorm import actnorm
from nitsjax.bijectors.affine import affine_transformer
from nitsjax.bijectors.base import chain
from nitsjax.bijectors.coupling import coupling
from nitsjax.bijectors.elementwise import logit, sigmoid, tanh
from nitsjax.bijectors.linear import lu_linear
from nitsjax.flows.affine import flow_layer, iaf, maf, realnvp

KEY = jax.random.key(0)
F32_MAX = float(np.finfo(np.float32).max)
any_f32 = st.floats(-F32_MAX, F32_MAX, width=32, allow_nan=False, allow_infinity=False)


def _scaled_data(n, dtype, seed=0):
    """Columns with very different means and scales, the last one constant."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) * np.array([1e3, 1e-2, 1.0, 1.0]) + np.array([-7.0, 30.0, 0.0, 0.0])
    x[:, 3] = 2.5
    return jnp.asarray(x, dtype)


# ------------------------------------------------------------------------------ ActNorm
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_actnorm_data_init_standardises(dtype):
    with jax.enable_x64(dtype == "float64"):
        x = _scaled_data(500, dtype)
        bij = actnorm(4)
        params, z = bij.data_init(bij.init(KEY), x)
        z = np.asarray(z)
        # float32: column 1 has mean/std = 3000, so rounding of its mean alone is ~2e-4
        tol = 1e-3 if dtype == "float32" else 1e-10
        np.testing.assert_allclose(z.mean(0), 0.0, atol=tol)
        np.testing.assert_allclose(z[:, :3].std(0), 1.0, rtol=tol)
        # constant column: centred, unit scale, no log(0)
        assert np.all(z[:, 3] == 0.0) and float(params["log_scale"][3]) == 0.0
        np.testing.assert_allclose(
            params["log_scale"][:3], np.log(np.asarray(x)[:, :3].std(0)), rtol=1e-5
        )
        # z is what the layer's forward gives, and the log-det is -sum(log std)
        zf, ld = jax.vmap(lambda xi: bij.forward(params, xi))(x)
        np.testing.assert_allclose(zf, z, atol=tol)
        np.testing.assert_allclose(ld, -np.sum(np.asarray(params["log_scale"])), rtol=1e-6)
        assert params["shift"].dtype == bij.init(KEY)["shift"].dtype


def test_actnorm_data_init_guards_tiny_variance_and_single_row():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        x = jnp.asarray(np.stack([1.0 + 1e-12 * rng.normal(size=50), rng.normal(size=50)], 1))
        bij = actnorm(2, min_std=1e-6)
        params, z = bij.data_init(bij.init(KEY), x)
        np.testing.assert_allclose(params["log_scale"][0], np.log(1e-6))
        assert np.all(np.isfinite(z))
        params, z = bij.data_init(bij.init(KEY), x[:1])
        np.testing.assert_array_equal(params["log_scale"], 0.0)
        np.testing.assert_array_equal(z, 0.0)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 2\), got \(5, 3\)"):
        bij.data_init(bij.init(KEY), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="min_std"):
        actnorm(2, min_std=0.0)


def test_flow_init_runs_actnorm_data_init_in_every_scanned_layer():
    """Flow.init(key, x) -> stack.data_init -> chain.data_init -> actnorm.data_init: the
    ActNorm of layer i standardises the batch as it arrives at layer i."""
    dim, layers = 3, 3
    flow = realnvp(dim, layers=layers, hidden=(8,), actnorm=True, linear="lu", standardize=None)
    x = _scaled_data(256, jnp.float32)[:, :dim]
    params = flow.init(KEY, x=x)["bijector"]["layers"]
    layer = flow_layer(coupling(affine_transformer(), dim, (8,)), dim, True, "lu")
    layer_fwd = jax.jit(jax.vmap(layer.forward, in_axes=(None, 0)))
    h, total = x, 0.0
    for i in range(layers):
        p = jax.tree_util.tree_map(lambda a, i=i: a[i], params)
        an = p["actnorm"]
        np.testing.assert_allclose(an["shift"], h.mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(jnp.exp(an["log_scale"]), h.std(0), rtol=1e-4)
        h, ld = layer_fwd(p, h)
        total = total + ld
    # the flow's own log_prob agrees with the replay: base log-density of h + log-dets
    expected = -0.5 * jnp.sum(h**2, -1) - 0.5 * dim * np.log(2 * np.pi) + total
    lp = flow.log_prob({"bijector": {"layers": params}, "base": {}}, x)
    np.testing.assert_allclose(lp, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("make", [maf, iaf, realnvp], ids=["maf", "iaf", "realnvp"])
def test_data_init_fits_badly_scaled_data(make):
    """With data at scale 1e3, data init must beat the identity start by a wide margin."""
    x = _scaled_data(256, jnp.float32)[:, :3]
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


# ---------------------------------------------------------------------------- LU linear
def test_lu_linear_initial_map():
    x = jnp.arange(1.0, 6.0)
    ident = lu_linear(5, permute=False)
    z, ld = ident.forward(ident.init(KEY), x)
    np.testing.assert_allclose(z, x, rtol=1e-6)
    assert abs(float(ld)) < 1e-5
    perm = lu_linear(5, seed=4)
    jac = np.asarray(jax.jacfwd(lambda v: perm.forward(perm.init(KEY), v)[0])(x))
    np.testing.assert_allclose(np.sort(jac, axis=1)[:, -1], 1.0, rtol=1e-6)  # one 1 per row
    np.testing.assert_allclose(np.abs(jac).sum(0), 1.0, rtol=1e-6)  # and per column
    assert not np.allclose(jac, np.eye(5))


def test_lu_linear_matches_dense_algebra():
    """W from jacfwd: forward is W x + b, the inverse is solve(W, z - b), the log-det is
    log|det W|, for params far from the identity."""
    with jax.enable_x64(True):
        dim = 6
        bij = lu_linear(dim, seed=2)
        params = perturbed_params(bij, jax.random.key(3), 1.0)
        x = jax.random.normal(jax.random.key(4), (dim,), jnp.float64)
        b = np.asarray(params["bias"])
        w = np.asarray(jax.jit(jax.jacfwd(lambda v: bij.forward(params, v)[0]))(x))
        z, ld = jax.jit(bij.forward)(params, x)
        np.testing.assert_allclose(z, w @ np.asarray(x) + b, rtol=1e-12)
        np.testing.assert_allclose(ld, np.linalg.slogdet(w)[1], rtol=1e-12)
        zs = jax.random.normal(jax.random.key(5), (10, dim), jnp.float64)
        xs, ld_inv = jax.jit(jax.vmap(lambda zi: bij.inverse(params, zi)))(zs)
        np.testing.assert_allclose(xs, np.linalg.solve(w, (np.asarray(zs) - b).T).T, rtol=1e-9)
        np.testing.assert_allclose(ld_inv, -ld, rtol=1e-12)


def test_lu_linear_round_trip_float32_and_floor():
    dim = 8
    bij = lu_linear(dim)
    params = perturbed_params(bij, jax.random.key(6), 0.3)
    x = jax.random.normal(jax.random.key(7), (1000, dim))
    fwd = jax.jit(jax.vmap(bij.forward, in_axes=(None, 0)))
    inv = jax.jit(jax.vmap(bij.inverse, in_axes=(None, 0)))
    z, _ = fwd(params, x)
    x2, _ = inv(params, z)
    np.testing.assert_allclose(x2, x, atol=1e-4)
    # a collapsed diagonal stays at the floor: finite log-det and inverse
    crushed = {**params, "lu": params["lu"] - 1e4 * jnp.eye(dim)}
    z, ld = fwd(crushed, x[:1])
    np.testing.assert_allclose(ld, dim * np.log(1e-3), rtol=1e-5)
    x2, _ = inv(crushed, z)
    assert np.all(np.isfinite(x2))
    with pytest.raises(ValueError, match="min_diag"):
        lu_linear(3, min_diag=0.0)
    with pytest.raises(ValueError, match="dim"):
        lu_linear(0)


def test_lu_linear_param_gradients_finite():
    bij = lu_linear(4)
    params = perturbed_params(bij, jax.random.key(8), 0.5)
    x = jnp.array([0.3, -1.0, 2.0, 0.5])

    def loss(p):
        z, ld = bij.forward(p, x)
        xi, ldi = bij.inverse(p, z * 1.1)
        return jnp.sum(z**2) - ld + jnp.sum(xi) + ldi

    g = jax.jit(jax.grad(loss))(params)
    assert all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves(g))


# ------------------------------------------------------- sigmoid / logit / tanh extremes
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


# ----------------------------------------------------------------- coupling dropout
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
