# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # NITS in depth: the CDF network, exact normalisation, the solver, sampling speed
#
# The Neural Inverse Transform Sampler (Li & Kluger, ICML 2022,
# [arXiv 2206.11172](https://arxiv.org/abs/2206.11172)) models each conditional
# `p(x_i | x_<i)` by a small monotone network whose output *is* the conditional CDF
# `F_i`. The density is its exact derivative, so the model is normalised by
# construction; sampling inverts the CDFs coordinate by coordinate with a bracketing
# root finder. This notebook opens each piece.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import nitsjax as nj
from nitsjax.bijectors import pnn

# %% [markdown]
# ## 1. The CDF network (PNN)
#
# A probabilistically normalised network `[1, h_1, ..., h_k, 1]` on `t in [0, 1]`:
# sigmoid layers with positive weights, a softmax-weighted sum on top, plus `c * t`
# (`c = monotonic_const`) so it is strictly increasing; then
# `F(t) = (G(t) - G(0)) / (G(1) - G(0))`, exactly 0 at 0 and 1 at 1. All its weights
# come from one vector `theta` (in a flow, the MADE conditioner outputs one `theta` per
# coordinate). `pnn.cdf_and_log_pdf` returns `F(t)` and `log f(t)`, with `f` the
# analytic derivative carried in log space.
#
# With one hidden layer the PNN is a mixture of logistics (plus a small uniform part);
# `logistic_mixture_params` builds such a `theta`. We also draw a random `theta` of a
# two-layer PNN `[1, 16, 16, 1]`.

# %%
mix_arch = (3,)
theta_mix = jnp.asarray(pnn.logistic_mixture_params(
    weights=[0.5, 0.3, 0.2], locs=[0.2, 0.55, 0.8], scales=[0.05, 0.03, 0.08]))
arch = (16, 16)
theta = jnp.asarray(pnn.identity_params(arch)) + 0.8 * jax.random.normal(
    jax.random.key(0), (pnn.num_params(arch),))



def pnn_on_grid(theta, arch, t):
    """F(t) and log f(t) of one PNN at every point of t (one compiled program)."""
    return jax.jit(jax.vmap(lambda ti: pnn.cdf_and_log_pdf(theta, ti, arch)))(t)


t = jnp.linspace(0.0, 1.0, 20001)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
pnns = [("mixture of 3 logistics", theta_mix, mix_arch), ("random [1,16,16,1]", theta, arch)]
for name, th, a in pnns:
    cdf, log_pdf = pnn_on_grid(th, a, t)
    pdf = jnp.exp(log_pdf)
    axes[0].plot(t, cdf, label=name)
    axes[1].plot(t, pdf, label=name)
    # exact normalisation: F(0) = 0 and F(1) = 1 exactly, and the density integrates to 1
    integral = float(jnp.trapezoid(pdf, t))
    print(f"{name:24s} F(0) = {float(cdf[0])}, F(1) = {float(cdf[-1])}, "
          f"integral of f over [0, 1] = {integral:.6f}")
    assert float(cdf[0]) == 0.0 and float(cdf[-1]) == 1.0
    assert abs(integral - 1.0) < 1e-4
axes[0].set_title("CDF F(t)")
axes[1].set_title("density f(t) = F'(t)")
axes[1].legend()
plt.show()

# %% [markdown]
# The density is the *exact* derivative of the CDF, not an approximation: compare with
# automatic differentiation of `F`.

# %%
ts = jnp.linspace(0.01, 0.99, 7)
f_analytic = jnp.exp(pnn_on_grid(theta, arch, ts)[1])
f_autodiff = jax.jit(jax.vmap(jax.grad(lambda ti: pnn.cdf(theta, ti, arch))))(ts)
print(np.c_[ts, f_analytic, f_autodiff])
np.testing.assert_allclose(f_analytic, f_autodiff, rtol=1e-4)

