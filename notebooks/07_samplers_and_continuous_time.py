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
# # Samplers and continuous time: stochastic flows, ODE flows, tensor trains
#
# Methods built on JAX's ODE solvers (diffrax) and MCMC kernels (blackjax), at small
# budgets (seconds on a laptop CPU; raise the steps for sharper results):
#
# 1. **stochastic normalizing flows**: flow layers interleaved with Metropolis and
#    Langevin steps, trained to sample an unnormalised target (Wu, Köhler & Noé 2020);
# 2. **continuous normalizing flows**: an ODE flow with an exact or Hutchinson trace;
# 3. the **tensorizing flow**: a tensor-train density fitted without optimisation, then
#    an ODE flow from it to the data (Ren, Zhao, Khoo & Ying 2022).
#
# Full runs with their commands: `experiments/results/stochastic_continuous.md`.

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

import nitsjax as nj

key = jax.random.key(0)


def density_image(ax, log_prob, lim=4.0, n=64, title=""):
    """Show ``exp(log_prob)`` on a square grid."""
    g = np.linspace(-lim, lim, n)
    xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2).astype(np.float32)
    ax.imshow(np.exp(np.asarray(log_prob(xy))).reshape(n, n), origin="lower",
              extent=(-lim, lim, -lim, lim), cmap="viridis")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


# %% [markdown]
# ## 1. Stochastic normalizing flow on a double well
#
# The target is known up to its normaliser. A chain of two small RealNVP blocks with
# MALA steps (blackjax kernels) between and after them, and a last Langevin step, is
# trained by the path KL; importance weights of fresh paths give the effective sample
# size and an estimate of `log Z` with its standard error, checked against the exact
# value. The first MALA layer targets the tempered density (`beta=0.5`), which lowers
# the barrier between the wells.

# %%
target = nj.snf.targets.double_well()
blocks = [nj.flows.realnvp(2, layers=2, hidden=(32, 32), standardize=None) for _ in range(2)]
chain = nj.snf.chain([blocks[0].bijector, nj.snf.metropolis("mala", 0.05, n_steps=5, beta=0.5),
                      blocks[1].bijector, nj.snf.metropolis("mala", 0.05, n_steps=5),
                      nj.snf.langevin(0.01, n_steps=2)])
fit = nj.snf.fit_reverse(chain, chain.init(key), target.log_prob, key=jax.random.key(1),
                         steps=800, batch_size=128, learning_rate=1e-3, n_samples=2000,
                         progress=False)
print(f"log Z = {fit.log_z:.3f} +- {fit.log_z_se:.3f} (exact {target.log_z:.3f}), "
      f"ESS {fit.ess / len(fit.weights):.2f} of the samples")
masses, covered = nj.snf.targets.mode_coverage(target, fit.samples, fit.weights)
print("mass per mode:", np.round(masses, 2), f"({covered} of {len(masses)} modes covered)")

fig, ax = plt.subplots(1, 2, figsize=(9, 4))
density_image(ax[0], jax.vmap(target.log_prob), lim=3, title="target (unnormalised)")
ax[1].scatter(*np.asarray(fit.samples)[:1000].T, s=2)
ax[1].set(xlim=(-3, 3), ylim=(-3, 3), title="SNF samples")
plt.show()

# %% [markdown]
# ## 2. A continuous normalizing flow
#
# `nj.flows.cnf` is one neural-ODE layer solved by diffrax; the log-determinant is the
# integral of the vector field's divergence, exact here (`trace="exact"`, small `dim`).
# It trains with `nj.fit` like any flow.

# %%
train, val, test = nj.data.load("moons", n_train=2000, n_val=300, n_test=1000)
cnf = nj.flows.cnf(2, hidden=(32, 32), rtol=1e-3, atol=1e-3)
p_cnf, _ = nj.fit(cnf, cnf.init(key), train, val, key=jax.random.key(2), steps=60,
                  batch_size=128, learning_rate=5e-3, progress=False)
print(f"CNF test log-likelihood: {float(np.mean(cnf.log_prob(p_cnf, test))):.3f} nats")

# %% [markdown]
# ## 3. Tensor-train density and the tensorizing flow
#
# `nj.tt.fit` builds a normalised tensor-train density on a grid from kernel density
# estimates of low-dimensional marginals: linear algebra only, no optimisation. It can
# be sampled exactly. `nj.flows.tensorizing_flow` puts it under an ODE flow as the base.

# %%
tt = nj.tt.fit(train, rank=6, grid=40)
print(f"TT density alone, test log-likelihood: {float(np.mean(tt.log_prob(test))):.3f} nats")
tflow = nj.flows.tensorizing_flow(2, tt, hidden=(32, 32))
p_tf, _ = nj.fit(tflow, tflow.init(key), train, val, key=jax.random.key(3), steps=60,
                 batch_size=128, learning_rate=3e-3, progress=False)
print("tensorizing flow, test log-likelihood: "
      f"{float(np.mean(tflow.log_prob(p_tf, test))):.3f} nats")

fig, ax = plt.subplots(1, 3, figsize=(12, 4))
density_image(ax[0], lambda z: cnf.log_prob(p_cnf, z), lim=3, title="CNF")
density_image(ax[1], tt.log_prob, lim=3, title="TT density")
ax[2].scatter(*np.asarray(tt.sample(jax.random.key(4), 1000)).T, s=2)
ax[2].set(xlim=(-3, 3), ylim=(-3, 3), title="exact TT samples")
plt.show()

# %% [markdown]
# ## 4. Score-based diffusion trained by high-order denoising score matching
#
# A VP-SDE score model trained by first-, second- or third-order denoising score
# matching (Lu et al., ICML 2022); its exact likelihood is that of the probability-flow
# ODE, solved with the same `nitsjax.ode` machinery as the CNF. Order 2 also matches the
# score's Jacobian (its trace here), which tightens the ODE likelihood.

# %%
dm = nj.diffusion.fit(train, val, order=2, key=jax.random.key(5), steps=300,
                      hidden=(64, 64), learning_rate=2e-3, rtol=1e-3, atol=1e-3,
                      progress=False)
print(f"diffusion (order 2), ODE test log-likelihood: "
      f"{float(np.mean(dm.log_prob(test[:500]))):.3f} nats")
plt.scatter(*np.asarray(dm.sample(jax.random.key(6), 1000)).T, s=2)
plt.title("probability-flow ODE samples")
plt.show()
