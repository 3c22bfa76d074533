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
# # Writing your own bijector
#
# A nitsjax bijector is a record of three pure functions over an explicit parameter
# pytree (`nitsjax/bijectors/base.py`):
#
# ```python
# params = bij.init(key)
# z, logdet = bij.forward(params, x, context, key)   # data -> latent, log|det dz/dx|
# x, logdet = bij.inverse(params, z, context, key)   # latent -> data, log|det dx/dz|
# ```
#
# Each function acts on **one event** `x` of shape `(dim,)` (batching is `jax.vmap`),
# returns a scalar log-determinant, and may ignore `context` (a conditioning input) and
# `key` (randomness for dropout). Here we write the sinh-arcsinh transform of Jones &
# Pewsey (Biometrika 2009), check it against the contract by hand, and train flows with it.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import nitsjax as nj
from nitsjax.bijectors import Bijector

# %% [markdown]
# ## The bijector
#
# Per dimension, `z = sinh(b * asinh(x) - a)` with skewness `a` and tail weight `b > 0`
# (`b = exp(log_b)`), so
# `log dz/dx = log b + log cosh(b * asinh(x) - a) - log(1 + x^2) / 2`; the inverse is
# `x = sinh((asinh(z) + a) / b)`. `a = 0, b = 1` is the identity, which is where `init`
# starts.

# %%
def sinh_arcsinh(dim: int) -> Bijector:
    """Elementwise sinh-arcsinh transform on R^dim (Jones & Pewsey, 2009)."""

    def init(key):
        return {"a": jnp.zeros(dim), "log_b": jnp.zeros(dim)}

    def log_dz_dx(params, x):
        y = jnp.exp(params["log_b"]) * jnp.arcsinh(x) - params["a"]
        # log cosh(y) = |y| + log1p(exp(-2|y|)) - log 2, stable for large |y|
        log_cosh = jnp.abs(y) + jnp.log1p(jnp.exp(-2 * jnp.abs(y))) - jnp.log(2.0)
        return jnp.sum(params["log_b"] + log_cosh - 0.5 * jnp.log1p(x**2))

    def forward(params, x, context=None, key=None):
        z = jnp.sinh(jnp.exp(params["log_b"]) * jnp.arcsinh(x) - params["a"])
        return z, log_dz_dx(params, x)

    def inverse(params, z, context=None, key=None):
        x = jnp.sinh((jnp.arcsinh(z) + params["a"]) * jnp.exp(-params["log_b"]))
        return x, -log_dz_dx(params, x)

    return Bijector(init, forward, inverse)


bij = sinh_arcsinh(3)

# %% [markdown]
# ## Checking the contract
#
# The package's test suite runs these checks on every registered bijector
# (`tests/contract.py`; register a case in a `tests/cases_*.py` file to add yours). By
# hand, on params moved away from the identity:
#
# 1. invertibility: `inverse(forward(x)) == x`, both ways;
# 2. the log-determinant equals `log|det J|` of `jax.jacfwd` of the map;
# 3. the inverse's log-determinant is minus the forward's;
# 4. the same numbers under `jax.jit` and `jax.vmap`.

# %%
params = {"a": jnp.array([0.3, -0.5, 1.0]), "log_b": jnp.array([-0.4, 0.2, 0.5])}
xs = jax.random.normal(jax.random.key(0), (64, 3)) * 2.0

z, ld = jax.vmap(lambda x: bij.forward(params, x))(xs)
x_back, ld_inv = jax.vmap(lambda z: bij.inverse(params, z))(z)
np.testing.assert_allclose(x_back, xs, rtol=1e-4, atol=1e-4)              # 1.
np.testing.assert_allclose(ld_inv, -ld, rtol=1e-4, atol=1e-4)             # 3.


def logdet_autodiff(fn, x):
    return jnp.linalg.slogdet(jax.jacfwd(lambda v: fn(params, v)[0])(x))[1]


np.testing.assert_allclose(ld, jax.vmap(lambda x: logdet_autodiff(bij.forward, x))(xs),
                           rtol=1e-4, atol=1e-4)                          # 2.
np.testing.assert_allclose(ld_inv, jax.vmap(lambda v: logdet_autodiff(bij.inverse, v))(z),
                           rtol=1e-4, atol=1e-4)                          # 2., inverse

