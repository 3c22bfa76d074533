"""NITS: the 1-D PNN (normalisation, monotonicity, exact density), the sampler (inverts
the CDF, follows the density, differentiable), the support rules and the flow."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from nitsjax.bijectors import pnn
from nitsjax.bijectors.nits import nits_bijector, normal_squash, support_from_data
from nitsjax.flows.nits import nits

ARCHES = [(4,), (6, 5, 4)]  # (8, 8) is covered by the float32 and contract tests
C = pnn.DEFAULT_MONOTONIC_CONST


def random_theta(hidden, key, scale=1.0, dtype=jnp.float32):
    base = jnp.asarray(pnn.identity_params(hidden), dtype)
    return base + scale * jax.random.normal(key, base.shape, dtype)


def gauss_legendre(fn, a, b, panels=4000, order=6):
    """Composite Gauss-Legendre quadrature of a vectorised ``fn`` on [a, b] (float64)."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, panels + 1)
    half = 0.5 * np.diff(edges)[:, None]
    pts = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half * nodes[None, :]
    vals = np.asarray(fn(jnp.asarray(pts.ravel()))).reshape(pts.shape)
    return float(np.sum(half * weights[None, :] * vals))


# ------------------------------------------------------------------------------ 1-D PNN


@pytest.mark.parametrize("hidden", ARCHES)
def test_pnn_normalised_increasing_and_density_is_derivative(hidden):
    with jax.enable_x64(True):
        cdf_ = jax.jit(jax.vmap(lambda th, t: pnn.cdf(th, t, hidden), (None, 0)))
        logf_ = jax.jit(jax.vmap(lambda th, t: pnn.log_pdf(th, t, hidden), (None, 0)))
        grad_ = jax.jit(jax.vmap(jax.grad(lambda th, t: pnn.cdf(th, t, hidden), 1), (None, 0)))
        for seed in range(3):
            theta = random_theta(hidden, jax.random.key(seed), 1.5, jnp.float64)
            cdf = lambda t, theta=theta: cdf_(theta, t)  # noqa: E731
            logf = lambda t, theta=theta: logf_(theta, t)  # noqa: E731
            ends = cdf(jnp.array([0.0, 1.0]))
            assert float(ends[0]) == 0.0 and float(ends[1]) == 1.0
            grid = jnp.linspace(0.0, 1.0, 20001)
            f_grid = cdf(grid)
            assert bool(jnp.all(jnp.diff(f_grid) > 0)), "F is not strictly increasing"
            lf = logf(grid)
            assert bool(jnp.all(jnp.isfinite(lf)))
            assert float(jnp.min(lf)) >= math.log(C / (1 + C)) - 1e-12  # the density floor
            total = gauss_legendre(lambda t, logf=logf: jnp.exp(logf(t)), 0.0, 1.0)
            assert abs(total - 1.0) < 1e-4, total
            pts = jax.random.uniform(jax.random.key(10 + seed), (64,), jnp.float64, 0.01, 0.99)
            auto = grad_(theta, pts)
            np.testing.assert_allclose(jnp.exp(logf(pts)), auto, rtol=1e-9)


def test_pnn_hand_written_derivatives_match_autodiff_of_the_forward_pass():
    """The JVP rule of ``cdf_and_log_pdf`` (an explicit backward sweep) against plain
    autodiff of the same forward pass, in theta and t, reverse and forward mode; and
    finite gradients in float32 where the sigmoids saturate."""
    with jax.enable_x64(True):
        for hidden in ARCHES:
            theta = random_theta(hidden, jax.random.key(7), 1.5, jnp.float64)

            def jacobians(th, t, hidden=hidden):
                return (jax.jacrev(pnn._cdf_and_log_pdf_plain, (0, 1))(th, t, hidden, C),
                        jax.jacrev(pnn.cdf_and_log_pdf, (0, 1))(th, t, hidden),
                        jax.jacfwd(pnn.cdf_and_log_pdf, (0, 1))(th, t, hidden))

            ts = jnp.array([0.02, 0.5, 0.97], jnp.float64)
            plain, rev, fwd = jax.jit(jax.vmap(jacobians, (None, 0)))(theta, ts)
            for ours in (rev, fwd):
                for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(plain), strict=True):
                    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    hidden = (8, 8)
    steep = random_theta(hidden, jax.random.key(8), 6.0)  # raw weights down to -7: A ~ e^7
    grad = jax.jit(jax.vmap(jax.grad(lambda th, t: pnn.log_pdf(th, t, hidden)), (None, 0)))
    assert bool(jnp.all(jnp.isfinite(grad(steep, jnp.linspace(0.0, 1.0, 101)))))