# %% [markdown]
# ## 2. A NITS flow on moons
#
# `nj.flows.nits` chains a logistic squash (R -> (0, 1), so the support is all of R^2)
# with the autoregressive NITS layer whose forward map is `u_i = F_i(t_i | t_<i)`
# against a `Uniform[0, 1]^2` base. A small model and a short budget (the paper's
# conditioner has 1024 units and 4 residual blocks).

# %%
train, val, test = nj.data.load("moons")
flow = nj.flows.nits(2, arch=(16, 16), hidden=32, blocks=1)
params = flow.init(jax.random.key(0))
start = time.perf_counter()
params, history = nj.fit(flow, params, train, val, key=jax.random.key(1), steps=600,
                         batch_size=256, learning_rate=3e-3, progress=False)
print(f"trained in {time.perf_counter() - start:.1f} s")
print("test log-likelihood, mean +- 2 SE:", nj.results.summarize(flow.log_prob(params, test)))

# %% [markdown]
# ### The conditional CDF and density of `x_2` given `x_1`
#
# The second coordinate of the latent, `u_2 = F_2(sigmoid(x_2) | sigmoid(x_1))`, is
# the conditional CDF of `x_2` given `x_1` in data units (the squash is increasing), and
# its derivative in `x_2` is the conditional density. Both come straight from the
# bijector: `flow.bijector.forward(params["bijector"], x)` maps one point to
# `(u, log|det du/dx|)`.

# %%
forward = flow.bijector.forward
bparams = params["bijector"]


def conditional_cdf(x1, x2):
    return forward(bparams, jnp.stack([x1, x2]))[0][1]


cond_cdf = jax.jit(jax.vmap(conditional_cdf, in_axes=(None, 0)))
cond_pdf = jax.jit(jax.vmap(jax.grad(conditional_cdf, argnums=1), in_axes=(None, 0)))

x2 = jnp.linspace(-12.0, 12.0, 6001)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for x1 in (-2.0, 0.0, 2.0):
    c, p = cond_cdf(x1, x2), cond_pdf(x1, x2)
    axes[0].plot(x2, c, label=f"x1 = {x1}")
    axes[1].plot(x2, p, label=f"x1 = {x1}")
    total = float(jnp.trapezoid(p, x2))
    ends = cond_cdf(x1, jnp.array([-40.0, 40.0]))
    print(f"x1 = {x1:+.1f}: F(-40) = {float(ends[0])}, F(40) = {float(ends[1])}, "
          f"integral of p(x2 | x1) over [-12, 12] = {total:.5f}")
    assert abs(total - 1.0) < 2e-3
for ax in axes:
    ax.set_xlim(-4, 4)
    ax.set_xlabel("x2")
