"""Quantile (CRPS) training (``nitsjax.losses.quantile``): the pinball loss by hand, the
CRPS of Gaussian conditionals against its closed form, the implicit gradient of the NITS
quantile against finite differences, ``fit(loss="crps")`` on a conditional task, and
the refusal of flows without conditional quantiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from contract import cast
from scipy import stats

import nitsjax as nj
from nitsjax.losses.quantile import conditional_quantiles

KEY = jax.random.key(0)
# compiled once per flow (eager op-by-op dispatch of these is many times slower)
crps = jax.jit(nj.losses.crps, static_argnums=0, static_argnames="levels")
quantiles = jax.jit(conditional_quantiles, static_argnums=0)


def _perturb(params, scale, seed=0):
    """``params`` plus Gaussian noise (NumPy: nothing to compile), frozen leaves kept."""
    rng = np.random.default_rng(seed)
    mask = nj.bijectors.trainable_mask(params)
    return jax.tree_util.tree_map(
        lambda a, m: jnp.asarray(a + scale * rng.normal(size=a.shape) * m, a.dtype),
        params, mask)


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-6)


def test_pinball_by_hand_and_broadcasting():
    close(nj.losses.pinball(3.0, 1.0, 0.9), 0.9 * 2.0)
    close(nj.losses.pinball(1.0, 3.0, 0.9), 0.1 * 2.0)
    close(nj.losses.pinball(2.0, 2.0, 0.3), 0.0)
    # a median is the absolute error halved; shapes broadcast
    out = nj.losses.pinball(jnp.array([[0.0], [4.0]]), jnp.array([1.0, 2.0, 3.0]), 0.5)
    close(out, [[0.5, 1.0, 1.5], [1.5, 1.0, 0.5]])
    levels = jnp.array([0.1, 0.5, 0.9])
    close(nj.losses.pinball(0.0, 1.0, levels), [0.9, 0.5, 0.1])


def test_crps_of_gaussian_conditionals_is_the_closed_form():
    """A one-layer MAF (whitening from data, then a perturbed MADE) has Gaussian
    conditionals: mean and sd of coordinate i from the Jacobian of its latent, and
    CRPS(N(m, s^2), y) = s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = (y - m) / s
    (Gneiting & Raftery 2007)."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        data = rng.normal(size=(200, 3)) @ np.array([[1, .5, 0], [0, 1, .3], [0, 0, 2]]) + 1.0
        flow = nj.flows.maf(3, layers=1, hidden=(8,))
        params = flow.data_init(cast(flow.init(KEY), jnp.float64), data)
        params = _perturb(params, 0.2)
        x = jnp.asarray(data[:5])
        forward = lambda r: flow.bijector.forward(params["bijector"], r)[0]  # noqa: E731
        z, jac = jax.jit(jax.vmap(lambda r: (forward(r), jax.jacfwd(forward)(r))))(x)
        z = z[:, ::-1]  # the layer's reversal: latent d-1-i is x_i's
        slope = jac[:, ::-1].diagonal(axis1=1, axis2=2)
        sd = 1.0 / np.asarray(slope)
        zs = np.asarray(z)
        closed = sd * (zs * (2 * stats.norm.cdf(zs) - 1) + 2 * stats.norm.pdf(zs)
                       - 1 / np.sqrt(np.pi))
        got = crps(flow, params, x, levels=512)  # midpoints
        np.testing.assert_allclose(got, closed.sum(1).mean(), rtol=2e-4)


