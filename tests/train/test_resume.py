"""Checkpoints and resume (``nitsjax.train.checkpoint``) under faults, with real processes.

A small script calls ``nitsjax.fit`` with a ``checkpoint_dir`` in a subprocess. The test
SIGKILLs it while the checkpoint of the step it just reported is being written, runs the
same command again, SIGTERMs that (it must checkpoint and exit cleanly: status 130, a
message, no traceback), runs it a third time, and requires the result to be bitwise the
params of an uninterrupted run. ``nitsjax train`` is killed and rerun the same way
(slow). The same seed and config give bitwise-identical params in two processes. A full
disk or an unwritable output folder is reported before any training.
"""

from __future__ import annotations

import os
import pathlib
import selectors
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS, EVAL_EVERY = 400, 50

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import jax
    import numpy as np
    import nitsjax as nj
    from nitsjax.flows.affine import maf

    checkpoint_dir, out, pause = sys.argv[1] or None, sys.argv[2], float(sys.argv[3])
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(520, 2)) * [1.0, 0.4] + [0.5, 0.0]).astype(np.float32)
    x[:, 1] += 0.5 * x[:, 0] ** 2
    flow = maf(2, layers=2, hidden=(16,))
    params = flow.init(jax.random.key(0))

    def report(record):  # the parent watches these lines; the pause leaves time to kill
        print("STEP", record["step"], flush=True)
        time.sleep(pause)

    try:
        params, history = nj.fit(
            flow, params, x, x[:100], key=jax.random.key(1), steps={steps}, batch_size=64,
            learning_rate=3e-3, eval_every={eval_every}, ema_decay=0.9, schedule="cosine",
            checkpoint_dir=checkpoint_dir, callback=report, progress=False)
    except nj.FitInterrupted as err:
        print("INTERRUPTED", err.step, flush=True)
        sys.exit(130)
    np.savez(out, *[np.asarray(a) for a in jax.tree_util.tree_leaves(params)])
    print("DONE", history["step"][0], history["step"][-1], len(history), flush=True)
    """
).format(steps=STEPS, eval_every=EVAL_EVERY)


CACHE = {}  # this module's children share one compilation cache (see _compile_cache)


@pytest.fixture(scope="module", autouse=True)
def _compile_cache(tmp_path_factory):
    """The children compile the same training program again and again: a persistent
    compilation cache shared by them (and only them) saves about a third of the module's
    time."""
    CACHE["dir"] = str(tmp_path_factory.mktemp("jax-cache"))
    yield
    CACHE.clear()


def _env():
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    if "dir" in CACHE:
        env.update(JAX_COMPILATION_CACHE_DIR=CACHE["dir"],
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    p = tmp_path_factory.mktemp("script") / "train_small.py"
    p.write_text(SCRIPT)
    return p


def _start(script, ckpt, out, pause=0.0, cmd=None):
    cmd = cmd or [sys.executable, str(script), str(ckpt or ""), str(out), str(pause)]
    err = open(pathlib.Path(out).with_suffix(".stderr"), "w")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=_env(),
                            cwd=str(pathlib.Path(out).parent))


def _wait_for(proc, prefix: str, timeout: float = 120.0) -> str:
    """Read the child's stdout until a line starts with ``prefix``; return that line."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip())
        if line.startswith(prefix):
            return line.strip()
    proc.kill()
    raise AssertionError(f"no line starting with {prefix!r} (got {seen})")


def _finish(proc, timeout=180.0) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _leaves(path):
    with np.load(path, allow_pickle=False) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def _bitwise_equal(a, b) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        for x, y in zip(a, b, strict=True)
    )


def _saved_steps(ckpt) -> list[int]:
    d = pathlib.Path(ckpt) / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


@pytest.fixture(scope="module")
def reference(script, tmp_path_factory):
    """Two uninterrupted runs (no checkpoints) in two processes, run side by side."""
    d = tmp_path_factory.mktemp("reference")
    procs = [_start(script, None, d / f"ref{i}.npz") for i in range(2)]
    for p in procs:
        code, out = _finish(p)
        assert code == 0 and f"DONE 0 {STEPS} {STEPS // EVAL_EVERY + 1}" in out, out
    return [_leaves(d / f"ref{i}.npz") for i in range(2)]


@pytest.mark.slow  # two child processes; determinism of fit itself: test_fit (slow too)
def test_same_seed_same_config_gives_bitwise_identical_params(reference):
    a, b = reference
    assert _bitwise_equal(a, b)
    assert all(np.isfinite(x).all() for x in a)


