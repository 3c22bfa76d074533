"""Structured configs of the command line, registered in Hydra's ConfigStore.

The schemas are derived from the functions they configure: one field per option of the
registered flow constructor (``nitsjax.registry``), of ``nitsjax.train.fit``, of the data
set's loader and of ``run_eval``/``run_sample``, with the signature's types and defaults
(``nitsjax.app.schema``); only the application's own keys are declared here.
The YAML files in ``configs/`` (shipped inside the package) hold presets: only what
differs from those defaults. Every YAML file names its schema in its defaults list
(``- /schema/model/maf@_here_``), so Hydra refuses, while composing and before any work:

* a key that is not in the schema (``model.hidden_size=64`` -> ``Key 'hidden_size' not in
  'MAFConfig'``), from the command line or from a YAML file;
* a value of the wrong type (``train.steps=abc``).

``validate(cfg)`` adds the checks composition cannot make: required values left at
``???`` (``data=file`` without ``data.path``) and values out of range. ``config_dir()``
finds the ``configs/`` folder and ``compose(command, overrides)`` composes a config in a
notebook exactly as the command line does.

Layout (``configs/``)::

    train.yaml eval.yaml sample.yaml demo.yaml   one primary config per command
    rd.yaml                                       (and rd: schema RdConfig, nitsjax.app.rd)
    model/<name>.yaml                             flow presets (schema: the constructor)
    data/<name>.yaml                              data set presets (schema: the loader)
    train/{default,fast,demo,...}.yaml            optimisation presets (schema: fit)
    snf.yaml, target/<name>.yaml                  nitsjax snf (schemas: nitsjax.app.snf)
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

import nitsjax.flows  # noqa: F401  (registers the built-in flows)
import nitsjax.models  # noqa: F401  (and models)
from nitsjax import registry
from nitsjax.app.schema import signature_schema
from nitsjax.cli import COMMANDS

ENV_CONFIG_DIR = "NITSJAX_CONFIG_DIR"


class ConfigError(ValueError):
    """A configuration problem found before any work: names the key and the file."""


# --------------------------------------------------------------------------- models
@dataclass
class ModelConfig:
    """A flow architecture: ``name`` picks the registered constructor
    (``nitsjax.registry``); every other key is passed to it as a keyword argument (see
    ``nitsjax.app.models.build_flow``), except ``logit``: a number ``alpha`` in [0, 0.5)
    puts ``x -> logit(alpha + (1 - 2 alpha) x)`` before the flow, for data in [0, 1) such
    as dequantised pixels (MAF and RealNVP use 1e-6 and 0.05); its log-determinant is part
    of the model's log-likelihood."""

    name: str = MISSING
    logit: Optional[float] = None


#: constructor arguments the runner supplies itself (not config keys)
MODEL_SUPPLIED = ("context_dim",)


def model_schema(name: str) -> type:
    """The schema of ``model.name=<name>``: ``ModelConfig`` plus one field per option of
    the registered constructor, with the signature's types and defaults."""
    ctor = registry.get_model(name)
    return signature_schema(
        ctor, f"{name.upper()}Config", bases=(ModelConfig,), exclude=MODEL_SUPPLIED,
        defaults={"name": name},
        doc=f"Options of ``{ctor.__module__}.{ctor.__qualname__}`` (model.name={name}).",
    )


