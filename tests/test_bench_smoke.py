"""Smoke test of the benchmark harness (experiments/bench): the nitsjax-only path runs a
couple of steps in a fresh worker process and returns sane figures; the table printer
handles them and peers that are not installed. Runs in well under 20 s."""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "bench"
sys.path.insert(0, str(BENCH))

common = pytest.importorskip("common")
run = pytest.importorskip("run")


def _task(**kw):
    task = {"kind": "train", "lib": "nitsjax", "flow": "maf", "data": "synth6", "batch": 64,
            "layers": 1, "hidden": [16, 16], "bins": 4, "wall_steps": 2, "steady_steps": 2,
            "repeats": 1, "lp_n": 128, "sample_n": 32}
    task.update(kw)
    return task


@pytest.fixture(scope="module")
def nitsjax_result():
    return common.run_worker(_task(), sys.executable, timeout=120)


def test_worker_nitsjax_train_figures(nitsjax_result):
    r = nitsjax_result
    assert "error" not in r, r
    assert r["dim"] == 6 and r["wall_steps"] == 2
    for k in ("steps_per_s", "wall_s", "logprob_per_s", "sample_per_s", "peak_rss_mb"):
        assert math.isfinite(r[k]) and r[k] > 0, (k, r[k])
    assert r["wall_s"] >= r["first_step_s"] >= r["compile_s"] >= 0
    assert r["flops_per_step"] == common.matmul_flops_per_step(_task(dim=6))


def test_flops_count_matches_hand_count():
    # MAF, d=6, hidden 128x2, 5 layers, batch 512: 3 * 2 * (6*128 + 128*128 + 128*12) * 5 * 512
    t = {"flow": "maf", "dim": 6, "hidden": [128, 128], "layers": 5, "batch": 512, "bins": 8}
    assert common.matmul_flops_per_step(t) == 3 * 2 * (768 + 16384 + 1536) * 5 * 512
    t["flow"] = "nsf"  # coupling: 3 inputs, 3 * (3 * 8 - 1) outputs
    assert common.matmul_flops_per_step(t) == 3 * 2 * (3 * 128 + 16384 + 128 * 69) * 5 * 512


def test_batches_are_static_and_cover_epochs():
    x = common.load_data("synth6")
    xb = common.batches(x, 512, 50, seed=0)
    assert xb.shape == (50, 512, 6) and xb.dtype.name == "float32"
    per_epoch = x.shape[0] // 512
    first_epoch = xb[:per_epoch].reshape(-1, 6)
    assert len({r.tobytes() for r in first_epoch}) == per_epoch * 512  # no repeats in an epoch
    with pytest.raises(ValueError, match="batch"):
        common.batches(x[:10], 512, 1)


def test_unknown_data_set_is_named():
    with pytest.raises(ValueError, match="data: expected one of"):
        common.load_data("nope")


def test_worker_error_is_reported_not_raised():
    r = common.run_worker({"kind": "no_such_kind"}, sys.executable, 120)
    assert "error" in r and "no_such_kind" in r["error"]


def test_table_prints_ours_and_missing_peers(nitsjax_result, capsys):
    args = run.parse(["--quick"])
    missing = [lib for lib in ("zuko", "nflows", "flowjax") if not importlib.util.find_spec(lib)]
    results = {"nitsjax": nitsjax_result}
    for lib in missing:
        results[lib] = {"error": "not installed"}
    report = {"mode": "quick", "date": "now", "command": "x", "loadavg_end": [0, 0, 0],
              "machine": common.machine_info(),
              "train": [{"data": "synth6", "flow": "maf", "results": results}]}
    run.print_tables(report, args, {"large": 100.0, "made": 40.0})
    out = capsys.readouterr().out
    assert "## MAF affine, synth6 (d=6)" in out
    assert "nitsjax (jitted step)" in out
    for lib in missing:
        assert f"| {run.LIB_TITLES[lib]} | not installed" in out


def test_nits_training_table_prints_ratio_split_and_memory(capsys):
    rows = [{"dim": 6, "hidden": 128, "batch": 256, "results": {
        "nitsjax": {"steps_per_s": 40.0, "step_ms": 25.0, "step_cpu_ms": 45.0, "cond_ms": 10.0,
                    "pnn_ms": 8.0, "gflops": 24.0, "compile_s": 7.0, "rss_step_mb": 20.0,
                    "xla_step_mb": 17.0},
        "nits-original": {"steps_per_s": 10.0, "step_cpu_ms": 180.0, "cond_ms": 30.0,
                          "pnn_ms": 60.0, "rss_step_mb": 21.0, "torch_threads": 1}}}]
    run.print_nits_train(rows, {"large": 100.0, "made": 40.0})
    out = capsys.readouterr().out
    row = "| 128 | 256 | 10 (1) | - | 40 (x4.00) | 180 / 45 (x4.00) | 30 / 60 | 10 / 8 | 2.50 |"
    assert row in out
    assert "24.0 (24%)" in out and "21 / 20 (17)" in out


def test_image_sampling_table(capsys):
    rows = [{"shape": [28, 28, 1], "filters": 32, "resnets": 1, "batch": 16, "results": {
        "nitsjax": {"images_per_s": 0.5, "subpixels_per_s": 392.0, "compile_s": 30.0}}},
        {"shape": [8, 8, 3], "filters": 8, "resnets": 1, "batch": 4, "results": {
            "nitsjax": {"error": "worker timed out"}}}]
    run.print_image_sampling(rows)
    out = capsys.readouterr().out
    assert "| 28x28x1 | 32 | 1 | 16 | 0.5" in out and "| 392 |" in out
    assert "| 8x8x3 | 8 | 1 | 4 | worker timed out |" in out