@pytest.mark.slow  # two killed child processes; fit-level signal resume is in test_fit
def test_sigkill_then_sigterm_then_same_command_resumes_bitwise(script, reference, tmp_path):
    """One run, stopped twice and finished by the same command each time."""
    ckpt, out = tmp_path / "run", tmp_path / "params.npz"
    # SIGKILL the moment step 100 is reported, i.e. while its checkpoint is being written
    p = _start(script, ckpt, out)
    _wait_for(p, "STEP 100")
    p.send_signal(signal.SIGKILL)
    assert p.wait(timeout=30) == -signal.SIGKILL
    first = _saved_steps(ckpt)
    assert first and first[-1] in (50, 100), first
    # the same command resumes after the last complete checkpoint, not from scratch;
    # SIGTERM during it: a checkpoint, then a clean exit with status 130
    p = _start(script, ckpt, out, pause=0.2)
    line = _wait_for(p, "STEP")
    assert int(line.split()[1]) == first[-1] + EVAL_EVERY, (line, first)
    _wait_for(p, "STEP 250")
    p.send_signal(signal.SIGTERM)
    code, text = _finish(p)
    assert code == 130, (code, text)
    stopped = int(text.split("INTERRUPTED")[1].split()[0])
    assert stopped in (250, 300), text
    assert _saved_steps(ckpt)[-1] == stopped and len(_saved_steps(ckpt)) <= 2  # max_to_keep
    err = out.with_suffix(".stderr").read_text()
    assert "Traceback" not in err, err
    assert not out.exists()
    # a third time: finishes; same params, bit for bit, as the uninterrupted run
    code, text = _finish(_start(script, ckpt, out))
    assert code == 0 and f"DONE 0 {STEPS} {STEPS // EVAL_EVERY + 1}" in text, text
    assert _bitwise_equal(_leaves(out), reference[0])
    lines = (ckpt / "history.jsonl").read_text().splitlines()
    assert len(lines) == STEPS // EVAL_EVERY + 1  # every evaluation once (step 0 too)
    assert _saved_steps(ckpt)[-1] == STEPS
    leftovers = [q.name for q in (ckpt / "checkpoints").iterdir() if not q.name.isdigit()]
    assert not [n for n in leftovers if "tmp" in n], leftovers  # nothing half-written


@pytest.mark.slow
def test_cli_train_killed_then_rerun_resumes(tmp_path):
    """``nitsjax train ... hydra.run.dir=D`` SIGKILLed mid-run; the same command again
    resumes from D's checkpoint and writes the same params as an uninterrupted run."""
    args = ["data=moons", "data.n_train=640", "data.n_val=64", "data.n_test=64",
            "model.layers=1", "model.hidden=[8]", "train.steps=300", "train.eval_every=50",
            "train.batch_size=64", "train.patience=null", "train.progress=false",
            "plots.enabled=false", "eval_batch_size=64"]
    nitsjax = [sys.executable, "-m", "nitsjax.cli", "train", *args]

    def run_dir(name):
        return tmp_path / name

    ref = _start(None, None, tmp_path / "ref.out",
                 cmd=[*nitsjax, f"hydra.run.dir={run_dir('ref')}"])
    assert _finish(ref)[0] == 0
    cmd = [*nitsjax, f"hydra.run.dir={run_dir('killed')}"]
    p = _start(None, None, tmp_path / "killed.out", cmd=cmd)
    deadline = time.monotonic() + 120
    while not (run_dir("killed") / "history.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert not (run_dir("killed") / "params.npz").exists()
    code, text = _finish(_start(None, None, tmp_path / "rerun.out", cmd=cmd))
    assert code == 0, text
    with np.load(run_dir("ref") / "params.npz") as a, \
            np.load(run_dir("killed") / "params.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(a[k].tobytes() == b[k].tobytes() for k in a.files)


# ----------------------------------------------------------------- before training
def test_full_disk_is_reported_before_training(tmp_path, monkeypatch):
    import jax

    from nitsjax.flows.affine import maf
    from nitsjax.train import checkpoint, fit
    from nitsjax.train.fit import compiled_cache_sizes

    total, used, free = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage",
                        lambda p: type("U", (), dict(total=total, used=total, free=12 * 2**20)))
    flow = maf(2, layers=1, hidden=(4,))
    x = np.zeros((64, 2), np.float32)
    before = compiled_cache_sizes()
    with pytest.raises(ValueError) as err:
        fit(flow, None, x, key=jax.random.key(0), steps=10, batch_size=8, learning_rate=1e-3,
            checkpoint_dir=tmp_path / "ck", progress=False)
    msg = str(err.value)
    assert msg.startswith("checkpoint_dir: only 12.0 MB free") and str(tmp_path / "ck") in msg
    assert "need at least 50 MB" in msg and "NITSJAX_MIN_FREE_MB" in msg
    assert compiled_cache_sizes() == before
    # the floor is configurable
    monkeypatch.setenv("NITSJAX_MIN_FREE_MB", "5")
    assert checkpoint.check_writable(tmp_path / "ck") == str(tmp_path / "ck")
    monkeypatch.setenv("NITSJAX_MIN_FREE_MB", "lots")
    with pytest.raises(ValueError, match="NITSJAX_MIN_FREE_MB: expected a number of megabytes"):
        checkpoint.check_writable(tmp_path / "ck")


def test_output_folder_problems_stop_the_train_command_before_data_or_training(
        tmp_path, monkeypatch):
    from nitsjax import experiment as ex
    from nitsjax.config import ConfigError, compose
    from nitsjax.train import checkpoint

    loaded = []
    monkeypatch.setattr(ex, "load_data", lambda *a, **k: loaded.append(1))
    cfg = compose("train", ["model.layers=1"])
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=rf"out_dir: cannot write to '{blocker}/run'"):
        ex.run_train(cfg, out_dir=blocker / "run")
    monkeypatch.setattr(checkpoint.shutil, "disk_usage",
                        lambda p: type("U", (), dict(total=1, used=1, free=0)))
    with pytest.raises(ConfigError, match=r"out_dir: only 0.0 MB free on the disk holding"):
        ex.run_train(cfg, out_dir=tmp_path / "run")
    assert not loaded
