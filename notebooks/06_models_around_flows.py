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
# # Models around flows: manifolds, mixtures, compression, spread, memorisation
#
# A density model is often one part of a larger model, or the thing being measured. This
# notebook runs five such methods at small budgets (seconds on a laptop CPU; raise the
# steps for sharper results):
#
# 1. **two-step models** against manifold overfitting (Loaiza-Ganem et al., TMLR 2022);
# 2. the **Gaussian-mixture Wasserstein autoencoder** (Gaujac, Feige & Barber 2018);
# 3. **rate-distortion sandwich bounds** from samples (Yang & Mandt, ICLR 2022);
# 4. **spread divergence**: maximum likelihood where the data have no density (Zhang et
#    al., ICML 2020);
# 5. **memorisation diagnostics** along training (Yang & E 2022).
#
# The full runs with their commands: `experiments/results/latent_manifold.md`.

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

import nitsjax as nj

rng = np.random.default_rng(0)


def arc(n):
    """Points on a 1-D arc in R^2, not uniform along it: position s ~ Beta(2, 5)."""
    s = rng.beta(2.0, 5.0, size=n)
    return np.stack([np.cos(3 * s), np.sin(3 * s)], 1).astype(np.float32), s


def ks(a, b):
    """Two-sample Kolmogorov-Smirnov distance."""
    a, b, grid = np.sort(a), np.sort(b), np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, grid, "right") / len(a)
                         - np.searchsorted(b, grid, "right") / len(b)))


# %% [markdown]
# ## 1. Two-step models
#
# Data on a curve have no density in R^2: maximum likelihood in the ambient space can
# push the density up without bound on the curve and need not learn how the mass is
# spread along it. A two-step model first learns the curve with an autoencoder (1-D
# codes), then fits a flow to the codes. `fit` runs both stages in one call.

# %%
x_arc, _ = arc(2000)
val_arc, _ = arc(300)
_, s_true = arc(3000)
two = nj.models.two_step_mlp(2, latent_dim=1, hidden=(32, 32), density="nsf",
                             density_hidden=(32, 32), density_layers=2, autoencoder_steps=250)
p_two, h_two = two.fit(two.init(jax.random.key(0)), x_arc, val_arc, key=jax.random.key(1),
                       steps=200, batch_size=128, learning_rate=3e-3, progress=False)
s_two = np.asarray(two.sample(p_two, jax.random.key(2), 3000))
position = np.arctan2(s_two[:, 1], s_two[:, 0]) / 3
print(f"KS distance of the position along the curve: {ks(position, s_true):.3f}")
print("mean reconstruction error (val):",
      float(np.mean(two.reconstruction_error(p_two, val_arc))))

fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
ax[0].scatter(*x_arc[:800].T, s=2, label="data")
ax[0].scatter(*s_two[:800].T, s=2, alpha=0.5, label="two-step samples")
ax[0].set_aspect("equal")
ax[0].legend(markerscale=4)
ax[1].hist(s_true, 40, density=True, alpha=0.4, label="truth")
ax[1].hist(position, 40, density=True, histtype="step", label="two-step")
ax[1].set_title("position along the curve")
ax[1].legend()
plt.show()

# %% [markdown]
# ## 2. Gaussian-mixture WAE
#
# `k ~ U{1..K}`, `z | k ~ N(mu_k, sigma^2 I)`, `x = G(z)`, trained by reconstruction plus
# the MMD between the aggregate posterior and the mixture prior, the discrete latent
# summed exactly. On scikit-learn's 8x8 digits (bundled): how much of the discrete latent
# does it use? The entropy of the average `q(k | x)` is at most `log K`.

# %%
dig_tr, dig_va, dig_te = nj.data.load("digits")
wae = nj.models.gm_wae(64, K=10, latent_dim=4, hidden=(64, 64))
p_wae, _ = nj.fit(wae, wae.init(jax.random.key(0)), dig_tr, dig_va, key=jax.random.key(1),
                  steps=300, batch_size=32, learning_rate=2e-3, loss="objective",
                  progress=False)