def test_pnn_float32_exact_ends_and_tail_log_density():
    hidden = (8, 8)
    theta = random_theta(hidden, jax.random.key(3), 2.0)
    tr = pnn.pnn_transformer(hidden, (-2.0, 3.0))
    fwd = jax.jit(jax.vmap(tr.forward, (None, 0)))
    z, ld = fwd(theta, jnp.array([-2.0, 3.0, 0.5]))
    assert float(z[0]) == 0.0 and float(z[1]) == 1.0
    assert bool(jnp.all(jnp.isfinite(ld)))
    # float32 log-density agrees with float64 everywhere, including steep sigmoids' tails
    x = jnp.linspace(-2.0, 3.0, 2001)
    _, ld32 = fwd(theta, x)
    with jax.enable_x64(True):
        _, ld64 = jax.vmap(tr.forward, (None, 0))(theta.astype(jnp.float64), x.astype(jnp.float64))
    np.testing.assert_allclose(ld32, ld64, atol=2e-4)


def test_pnn_is_exactly_a_logistic_mixture():
    """[1, K, 1] PNN == a truncated mixture of K logistics plus c * uniform (independent
    NumPy reference)."""
    w, mu, s = np.array([0.2, 0.5, 0.3]), np.array([-1.0, 0.5, 2.0]), np.array([0.3, 0.8, 0.2])
    a, b = -3.0, 4.0
    theta = pnn.logistic_mixture_params(w, mu, s, (a, b))
    x = np.linspace(a, b, 501)

    def g(v):
        return np.sum(w / (1 + np.exp(-(v[:, None] - mu) / s)), axis=1) + C * (v - a) / (b - a)

    ref = (g(x) - g(np.array([a]))) / (g(np.array([b])) - g(np.array([a])))
    with jax.enable_x64(True):
        tr = pnn.pnn_transformer((3,), (a, b))
        z, ld = jax.vmap(tr.forward, (None, 0))(jnp.asarray(theta, jnp.float64), jnp.asarray(x))
        np.testing.assert_allclose(z, ref, atol=1e-6)  # theta is stored in float32
        dens = np.gradient(ref, x)
        np.testing.assert_allclose(np.exp(ld)[1:-1], dens[1:-1], rtol=2e-3, atol=1e-4)


def test_pnn_transformer_support_rules():
    hidden = (6,)
    theta = random_theta(hidden, jax.random.key(4))
    bounded = pnn.pnn_transformer(hidden, (-1.0, 1.0))
    z, ld = jax.vmap(bounded.forward, (None, 0))(theta, jnp.array([-1.5, 1.5, 0.0]))
    np.testing.assert_array_equal(z[:2], [0.0, 1.0])
    assert bool(jnp.all(jnp.isneginf(ld[:2]))) and bool(jnp.isfinite(ld[2]))
    # no NaN gradient from the out-of-support branch
    grad = jax.grad(lambda th: bounded.forward(th, jnp.asarray(1.5))[0])(theta)
    assert bool(jnp.all(jnp.isfinite(grad)))
    lin = pnn.pnn_transformer(hidden, (-1.0, 1.0), tails="linear")
    y, ld = jax.vmap(lin.forward, (None, 0))(theta, jnp.array([-3.0, -1.0, 1.0, 2.5]))
    np.testing.assert_allclose(y, [-3.0, -1.0, 1.0, 2.5], atol=1e-6)
    np.testing.assert_array_equal(ld[jnp.array([0, 3])], [0.0, 0.0])
    with pytest.raises(ValueError, match="tails"):
        pnn.pnn_transformer(hidden, tails="quadratic")
    with pytest.raises(ValueError, match="bounds"):
        pnn.pnn_transformer(hidden, (1.0, 1.0))
    with pytest.raises(ValueError, match="arch"):
        pnn.pnn_transformer((8, 0))


