"""The ``nitsjax`` command line, run in-process through ``nitsjax.cli.main(argv)``.

Tiny models and few steps: these tests check the plumbing (configs, output folders,
files, units, errors before work), not model quality.
"""

import inspect
import json
import logging
import math
import pathlib

import jax
import numpy as np
import pytest
from omegaconf import OmegaConf

from nitsjax import config as C
from nitsjax import experiment as ex
from nitsjax import plots
from nitsjax.app.models import is_conditional_model, is_transport
from nitsjax.cli import main

TINY = [
    "model.layers=1",
    "model.hidden=[8]",
    "train.steps=20",
    "train.eval_every=10",
    "train.batch_size=32",
    "train.patience=null",
    "train.progress=false",
    "plots.n_samples=200",
    "plots.grid=16",
    "eval_batch_size=256",
]
# the split sizes load_file gives a 400-row file, so runs share compiled functions
TOY = ["data.n_train=324", "data.n_val=36", "data.n_test=40"]


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def _finite(*values):
    return all(isinstance(v, float) and math.isfinite(v) for v in values)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("toy") / "run"
    assert main(["train", "data=moons", *TINY, *TOY, f"hydra.run.dir={run}"]) == 0
    return run


def test_train_toy_writes_what_it_says(toy_run, capsys):
    for name in ("config.yaml", "params.npz", "history.jsonl", "metrics.json",
                 "training_curve.png", "samples.png", "density.png", ".hydra/config.yaml"):
        assert (toy_run / name).is_file(), name
    assert (toy_run / "checkpoints").is_dir()
    m = _metrics(toy_run)
    assert m["dim"] == 2 and m["steps"] == 20 and m["n_test"] == 40
    assert _finite(m["test_log_likelihood"], m["test_log_likelihood_stderr"])
    cfg = OmegaConf.load(toy_run / "config.yaml")
    assert cfg.model.hidden == [8] and cfg.data.name == "moons"
    records = [json.loads(line) for line in (toy_run / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 10, 20]  # step 0: before any update


def test_eval_and_sample_a_run(toy_run, capsys):
    assert main(["eval", f"run={toy_run}"]) == 0
    out = capsys.readouterr().out
    assert "test log-likelihood" in out and "+-" in out
    evals = list((toy_run / "eval").glob("*/metrics.json"))
    assert len(evals) == 1
    m = json.loads(evals[0].read_text())
    assert m["n"] == 40
    # same params, same test set: the number training reported
    assert m["log_likelihood"] == pytest.approx(_metrics(toy_run)["test_log_likelihood"], 1e-5)

    npy = toy_run / "my_samples.npy"
    assert main(["sample", f"run={toy_run}", "n=123", f"out={npy}"]) == 0
    x = np.load(npy)
    assert x.shape == (123, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    assert npy.with_suffix(".png").is_file()


def test_user_npy_and_csv_in_original_units(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) * np.array([1.0, 10.0, 0.1]) + np.array([100.0, -50.0, 3.0])
    np.save(tmp_path / "mine.npy", x)
    run = tmp_path / "npy_run"
    argv = ["train", "data=file", f"data.path={tmp_path / 'mine.npy'}", *TINY,
            f"hydra.run.dir={run}"]
    assert main(argv) == 0
    m = _metrics(run)
    assert m["dim"] == 3
    assert _finite(m["test_log_likelihood"], m["test_log_likelihood_original_units"])
    assert (run / "standardization.npz").is_file() and (run / "samples.png").is_file()
    assert not (run / "density.png").exists()  # only for 2-D data
    # samples come back in the file's units: shift/scale undone
    assert main(["sample", f"run={run}", "n=2000", "plot=false"]) == 0
    (npy,) = run.glob("samples/*/samples.npy")
    s = np.load(npy)
    assert np.all(np.abs(s.mean(0) - x.mean(0)) < 0.5 * np.array([1.0, 10.0, 0.1])), s.mean(0)
    np.testing.assert_allclose(s.std(0), x.std(0), rtol=0.5)
    # log-density in original units = standardised one - sum(log std)
    r = ex.load_run(run)
    z = (x[:5] - r.shift) / r.scale
    diff = r.log_prob(z, original_units=False) - r.log_prob(x[:5])
    np.testing.assert_allclose(diff, np.sum(np.log(r.scale)), rtol=1e-4)

    header = "a,b,label"
    rows = np.column_stack([x[:, :2], rng.integers(0, 2, len(x))])
    np.savetxt(tmp_path / "mine.csv", rows, delimiter=",", header=header, comments="")
    run = tmp_path / "csv_run"
    argv = ["train", "data=file", f"data.path={tmp_path / 'mine.csv'}", "data.label_column=label",
            *TINY, "plots.enabled=false", f"hydra.run.dir={run}"]
    assert main(argv) == 0
    m = _metrics(run)
    assert m["data"] == "file" and m["dim"] == 2 and _finite(m["test_log_likelihood"])


def test_conditional_training_from_a_table(tmp_path):
    """data.target=[2]: a ddn of p(column 2 | columns 0, 1); eval scores it the same way.
    One test row lies outside the bin range set from the training rows: density zero, so
    the log-likelihood is -inf (null) and the metrics count the row and score the others.
    Without a target the conditional model is refused, naming data.target."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    x[:, 2] = 2 * x[:, 0] + 0.1 * rng.normal(size=400)
    np.save(tmp_path / "t.npy", x)
    run = tmp_path / "cond"
    common = ["train", "model=ddn", "data=file", f"data.path={tmp_path / 't.npy'}",
              "model.bins=8", "model.hidden=[8]", "model.channels=[4]", "model.kernel=3",
              *TINY[2:], "train.learning_rate=1e-2", "plots.enabled=false"]
    assert main([*common, "data.target=[2]", f"hydra.run.dir={run}"]) == 0
    m = _metrics(run)
    assert m["dim"] == 1 and m["context_dim"] == 2 and m["target"] == [2]
    records = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert records[-1]["val_nll"] < records[0]["val_nll"] - 0.1, records  # nj.fit trains it
    assert _finite(m["val_log_likelihood"], m["val_log_likelihood_original_units"])
    assert m["test_log_likelihood"] is None and m["test_rows_at_zero_density"] == 1
    assert _finite(m["test_log_likelihood_inside"])
    assert main(["eval", f"run={run}", f"hydra.run.dir={run / 'eval'}"]) == 0
    ev = json.loads((run / "eval" / "metrics.json").read_text())
    assert ev["rows_at_zero_density"] == 1
    assert ev["log_likelihood_inside"] == pytest.approx(m["test_log_likelihood_inside"], 1e-5)
    assert main([*common, f"hydra.run.dir={tmp_path / 'never'}"]) == 2


@pytest.mark.parametrize(
    "argv, key, file",
    [
        (["train", "model.hidden_size=3"], "model.hidden_size", "model/maf.yaml"),
        (["train", "train.steps=abc"], "train.steps", "train/default.yaml"),
        (["train", "data=file"], "data.path", "data/file.yaml"),
        (["train", "data.n_trian=5"], "data.n_trian", "data/moons.yaml"),
        (["train", "train.steps=0"], "train.steps", "train/default.yaml"),
        (["eval"], "run", "eval.yaml"),
    ],
)
def test_config_errors_fail_before_work(argv, key, file, tmp_path, capsys):
    out = tmp_path / "never"
    assert main([*argv, f"hydra.run.dir={out}"]) == 2
    err = capsys.readouterr().err
    assert key in err and file in err, err
    assert not out.exists()


def test_multirun_errors_are_found_before_the_first_job(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    argv = ["train", "-m", "train.steps=5,0", *TINY[:2], f"hydra.sweep.dir={sweep}"]
    assert main(argv) == 2
    assert "train.steps" in capsys.readouterr().err
    assert not sweep.exists()


def test_multirun_two_values_two_runs(tmp_path):
    sweep = tmp_path / "sweep"
    argv = ["train", "-m", "train.learning_rate=1e-3,3e-4", *TINY, *TOY,
            "plots.enabled=false", f"hydra.sweep.dir={sweep}"]
    assert main(argv) == 0
    runs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(runs) == 2
    lrs = sorted(OmegaConf.load(r / "config.yaml").train.learning_rate for r in runs)
    assert lrs == [3e-4, 1e-3]


def test_help_and_cfg(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("train", "eval", "sample", "demo"))
    assert main(["nonsense"]) == 2
    assert main(["train", "model=nsf_ar", "--cfg", "job"]) == 0
    cfg = OmegaConf.create(capsys.readouterr().out)
    assert cfg.model.autoregressive is True and cfg.train.steps >= 1


# ------------------------------------------------------------------- library pieces
def test_every_model_config_builds_and_names_unknown_keys():
    for path in sorted(C.config_dir().glob("model/*.yaml")):
        cfg = C.compose("train", [f"model={path.stem}"])
        try:
            ctor, kw = ex.model_options(cfg.model)
        except C.ConfigError as err:
            if "not available" in str(err):  # that flow family is not in this checkout
                continue
            raise
        sig = inspect.signature(ctor).parameters
        assert set(kw) <= set(sig), (path.stem, set(kw) - set(sig))
        if is_transport(cfg.model):  # atm: fitted from the data by the train command
            with pytest.raises(C.ConfigError, match="fits itself"):
                ex.build_flow(cfg.model, 3)
            continue
        if is_conditional_model(cfg.model):  # ddn, mdn: p(y | x), x from data.target
            flow = ex.build_flow(cfg.model, 2, context_dim=3)
            assert flow.context_dim == 3
        else:
            flow = ex.build_flow(cfg.model, 2 if path.stem == "realnvp" else 3)
        assert flow.dim in (2, 3)
    with pytest.raises(C.ConfigError, match="model.widths"):
        ex.build_flow({"name": "maf", "widths": [3]}, 2)
    with pytest.raises(C.ConfigError, match="model.name"):
        ex.build_flow({"name": "nope"}, 2)


def test_data_configs_match_their_loaders():
    for path in sorted(C.config_dir().glob("data/*.yaml")):
        overrides = [f"data={path.stem}"] + (["data.path=x.npy"] if path.stem == "file" else [])
        cfg = C.compose("train", overrides)
        name, kw = ex.data_options(cfg.data)
        assert name == path.stem
    with pytest.raises(C.ConfigError, match="data.root"):
        ex.data_options({"name": "moons", "kwargs": {"root": "/x"}})


def test_params_round_trip(tmp_path):
    from nitsjax.flows.affine import maf

    flow = maf(3, layers=2, hidden=(8,))
    params = flow.init(jax.random.key(1))
    ex.save_params(tmp_path / "p.npz", params)
    back = ex.load_params(tmp_path / "p.npz", jax.eval_shape(flow.init, jax.random.key(0)))
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, params, back))
    other = maf(3, layers=3, hidden=(8,))
    with pytest.raises(ValueError, match="shape"):
        ex.load_params(tmp_path / "p.npz", jax.eval_shape(other.init, jax.random.key(0)))


def test_plots(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.random((70, 64))
    fig = plots.plot_image_samples(imgs, (8, 8), imgs[::-1], tmp_path / "g.png")
    assert (tmp_path / "g.png").is_file() and len(fig.axes) == 2
    grid = plots.image_grid(imgs, (8, 8), rows=8, cols=8)
    assert grid.shape == (8 * 9 + 1, 8 * 9 + 1)
    np.testing.assert_array_equal(grid[1:9, 1:9], imgs[0].reshape(8, 8))
    plots.plot_samples(rng.normal(size=(100, 6)), rng.normal(size=(90, 6)), tmp_path / "p.png",
                       max_dims=3)
    plots.plot_history([{"step": 1, "train_nll": 2.0, "val_nll": None},
                        {"step": 2, "train_nll": 1.5, "val_nll": 1.7}], tmp_path / "h.png")
    # the density panel integrates a normalised density to ~1 over a wide view
    lp = lambda p: -0.5 * np.sum(p**2, 1) - np.log(2 * np.pi)  # noqa: E731
    _, _, dens = plots.density_grid(lp, np.array([[-6.0, 6.0], [-6.0, 6.0]]), 120)
    assert dens.sum() * (12 / 119) ** 2 == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="image_shape"):
        plots.image_grid(imgs, (7, 7))


def test_data_file_errors_reach_the_command_line_as_messages(tmp_path, capsys, monkeypatch):
    """The train command's task prints a data file error (missing, truncated) as one
    message naming the file and exits 2, before any training: no traceback."""
    from nitsjax.cli import _TASKS
    from nitsjax.config import compose

    monkeypatch.chdir(tmp_path)  # outside Hydra, the default output folder is ./outputs
    missing = tmp_path / "nope.npy"
    bad = tmp_path / "cut.npy"
    np.save(bad, np.ones((50, 2), np.float32))
    bad.write_bytes(bad.read_bytes()[:200])
    for path, words in ((missing, [f"no such file {missing}", "pass the path"]),
                        (bad, [str(bad), "truncated", "Write it again"])):
        cfg = compose("train", ["data=file", f"data.path={path}", "model.layers=1"])
        with pytest.raises(SystemExit) as stop:
            _TASKS["train"](cfg)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("nitsjax train: ") and all(w in err for w in words), err
    assert not list(tmp_path.glob("outputs/train/*/*/checkpoints"))


# -------------------------------------------------------------- output paths
def test_config_paths_stay_in_the_output_folder_unless_written_otherwise(tmp_path, caplog):
    base = tmp_path / "out"
    assert ex.output_path("samples.npy", base, "out") == base / "samples.npy"
    assert ex.output_path("sub/s.npy", base, "out") == base / "sub" / "s.npy"
    with caplog.at_level(logging.WARNING, logger="nitsjax"):
        up = ex.output_path("../elsewhere/s.npy", base, "out")
        absolute = ex.output_path(tmp_path / "abs.npy", base, "out")
    assert up == pathlib.Path("../elsewhere/s.npy") and absolute == tmp_path / "abs.npy"
    text = caplog.text
    assert "out: ../elsewhere/s.npy is outside the output folder" in text
    assert str((pathlib.Path.cwd() / "../elsewhere/s.npy").resolve()) in text
    assert f"out: {tmp_path / 'abs.npy'} is outside the output folder" in text


def test_help_lists_every_option_from_the_signatures(capsys):
    assert main(["train", "model=nsf_ar", "model.bins=4", "--help"]) == 0
    out = capsys.readouterr().out
    assert "== Configuration groups ==" in out  # Hydra's part
    assert "model.bins: int = 4  (signature default 8)" in out
    assert "model.autoregressive: bool = true  (signature default false)" in out
    assert "spline bins per coordinate" in out  # the docstring's Args entry
    assert "train.steps: int = 5000\n" in out  # fit's own default
    assert "train.clip_norm: float | null = null" in out
