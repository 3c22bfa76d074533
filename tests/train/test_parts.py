"""The small parts of ``fit``, each alone: early stopping, the Gaussian floor,
dequantisation, the progress bar, the signal guard."""

import os
import signal

import numpy as np
import pytest

from nitsjax.train import dequantize as dq
from nitsjax.train.early_stopping import EarlyStopping
from nitsjax.train.fit import default_eval_every
from nitsjax.train.gaussian import (
    JITTER,
    effective_jitter,
    fit_gaussian,
    gaussian_floor,
    gaussian_nll,
)
from nitsjax.train.progress import Progress
from nitsjax.train.signals import stop_on_signals


def test_early_stopping_counts_evaluations():
    es = EarlyStopping(patience=2, min_delta=0.1)
    assert [es.update(v) for v in (3.0, 2.0, 1.95, float("nan"))] == [True, True, False, False]
    assert es.stop and es.best == 2.0 and es.bad == 2
    never = EarlyStopping(patience=None)
    assert not any(never.update(v) for v in (float("inf"),) * 50) and not never.stop


def test_gaussian_floor_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = np.array([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [0.0, 0.0, 1.0]])
    train = rng.standard_normal((4000, 3)) @ a.T * [1.0, 3.0, 0.01] + [1.0, -2.0, 5.0]
    val = rng.standard_normal((500, 3)) @ a.T * [1.0, 3.0, 0.01] + [1.0, -2.0, 5.0]
    mean, cov = fit_gaussian(train)
    d = train - train.mean(0)
    ml = d.T @ d / len(train)
    assert effective_jitter(3, np.float64) == JITTER  # float32: 16 * dim * eps is larger
    assert effective_jitter(3, np.float32) == pytest.approx(48 * np.finfo(np.float32).eps)
    np.testing.assert_allclose(cov, ml + JITTER * np.diag(np.diag(ml)), rtol=1e-12)
    diff = val - mean
    ref = np.mean(0.5 * np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
                  + 0.5 * np.log(np.linalg.det(2 * np.pi * cov)))
    assert gaussian_nll(mean, cov, val) == pytest.approx(ref, rel=1e-10)
    assert gaussian_floor(train, val) == pytest.approx(ref, rel=1e-10)


def test_gaussian_constant_column_gets_unit_variance():
    x = np.c_[np.arange(10.0), np.full(10, 4.0)]
    mean, cov = fit_gaussian(x)
    assert cov[1, 1] == 1.0  # no jitter on a constant column, as in the whitening layer
    assert cov[0, 0] == pytest.approx(np.var(np.arange(10.0)) * (1 + JITTER))
    assert cov[0, 1] == cov[1, 0] == 0.0 and mean[1] == 4.0
    assert np.isfinite(gaussian_floor(x, x))


def test_dequantize_resolution():
    found = np.array([0.0, 1.0, 0.5])
    np.testing.assert_array_equal(dq.resolve("auto", found, 3), found)
    np.testing.assert_array_equal(dq.resolve(True, found, 3), found)
    assert dq.resolve(False, found, 3) is None
    assert dq.resolve("auto", np.zeros(3), 3) is None
    np.testing.assert_array_equal(dq.resolve([0, 0, 2.0], found, 3), [0, 0, 2.0])
    with pytest.raises(ValueError, match="dequantize: True, but no column"):
        dq.resolve(True, np.zeros(3), 3)
    with pytest.raises(ValueError, match="dequantize: expected an array of 3 finite steps"):
        dq.resolve([1.0, -1.0, 0.0], found, 3)
    assert dq.log_volume(found) == pytest.approx(np.log(0.5))
    assert dq.log_volume(None) == 0.0
    x = np.tile([[1.0, 2.0, 3.0]], (100, 1)).astype(np.float32)
    noisy = dq.with_fixed_noise(x, found)
    assert noisy.dtype == np.float32
    np.testing.assert_array_equal(noisy, dq.with_fixed_noise(x, found))  # fixed draw
    assert np.all(noisy[:, 0] == 1.0)
    assert np.all((noisy[:, 1] >= 1.5) & (noisy[:, 1] < 2.5))  # bins centred on the grid
    assert np.all((noisy[:, 2] >= 2.75) & (noisy[:, 2] < 3.25)) and noisy[:, 2].std() > 0.1


def test_default_eval_every_is_once_per_epoch_capped():
    assert default_eval_every(389, 128) == 3
    assert default_eval_every(100_000, 256) == 250
    assert default_eval_every(64, 64) == 1


def test_progress_and_signal_guard():
    with Progress(10, 2, enabled=True) as bar:
        bar.update(5, {"train_nll": 1.0, "val_nll": None})
        assert bar.bar.n == 7
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag["signum"] == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_orbax_is_optional(monkeypatch, tmp_path):
    import subprocess
    import sys

    code = ("import sys, nitsjax, nitsjax.train; "
            "print(any(m.startswith('orbax') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.stdout.strip() == "False"
    from nitsjax.train import checkpoint

    monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)  # as if not installed
    with pytest.raises(ImportError, match=r'checkpoint_dir: .*pip install "nitsjax\[cli\]"'):
        checkpoint.Checkpointer(tmp_path / "ck")


def test_idle_tail_of_a_period_changes_nothing():
    """A period scanned for 5 steps with 3 active equals a 3-step period: same params,
    step counter and metrics (fit's shorter last period reuses the full period's
    program this way)."""
    import jax
    import jax.numpy as jnp
    import optax

    import nitsjax as nj
    from nitsjax.train import optim, step

    flow = nj.flows.maf(2, layers=1, hidden=(8,))
    tx = optax.adam(1e-2)
    carry = step.init_carry(tx, flow.init(jax.random.key(0)), use_ema=True)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 2)), jnp.float32)
    kw = dict(flow=flow, loss=nj.losses.resolve("nll"), update=tx.update,
              learning_rate_of=optim.learning_rate_reader(tx), batch_size=16, carry=carry,
              ema_decay=jnp.asarray(0.9), data=(x, None, None), key=jax.random.key(1))
    short, m_short = step.run_period(num_steps=3, **kw)
    idle, m_idle = step.run_period(num_steps=3, length=5, **kw)
    assert int(idle.step) == int(short.step) == 3
    for a, b in zip(jax.tree_util.tree_leaves(short), jax.tree_util.tree_leaves(idle)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    for k in m_short:
        np.testing.assert_allclose(np.asarray(m_short[k]), np.asarray(m_idle[k]), rtol=1e-6)
