"""Data-parallel ``fit`` (``data_parallel=True``) on 4 simulated CPU devices.

JAX fixes its device count at start-up, so the checks run in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``: the same seed trained on one device
and on four must give the same losses and params up to float rounding, every minibatch
must be split over the 4 devices, params must come back replicated, a data-parallel
checkpoint must resume (on 4 devices, bit for bit; on 1 device, to rounding), and a batch
size the device count does not divide must be refused.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

#: one child process on 4 simulated devices (~45 CPU-s): make test-all runs it
pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from nitsjax.flows.affine import maf
    from nitsjax.train import sharding
    from nitsjax.train.fit import fit
    from nitsjax.losses import nll

    assert jax.device_count() == 4, jax.devices()
    out = {}
    seen = []

    def spy_nll(flow, params, x, context, key):  # another objective to fit: train_loss
        if key is not None:  # training batches (validation of the loss is not sharded)
            jax.debug.inspect_array_sharding(x, callback=seen.append)
        return nll(flow, params, x, context, key)

    flow = maf(3, layers=3, hidden=(32, 32))
    params0 = flow.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1002, 3)).astype(np.float32)  # 1002 rows: padded to 1004 on 4
    x[:, 1] += 0.5 * x[:, 0] ** 2
    val = rng.normal(size=(301, 3)).astype(np.float32)
    kw = dict(key=jax.random.key(1), steps=40, batch_size=64, learning_rate=3e-3,
              eval_every=20, eval_batch_size=100, clip_norm=5.0, progress=False)

    p1, h1 = fit(flow, params0, x, val, **kw)
    p4, h4 = fit(flow, params0, x, val, data_parallel=True, loss=spy_nll, **kw)
    leaves = lambda t: [np.asarray(a, np.float64) for a in jax.tree_util.tree_leaves(t)]
    out["train_1"], out["train_4"] = h1["train_nll"], h4["train_loss"]
    out["val_1"], out["val_4"] = h1["val_nll"], h4["val_nll"]
    out["param_rel"] = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
                           for a, b in zip(leaves(p1), leaves(p4)))
    out["batch_devices"] = sorted({len(s.device_set) for s in seen})
    out["batch_shard_rows"] = sorted({s.shard_shape((64, 3))[0] for s in seen})
    out["batch_spec"] = sorted({str(s.spec) for s in seen})
    leaf = jax.tree_util.tree_leaves(p4)[0]
    out["params_devices"] = len(leaf.sharding.device_set)
    out["params_replicated"] = bool(leaf.sharding.is_fully_replicated)

    # the gather from row shards is exact, non-finite rows included
    mesh = sharding.data_mesh(jax.devices())
    xs = sharding.put_rows(sharding.pad_rows(np.where(np.arange(1002)[:, None] == 7, np.nan, x),
                                             4), mesh)
    idx = jnp.asarray(np.random.default_rng(1).permutation(1002)[:64].astype(np.int32))
    got = jax.jit(lambda a, i: sharding.gather_rows(a, i, mesh))(xs, idx)
    ref = np.where(np.arange(1002)[:, None] == 7, np.nan, x)[np.asarray(idx)]
    out["gather_exact"] = bool(np.array_equal(np.asarray(got), ref, equal_nan=True))
    out["gather_devices"] = len(got.sharding.device_set)
    out["data_shards"] = len(xs.addressable_shards)

    # checkpoint + resume on 4 devices (bit for bit) and on 1 device (rounding)
    d = sys.argv[1]
    kw_dp = dict(kw, data_parallel=True)
    fit(flow, params0, x, val, checkpoint_dir=d + "/a", **dict(kw_dp, steps=20))
    pr, hr = fit(flow, params0, x, val, checkpoint_dir=d + "/a", **kw_dp)
    out["resume_equal"] = all(np.array_equal(a, b) for a, b in zip(leaves(pr), leaves(p4)))
    out["resume_history"] = hr["train_nll"] == h4["train_loss"]
    fit(flow, params0, x, val, checkpoint_dir=d + "/b", **dict(kw_dp, steps=20))
    ps, _ = fit(flow, params0, x, val, checkpoint_dir=d + "/b", **kw)
    out["resume_single_rel"] = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
                                   for a, b in zip(leaves(ps), leaves(p1)))
    try:
        fit(flow, params0, x, **dict(kw_dp, batch_size=66))
        out["bad_batch"] = None
    except ValueError as err:
        out["bad_batch"] = str(err)
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    env = dict(os.environ)
    flag = "--xla_force_host_platform_device_count=4"
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flag).strip()
    env["JAX_PLATFORMS"] = "cpu"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path_factory.mktemp("dp"))],
        env=env, capture_output=True, text=True, timeout=300, cwd=root,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def test_same_losses_and_params_as_one_device(result):
    assert len(result["train_1"]) == len(result["train_4"]) == 3  # steps 0, 20, 40
    assert result["train_1"][0] is None and result["train_4"][0] is None  # step 0
    for key in ("train", "val"):
        for a, b in zip(result[f"{key}_1"][1:], result[f"{key}_4"][1:], strict=True):
            assert rel(a, b) < 1e-5, (key, a, b)
    assert rel(result["val_1"][0], result["val_4"][0]) < 1e-5
    assert result["param_rel"] < 1e-4


def test_batches_are_split_over_four_devices(result):
    assert result["batch_devices"] == [4]
    assert result["batch_shard_rows"] == [16]  # 64 rows / 4 devices
    assert result["data_shards"] == 4
    assert result["gather_exact"] and result["gather_devices"] == 4


def test_params_come_back_replicated(result):
    assert result["params_devices"] == 4 and result["params_replicated"]


def test_data_parallel_checkpoints_resume(result):
    assert result["resume_equal"] and result["resume_history"]
    assert result["resume_single_rel"] < 1e-4


def test_batch_size_must_divide_by_device_count(result):
    msg = result["bad_batch"]
    assert msg is not None and "batch_size" in msg and "divisible by 4" in msg and "66" in msg


# ------------------------------------------------------------- two processes, one mesh
MULTI = textwrap.dedent(
    """
    import json, sys
    import jax
    pid, port, ckdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                               process_id=pid)
    import numpy as np
    from nitsjax.flows.affine import maf
    from nitsjax.train.fit import fit

    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)
    flow = maf(3, layers=2, hidden=(16, 16))
    params0 = flow.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(502, 3)).astype(np.float32)
    kw = dict(key=jax.random.key(1), steps=20, batch_size=32, learning_rate=3e-3,
              eval_every=10, progress=False)
    mode = sys.argv[4]
    if mode == "single":
        p, h = fit(flow, params0, x, x[:100], **kw)
    else:  # data parallel over both processes, checkpointed at step 10, then resumed
        fit(flow, params0, x, x[:100], checkpoint_dir=ckdir, data_parallel=True,
            **dict(kw, steps=10))
        p, h = fit(flow, params0, x, x[:100], checkpoint_dir=ckdir, data_parallel=True, **kw)
    leaves = [np.asarray(a).tolist() for a in jax.tree_util.tree_leaves(p)]
    print("RESULT " + json.dumps({"train": h["train_nll"], "val": h["val_nll"],
                                  "params": leaves}))
    """
)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one_device(tmp_path):
    """``jax.distributed.initialize`` with 2 processes x 2 CPU devices: one mesh of 4
    devices, a shared checkpoint folder, resume; same losses and params as one device."""
    import numpy as np

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    flags = os.environ.get("XLA_FLAGS", "")
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=2".strip(),
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    port = str(_free_port())
    procs = [
        subprocess.Popen([sys.executable, "-c", MULTI, str(pid), port, str(tmp_path / "ck"),
                          "dp"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=root)
        for pid in (0, 1)
    ]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-4000:]
            outs.append(json.loads(out.split("RESULT ")[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    env1 = dict(env, XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=4".strip())
    single = subprocess.run(
        [sys.executable, "-c", MULTI.replace("jax.distributed.initialize", "(lambda **k: 0)")
         .replace("(2, 4, 2)", "(1, 4, 4)"), "0", port, "-", "single"],
        env=env1, capture_output=True, text=True, timeout=240, cwd=root,
    )
    assert single.returncode == 0, single.stderr[-4000:]
    ref = json.loads(single.stdout.split("RESULT ")[-1])
    assert outs[0] == outs[1]  # both processes hold the same replicated result
    assert outs[0]["train"][0] is None and ref["train"][0] is None  # the step-0 record
    for key in ("train", "val"):
        np.testing.assert_allclose(outs[0][key][1:], ref[key][1:], rtol=1e-5)
    for a, b in zip(outs[0]["params"], ref["params"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

