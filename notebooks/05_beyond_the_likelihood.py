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
# # Beyond the likelihood: quantile and energy training, conditional densities, tails
#
# `nj.fit` minimises the negative log-likelihood by default. This notebook trains the
# same kinds of models by other objectives and looks at what a density model gets right
# beyond its test log-likelihood, in small budgets (seconds on a laptop CPU; raise the
# steps for sharper results):
#
# 1. **CRPS (quantile) training** of a conditional flow on heteroscedastic data
#    (autoregressive quantile flows, Si, Bishop & Kuleshov, ICLR 2022), checked by the
#    probability integral transform `flow.cdf`;
# 2. **energy training** of a generator that has no density at all (Si et al. 2022);
# 3. a **deconvolutional density network** for `p(y | x)` against the true conditional
#    (Chen et al., AAAI 2022);
# 4. **heavy tails and variable order**: `nj.tails` and `nj.ordering`.
#
# Fuller comparisons with their commands: `experiments/results/beyond_density.md` and
# `experiments/results/tails_triangular.md`.

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

import nitsjax as nj

rng = np.random.default_rng(0)
key = jax.random.key(0)

# %% [markdown]
# ## 1. CRPS training and calibration
#
# `y | x ~ Normal(sin(3x), (0.1 + 0.4 x^2)^2)` with `x ~ U(-1, 1)`: the noise scale depends
# on `x`. A one-layer conditional MAF has Gaussian conditionals, so it can represent this
# exactly. We train it by the NLL and by the CRPS (`loss="crps"`: the pinball loss of the
# model's conditional quantiles at random levels, one conditioner pass per batch).

# %%
def heteroscedastic(n):
    x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    y = np.sin(3 * x) + (0.1 + 0.4 * x**2) * rng.normal(size=(n, 1))
    return y.astype(np.float32), x


(y_tr, x_tr), (y_va, x_va), (y_te, x_te) = heteroscedastic(1000), heteroscedastic(300), \
    heteroscedastic(1000)
flow = nj.flows.maf(1, layers=1, hidden=(32, 32), context_dim=1)
fits = {}
for loss in ("nll", "crps"):
    params, history = nj.fit(flow, flow.init(key), y_tr, y_va, context=x_tr, val_context=x_va,
                             key=jax.random.key(1), steps=250, batch_size=200,
                             learning_rate=3e-3, loss=loss, progress=False)
    fits[loss] = params
    crps = nj.losses.crps(flow, params, y_te, x_te)  # key=None: the midpoint rule
    ll = flow.log_prob(params, y_te, x_te).mean()
    print(f"trained by {loss:4s}: test CRPS {float(crps):.4f}, test log-likelihood {ll:.3f}")

# %% [markdown]
# The probability integral transform `F(y | x)` (`flow.cdf`) is uniform when the model's
# conditionals are right; its histogram is the standard calibration check.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 2.5), sharey=True)
for ax, (loss, params) in zip(axes, fits.items()):
    pit = np.asarray(flow.cdf(params, y_te, x_te))[:, 0]
    u = np.sort(pit)  # Kolmogorov-Smirnov distance to U(0, 1)
    ks = np.max(np.maximum(np.arange(1, len(u) + 1) / len(u) - u, u - np.arange(len(u)) / len(u)))
    ax.hist(pit, bins=20, density=True)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_title(f"PIT, trained by {loss} (KS {ks:.3f})")
plt.tight_layout()

# %% [markdown]
# ## 2. A generator trained by the energy score
#
# `nj.models.generator` maps a Gaussian latent through an MLP: it is not invertible and
# has no density, so it cannot be trained by the likelihood. `loss="energy"` needs only
# samples differentiable in the params. Its last layer is set from the training data's
# scale by `fit` (and then frozen), so raw-scale data need no preprocessing.