axes[0].set_title("F(x2 | x1)")
axes[1].set_title("p(x2 | x1)")
axes[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The joint density integrates to one
#
# On a grid: `exp(log_prob)` summed over `[-8, 8]^2` (the squash has logistic tails, so
# the mass outside is small but not zero).

# %%
g = np.linspace(-8, 8, 241, dtype=np.float32)
xx, yy = np.meshgrid(g, g)
density = np.exp(np.asarray(flow.log_prob(params, np.stack([xx.ravel(), yy.ravel()], 1))))
density = density.reshape(xx.shape)
mass = density.sum() * (g[1] - g[0]) ** 2
print(f"integral over [-8, 8]^2: {mass:.4f}")
assert abs(mass - 1.0) < 0.01
plt.figure(figsize=(5, 4))
plt.pcolormesh(xx, yy, density, shading="auto")
plt.colorbar(label="p(x)")
plt.xlim(-4, 4)
plt.ylim(-3, 3)
plt.gca().set_aspect("equal")
plt.title("NITS density")
plt.show()

# %% [markdown]
# ## 3. The solver: bisection vs safeguarded Newton
#
# Sampling solves `F(t) = u` for `t` in `[0, 1]`. `nj.root_finding` holds batched
# bracketing solvers in one `lax.while_loop` (no host synchronisation, works under
# `jit` and `vmap`); each returns a `RootResult` with the root, the residual
# `F(t) - u` and the iterations every element used.
#
# - `bisection` halves the bracket: 22 iterations for a tolerance of 2^-22.
# - `newton` (Numerical Recipes' `rtsafe`) takes a Newton step with the exact density
#   when it stays inside the bracket and shrinks fast enough, and bisects otherwise.
#
# We solve 2000 random targets on the random two-layer PNN above, capping the
# iterations at `k` (`max_iter` may be traced, so one compiled program serves every `k`).

# %%
u = jax.random.uniform(jax.random.key(2), (2000,))
xtol, ftol = 2.0**-22, 4 * float(jnp.finfo(jnp.float32).eps)


def cdf_batch(x):
    return jax.vmap(lambda ti: pnn.cdf(theta, ti, arch))(x)


def cdf_and_pdf_batch(x):
    c, lp = jax.vmap(lambda ti: pnn.cdf_and_log_pdf(theta, ti, arch))(x)
    return c, jnp.exp(lp)


bisect = jax.jit(lambda k: nj.root_finding.bisection(cdf_batch, u, 0.0, 1.0, xtol=xtol, max_iter=k))
newton = jax.jit(lambda k: nj.root_finding.newton(cdf_and_pdf_batch, u, 0.0, 1.0, xtol=xtol,
                                                  ftol=ftol, max_iter=k, x0=u))
ks = np.arange(1, 25)
res_b = [float(jnp.max(jnp.abs(bisect(k).residual))) for k in ks]
res_n = [float(jnp.max(jnp.abs(newton(k).residual))) for k in ks]
final_b, final_n = bisect(60), newton(60)
for name, r in [("bisection", final_b), ("newton", final_n)]:
    its = np.asarray(r.iterations)
    print(f"{name:10s} iterations: mean {its.mean():5.2f}, max {its.max():2d}; "
          f"max |F(t) - u| = {float(jnp.max(jnp.abs(r.residual))):.1e}; "
          f"all converged: {bool(jnp.all(r.converged))}")
print("max |t_newton - t_bisection| =", float(jnp.max(jnp.abs(final_n.x - final_b.x))))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].semilogy(ks, res_b, "o-", label="bisection")
axes[0].semilogy(ks, res_n, "s-", label="newton")
axes[0].set(xlabel="max_iter", ylabel="max |F(t) - u| over 2000 targets",
            title="residual after k iterations")
axes[0].legend()
bins = np.arange(0.5, 25.5)
axes[1].hist(np.asarray(final_b.iterations), bins, label="bisection")
axes[1].hist(np.asarray(final_n.iterations), bins, label="newton")
axes[1].set(xlabel="iterations used", title="iterations per target")
axes[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Sampling speed
#
# The solver is an option of the flow, not of its params: flows built with another
# `solver` share the trained params. Sampling is `d` sequential solves (one per
# coordinate); density evaluation is one pass. Times are after compilation, on this
# machine. Which solver is fastest depends on the model and the hardware: Newton needs
# far fewer iterations, but each costs a CDF *and* a density evaluation, and a batched
# loop runs until its slowest element has converged. The tolerance is on the unit
# interval of each coordinate (2^-22 in float32), so in data units the solvers agree to
# within that tolerance stretched by the squash (more in the tails).

# %%
def best_time(fn, repeats=3):
    fn()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


n = 2000
key = jax.random.key(3)
samples = {}
print(f"log_prob of {n} points: {1e3 * best_time(lambda: flow.log_prob(params, test[:n])):7.1f} ms")
for solver in ("bisection", "newton"):  # also available: "chandrupatla"
    f = nj.flows.nits(2, arch=(16, 16), hidden=32, blocks=1, solver=solver)
    samples[solver] = f.sample(params, key, n)
    ms = 1e3 * best_time(lambda f=f: f.sample(params, key, n))
    print(f"sample {n} with {solver:12s}: {ms:7.1f} ms  ({n / ms * 1e3:,.0f} samples/s)")
diff = float(jnp.max(jnp.abs(samples["bisection"] - samples["newton"])))
print(f"max |x_bisection - x_newton| = {diff:.1e}")