z_jit, ld_jit = jax.jit(jax.vmap(lambda x: bij.forward(params, x)))(xs)   # 4.
np.testing.assert_allclose(z_jit, z, rtol=1e-6, atol=1e-6)
np.testing.assert_allclose(ld_jit, ld, rtol=1e-6, atol=1e-6)
print("invertibility, log-det vs jax.jacfwd, inverse log-det, jit: all pass")
print("max |x - inverse(forward(x))| =", float(jnp.max(jnp.abs(x_back - xs))))

# %% [markdown]
# ## A flow of it alone recovers known skew and tails
#
# `nj.Flow(base, bijector, dim)` turns any bijector into a flow with the batched API
# (`init`, `log_prob`, `sample`) that `nj.fit` trains. We draw data by pushing standard
# normal noise through the *inverse* with known parameters (first coordinate: normal;
# second: skewed and heavy-tailed), fit a one-layer flow, and read the learned
# parameters back.

# %%
truth = {"a": jnp.array([0.0, 0.8]), "log_b": jnp.log(jnp.array([1.0, 0.6]))}
noise = jax.random.normal(jax.random.key(1), (12000, 2))
data = np.asarray(jax.vmap(lambda z: sinh_arcsinh(2).inverse(truth, z)[0])(noise))
train, val, test = data[:8000], data[8000:10000], data[10000:]

flow = nj.Flow(nj.distributions.standard_normal(2), sinh_arcsinh(2), 2)
fparams = flow.init(jax.random.key(2))
fparams, history = nj.fit(flow, fparams, train, val, key=jax.random.key(3), steps=600,
                          batch_size=256, learning_rate=2e-2, progress=False)
learned = fparams["bijector"]
print("a:", np.round(np.asarray(learned["a"]), 3), " true:", np.asarray(truth["a"]))
print("b:", np.round(np.exp(np.asarray(learned["log_b"])), 3), " true:",
      np.round(np.exp(np.asarray(truth["log_b"])), 3))
np.testing.assert_allclose(learned["a"], truth["a"], atol=0.1)
np.testing.assert_allclose(jnp.exp(learned["log_b"]), jnp.exp(truth["log_b"]), atol=0.1)
print("test log-likelihood:", nj.results.summarize(flow.log_prob(fparams, test)))

# The layer acts on each coordinate alone, so the marginal of x2 is the 1-D flow with the
# second coordinate's params: params are plain pytrees, slice and reuse them freely.
flow1 = nj.Flow(nj.distributions.standard_normal(1), sinh_arcsinh(1), 1)
p1 = {**flow1.init(jax.random.key(0)),
      "bijector": jax.tree_util.tree_map(lambda v: v[1:], learned)}
grid = np.linspace(-6, 10, 400, dtype=np.float32)
marginal = np.exp(np.asarray(flow1.log_prob(p1, grid[:, None])))
plt.hist(test[:, 1], bins=100, range=(-6, 10), density=True, alpha=0.5, label="test data")
plt.plot(grid, marginal, label="learned density of x2")
plt.legend()
plt.title("sinh-arcsinh flow: the skewed, heavy-tailed coordinate")
plt.show()

# %% [markdown]
# ## Composing it with the built-in layers
#
# `nj.bijectors.chain` composes bijectors (the first one acts on the data first), so the
# new layer slots in front of built-in layers like any other: here, in front of the
# bijector of a ready-made MAF (every flow's `.bijector` is an ordinary bijector). A
# short run on `moons`:

# %%
maf = nj.flows.maf(2, layers=4, hidden=(64, 64))
flow2 = nj.Flow(nj.distributions.standard_normal(2),
                nj.bijectors.chain([sinh_arcsinh(2), maf.bijector]), 2)
m_train, m_val, m_test = nj.data.load("moons")
p2 = flow2.init(jax.random.key(4))
p2, h2 = nj.fit(flow2, p2, m_train, m_val, key=jax.random.key(5), steps=1000, batch_size=256,
                learning_rate=3e-3, progress=False)
print("moons test log-likelihood:", nj.results.summarize(flow2.log_prob(p2, m_test)))
s = np.asarray(flow2.sample(p2, jax.random.key(6), 2000))
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].scatter(*m_test[:2000].T, s=2)
axes[0].set_title("moons test data")
axes[1].scatter(*s.T, s=2, c="C1")
axes[1].set_title("samples: sinh-arcsinh + MAF")
for ax in axes:
    ax.set(xlim=(-3.5, 3.5), ylim=(-2.5, 2.5), aspect="equal")
plt.show()
