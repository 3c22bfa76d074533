"""``nitsjax snf``: the SNF experiment configs compose and validate, config errors are named
before any work, and a tiny run writes what it says (slow)."""

import json

import numpy as np
import pytest

from nitsjax import config as C
from nitsjax.app import snf as app
from nitsjax.cli import main

SNF_EXPERIMENTS = ("snf_double_well", "snf_gaussian_mixture", "snf_funnel")


def test_snf_experiments_compose_and_validate():
    for name in SNF_EXPERIMENTS:
        cfg = C.compose("snf", [f"+experiment={name}"])
        C.validate(cfg, "snf")  # builds the target and the chain's layers (no params)
        assert cfg.target.name == name[len("snf_"):]
        kinds = [k for k, _ in app.check_chain(cfg.chain)]
        assert "flow" in kinds and {"metropolis", "langevin"} & set(kinds)
        assert cfg.flow.standardize is None


@pytest.mark.parametrize(
    "argv, key",
    [
        (["snf", "fit.stepz=3"], "fit.stepz"),  # unknown key: Hydra's schema
        (["snf", "chain=[flow,{langevin:{stepsize:0.1}}]"], "chain[1].langevin.stepsize"),
        (["snf", "chain=[flow,{langevin:{step_size:-0.1}}]"], "step_size"),
    ],
)
def test_snf_config_errors_fail_before_work(argv, key, tmp_path, capsys):
    out = tmp_path / "never"
    assert main([*argv, f"hydra.run.dir={out}"]) == 2
    err = capsys.readouterr().err
    assert key in err, err
    assert not out.exists()


@pytest.mark.slow
def test_snf_cli_tiny_run_writes_metrics_samples_figures(tmp_path):
    out = tmp_path / "run"
    argv = ["snf", "+experiment=snf_double_well", "fit.steps=3", "fit.batch_size=8",
            "fit.n_samples=64", "fit.progress=false", f"hydra.run.dir={out}"]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["target"] == "double_well" and m["steps"] == 3
    for label in ("snf", "flow"):
        r = m[label]
        assert r["log_z_exact"] == pytest.approx(m["log_z_exact"])
        assert np.isfinite(r["log_z"]) and r["log_z_se"] > 0 and 0 < r["ess_fraction"] <= 1
        assert r["modes"] == 2 and 0 <= r["modes_covered"] <= 2
    assert np.load(out / "samples.npy").shape == (64, 2)
    assert (out / "snf_samples.png").is_file() and (out / "snf_ess.png").is_file()
