"""Experiment configs (configs/experiment/*.yaml), the results tool and ``model.logit``.

No training: every config is composed and validated as ``nitsjax train +experiment=<name>``
would, and the results tool reads a hand-made run folder."""

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
import results as R  # experiments/results.py (pyproject: pythonpath)
from omegaconf import OmegaConf

from nitsjax import config as C
from nitsjax import experiment as ex
from nitsjax.data import DataNotFoundError

EXPERIMENTS = sorted(p.stem for p in (C.config_dir() / "experiment").glob("*.yaml")
                     if not p.stem.startswith("snf_"))  # nitsjax snf: tests/test_snf_cli.py
MAF_SETS = ["power", "gas", "hepmass", "miniboone", "bsds300"]
PAPER_MODELS = ["maf", "realnvp", "nsf", "nsf_ar", "nits"]


def _compose(name, *overrides):
    return C.compose("train", [f"+experiment={name}", *overrides])


def test_every_table_cell_has_a_config():
    for ds in MAF_SETS + ["bsds300_images", "magic", "htru2", "wine_red", "wine_white"]:
        for m in PAPER_MODELS:
            assert f"{ds}_{m}" in EXPERIMENTS, f"{ds}_{m}"
    for name in ["mnist_maf", "mnist_realnvp", "toy_nsf", "power_maf10"]:
        assert name in EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_validates(name):
    cfg = _compose(name)
    C.validate(cfg, "train")
    if name.endswith("_crps"):  # <data>_<model>_<objective>
        assert cfg.train.loss == "crps"
        name = name[: -len("_crps")]
    data_name, _ = ex.data_options(cfg.data)
    stem_data = "moons" if name.startswith("toy_") else name.rsplit(
        "_", 2 if name.endswith(("_nsf_ar", "_image_nits")) else 1)[0]
    assert data_name == stem_data
    try:
        ctor, kw = ex.model_options(cfg.model)
    except C.ConfigError as err:
        if "not available" in str(err):  # that flow family is not in this checkout
            pytest.skip(str(err))
        raise
    assert "logit" not in kw
    model = name.split("_", 1)[1] if name.startswith("toy_") else name[len(stem_data) + 1:]
    assert R.model_key(cfg.model).startswith(model.rstrip("0123456789")), (name, cfg.model.name)
    if cfg.train.patience is not None:
        assert cfg.train.steps >= cfg.train.eval_every * cfg.train.patience


@pytest.mark.parametrize("ds,expected", [
    ("power", "power/data.npy"), ("gas", "ethylene_CO"), ("hepmass", "1000_train.csv"),
    ("miniboone", "miniboone/data.npy"), ("bsds300", "BSDS300.hdf5"),
])
def test_maf_configs_name_the_expected_file(ds, expected, tmp_path):
    cfg = _compose(f"{ds}_nsf", f"data.root={tmp_path}")
    with pytest.raises(DataNotFoundError, match=expected.replace(".", r"\.")):
        ex.load_data(cfg.data)


def test_paper_hyperparameters_spot_checks():
    c = _compose("power_nsf").train
    assert (c.batch_size, c.learning_rate, c.steps, c.schedule) == (512, 5e-4, 400_000, "cosine")
    m = _compose("miniboone_nsf_ar").model
    assert (m.layers, list(m.hidden), m.bins, m.dropout) == (10, [32, 32, 32], 4, 0.2)
    nits = {ds: _compose(f"{ds}_nits") for ds in MAF_SETS}
    assert {ds: c.model.dropout for ds, c in nits.items()} == {
        "power": 0.4, "gas": 0.1, "hepmass": 0.3, "miniboone": 0.3, "bsds300": 0.2}
    assert nits["miniboone"].model.hidden == 128 and nits["miniboone"].train.batch_size == 128
    assert nits["hepmass"].model.hidden == 512 and nits["power"].model.hidden == 1024
    assert all(c.train.ema_decay == pytest.approx(1 - 5e-5) for c in nits.values())
    assert all(list(c.model.arch) == [16, 16] and c.model.blocks == 4 for c in nits.values())
    mn = _compose("mnist_maf")
    assert mn.model.logit == 1e-6 and list(mn.model.hidden) == [1024, 1024]
    assert mn.model.layers == 5 and mn.train.batch_size == 100
    assert _compose("bsds300_maf10").model.layers == 10
    assert R.model_key(_compose("power_maf").model) == "maf5"
    assert R.model_key(_compose("power_maf10").model) == "maf"


