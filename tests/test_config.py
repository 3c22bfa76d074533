"""Config schemas and files: schemas derived from the signatures they configure (one
declaration per option), YAML presets, and config file errors (unknown keys, wrong types,
missing values, unsafe YAML) named with key and file before any work."""

import dataclasses
import inspect
import pathlib

import pytest

from nitsjax import config as C
from nitsjax import experiment as ex
from nitsjax import registry
from nitsjax.cli import main
from nitsjax.train import fit


# ------------------------------------------------------------------------ configs
def _user_configs(tmp_path, files: dict) -> pathlib.Path:
    d = tmp_path / "my_configs"
    for rel, text in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return d


CONFIG_ERRORS = [
    # (file content, override choosing it, key named, extra text expected)
    ("defaults:\n  - /schema/model/maf@_here_\nlayers: 2\nhiden: [8]\n", "hiden",
     "valid keys of MAFConfig"),
    ("defaults:\n  - /schema/model/maf@_here_\nlayers: many\n", "layers", "many"),
    ("defaults:\n  - /schema/model/maf@_here_\nhidden: 8x\n", "hidden", "ListConfig"),
]


@pytest.mark.parametrize("text, key, extra", CONFIG_ERRORS,
                         ids=["unknown_key", "wrong_type", "wrong_list"])
def test_user_config_file_errors_name_key_and_file(tmp_path, capsys, text, key, extra):
    cfg_dir = _user_configs(tmp_path, {"model/mine.yaml": text})
    out = tmp_path / "never"
    code = main(["train", "--config-dir", str(cfg_dir), "model=mine", f"hydra.run.dir={out}"])
    err = capsys.readouterr().err
    assert code == 2
    assert key in err and str(cfg_dir / "model" / "mine.yaml") in err and extra in err, err
    assert not out.exists()  # failed before any work


def test_missing_required_value_names_key_and_file(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["train", "data=file", "model.layers=1", f"hydra.run.dir={out}"]) == 2
    err = capsys.readouterr().err
    assert "data.path: required value missing" in err and "data/file.yaml" in err, err
    assert not out.exists()


def test_yaml_is_read_with_a_safe_loader(tmp_path, capsys):
    """A YAML tag that would run code is refused, and the code does not run."""
    marker = tmp_path / "pwned"
    text = ("defaults:\n  - /schema/model/maf@_here_\n"
            f"layers: !!python/object/apply:os.system ['touch {marker}']\n")
    cfg_dir = _user_configs(tmp_path, {"model/evil.yaml": text})
    out = tmp_path / "never"
    code = main(["train", "--config-dir", str(cfg_dir), "model=evil", f"hydra.run.dir={out}"])
    err = capsys.readouterr().err
    assert code == 2 and "python/object/apply" in err, err
    assert not marker.exists() and not out.exists()
    # a run folder's config.yaml is read by OmegaConf's safe loader too
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    (run / "params.npz").write_bytes(b"")
    with pytest.raises(Exception, match="python/object/apply"):
        ex.load_run(run)
    assert not marker.exists()


def test_schemas_are_registered_and_cover_yaml_keys():
    names = {f.name for f in dataclasses.fields(C.TrainConfig)}
    fit_params = set(inspect.signature(__import__("nitsjax.train", fromlist=["fit"]).fit)
                     .parameters)
    assert names <= fit_params, names - fit_params


# ------------------------------------------------------ one declaration per option
def _defaults(fn, exclude=()):
    """``{option: default}`` of ``fn``'s keyword-only parameters (tuples as lists)."""
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.name not in exclude:
            d = p.default
            out[p.name] = list(d) if isinstance(d, tuple) else d
    return out


def _schema_defaults(schema) -> dict:
    out = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        else:
            out[f.name] = f.default_factory()
    return out


@pytest.mark.parametrize("name", registry.names("flow") + registry.names("transport"))
def test_model_config_defaults_are_the_constructors(name):
    """The schema of ``model=<name>`` and the composed config agree with the registered
    constructor's (or transport fitter's) signature, option by option: a drifted
    default fails here."""
    ctor = registry.get(name, registry.kind_of(name))
    want = _defaults(ctor, exclude=C.MODEL_SUPPLIED)
    schema = _schema_defaults(C.model_schema(name))
    cfg = C.to_container(C.compose("train", [f"model={name}"]).model)
    for key, default in want.items():
        if key not in schema:  # not config material (a callable, an array): by the rule
            continue
        assert schema[key] == default, (name, key, schema[key], default)
        assert cfg[key] == default, (f"configs/model/{name}.yaml sets {key}={cfg[key]!r}; "
                                     f"the signature default is {default!r}")
    assert cfg["name"] == name and cfg["logit"] is None
    assert set(cfg) == {"name", "logit"} | {k for k in want if k in schema}


def test_train_config_defaults_are_fits():
    want = _defaults(fit, exclude=C.FIT_SUPPLIED)
    schema = _schema_defaults(C.TrainConfig)
    assert set(schema) <= set(want)
    for key, default in schema.items():
        expected = "???" if want[key] is inspect.Parameter.empty else want[key]
        assert default == expected, (key, default, want[key])
    # what is left out is what is not plain data: the rule, not a list
    left_out = set(want) - set(schema)
    assert {"key", "callback"} <= left_out
    assert "loss" in schema  # a name (train.loss=crps); a callable stays a Python argument
    assert {"steps", "batch_size", "learning_rate"} <= set(schema)


def test_presets_restate_no_signature_default():
    """A base model YAML (named after a registered flow) holds no option value, so a
    change of the constructor's default reaches the command line."""
    import yaml

    for name in registry.names("flow"):
        path = C.config_dir() / "model" / f"{name}.yaml"
        if path.is_file():
            keys = set(yaml.safe_load(path.read_text()) or {}) - {"defaults"}
            assert not keys, f"{path}: restates {sorted(keys)}; the signature holds them"


