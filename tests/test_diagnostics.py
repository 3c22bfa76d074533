"""Memorisation diagnostics (nitsjax.diagnostics) on hand-made models: one that copies
its training rows, one that is the true distribution; fit(diagnostics_every=) errors and
the training-curve marker."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj


class _Kde:
    """A Gaussian kernel density on ``params["centres"]`` with bandwidth ``params["h"]``:
    a tiny bandwidth copies the training rows."""

    dim, context_dim, name = 2, None, "kde"

    def log_prob_batch(self, params, x, context=None, key=None):
        c, h = params["centres"], params["h"]
        d2 = jnp.sum((x[:, None] - c[None]) ** 2, -1)
        return (jax.nn.logsumexp(-0.5 * d2 / h**2, 1) - math.log(c.shape[0])
                - self.dim * (jnp.log(h) + 0.5 * math.log(2 * math.pi)))

    def sample(self, params, key, n):
        k1, k2 = jax.random.split(key)
        c = params["centres"]
        i = jax.random.randint(k1, (n,), 0, c.shape[0])
        return c[i] + params["h"] * jax.random.normal(k2, (n, self.dim))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 2)), rng.normal(size=(200, 2))


def test_copy_of_train_model_is_flagged(data):
    train, test = data
    copy = {"centres": jnp.asarray(train, jnp.float32), "h": jnp.float32(1e-3)}
    m = nj.diagnostics.memorisation(_Kde(), copy, train, test, samples=300)
    assert m["generalisation_gap"] > 5.0
    assert m["nn_ratio"] < 0.05
    assert m["copy_fraction"] > 0.95 and m["test_copy_fraction"] < 0.3
    # a wide kernel on a large sample of the true distribution generalises
    big = np.random.default_rng(1).normal(size=(1000, 2))
    smooth = {"centres": jnp.asarray(big, jnp.float32), "h": jnp.float32(0.3)}
    g = nj.diagnostics.memorisation(_Kde(), smooth, train, test, samples=300)
    assert abs(g["generalisation_gap"]) < 0.3
    assert 0.7 < g["nn_ratio"] < 1.4
    assert g["copy_fraction"] < g["test_copy_fraction"] + 0.15


def test_errors(data):
    train, test = data
    params = {"centres": jnp.asarray(train, jnp.float32), "h": jnp.float32(0.3)}
    with pytest.raises(ValueError, match=r"test: expected rows of shape \(n, 2\)"):
        nj.diagnostics.memorisation(_Kde(), params, train, test[:, :1])
    with pytest.raises(ValueError, match="copy_ratio"):
        nj.diagnostics.memorisation(_Kde(), params, train, test, copy_ratio=1.5)
    flow = nj.flows.maf(2, layers=1, hidden=(4,))
    p = None  # the arguments are checked before params are used
    with pytest.raises(ValueError, match="diagnostics_every: .*val"):
        nj.fit(flow, p, train, key=jax.random.key(0), batch_size=10, diagnostics_every=10)
    with pytest.raises(ValueError, match="diagnostics_every"):
        nj.fit(flow, p, train, test, key=jax.random.key(0), batch_size=10,
               diagnostics_every=0)


def test_training_curve_marks_the_early_stopping_point():
    from nitsjax import plots

    records = [{"step": s, "train_nll": v + 0.1, "val_nll": v}
               for s, v in ((0, 3.0), (100, 2.0), (200, 1.5), (300, 1.8))]
    fig = plots.plot_history(records)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("step 200" in t for t in labels)


@pytest.mark.slow
def test_fit_logs_diagnostics(data):
    train, test = data
    flow = nj.flows.maf(2, layers=2, hidden=(16, 16))
    _, h = nj.fit(flow, flow.init(jax.random.key(0)), train, test, key=jax.random.key(1),
                  steps=200, batch_size=50, eval_every=50, diagnostics_every=100,
                  progress=False)
    gaps = h["generalisation_gap"]
    assert [g is not None for g in gaps] == [True, False, True, False, True]
    assert all(np.isfinite(h["nn_ratio"][i]) for i in (0, 2, 4))