@pytest.mark.parametrize("solver", ["newton", "chandrupatla", "bisection"])
def test_pnn_samples_follow_logistic_mixture(solver):
    """Inverse-transform samples of a [1, 3, 1] PNN pass a KS test against the exact CDF,
    and every sample inverts the CDF to the solver tolerance."""
    w, mu, s = np.array([0.3, 0.4, 0.3]), np.array([-1.5, 0.0, 1.2]), np.array([0.2, 0.5, 0.1])
    a, b = -3.0, 3.0
    theta = jnp.asarray(pnn.logistic_mixture_params(w, mu, s, (a, b)))
    tr = pnn.pnn_transformer((3,), (a, b), solver=solver)
    u = jax.random.uniform(jax.random.key(0), (4000,))
    x, _ = jax.jit(jax.vmap(tr.inverse, (None, 0)))(theta, u)
    u2, ld = jax.vmap(tr.forward, (None, 0))(theta, x)
    # |F(x) - u| <= f(x) * tol (the x-tolerance) plus float32 rounding of F
    tol = (b - a) * pnn.default_xtol(jnp.float32)
    assert bool(jnp.all(jnp.abs(u2 - u) <= jnp.exp(ld) * tol + 2e-6)), float(
        jnp.max(jnp.abs(u2 - u))
    )

    def ref_cdf(v):
        v = np.asarray(v, np.float64)
        g = lambda q: np.sum(w / (1 + np.exp(-(np.atleast_1d(q)[:, None] - mu) / s)), 1) + C * (
            np.atleast_1d(q) - a
        ) / (b - a)
        return (g(v) - g(a)) / (g(b) - g(a))

    res = stats.kstest(np.asarray(x, np.float64), ref_cdf)
    assert res.pvalue > 1e-3, res


def test_sampler_gradients_match_finite_differences():
    with jax.enable_x64(True):
        hidden = (5, 4)
        tr = pnn.pnn_transformer(hidden, (-2.0, 2.0))
        theta = random_theta(hidden, jax.random.key(7), 1.0, jnp.float64)
        u = jnp.array([0.02, 0.3, 0.55, 0.97])

        @jax.jit
        def total(th, uu):
            return jnp.sum(jax.vmap(tr.inverse, (None, 0))(th, uu)[0] ** 2)

        g_th, g_u = jax.jit(jax.grad(total, (0, 1)))(theta, u)
        v = jax.random.normal(jax.random.key(8), theta.shape, jnp.float64)
        eps = 1e-6
        fd = (total(theta + eps * v, u) - total(theta - eps * v, u)) / (2 * eps)
        np.testing.assert_allclose(jnp.dot(g_th, v), fd, rtol=1e-5, atol=1e-8)
        e = jnp.eye(4)
        fd_u = jnp.array([(total(theta, u + eps * e[i]) - total(theta, u - eps * e[i])) / (2 * eps)
                          for i in range(4)])
        np.testing.assert_allclose(g_u, fd_u, rtol=1e-5)


# ------------------------------------------------------------------------------ d-D NITS


@pytest.fixture(scope="module")
def small_bijector():
    bij = nits_bijector(3, arch=(8,), hidden=32, blocks=1, context_dim=2)
    params = bij.init(jax.random.key(0))
    params = jax.tree_util.tree_map(
        lambda a: a + 0.3 * jax.random.normal(jax.random.key(1), a.shape, a.dtype), params
    )
    return bij, params