q = np.asarray(wae.q_k(p_wae, dig_te)).mean(0)
print(f"entropy of the mean q(k|x): {-(q * np.log(q + 1e-12)).sum():.2f} of log K = "
      f"{np.log(10):.2f}")
components = np.repeat(np.arange(10), 6)  # six draws of each component k
draws = np.asarray(wae.sample_batch(p_wae, jax.random.key(3), 60, component=components))
grid = draws.reshape(10, 6, 8, 8).transpose(0, 2, 1, 3).reshape(80, 48)
plt.imshow(np.clip(grid, 0, 1), cmap="gray")
plt.title("one row per mixture component")
plt.axis("off")
plt.show()

# %% [markdown]
# ## 3. Rate-distortion sandwich bounds
#
# From samples alone: an upper bound on R(D) (a compressor with a learned latent
# density, one point per slope `lambda`) and a lower bound (the dual problem with a
# neural function). On a Gaussian source R(D) is known (reverse water-filling), so the
# sandwich can be checked.

# %%
variances = np.array([4.0, 1.0])
x_g = (rng.normal(size=(4000, 2)) * np.sqrt(variances)).astype(np.float32)
lambdas = [0.5, 2.0]
upper = nj.rd.upper_bound(x_g, lambdas, steps=250, progress=False)
lower = nj.rd.lower_bound(x_g, lambdas, steps=100, k=128, progress=False)
for lam, d, r in zip(lambdas, upper.distortion, upper.rate):
    print(f"lambda {lam}: upper (D={d:.3f}, R={r:.3f} nats), "
          f"R(D) = {float(nj.rd.gaussian_rd(variances, d)):.3f}")
nj.rd.plot(upper, lower, truth=lambda d: nj.rd.gaussian_rd(variances, d),
           title="2-D Gaussian source")
plt.show()

# %% [markdown]
# ## 4. Spread divergence
#
# Points on a line in R^2 have no density there: plain maximum likelihood drives a flow
# to an ever narrower ridge. `nj.fit(..., spread=sigma)` instead trains on the spread
# (Gaussian-noise-convolved) data and model, a divergence that stays defined. The
# training objective is the spread negative log-likelihood.

# %%
t = rng.normal(size=(2000, 1)).astype(np.float32)
x_line = np.concatenate([t, 0.5 * t], 1)
flow = nj.flows.maf(2, layers=3, hidden=(32, 32))
p_spread, h_spread = nj.fit(flow, flow.init(jax.random.key(0)), x_line[:1600], x_line[1600:],
                            key=jax.random.key(1), steps=200, spread=0.1, progress=False)
s_spread = np.asarray(flow.sample(p_spread, jax.random.key(2), 1000))
print("spread NLL (val):", round(float(h_spread.best_val_nll), 3))
print("distance of samples to the line:",
      float(np.mean(np.abs(s_spread[:, 1] - 0.5 * s_spread[:, 0])) / np.sqrt(1.25)))

# %% [markdown]
# ## 5. Memorisation diagnostics
#
# Trained long enough on a small sample, a flow memorises it. `diagnostics_every=` logs
# the generalisation gap (train minus test log-likelihood per row) and nearest-neighbour
# ratios of model samples along training; `nj.diagnostics.memorisation` computes them
# for one set of params.

# %%
small_tr, small_va, small_te = nj.data.load("moons", n_train=100, n_val=300, n_test=500)
mflow = nj.flows.nsf(2, layers=2, hidden=(64, 64))
p_m, h_m = nj.fit(mflow, mflow.init(jax.random.key(0)), small_tr, small_va,
                  key=jax.random.key(1), steps=500, batch_size=100, learning_rate=3e-3,
                  patience=None, restore_best=False, eval_every=100, diagnostics_every=200,
                  progress=False)
report = nj.diagnostics.memorisation(mflow, p_m, small_tr, small_te, samples=500,
                                     key=jax.random.key(2))
print({k: round(float(v), 3) for k, v in report.items() if np.ndim(v) == 0})
