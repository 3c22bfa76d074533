"""``nitsjax rd``: the rate-distortion bounds from a config (tiny budgets: plumbing only;
the bounds themselves are tested in test_rd.py)."""

import inspect
import json

import pytest
from omegaconf import OmegaConf

from nitsjax import rd
from nitsjax.cli import main

TINY = [
    "n=300", "rd.lambdas=[1,4]",
    "rd.upper.steps=10", "rd.upper.batch_size=32", "rd.upper.hidden=[8]",
    "rd.upper.eval_draws=2", "rd.upper.progress=false",
    "rd.lower.steps=4", "rd.lower.k=16", "rd.lower.hidden=[8]", "rd.lower.eval_batches=2",
    "rd.lower.ascent_steps=2", "rd.lower.progress=false",
]


@pytest.mark.slow  # ~18 CPU-s: compiles both bounds
def test_rd_command_writes_both_bounds_and_the_closed_form(tmp_path):
    out = tmp_path / "run"
    argv = ["rd", "source=gaussian", "variances=[1,0.25]", *TINY, f"hydra.run.dir={out}"]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["source"] == "gaussian" and m["n"] == 300 and m["dim"] == 2
    assert m["upper"]["lambdas"] == [1.0, 4.0] and len(m["upper"]["points"]) == 2
    assert m["lower"]["k"] == 16 and len(m["lower"]["intercepts"]) == 2
    d = [p[0] for p in m["upper"]["points"]]
    assert [p[0] for p in m["lower"]["points"]] == d == m["gaussian_rd"]["distortion"]
    assert all(r >= 0 for r in m["gaussian_rd"]["rate"])
    assert (out / "rd.png").is_file()
    assert OmegaConf.load(out / "config.yaml").rd.upper.steps == 10


def test_rd_unknown_key_and_bad_values_fail_before_work(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["rd", "rd.upper.stepz=5", f"hydra.run.dir={out}"]) == 2
    err = capsys.readouterr().err
    assert "rd.upper.stepz" in err and "rd.yaml" in err and "RdUpperConfig" in err, err
    assert main(["rd", "source=bananas", f"hydra.run.dir={out}"]) == 2
    assert "source: expected one of data, gaussian, banana" in capsys.readouterr().err
    assert main(["rd", "rd.lambdas=[0,1]", f"hydra.run.dir={out}"]) == 2
    assert "rd.lambdas" in capsys.readouterr().err
    assert not out.exists()


def test_rd_config_defaults_are_the_bounds_signatures(capsys):
    assert main(["rd", "source=banana", "--cfg", "job"]) == 0
    cfg = OmegaConf.create(capsys.readouterr().out)
    for node, fn in ((cfg.rd.upper, rd.upper_bound), (cfg.rd.lower, rd.lower_bound)):
        sig = inspect.signature(fn).parameters
        for key, value in node.items():
            default = sig[key].default
            assert value == (list(default) if isinstance(default, tuple) else default), key
        assert "seed" not in node  # the top-level seed goes to both
    assert cfg.source == "banana" and cfg.rd.lower_lambdas is None