@pytest.mark.parametrize("solver", ["newton", "bisection"])
def test_nits_samples_invert_every_conditional_cdf(small_bijector, solver):
    _, params = small_bijector
    bij = nits_bijector(3, arch=(8,), hidden=32, blocks=1, context_dim=2, solver=solver)
    u = jax.random.uniform(jax.random.key(2), (64, 3), minval=1e-3, maxval=1 - 1e-3)
    c = jax.random.normal(jax.random.key(3), (64, 2))
    x, ld_inv = jax.jit(jax.vmap(lambda z, ci: bij.inverse(params, z, ci)))(u, c)
    u2, ld = jax.jit(jax.vmap(lambda xi, ci: bij.forward(params, xi, ci)))(x, c)
    assert bool(jnp.all(jnp.isfinite(x)))
    # forward is the vector of conditional CDFs: every coordinate is inverted
    assert float(jnp.max(jnp.abs(u2 - u))) < 2e-5
    np.testing.assert_allclose(ld_inv, -ld, rtol=1e-4, atol=1e-4)


def _constant_made(params, theta, dim):
    """MADE params that output ``theta`` for every coordinate and every input."""
    inner = params["params"]
    names = sorted(k for k in inner if k.startswith("MaskedDense"))
    out = names[-1]
    new = jax.tree_util.tree_map(jnp.zeros_like, params)
    new["params"][out]["bias"] = jnp.tile(jnp.asarray(theta), dim)
    return new


def test_nits_flow_samples_follow_known_density():
    """A bounded NITS flow whose conditioner outputs a fixed [1, 3, 1] logistic mixture:
    every coordinate of the flow's samples passes a KS test against the exact CDF."""
    a, b = -2.0, 2.0
    w, mu, s = np.array([0.5, 0.2, 0.3]), np.array([-1.0, 0.2, 1.0]), np.array([0.15, 0.3, 0.2])
    # the PNNs live on the canonical cube: locations and scales in its units
    theta = pnn.logistic_mixture_params(w, (mu - a) / (b - a), s / (b - a), (0.0, 1.0))
    flow = nits(2, arch=(3,), hidden=16, blocks=1, bounds=(a, b))
    params = flow.init(jax.random.key(0))
    inner = params["bijector"]["nits"]
    made = _constant_made(inner["made"], theta, 2)
    params = {"bijector": {"nits": {**inner, "made": made}}, "base": params["base"]}
    xs, lp = flow.sample_and_log_prob(params, jax.random.key(1), 3000)

    def ref_cdf(v):
        g = lambda q: np.sum(w / (1 + np.exp(-(np.atleast_1d(q)[:, None] - mu) / s)), 1) + C * (
            np.atleast_1d(q) - a
        ) / (b - a)
        return (g(np.asarray(v, np.float64)) - g(a)) / (g(b) - g(a))

    for j in range(2):
        res = stats.kstest(np.asarray(xs[:, j], np.float64), ref_cdf)
        assert res.pvalue > 1e-3, (j, res)
    np.testing.assert_allclose(flow.log_prob(params, xs), lp, atol=1e-3)


@pytest.mark.slow  # ~10 s: compiles the reverse-mode sampler of a whole flow
def test_gradients_through_flow_sampler_match_finite_differences():
    with jax.enable_x64(True):
        flow = nits(2, arch=(4,), hidden=16, blocks=1, bounds=(-2.0, 2.0))
        params = flow.init(jax.random.key(0))
        params = jax.tree_util.tree_map(
            lambda a: (a + 0.3 * jax.random.normal(jax.random.key(5), a.shape)).astype(jnp.float64),
            params,
        )

        @jax.jit
        def loss(p):
            x, _ = flow.sample_batch(p, jax.random.key(2), 16)
            return jnp.sum(jnp.sin(x))

        grads = jax.jit(jax.grad(loss))(params)
        leaves, tree = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.key(6), len(leaves))
        v = jax.tree_util.tree_unflatten(
            tree, [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)]
        )
        eps = 1e-6
        shift = lambda sgn: jax.tree_util.tree_map(lambda a, d: a + sgn * eps * d, params, v)  # noqa: E731
        fd = (loss(shift(1)) - loss(shift(-1))) / (2 * eps)
        dot = sum(jnp.vdot(g, d) for g, d in zip(jax.tree_util.tree_leaves(grads),
                                                   jax.tree_util.tree_leaves(v)))
        np.testing.assert_allclose(dot, fd, rtol=1e-5)


