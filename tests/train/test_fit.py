"""Tests of ``nitsjax.train.fit``: learning, determinism, resume, early stopping,
non-finite steps, divergence, interruption, conditional training, input checks.

To stay fast, most tests share one flow and the same data shapes, so the training kernel
compiles a few times for the whole module (``compiled_cache_sizes`` checks this).
"""

import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import make_moons

from nitsjax.flows.affine import maf
from nitsjax.train import FitDiverged, FitInterrupted, History, fit, learning_rate_at
from nitsjax.train.fit import compiled_cache_sizes

N_TRAIN, N_VAL, BATCH, EVAL = 1024, 512, 128, 100


@pytest.fixture(scope="module")
def flow():
    return maf(2, layers=4, hidden=(32, 32))


@pytest.fixture(scope="module")
def params0(flow):
    return flow.init(jax.random.key(0))


@pytest.fixture(scope="module")
def moons():
    x, _ = make_moons(N_TRAIN + N_VAL + 1000, noise=0.05, random_state=0)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    return x[:N_TRAIN], x[N_TRAIN:N_TRAIN + N_VAL], x[N_TRAIN + N_VAL:]


def gaussian_nll(train, test):
    mu, cov = train.mean(0), np.cov(train.T)
    d = test - mu
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    return float(np.mean(0.5 * maha + 0.5 * np.log(np.linalg.det(2 * np.pi * cov))))


def run(flow, params, train, val=None, **kw):
    # data_init=False: these tests are about the loop; data-dependent init is tested below
    base = dict(key=jax.random.key(1), steps=200, batch_size=BATCH, learning_rate=3e-3,
                eval_every=EVAL, progress=False, data_init=False)
    if "optimizer" in kw:  # the learning-rate arguments only build the default optimizer
        del base["learning_rate"]
    base.update(kw)
    return fit(flow, params, train, val, **base)