# ----------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    """A data set: ``nitsjax.data.load(name, **options)``, where the options are this
    node's other keys (``data_schema(name)`` adds the loader's arguments) plus
    ``kwargs`` (extra loader options). ``image_shape`` (e.g. ``[8, 8]``) makes the sample
    figures image grids (default: what the loader reports). ``dequantize`` goes to the
    loader when it dequantises (UCI tables, files, images: it knows the columns' steps),
    else to ``fit(dequantize=)`` when ``fit`` takes it; null: their default. ``target``
    (column indices, e.g. ``[10]``) makes the run conditional: the model learns
    ``p(target columns | the other columns)`` (``nitsjax.app.datasets.load_data``); null:
    the joint density of every column."""

    name: str = MISSING
    image_shape: Optional[List[int]] = None
    kwargs: Dict[str, Any] = field(default_factory=dict)
    dequantize: Any = None
    target: Optional[List[int]] = None


#: loader arguments that are not config keys: ``return_info`` (the runner asks for it) and
#: ``allow_pickle`` (unpickling stays an explicit opt-in: Python or $NITSJAX_ALLOW_PICKLE)
DATA_SUPPLIED = ("return_info", "allow_pickle")


def data_loader(name: str):
    """The loader function of data set ``name`` (``nitsjax.data.load``'s registry)."""
    from nitsjax.data import tabular
    from nitsjax.data.registry import REGISTRY

    if name not in REGISTRY:
        raise ConfigError(f"data.name: unknown data set {name!r}; expected one of {list(REGISTRY)}")
    return tabular.load_file if name == "file" else REGISTRY[name].loader


def data_schema(name: str) -> type:
    """The schema of ``data=<name>``: ``DataConfig`` plus one field per argument of the
    data set's loader, with the signature's types and defaults."""
    fn = data_loader(name)
    return signature_schema(
        fn, f"{name}DataConfig", bases=(DataConfig,), exclude=DATA_SUPPLIED, positional=True,
        defaults={"name": name},
        doc=f"Options of ``{fn.__module__}.{fn.__qualname__}`` (data={name}).",
    )


def data_schemas() -> dict[str, type]:
    """``{name: schema}`` of every data set (``nitsjax.data.names()``)."""
    from nitsjax.data.registry import REGISTRY

    return {name: data_schema(name) for name in REGISTRY}


# ---------------------------------------------------------------------------- train
#: ``fit`` arguments ``run_train`` supplies itself (not ``train.*`` keys): the output folder,
#: the contexts (none on the command line) and ``eval_batch_size`` (a top-level key, shared
#: with evaluation). ``key``, ``loss``, ``callback``, ``optimizer`` are not plain data and
#: are left out by the rule of ``nitsjax.app.schema``.
FIT_SUPPLIED = ("checkpoint_dir", "context", "val_context", "eval_batch_size")


def train_schema() -> type:
    """The schema of ``train``: one field per option of ``nitsjax.train.fit``."""
    from nitsjax.train import fit

    return signature_schema(fit, "TrainConfig", exclude=FIT_SUPPLIED,
                            doc="Keyword arguments of ``nitsjax.train.fit`` (its signature).")


TrainConfig = train_schema()

@dataclass
class PlotConfig:
    """Figures written after training: ``n_samples`` samples drawn for them, the density
    heatmap's resolution ``grid`` (2-D data), pairwise marginals of the first ``max_dims``
    dimensions (d > 2)."""

    enabled: bool = True
    n_samples: int = 2000
    grid: int = 200
    max_dims: int = 4


# ------------------------------------------------------------------ primary configs
@dataclass
class RunConfig:
    """``nitsjax train``: one model on one data set; ``eval_batch_size`` test points per
    log-likelihood batch (``fit``'s validation batches too)."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = MISSING
    plots: PlotConfig = field(default_factory=PlotConfig)
    seed: int = 0
    eval_batch_size: int = 4096


#: ``run_eval``/``run_sample`` arguments the CLI passes itself: Hydra's output folder
COMMAND_SUPPLIED = ("out_dir",)


def command_schema(command: str) -> type:
    """The schema of ``nitsjax eval`` / ``nitsjax sample``: the arguments of
    ``nitsjax.app.commands.run_eval`` / ``run_sample`` (their signatures)."""
    from nitsjax.app import commands

    fn = {"eval": commands.run_eval, "sample": commands.run_sample}[command]
    return signature_schema(fn, f"{command.capitalize()}Config", exclude=COMMAND_SUPPLIED,
                            positional=True, doc=f"``nitsjax {command}``: {fn.__doc__}")


@dataclass
class DemoConfig:
    """``nitsjax demo``: the default model on a 2-D toy (density figure) and on sklearn's
    digits (sample grid next to real digits)."""

    model: ModelConfig = MISSING
    toy_data: DataConfig = MISSING
    image_data: DataConfig = MISSING
    train: TrainConfig = MISSING
    image_train: TrainConfig = MISSING
    plots: PlotConfig = field(default_factory=PlotConfig)
    seed: int = 0
    eval_batch_size: int = 4096


PRIMARY = COMMANDS  # one primary config per command (configs/<command>.yaml)


def primary_schemas() -> dict[str, type]:
    """``{command: schema}`` of the primary configs."""
    from nitsjax.app.rd import RdConfig
    from nitsjax.app.snf import SNFConfig

    return {"train": RunConfig, "eval": command_schema("eval"),
            "sample": command_schema("sample"), "demo": DemoConfig,
            "rd": RdConfig, "snf": SNFConfig}


def model_schemas() -> dict[str, type]:
    """``{name: schema}`` of every registered flow and model
    (``nitsjax.registry.model_names()``)."""
    return {name: model_schema(name) for name in registry.model_names()}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent; call again after registering
    a flow): ``schema/<command>``, ``schema/model/<name>``, ``schema/data/<name>``,
    ``schema/train/base``; and ``model/<name>`` for a registered flow that has no YAML file
    in ``configs/model/``, so ``model=<name>`` works with the registration alone."""
    cs = ConfigStore.instance()
    for name, node in primary_schemas().items():
        cs.store(group="schema", name=name, node=node)
    try:
        yaml_models = {p.stem for p in (config_dir() / "model").glob("*.yaml")}
    except ConfigError:
        yaml_models = set()
    for name, node in model_schemas().items():
        cs.store(group="schema/model", name=name, node=node)
        if name not in yaml_models:
            cs.store(group="model", name=name, node=node)
    for name, node in data_schemas().items():
        cs.store(group="schema/data", name=name, node=node)
    cs.store(group="schema/train", name="base", node=TrainConfig)
    from nitsjax.app import snf as snf_app

    snf_app.register()  # schema/target/<name> (nitsjax snf)


# ------------------------------------------------------------------------- locating
def config_dir() -> Path:
    """The ``configs/`` folder: ``$NITSJAX_CONFIG_DIR``, else the copy shipped inside the
    installed package (``nitsjax/configs``, from a wheel), else the checkout's ``configs/``
    next to the package (source tree, editable install)."""
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        p = Path(env).expanduser().resolve()
        if not (p / "train.yaml").is_file():
            raise ConfigError(
                f"{ENV_CONFIG_DIR}={env}: expected a folder holding train.yaml, eval.yaml, "
                f"sample.yaml, demo.yaml and model/, data/, train/; {p / 'train.yaml'} not found"
            )
        return p
    tried = []
    here = Path(__file__).resolve().parent
    for p in (here / "configs", here.parent / "configs"):
        tried.append(str(p))
        if (p / "train.yaml").is_file():
            return p
    raise ConfigError(
        "nitsjax: cannot find the configs/ folder (looked in " + ", ".join(tried) + "); "
        f"reinstall nitsjax (`pip install \"nitsjax[cli]\"`) or set {ENV_CONFIG_DIR} to a "
        "folder holding train.yaml and model/, data/, train/"
    )


def config_file(cfg_dir: Path, group: Optional[str], choice: str) -> Path:
    """The YAML file of a config group choice (``group=None`` for a primary config)."""
    return cfg_dir / (f"{group}/{choice}.yaml" if group else f"{choice}.yaml")


# ------------------------------------------------------------------------ validating
def missing_keys(cfg: DictConfig) -> list[str]:
    """Full keys still at ``???`` (outside the ``hydra`` node)."""
    keys = OmegaConf.missing_keys(cfg)
    return sorted(k for k in keys if not k.startswith("hydra"))


def validate(cfg: DictConfig, command: str, where=None) -> None:
    """Checks composition cannot make; raises ConfigError naming key and file.

    ``where(key) -> str`` names the file a key comes from (the CLI passes one built from
    the composed defaults list); without it the message names the primary config.
    """
    where = where or (lambda key: f"{command}.yaml")
    missing = missing_keys(cfg)
    if missing:
        k = missing[0]
        raise ConfigError(
            f"{k}: required value missing (it is ??? in {where(k)}); pass it on the command "
            f"line, e.g. `nitsjax {command} {k}=...`"
            + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else "")
        )
    checks = []
    if command in ("train", "demo"):
        for t in ("train", "image_train") if command == "demo" else ("train",):
            node = cfg[t]
            checks += [
                (f"{t}.steps", node.steps >= 1, ">= 1"),
                (f"{t}.batch_size", node.batch_size >= 1, ">= 1"),
                (f"{t}.learning_rate", node.learning_rate > 0, "> 0"),
                (f"{t}.eval_every", _at_least(node.get("eval_every"), 1), ">= 1 or null"),
                (f"{t}.patience", _at_least(node.get("patience"), 1), ">= 1 or null"),
                (
                    f"{t}.ema_decay",
                    node.get("ema_decay") is None or 0.0 < node.ema_decay < 1.0,
                    "in (0, 1) or null",
                ),
                (f"{t}.loss", node.get("loss", "nll") in registry.names("loss"),
                 f"one of {registry.names('loss')}"),
            ]
        checks += [
            ("eval_batch_size", cfg.eval_batch_size >= 1, ">= 1"),
            ("plots.n_samples", cfg.plots.n_samples >= 1, ">= 1"),
            ("plots.grid", cfg.plots.grid >= 2, ">= 2"),
            ("plots.max_dims", cfg.plots.max_dims >= 2, ">= 2"),
        ]
        datas = ("toy_data", "image_data") if command == "demo" else ("data",)
        if command == "train":  # ddn, mdn: p(y | x) only, from a conditional table
            ctor = registry.get_model(cfg.model.name) if cfg.model.name in \
                registry.model_names() else None
            takes_x = ctor is not None and next(iter(inspect.signature(ctor).parameters),
                                                None) == "x_dim"
            checks.append(("data.target", not takes_x or cfg.data.get("target") is not None,
                           f"the columns model={cfg.model.name} predicts (a conditional "
                           "density model p(y | x)), e.g. data.target=[0]"))
        for d in datas:
            node = cfg[d]
            for frac in ("val_fraction", "test_fraction"):
                if frac in node:
                    checks.append((f"{d}.{frac}", 0.0 < node[frac] < 1.0, "in (0, 1)"))
    elif command == "eval":
        checks += [
            ("split", cfg.split in ("train", "val", "test"), "one of train, val, test"),
            ("batch_size", cfg.batch_size >= 1, ">= 1"),
        ]
    elif command == "sample":
        checks += [("n", cfg.n >= 1, ">= 1")]
    elif command == "rd":
        from nitsjax.app.rd import checks as rd_checks

        checks += rd_checks(cfg)
    elif command == "snf":
        from nitsjax.app.snf import validate_snf

        validate_snf(cfg, where)
    for key, ok, expected in checks:
        if not ok:
            got = OmegaConf.select(cfg, key)
            raise ConfigError(f"{key}: expected {expected}, got {got!r} (from {where(key)})")


def _at_least(value, low) -> bool:
    return value is None or value >= low


def to_container(node) -> dict:
    """A plain resolved dict of a config node (for kwargs and JSON)."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    if dataclasses.is_dataclass(node):
        return dataclasses.asdict(node)
    return dict(node)


def compose(command: str = "train", overrides: Optional[list[str]] = None) -> DictConfig:
    """Compose a command's config as the CLI does (for notebooks)::

        cfg = compose("train", ["model=nsf", "data=moons", "train.steps=500"])
        run_dir = nitsjax.experiment.run_train(cfg, out_dir="runs/nsf_moons")

    Hydra checks keys and types while composing; the range checks of ``validate`` run in
    the command (``run_train`` ...), once."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if command not in PRIMARY:
        raise ConfigError(f"command: expected one of {', '.join(PRIMARY)}, got {command!r}")
    overrides = list(overrides or [])
    register()  # flows registered since import
    if GlobalHydra.instance().is_initialized():
        cfg = hydra_compose(config_name=command, overrides=overrides)
    else:
        with initialize_config_dir(str(config_dir()), version_base="1.3", job_name=command):
            cfg = hydra_compose(config_name=command, overrides=overrides)
    return cfg


register()