# ------------------------------------------------------------------------ support rules


def test_bounded_flow_out_of_support_is_an_error_or_explicit_minus_inf():
    x = np.array([[0.0, 0.5], [0.2, 1.5], [-0.3, 0.1]], np.float32)
    strict = nits(2, arch=(4,), hidden=16, blocks=1, bounds=(-1.0, 1.0))
    params = strict.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"row 1; dimension 1 = 1.5"):
        strict.log_prob(params, x)
    lenient = nits(2, arch=(4,), hidden=16, blocks=1, bounds=(-1.0, 1.0), out_of_support="-inf")
    lp = lenient.log_prob(params, x)
    assert bool(jnp.isneginf(lp[1])) and bool(jnp.all(jnp.isfinite(lp[jnp.array([0, 2])])))
    # the same point has a finite density under the (default) unbounded NITS
    free = nits(2, arch=(4,), hidden=16, blocks=1)
    assert bool(jnp.all(jnp.isfinite(free.log_prob(free.init(jax.random.key(0)), x))))


@pytest.mark.parametrize("squash", ["normal", "logistic"])
def test_unbounded_nits_starts_at_its_squash_density_with_finite_tails(squash):
    """Fresh (identity whitening, PNNs within a few percent of uniform): the density of
    the squash, N(0, 1) (the default) or the standard logistic, per coordinate."""
    flow = nits(2, arch=(8,), hidden=16, blocks=1, squash=squash)
    params = flow.init(jax.random.key(0))
    x = np.array([[0.0, 0.0], [1.0, -2.0], [8.0, -8.0], [30.0, -60.0], [200.0, 1e3]], np.float32)
    lp = flow.log_prob(params, x)
    assert bool(jnp.all(jnp.isfinite(lp)))
    if squash == "normal":
        want = stats.norm.logpdf(x.astype(np.float64)).sum(1)
    else:
        want = np.sum(-np.abs(x) - 2 * np.log1p(np.exp(-np.abs(x))), axis=1)
    # fresh PNNs are within a few percent of uniform: log-density within 0.1 of the squash's
    np.testing.assert_allclose(lp, want, atol=0.1, rtol=1e-6)


def test_support_from_data_uses_training_data_with_margin():
    rng = np.random.RandomState(0)
    x = rng.randn(200, 3) * np.array([1.0, 2.0, 0.5])
    lo, hi = support_from_data(x, margin=0.1)
    rng_ = x.max(0) - x.min(0)
    np.testing.assert_allclose(lo, x.min(0) - 0.1 * rng_)
    np.testing.assert_allclose(hi, x.max(0) + 0.1 * rng_)
    lo_r, hi_r = support_from_data(x, margin=0.05, rotation_invariant=True)
    q, _ = np.linalg.qr(rng.randn(3, 3))
    xr = x @ q
    assert np.all(xr >= lo_r) and np.all(xr <= hi_r)
    with pytest.raises(ValueError, match="margin"):
        support_from_data(x, margin=-0.1)
    with pytest.raises(ValueError, match="x_train"):
        support_from_data(x[0])
    with pytest.raises(ValueError, match="x_train"):
        support_from_data(np.array([[np.nan, 1.0]]))