def test_nits_quantile_gradient_is_implicit_and_matches_finite_differences():
    """d q / d theta through the NITS solve (implicit function theorem), float64."""
    with jax.enable_x64(True):
        flow = nj.flows.nits(2, hidden=8, blocks=1, arch=(4,), standardize=None)
        params = _perturb(cast(flow.init(KEY), jnp.float64), 0.3)
        x = jnp.asarray([[0.3, -0.8], [-1.2, 0.5]])
        u = jnp.asarray([[[0.2, 0.7]], [[0.9, 0.05]]])
        q = quantiles(flow, params, x, u)
        # the quantile is the teacher-forced inverse: F_i at (x_<i, q_i) gives u_i
        for i in range(2):
            cdf = flow.cdf(params, x.at[:, i].set(q[:, 0, i]))[:, i]
            np.testing.assert_allclose(cdf, u[:, 0, i], atol=1e-9)

        @jax.jit
        def total(p):
            return jnp.sum(conditional_quantiles(flow, p, x, u) * jnp.asarray([1.0, -0.7]))

        grad = jax.jit(jax.grad(total))(params)
        direction = _perturb(jax.tree_util.tree_map(jnp.zeros_like, params), 1.0, seed=2)
        step = 1e-5
        plus = jax.tree_util.tree_map(lambda a, d: a + step * d, params, direction)
        minus = jax.tree_util.tree_map(lambda a, d: a - step * d, params, direction)
        fd = (total(plus) - total(minus)) / (2 * step)
        dot = sum(jnp.vdot(g, d) for g, d in zip(jax.tree_util.tree_leaves(grad),
                                                 jax.tree_util.tree_leaves(direction)))
        assert abs(fd) > 1e-3
        np.testing.assert_allclose(dot, fd, rtol=1e-5)


def test_fit_with_crps_lowers_it_on_a_conditional_task():
    """Heteroscedastic y | x (noise scale grows with |x|), a conditional one-layer MAF
    (a Gaussian whose mean and scale depend on x), 60 steps of random-level CRPS."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(600, 1)).astype(np.float32)
    y = (np.sin(x) + (0.2 + 0.5 * np.abs(x)) * rng.normal(size=x.shape)).astype(np.float32)
    flow = nj.flows.maf(1, layers=1, hidden=(16,), context_dim=1)
    params0 = flow.init(KEY, y[:400], x[:400])
    before = float(crps(flow, params0, jnp.asarray(y[400:]), jnp.asarray(x[400:])))
    params, hist = nj.fit(flow, params0, y[:400], y[400:], context=x[:400],
                          val_context=x[400:], key=KEY, steps=60, batch_size=100,
                          learning_rate=3e-3, loss="crps", progress=False)
    after = float(crps(flow, params, jnp.asarray(y[400:]), jnp.asarray(x[400:])))
    assert hist.loss == "crps" and hist.records[-1]["val_loss"] is not None
    assert np.isfinite(hist.records[-1]["val_nll"])
    assert after < 0.95 * before


@pytest.mark.parametrize("make, why", [
    (lambda: nj.flows.maf(2, layers=2, hidden=(4,)), "layers=2"),
    (lambda: nj.flows.iaf(2, layers=1, hidden=(4,)), "inverted layer"),
])
def test_crps_refuses_flows_without_conditional_quantiles(make, why):
    flow = make()
    x = np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match=f"loss='crps'.*{why}.*nits.*layers=1 and linear=None"):
        nj.fit(flow, None, x, key=KEY, steps=1, batch_size=4, loss="crps")  # before any work


def test_conditional_inverse_of_coupling_spline_actnorm_layers_holds_the_prefix():
    """``Bijector.conditional_inverse`` through a coupling spline layer, ActNorm, the
    diagonal anchored standardisation, the reversal and ``stack``: coordinate i moved to
    v_i with the data prefix kept maps to the target latent, and v = x at z = forward(x)."""
    flow = nj.flows.nsf(3, layers=1, hidden=(8,), linear=None, actnorm=True,
                        standardize="diagonal")
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(4, 3)) * [1.0, 2.0, 0.5], jnp.float32)
    params = _perturb(flow.init(KEY), 0.3)  # the anchors stay the identity
    bij, p = flow.bijector, params["bijector"]
    target = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)

    @jax.jit
    def check(x, target):
        def row(r, zt):
            v = bij.conditional_inverse(p, r, zt)
            moved = jax.vmap(lambda i: bij.forward(p, r.at[i].set(v[i]))[0][2 - i])(
                jnp.arange(3))
            return moved, zt[::-1], bij.conditional_inverse(p, r, bij.forward(p, r)[0])

        return jax.vmap(row)(x, target)

    moved, want, back = check(x, target)
    np.testing.assert_allclose(moved, want, atol=2e-5)
    np.testing.assert_allclose(back, x, atol=2e-5)