def test_a_registered_flow_gets_its_schema_and_config_group(tmp_path):
    """One module and one registration line: ``model=<name>`` composes (no YAML file),
    its options and defaults come from the signature, unknown keys are refused."""
    from typing import Optional, Sequence

    from nitsjax.flows import maf

    def tiny_maf(dim: int, *, layers: int = 1, hidden: Sequence[int] = (4,),
                 context_dim: Optional[int] = None, gated: bool = False,
                 callback=print) -> "maf":
        return maf(dim, layers=layers, hidden=hidden, gated=gated, context_dim=context_dim)

    registry.register("tiny_maf_for_tests", tiny_maf)
    cfg = C.compose("train", ["model=tiny_maf_for_tests", "model.layers=2"])
    assert C.to_container(cfg.model) == {
        "name": "tiny_maf_for_tests", "logit": None, "layers": 2, "hidden": [4],
        "gated": False}
    flow = ex.build_flow(cfg.model, 3)
    assert flow.dim == 3
    out = tmp_path / "never"
    assert main(["train", "model=tiny_maf_for_tests", "model.widths=3",
                 f"hydra.run.dir={out}"]) == 2
    assert not out.exists()


def test_data_schema_has_dequantize():
    assert "dequantize" in {f.name for f in dataclasses.fields(C.DataConfig)}
    cfg = C.compose("train", ["data=moons"])
    assert cfg.data.dequantize is None
    assert ex.data_options(cfg.data) == ("moons", {"n_train": 20000, "n_val": 5000,
                                                   "n_test": 5000, "seed": 0})


def test_registered_constructors_take_their_options_keyword_only():
    """The derivation's rule: positional parameters are inputs (``dim``), keyword-only
    ones are options; an option that is not keyword-only would silently miss the CLI."""
    for name in registry.names("flow"):
        params = list(inspect.signature(registry.get(name)).parameters.values())
        late = [p.name for p in params[1:] if p.kind is not p.KEYWORD_ONLY]
        assert not late, f"{name}: make {late} keyword-only (after `*`) to be config options"


def test_signature_rule_picks_up_new_options_by_type():
    """What other signatures will gain is derived without touching the config code:
    plain data becomes a field, an optimizer / array / callable does not."""
    from typing import Callable, Literal, Optional, Sequence

    import jax
    import optax

    from nitsjax.app.schema import options, signature_schema

    def f(x, *, steps: int, eval_every: Optional[int] = None, standardize: bool = True,
          linear: Literal["lu", "permute"] | None = "lu", squash: str = "logistic",
          dequantize: bool | float | None = None, shift: float | Sequence[float] = 0.0,
          widths: Sequence[int] = (8, 8), optimizer: optax.GradientTransformation | None = None,
          key: jax.Array = None, loss: Callable = print, callback=None, untyped=0.5):
        return x

    got = options(f)
    assert set(got) == {"steps", "eval_every", "standardize", "linear", "squash",
                        "dequantize", "shift", "widths", "callback", "untyped"}
    assert got["steps"][1] is inspect.Parameter.empty
    schema = _schema_defaults(signature_schema(f, "F"))
    assert schema["steps"] == "???" and schema["widths"] == [8, 8] and schema["linear"] == "lu"
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(signature_schema(f, "F"))
    cfg.eval_every = 3
    with pytest.raises(Exception, match="eval_every"):
        cfg.eval_every = "often"
    with pytest.raises(Exception, match="optimizer"):
        cfg.optimizer = "adam"


@pytest.mark.parametrize("name", sorted(p.stem for p in C.config_dir().glob("data/*.yaml")))
def test_data_config_defaults_are_the_loaders(name):
    """``data=<name>`` has one key per loader argument, with the loader's default unless
    its YAML preset says otherwise; a preset restates no default."""
    import yaml

    loader = C.data_loader(name)
    want = {}
    for p in inspect.signature(loader).parameters.values():
        if p.name not in C.DATA_SUPPLIED:
            d = p.default
            want[p.name] = "???" if d is p.empty else (list(d) if isinstance(d, tuple) else d)
    preset = yaml.safe_load((C.config_dir() / "data" / f"{name}.yaml").read_text())
    preset.pop("defaults")
    required = [f"data.{k}=x.npy" for k, v in want.items() if v == "???"]
    cfg = C.to_container(C.compose("train", [f"data={name}", *required]).data)
    schema = _schema_defaults(C.data_schema(name))
    for key, default in want.items():
        assert schema[key] == default, (name, key, schema[key], default)
        if key in preset:
            assert preset[key] != default or preset[key] == "???", (name, key)
        elif default != "???":
            assert cfg[key] == default, (name, key, cfg[key], default)
    assert set(schema) == {"name", "image_shape", "kwargs", "dequantize", "target"} | set(want)


def test_data_dequantize_goes_to_the_loader_else_to_fit():
    from nitsjax.app.datasets import fit_dequantize

    toy = C.compose("train", ["data=moons", "data.dequantize=true"]).data
    assert fit_dequantize(toy, {"dequantize": None}) == {"dequantize": True}
    with pytest.raises(C.ConfigError, match="data.dequantize"):
        fit_dequantize(toy, {})
    assert "dequantize" not in ex.data_options(toy)[1]
    table = C.compose("train", ["data=magic", "data.dequantize=integer"]).data
    assert fit_dequantize(table, {"dequantize": None}) == {}
    assert ex.data_options(table)[1]["dequantize"] == "integer"