def tree_equal(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


def tree_maxdiff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


# ------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_maf_on_moons_beats_gaussian(flow, params0, moons):
    xtr, xva, xte = moons
    params, history = run(flow, params0, xtr, xva, steps=1500, schedule="cosine",
                          warmup_steps=50)
    flow_nll = float(-np.mean(flow.log_prob(params, xte)))
    gauss = gaussian_nll(xtr, xte)
    assert flow_nll < gauss - 0.3, (flow_nll, gauss)
    assert isinstance(history, History)
    assert history["step"] == list(range(0, 1501, EVAL))  # step 0: before any update
    assert history.records[0].keys() >= {"step", "train_nll", "val_nll", "lr", "time",
                                         "skipped", "skipped_total"}
    assert history["train_nll"][0] is None and history["lr"][0] is None
    assert history["train_nll"][-1] < history["train_nll"][1]
    # returned params are the best on validation
    best = float(-np.mean(flow.log_prob(params, xva)))
    assert best == pytest.approx(min(history["val_nll"]), abs=1e-4)
    assert history.best_step == history["step"][int(np.argmin(history["val_nll"]))]
    # the cosine schedule ends near zero, after the warm-up ramp
    assert history["lr"][-1] < 1e-3 * 3e-3
    assert history.returned == "best" and history.returned_step == history.best_step
    assert history.gaussian_val_nll == pytest.approx(gaussian_nll(xtr, xva), abs=2e-3)


def test_schedule_shapes():
    hp = {k: jnp.float32(v) for k, v in dict(lr=1.0, warmup=10, decay_end=110,
                                             final_fraction=0.1, cosine=1.0).items()}
    lr = [float(learning_rate_at(hp, s)) for s in (0, 4, 9, 10, 60, 110, 500)]
    np.testing.assert_allclose(lr[:4], [0.1, 0.5, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(lr[4], 0.1 + 0.9 * 0.5, rtol=1e-5)
    np.testing.assert_allclose(lr[5:], [0.1, 0.1], rtol=1e-5)
    hp["cosine"] = jnp.float32(0.0)
    assert float(learning_rate_at(hp, 500)) == 1.0


def test_deterministic_and_no_recompilation(flow, params0, moons):
    xtr, xva, _ = moons
    p1, h1 = run(flow, params0, xtr, xva)
    sizes = compiled_cache_sizes()
    p2, h2 = run(flow, params0, xtr, xva)
    assert tree_equal(p1, p2)
    assert h1["train_nll"] == h2["train_nll"] and h1["val_nll"] == h2["val_nll"]
    # other seed, learning rate, schedule and clipping: different result, same kernels
    p3, _ = run(flow, params0, xtr, xva, key=jax.random.key(7), learning_rate=1e-3,
                schedule="cosine", clip_norm=5.0, weight_decay=1e-4)
    assert not tree_equal(p1, p3)
    assert compiled_cache_sizes() == sizes


# ---------------------------------------------------------- checkpoints and resume
def test_resume_continues_where_it_left_off(flow, params0, moons, tmp_path):
    xtr, xva, _ = moons
    kw = dict(ema_decay=0.9, patience=50)
    p_full, h_full = run(flow, params0, xtr, xva, steps=400, **kw)
    ck = tmp_path / "run"
    p_half, h_half = run(flow, params0, xtr, xva, steps=200, checkpoint_dir=ck, **kw)
    assert h_half["step"] == [0, 100, 200]
    lines = (ck / "history.jsonl").read_text().splitlines()
    assert [json.loads(s)["step"] for s in lines] == [0, 100, 200]
    # the resumed call gets different initial params and key: both come from the checkpoint
    junk = jax.tree_util.tree_map(lambda a: a + 1.0, params0)
    p_res, h_res = run(flow, junk, xtr, xva, steps=400, checkpoint_dir=ck,
                       key=jax.random.key(99), **kw)
    assert tree_maxdiff(p_res, p_full) <= 1e-6
    assert h_res["step"] == h_full["step"]
    assert h_res["train_nll"][0] is None and h_full["train_nll"][0] is None
    np.testing.assert_allclose(h_res["train_nll"][1:], h_full["train_nll"][1:], rtol=1e-6)
    np.testing.assert_allclose(h_res["val_nll"], h_full["val_nll"], rtol=1e-6)
    assert h_res.best_step == h_full.best_step
    assert len((ck / "history.jsonl").read_text().splitlines()) == 5
    # a finished run returns at once, without training
    p_again, h_again = run(flow, junk, xtr, xva, steps=400, checkpoint_dir=ck, **kw)
    assert tree_equal(p_again, p_res) and len(h_again) == 5


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_then_resume_matches(flow, params0, moons, tmp_path, signum):
    xtr, xva, _ = moons
    before = signal.getsignal(signum)
    kw = dict(steps=400, ema_decay=0.9, schedule="cosine", warmup_steps=30, clip_norm=1.0)
    p_full, _ = run(flow, params0, xtr, xva, **kw)
    ck = tmp_path / "run"

    def interrupt(record):
        if record["step"] == 200:
            os.kill(os.getpid(), signum)

    with pytest.raises(FitInterrupted, match=signal.Signals(signum).name) as err:
        run(flow, params0, xtr, xva, checkpoint_dir=ck, callback=interrupt, **kw)
    assert err.value.step == 200 and isinstance(err.value, KeyboardInterrupt)
    assert err.value.signum == signum
    assert signal.getsignal(signum) == before  # handler restored
    p_res, h_res = run(flow, params0, xtr, xva, checkpoint_dir=ck, **kw)
    assert h_res["step"] == [0, 100, 200, 300, 400]
    assert tree_maxdiff(p_res, p_full) <= 1e-6


def test_early_stopping_restores_best(flow, params0, tmp_path):
    rng = np.random.default_rng(0)
    # train far from val: val NLL gets worse as the flow fits the training data
    xtr = (3.0 + 0.5 * rng.standard_normal((N_TRAIN, 2))).astype(np.float32)
    xva = rng.standard_normal((N_VAL, 2)).astype(np.float32)
    params, h = run(flow, params0, xtr, xva, steps=3000, patience=3, checkpoint_dir=tmp_path)
    assert h.stopped == "early_stopping"
    assert h["step"][-1] < 3000
    i = int(np.argmin(h["val_nll"]))
    assert len(h) == i + 1 + 3  # exactly `patience` evaluations without improvement
    assert h["val_nll"][-1] > h["val_nll"][i]
    got = float(-np.mean(flow.log_prob(params, xva)))
    assert got == pytest.approx(h["val_nll"][i], abs=1e-5)
    assert h.best_step == h["step"][i] and h.best_val_nll == pytest.approx(got, abs=1e-5)
    # rerunning a stopped run returns its best params without training further
    again, h2 = run(flow, params0, xtr, xva, steps=3000, patience=3, checkpoint_dir=tmp_path)
    assert tree_equal(again, params) and h2["step"] == h["step"] and h2.stopped == h.stopped


# -------------------------------------------------------------------- non-finite
def test_nonfinite_batches_are_skipped_and_counted(flow, params0, moons):
    xtr, _, _ = moons
    bad = xtr.copy()
    bad[5, 0] = 1e30  # finite input, but its log-density overflows: loss = inf
    params, h = run(flow, params0, bad, steps=200, learning_rate=1e-3, clip_norm=1.0,
                    progress=True)
    # one bad row lands in exactly one batch per epoch: 200 steps / 8 batches = 25 epochs
    assert h.skipped_steps == 25
    assert sum(h["skipped"]) == 25
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(params))
    assert all(np.isfinite(h["train_nll"]))
    # the remaining steps still learn
    clean = np.delete(xtr, 5, axis=0)
    before = float(-np.mean(flow.log_prob(params0, clean)))
    assert float(-np.mean(flow.log_prob(params, clean))) < before - 0.2


def test_divergence_stops_and_keeps_last_good_checkpoint(flow, params0, moons, tmp_path):
    xtr, _, _ = moons
    ck = tmp_path / "run"
    good, _ = run(flow, params0, xtr, steps=200, checkpoint_dir=ck)
    poisoned = np.full_like(xtr, 1e30)
    with pytest.raises(FitDiverged, match="diverged.*step 200") as err:
        run(flow, params0, poisoned, steps=400, checkpoint_dir=ck)
    assert tree_equal(err.value.params, good)
    assert sorted(os.listdir(ck / "checkpoints"))[-1] == "200"
    # resuming with good data continues from the intact step-200 checkpoint
    _, h = run(flow, params0, xtr, steps=300, checkpoint_dir=ck)
    assert h["step"] == [100, 200, 300]


# ----------------------------------------------------------------- conditional
@pytest.mark.slow
def test_conditional_flow_trains_with_context():
    rng = np.random.default_rng(1)

    def sample(n):
        c = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
        x = c * np.array([1.0, -1.0], np.float32) + 0.3 * rng.standard_normal((n, 2))
        return x.astype(np.float32), c

    xtr, ctr = sample(N_TRAIN)
    xva, cva = sample(N_VAL)
    xte, cte = sample(1000)
    flow = maf(2, layers=2, hidden=(32,), context_dim=1)
    params, h = fit(flow, flow.init(jax.random.key(0)), xtr, xva, context=ctr,
                    val_context=cva, key=jax.random.key(2), steps=600, batch_size=BATCH,
                    learning_rate=5e-3, eval_every=EVAL, progress=False)
    cond_nll = float(-np.mean(flow.log_prob(params, xte, cte)))
    # the true conditional NLL is 2 * (0.5 log(2 pi 0.09)) ~ 0.63; the marginal Gaussian
    # ignores the context and is far worse
    assert cond_nll < gaussian_nll(xtr, xte) - 1.0
    assert cond_nll < 1.0
    assert h["val_nll"][-1] < h["val_nll"][0]


# -------------------------------------------------------------------- input checks
def _args(flow, params0, moons, **kw):
    xtr, xva, _ = moons
    base = dict(flow=flow, params=params0, train=xtr, val=xva, key=jax.random.key(0),
                steps=10, batch_size=BATCH, learning_rate=1e-3, progress=False)
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "override, match",
    [
        (dict(train=np.zeros((10, 3), np.float32)), r"train: expected shape \(n, 2\)"),
        (dict(val=np.zeros((10, 3), np.float32)), r"val: expected shape \(n, 2\)"),
        (dict(train=np.array([[0.0, np.nan]] * 200, np.float32)), "train: 200 non-finite"),
        (dict(batch_size=5000), r"batch_size: 5000 .* n=1024"),
        (dict(steps=0), "steps: expected an integer >= 1"),
        (dict(learning_rate=0.0), "learning_rate: expected a number > 0"),
        (dict(learning_rate=-1e-3), "learning_rate"),
        (dict(schedule="linear"), "schedule"),
        (dict(patience=0), "patience: expected an integer >= 1"),
        (dict(eval_every=0), "eval_every: expected an integer >= 1"),
        (dict(data_init="yes"), "data_init: expected True or False"),
        (dict(dequantize="some"), "dequantize: expected 'auto'"),
        (dict(dequantize=True), "dequantize: True, but no column"),
        (dict(dequantize=np.ones(3)), r"dequantize: expected an array of 2 finite steps"),
        (dict(ema_decay=1.0), "ema_decay"),
        (dict(context=np.zeros((1024, 1), np.float32)), "context: this flow is unconditional"),
    ],
)
def test_bad_inputs_are_reported(flow, params0, moons, override, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fit(**_args(flow, params0, moons, **override))


def test_conditional_flow_needs_context(moons):
    flow = maf(2, layers=1, hidden=(8,), context_dim=1)
    with pytest.raises(ValueError, match="context: this flow is conditional"):
        fit(**_args(flow, {}, moons))  # refused before params are looked at


def test_unwritable_checkpoint_dir_reported_before_training(flow, params0, moons, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    sizes = compiled_cache_sizes()
    with pytest.raises(ValueError, match="checkpoint_dir: cannot write"):
        fit(**_args(flow, params0, moons, checkpoint_dir=blocker / "ckpt"))
    assert compiled_cache_sizes() == sizes  # nothing was compiled or run


def test_resume_refuses_a_different_setup(flow, params0, moons, tmp_path):
    ck = tmp_path / "run"
    run(flow, params0, moons[0], steps=100, checkpoint_dir=ck)
    with pytest.raises(ValueError, match="different setup"):
        run(flow, params0, moons[0][:512], steps=200, checkpoint_dir=ck)


def test_resume_into_a_different_flow_is_reported(flow, params0, moons, tmp_path):
    ck = tmp_path / "run"
    run(flow, params0, moons[0], steps=100, checkpoint_dir=ck)
    # same name, dim and data but another architecture: the saved arrays do not fit
    other = maf(2, layers=1, hidden=(8,))
    with pytest.raises(ValueError, match="checkpoint_dir: could not restore"):
        run(other, other.init(jax.random.key(0)), moons[0], steps=200, checkpoint_dir=ck)


# ------------------------------------------------------------ optimizer= (optax)
def test_any_optax_optimizer_trains(flow, params0, moons, tmp_path):
    xtr, xva, _ = moons
    sgd = optax.sgd(1e-2)
    params, h = run(flow, params0, xtr, xva, optimizer=sgd, steps=200)
    assert h["val_nll"][-1] < h["val_nll"][0] - 0.05  # it learns
    assert np.isnan(h["lr"][-1])  # optax.sgd does not expose its learning rate
    assert not tree_equal(params, run(flow, params0, xtr, xva, steps=200)[0])  # not Adam
    with pytest.raises(ValueError, match="optimizer: given together with learning_rate, "
                                         "clip_norm"):
        run(flow, params0, xtr, xva, optimizer=sgd, learning_rate=1e-2, clip_norm=1.0)
    with pytest.raises(TypeError, match="optimizer: expected an optax.GradientTransformation"):
        run(flow, params0, xtr, xva, optimizer="adam")
    # a checkpoint records which optimizer made its state
    ck = tmp_path / "run"
    run(flow, params0, xtr, xva, optimizer=sgd, steps=100, checkpoint_dir=ck)
    with pytest.raises(ValueError, match="different setup.*optimizer"):
        run(flow, params0, xtr, xva, optimizer=optax.adam(1e-3), steps=200, checkpoint_dir=ck)


# -------------------------------------------- cadence, step 0, data init, the floor
def test_default_cadence_step_zero_and_data_init(flow, params0, moons, tmp_path, monkeypatch):
    xtr, xva, _ = moons
    calls = []
    monkeypatch.setattr(type(flow), "needs_data_init", lambda self, p: True, raising=False)

    def data_init(self, p, x, context=None):
        calls.append((np.asarray(x).shape, context))
        return jax.tree_util.tree_map(lambda a: a * 0.5, p)

    monkeypatch.setattr(type(flow), "data_init", data_init, raising=False)
    ck = tmp_path / "run"
    kw = dict(eval_every=None, steps=16, checkpoint_dir=ck, data_init=True)
    _, h = run(flow, params0, xtr, xva, **kw)
    # once per epoch: 1024 rows / 128 per batch = 8 steps; step 0 evaluated before training
    assert h["step"] == [0, 8, 16]
    assert calls == [((N_TRAIN, 2), None)] and h.data_initialized
    # the step-0 val NLL is that of the data-initialised params
    halved = jax.tree_util.tree_map(lambda a: a * 0.5, params0)
    assert h["val_nll"][0] == pytest.approx(float(-np.mean(flow.log_prob(halved, xva))),
                                            abs=1e-5)
    _, h2 = run(flow, params0, xtr, xva, **dict(kw, steps=24))  # resumed: no second init
    assert len(calls) == 1 and h2["step"] == [0, 8, 16, 24] and h2.data_initialized
    run(flow, params0, xtr, xva, steps=8, eval_every=8)  # data_init=False
    assert len(calls) == 1


def test_step_zero_counts_for_the_best_params(flow, params0):
    rng = np.random.default_rng(0)
    # train far from val: every update makes val worse, so step 0 is the best
    xtr = (3.0 + 0.5 * rng.standard_normal((N_TRAIN, 2))).astype(np.float32)
    xva = rng.standard_normal((N_VAL, 2)).astype(np.float32)
    params, h = run(flow, params0, xtr, xva, steps=300, patience=2)
    assert h.best_step == 0 and h.returned == "initial" and h.returned_step == 0
    assert h.stopped == "early_stopping" and h["step"] == [0, 100, 200]
    assert tree_equal(params, params0)


def test_worse_than_the_gaussian_is_reported(flow, params0, caplog):
    rng = np.random.default_rng(0)
    x = (100.0 * rng.standard_normal((600, 2)) + 7.0).astype(np.float32)  # raw scale
    with caplog.at_level("INFO", logger="nitsjax.train.fit"):
        _, h = run(flow, params0, x[:512], x[512:], steps=10, eval_every=10)
    assert h.gaussian_val_nll == pytest.approx(gaussian_nll(x[:512], x[512:]), rel=1e-3)
    assert h.best_val_nll > h.gaussian_val_nll  # ten steps cannot reach the raw scale
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("worse on validation than the full-covariance Gaussian" in m
               and "standardize='whiten'" in m for m in warned), warned


# --------------------------------------------------------- integer-valued columns
def test_integer_table_is_dequantised_by_default(caplog):
    rng = np.random.default_rng(0)
    x = rng.poisson([3.0, 8.0], (1200, 2)).astype(np.float32)
    flow = maf(2, layers=2, hidden=(16,))
    with caplog.at_level("INFO", logger="nitsjax.train.fit"):
        params, h = fit(flow, flow.init(jax.random.key(0)), x[:1000], x[1000:],
                        key=jax.random.key(1), steps=300, batch_size=100,
                        learning_rate=1e-2, progress=False)
    assert h.dequantized == {0: 1.0, 1: 1.0}
    assert all(np.isfinite(v) for v in h["val_nll"])
    assert all(np.isfinite(v) for v in h["train_nll"][1:])
    # a bound on the discrete NLL: never below the entropy of the two Poissons (~4.47)
    assert 4.3 < h.best_val_nll < 5.5, h.best_val_nll
    text = caplog.text
    assert "discrete (lattice) column(s)" in text and "dequantising column(s)" in text
    # off: the continuous density piles up on the integers instead
    _, off = fit(flow, flow.init(jax.random.key(0)), x[:1000], x[1000:],
                 key=jax.random.key(1), steps=300, batch_size=100, learning_rate=1e-2,
                 progress=False, dequantize=False)
    assert off.dequantized is None


def test_fit_is_affine_equivariant(flow, params0, moons):
    """Fitted on ``x`` and on ``100 x + 7`` from the same fresh params, with no step by the
    user (fit data-initialises the whitening layer): the test log-likelihoods differ by
    ``d log 100``. The whitening statistics are a frozen anchor and every trained param
    acts on standardised values (``nitsjax.bijectors.anchored``), so the two runs take the
    same steps up to float32 rounding (measured: 0.006 nats after 150 steps; 0.08 when the
    whitening layer itself was trained in data units)."""
    train, val, test = moons
    kw = dict(key=jax.random.key(1), steps=150, batch_size=BATCH, learning_rate=3e-3,
              progress=False)
    a, _ = fit(flow, params0, train, val, **kw)
    b, _ = fit(flow, params0, 100 * train + 7, 100 * val + 7, **kw)
    lp_a = np.asarray(flow.log_prob(a, test))
    lp_b = np.asarray(flow.log_prob(b, 100 * test + 7))
    assert np.isfinite(lp_a).all() and np.isfinite(lp_b).all()
    gap = float(np.mean(lp_a) - np.mean(lp_b))
    assert abs(gap - 2 * np.log(100.0)) < 0.03, gap


def _twice_nll(flow, params, x, context, key):
    return -2.0 * jnp.mean(flow.log_prob_batch(params, x, context, key))


def test_another_objective_is_monitored_by_its_validation_loss(flow, params0, moons):
    """A callable loss: records carry train_loss/val_loss (val_nll still reported), the
    best params follow val_loss; the validation loss of 512 rows in batches of 300 (one
    full batch and a remainder) is the mean over rows."""
    train, val, _ = moons
    _, h = run(flow, params0, train, val, loss=_twice_nll, steps=100, eval_batch_size=300)
    assert h.loss == "_twice_nll" and h["train_nll"] == [None, None]
    for r in h:
        np.testing.assert_allclose(r["val_loss"], 2 * r["val_nll"], rtol=1e-5)
    assert h.best_val_loss == min(h["val_loss"])


def test_loss_by_name_and_unknown_names(flow, params0, moons):
    train, val, _ = moons
    _, h = run(flow, params0, train, val, loss="nll", steps=EVAL)
    assert h.loss == "nll" and "val_loss" not in h.keys()
    with pytest.raises(ValueError, match="unknown loss 'bogus'.*'nll'"):
        run(flow, params0, train, loss="bogus")
    with pytest.raises(TypeError, match="without name, dim, context_dim, init"):
        fit(object(), params0, train, key=jax.random.key(0))


@pytest.mark.slow
def test_stepwise_periods_match_the_scan(moons, monkeypatch):
    """Convolutional models on CPU run a period one dispatch a step (train.step.stepwise):
    the same steps, minibatches and metrics as the compiled scan."""
    from nitsjax.train import step as step_module

    small = maf(2, layers=1, hidden=(8,))
    p0 = small.init(jax.random.key(0))
    xtr, xva, _ = moons
    kw = dict(steps=6, eval_every=3, batch_size=64, eval_batch_size=256)
    p_scan, h_scan = run(small, p0, xtr, xva, **kw)
    monkeypatch.setattr(step_module, "stepwise", lambda flow: True)
    p_step, h_step = run(small, p0, xtr, xva, **kw)
    assert tree_maxdiff(p_scan, p_step) < 1e-5
    np.testing.assert_allclose(h_step["train_nll"][1:], h_scan["train_nll"][1:], rtol=1e-5)
    np.testing.assert_allclose(h_step["val_nll"], h_scan["val_nll"], rtol=1e-5)