# ------------------------------------------------------------------- model.logit
def test_logit_model_adds_the_logit_jacobian():
    from nitsjax.data import logit_transform

    cfg = {"name": "maf", "layers": 2, "hidden": [8], "logit": 1e-6}
    flow = ex.build_flow(cfg, 3)
    inner = ex.build_flow({k: v for k, v in cfg.items() if k != "logit"}, 3)
    x = np.random.default_rng(0).uniform(0.01, 0.99, (6, 3)).astype(np.float32)
    params = flow.init(jax.random.key(0))
    z, ld = logit_transform(x, 1e-6)
    want = inner.log_prob({"bijector": params["bijector"]["flow"], "base": params["base"]},
                          np.asarray(z)) + ld
    np.testing.assert_allclose(flow.log_prob(params, x), want, rtol=1e-4, atol=1e-3)
    s = np.asarray(flow.sample(params, jax.random.key(1), 50))
    assert s.min() >= 0.0 and s.max() <= 1.0
    with pytest.raises(C.ConfigError, match="model.logit"):
        ex.build_flow({"name": "maf", "logit": 0.7}, 3)
    with pytest.raises(C.ConfigError, match="model.logit.*only flows"):
        ex.build_flow({"name": "diffusion", "hidden": [8], "logit": 0.01}, 2)


# ------------------------------------------------------------------- results tool
def _fake_run(folder: Path, overrides, metrics: dict) -> Path:
    folder.mkdir(parents=True)
    OmegaConf.save(_compose(*overrides), folder / "config.yaml", resolve=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_results_tool_builds_a_table(tmp_path, capsys):
    _fake_run(tmp_path / "sweep" / "0_maf_power", ["power_maf"], {
        "model": "maf", "data": "power", "dim": 6, "steps": 3000, "best_step": 2500,
        "n_train": 1000, "train_seconds": 12.0, "test_log_likelihood": 0.1,
        "test_log_likelihood_stderr": 0.005, "n_test": 400})
    _fake_run(tmp_path / "sweep" / "1_nsf_gas", ["gas_nsf"], {
        "model": "nsf", "data": "gas", "dim": 8, "steps": 10})  # unfinished: skipped
    # MNIST: LL of the [0, 1) pixels -> bits/dim of the 8-bit pixels, -LL/(D ln 2) + 8
    bpd, d = 1.5, 784
    ll = -(bpd - 8.0) * d * math.log(2.0)
    _fake_run(tmp_path / "m", ["mnist_maf"], {
        "model": "maf", "data": "mnist", "dim": d, "steps": 100, "test_log_likelihood": ll,
        "test_log_likelihood_stderr": d * math.log(2.0) * 0.01, "n_test": 10000})
    assert R.main([str(tmp_path), "--out", str(tmp_path / "r.md")]) == 0
    out = capsys.readouterr()
    assert "| power | maf5 | 0.100 +- 0.010 | 3000 steps (best 2500); batch 100;" in out.out
    assert "| 0.14 +- 0.01 | MAF Table 1 (MAF (5)) |" in out.out
    assert "| mnist | maf5 | 1.500 +- 0.020 |" in out.out and "| 1.89 +- 0.01 |" in out.out
    assert "gas" not in out.out and "1_nsf_gas has no test result" in out.err
    assert (tmp_path / "r.md").read_text().strip() == out.out.strip()
    assert R.main([str(tmp_path / "nope")]) == 2