# %%
train, val, test = nj.data.load("moons", n_train=2000, n_val=300, n_test=500)
gen = nj.models.generator(2, latent_dim=4, hidden=(64, 64))
gparams, ghist = nj.fit(gen, gen.init(key), train, val, key=jax.random.key(2), steps=300,
                        batch_size=256, loss="energy", progress=False)
xs = np.asarray(gen.sample(gparams, jax.random.key(3), len(test)))
print("test energy distance:", float(nj.losses.energy_distance(test, xs)))
fig, axes = plt.subplots(1, 2, figsize=(7, 3), sharex=True, sharey=True)
axes[0].scatter(*test.T, s=2)
axes[0].set_title("test data")
axes[1].scatter(*xs.T, s=2, color="C1")
axes[1].set_title("generator samples")
plt.tight_layout()

# %% [markdown]
# ## 3. A conditional density by deconvolution
#
# A bimodal conditional: `y | x` is an equal mixture of `Normal(x, 0.1^2)` and
# `Normal(-x, 0.1^2)`. The DDN bins `y`'s range and upsamples bin logits from `x` with
# transposed convolutions; its density is piecewise constant.

# %%
def bimodal(n):
    x = rng.uniform(0.2, 1, size=(n, 1)).astype(np.float32)
    sign = rng.choice([-1.0, 1.0], size=(n, 1))
    return (sign * x + 0.1 * rng.normal(size=(n, 1))).astype(np.float32), x


def normal_pdf(y, mean, sd):
    return np.exp(-0.5 * ((y - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))


(yb_tr, xb_tr), (yb_va, xb_va) = bimodal(1500), bimodal(300)
ddn = nj.models.ddn(1, 1, bins=32, hidden=(32, 32), channels=(8, 8))
dparams, _ = nj.fit(ddn, ddn.init(key), yb_tr, yb_va, context=xb_tr, val_context=xb_va,
                    key=jax.random.key(4), steps=200, batch_size=200, learning_rate=3e-3,
                    progress=False)
grid = np.linspace(-1.4, 1.4, 400, dtype=np.float32)[:, None]
fig, axes = plt.subplots(1, 3, figsize=(10, 2.5), sharey=True)
for ax, x0 in zip(axes, (0.3, 0.6, 0.9)):
    xs0 = np.full_like(grid, x0)
    truth = 0.5 * (normal_pdf(grid, x0, 0.1) + normal_pdf(grid, -x0, 0.1))
    ax.plot(grid, truth, "k", lw=1, label="truth")
    density = np.exp(ddn.log_prob_batch(dparams, grid, xs0))  # 0 outside its box
    ax.plot(grid, density, "C1", label="DDN")
    ax.set_title(f"p(y | x = {x0})")
axes[0].legend()
plt.tight_layout()

# %% [markdown]
# ## 4. Heavy tails and the order of the variables
#
# A Gaussian-based flow samples Gaussian tails. `nj.tails.estimate_tail_index` (Hill's
# estimator) tells heavy columns apart (Student-t: about its degrees of freedom; Gaussian:
# large), and `nj.flows.mtaf` gives those columns Student-t base marginals. For a
# triangular flow the order of the coordinates matters: `nj.ordering.suggest` puts a
# coordinate before those that are (non-monotone) functions of it, and `order=` applies
# an order on the data side (densities stay in your coordinates).

# %%
x_tail = np.column_stack([rng.standard_t(2.0, 5000), rng.normal(size=5000)])
print("tail indices:", np.round(nj.tails.estimate_tail_index(x_tail), 2),
      "heavy:", nj.tails.is_heavy(x_tail))
u = rng.normal(size=3000)
x_order = np.column_stack([np.sin(2.5 * u) + 0.15 * rng.normal(size=3000), u])
order = nj.ordering.suggest(x_order[:2500], x_order[2500:])
print("suggested order:", order, "(column 1, u, first: column 0 is a function of it)")
mtaf = nj.flows.mtaf(2, layers=2, hidden=(32, 32))
print("mtaf at data init, heavy mask and degrees of freedom:",
      mtaf.tails(mtaf.init(key, x_tail)))