def test_nits_constructor_checks_arguments():
    with pytest.raises(ValueError, match="bounds"):
        nits(2, bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="bounds"):
        nits(2, bounds=([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="solver"):
        nits(2, solver="secant")
    with pytest.raises(ValueError, match="out_of_support"):
        nits(2, out_of_support="nan")
    with pytest.raises(ValueError, match="arch"):
        nits(2, arch=())
    with pytest.raises(ValueError, match="squash_scale"):
        nits(2, squash_scale=0.0)
    flow = nits(2, arch=(4,), hidden=16, blocks=1, context_dim=3)
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(flow.init(jax.random.key(0)), np.zeros((2, 2), np.float32))


def test_dropout_is_active_only_with_a_key():
    flow = nits(2, arch=(4,), hidden=16, blocks=2, dropout=0.5)
    params = flow.init(jax.random.key(0))
    params = jax.tree_util.tree_map(
        lambda a: a + 0.5 * jax.random.normal(jax.random.key(2), a.shape), params
    )
    x = jnp.array([[0.1, -0.4], [1.0, 0.3]])
    batch = jax.jit(flow.log_prob_batch)
    det = batch(params, x)
    np.testing.assert_allclose(det, flow.log_prob(params, x), rtol=1e-6)
    train = batch(params, x, None, jax.random.key(1))
    assert not np.allclose(det, train)


# ------------------------------------------------------------------- Gaussian-CDF squash
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_squash_is_the_gaussian_cdf_with_exact_tails(dtype):
    with jax.enable_x64(dtype == "float64"):
        sq = normal_squash(3, loc=[0.0, 1.0, -2.0], scale=[1.0, 2.0, 0.5])
        x = jnp.asarray([[0.3, -3.0, -2.5], [-30.0, 40.0, 4.0]], dtype)
        t, ld = jax.vmap(lambda xi: sq.forward({}, xi))(x)
        y = (np.asarray(x, np.float64) - [0.0, 1.0, -2.0]) / [1.0, 2.0, 0.5]
        np.testing.assert_allclose(t, stats.norm.cdf(y), rtol=1e-5, atol=1e-7)
        expected = (stats.norm.logpdf(y) - np.log([1.0, 2.0, 0.5])).sum(1)
        np.testing.assert_allclose(ld, expected, rtol=1e-5)  # exact far in the tails
        back, _ = jax.vmap(lambda ti: sq.inverse({}, ti))(t)
        np.testing.assert_allclose(back[0], x[0], rtol=1e-4)
        assert np.all(np.isfinite(np.asarray(back)))  # t rounded to 0 or 1: clamped, finite


def test_nits_with_normal_squash_starts_near_the_standard_normal():
    """The PNN at its identity parameters is the identity on [0, 1] only approximately
    (max |F(t) - t| ~ 1.3e-3, max |log f(t)| ~ 0.039 for arch (16, 16)), so NITS with the
    Gaussian-CDF squash starts within 0.04 nats per coordinate of N(0, I)."""
    arch = (16, 16)
    theta = pnn.pnn_transformer(arch, (0.0, 1.0)).identity_params
    t = jnp.linspace(0.0, 1.0, 1001)
    f_cdf, log_f = jax.vmap(lambda ti: pnn.cdf_and_log_pdf(theta, ti, arch))(t)
    assert float(jnp.max(jnp.abs(f_cdf - t))) < 2e-3
    assert float(jnp.max(jnp.abs(log_f))) < 0.04
    flow = nits(2, arch=arch, hidden=16, blocks=1, squash="normal")
    params = flow.init(jax.random.key(0))
    x = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32) * 1.5
    gap = np.abs(np.asarray(flow.log_prob(params, x)) - stats.norm.logpdf(x).sum(1))
    assert gap.max() < 2 * 0.04


def test_squash_argument_is_checked():
    with pytest.raises(ValueError, match="squash: expected 'logistic'"):
        nits(2, squash="gauss")
    with pytest.raises(ValueError, match="squash: expected 'logistic'"):
        nits_bijector(2, squash="probit")
    with pytest.raises(ValueError, match="squash_scale"):
        normal_squash(2, scale=-1.0)
