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
# # Quickstart: fit, evaluate, sample, plot
#
# A masked autoregressive flow (MAF; Papamakarios et al., NeurIPS 2017) on the 2-D
# `moons` toy, in about ten lines. Every flow in `nj.flows` (`maf`, `iaf`, `realnvp`,
# `nsf`, `nits`) has the same interface: `init`, `log_prob`, `sample`,
# `sample_and_log_prob`, and trains with `nj.fit`.

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

import nitsjax as nj

train, val, test = nj.data.load("moons")                    # (n, 2) float32, no download
flow = nj.flows.maf(dim=2, layers=4, hidden=(64, 64))
params = flow.init(jax.random.key(0))
params, history = nj.fit(flow, params, train, val, key=jax.random.key(1), steps=1000,
                         batch_size=256, learning_rate=3e-3, progress=False)
print("test log-likelihood, mean +- 2 SE:", nj.results.summarize(flow.log_prob(params, test)))
samples = flow.sample(params, jax.random.key(2), 2000)

fig, axes = plt.subplots(1, 3, figsize=(13, 4))
axes[0].scatter(*test.T, s=2)
axes[0].set_title("test data")
axes[1].scatter(*np.asarray(samples).T, s=2, c="C1")
axes[1].set_title("flow samples")
axes[2].plot(history["step"], history["val_nll"])
axes[2].set_title("validation NLL")
for ax in axes[:2]:
    ax.set(xlim=(-3.5, 3.5), ylim=(-2.5, 2.5), aspect="equal")
plt.show()

# %% [markdown]
# ## The density on a grid
#
# `log_prob` takes any batch of points `(n, 2)`, so the density is one call on a grid.
# The integral over a box that holds the data is close to 1 (the flow is normalised on
# all of R^2; a little mass lies outside the box).

# %%
g = np.linspace(-4, 4, 200, dtype=np.float32)
xx, yy = np.meshgrid(g, g)
grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
density = np.exp(np.asarray(flow.log_prob(params, grid))).reshape(xx.shape)
cell = (g[1] - g[0]) ** 2
print(f"integral over [-4, 4]^2: {density.sum() * cell:.4f}")
assert 0.97 < density.sum() * cell < 1.01

plt.figure(figsize=(5, 4))
plt.pcolormesh(xx, yy, density, shading="auto")
plt.colorbar(label="p(x)")
plt.gca().set_aspect("equal")
plt.title("MAF density on moons")
plt.show()

# %% [markdown]
# ## Samples and their log-densities in one pass
#
# `sample_and_log_prob` returns each sample's log-density along with it (no second
# pass); it equals `log_prob` of the same points.

# %%
xs, lp = flow.sample_and_log_prob(params, jax.random.key(3), 5)
print(np.c_[np.asarray(xs), np.asarray(lp), np.asarray(flow.log_prob(params, xs))])
np.testing.assert_allclose(lp, flow.log_prob(params, xs), rtol=1e-4, atol=1e-4)
