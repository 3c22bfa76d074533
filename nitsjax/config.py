"""Structured configs of the command line, registered in Hydra's ConfigStore.

The YAML files in ``configs/`` (repository root) hold the values; the dataclasses here
are their schemas. Every YAML file names its schema in its defaults list
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
    model/{maf,iaf,realnvp,nsf,nsf_ar,nits}.yaml  flow architectures (ModelConfig)
    data/<name>.yaml                              data sets (DataConfig)
    train/{default,fast,demo,...}.yaml            optimisation presets (TrainConfig)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

ENV_CONFIG_DIR = "NITSJAX_CONFIG_DIR"
COMMANDS = ("train", "eval", "sample", "demo")


class ConfigError(ValueError):
    """A configuration problem found before any work: names the key and the file."""


# --------------------------------------------------------------------------- models
@dataclass
class ModelConfig:
    """A flow architecture: ``name`` picks the constructor in ``nitsjax.flows``; every other
    key is passed to it as a keyword argument (see ``experiment.build_flow``), except
    ``logit``: a number ``alpha`` in [0, 0.5) puts ``x -> logit(alpha + (1 - 2 alpha) x)``
    before the flow, for data in [0, 1) such as dequantised pixels (MAF and RealNVP use
    1e-6 and 0.05); its log-determinant is part of the model's log-likelihood."""

    name: str = MISSING
    logit: Optional[float] = None


@dataclass
class MAFConfig(ModelConfig):
    """Masked autoregressive flow (Papamakarios et al., 2017), ``nitsjax.flows.affine.maf``.
    ``actnorm``/``linear: lu`` add Glow-style layers before each MADE layer."""

    name: str = "maf"
    layers: int = 5
    hidden: List[int] = field(default_factory=lambda: [128, 128])
    residual: bool = False
    gated: bool = False
    degrees: str = "sequential"
    dropout: float = 0.0
    actnorm: bool = False
    linear: Optional[str] = None


@dataclass
class IAFConfig(MAFConfig):
    """Inverse autoregressive flow (Kingma et al., 2016), ``nitsjax.flows.affine.iaf``."""

    name: str = "iaf"
    gated: bool = True


@dataclass
class RealNVPConfig(ModelConfig):
    """RealNVP affine coupling (Dinh et al., 2017), ``nitsjax.flows.affine.realnvp``."""

    name: str = "realnvp"
    layers: int = 5
    hidden: List[int] = field(default_factory=lambda: [128, 128])
    actnorm: bool = False
    linear: Optional[str] = None


@dataclass
class NSFConfig(ModelConfig):
    """Neural spline flow (Durkan et al., 2019), ``nitsjax.flows.spline.nsf``: coupling
    (``autoregressive: false``) or autoregressive rational-quadratic splines on
    ``[-bound, bound]``, identity outside."""

    name: str = "nsf"
    layers: int = 5
    hidden: List[int] = field(default_factory=lambda: [128, 128])
    bins: int = 8
    bound: float = 3.0
    autoregressive: bool = False
    residual: bool = False
    degrees: str = "sequential"
    dropout: float = 0.0
    min_width: float = 1e-3
    min_height: float = 1e-3
    min_derivative: float = 1e-3


@dataclass
class NITSConfig(ModelConfig):
    """NITS (Li & Kluger, 2022), ``nitsjax.flows.nits.nits``: ``arch`` is the PNN's hidden
    widths, ``hidden``/``blocks`` the autoregressive conditioner; ``bounds: [low, high]``
    gives the bounded form of the paper, null the unbounded (logistic squash) one."""

    name: str = "nits"
    arch: List[int] = field(default_factory=lambda: [16, 16])
    hidden: int = 1024
    blocks: int = 4
    dropout: float = 0.0
    bounds: Optional[List[float]] = None
    squash_loc: float = 0.0
    squash_scale: float = 1.0
    learn_squash: bool = False
    rotate: bool = False
    monotonic_const: float = 0.01
    solver: str = "newton"
    tol: Optional[float] = None
    degrees: str = "sequential"
    out_of_support: str = "error"


# ----------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    """A data set: ``nitsjax.data.load(name, **options)``, where the options are this
    node's other keys (each schema below lists the options its loader takes) plus
    ``kwargs`` (extra loader options). ``image_shape`` (e.g. ``[8, 8]``) makes the sample
    figures image grids (default: what the loader reports)."""

    name: str = MISSING
    image_shape: Optional[List[int]] = None
    kwargs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ToyDataConfig(DataConfig):
    """A 2-D toy density (``nitsjax.data.toys``), sampled from ``seed``."""

    n_train: int = 20000
    n_val: int = 5000
    n_test: int = 5000
    seed: int = 0


@dataclass
class DigitsDataConfig(DataConfig):
    """scikit-learn's 8x8 digits, bundled: no download."""

    name: str = "digits"
    image_shape: Optional[List[int]] = field(default_factory=lambda: [8, 8])
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    standardize: bool = False


@dataclass
class UCIDataConfig(DataConfig):
    """A UCI table (magic, htru2, wine_red, wine_white) read from ``root``.
    ``dequantize``: true, false, "integer" or "decimal"."""

    root: Optional[str] = None
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    standardize: bool = True
    dequantize: Any = True


@dataclass
class MAFDataConfig(DataConfig):
    """A MAF benchmark (power, gas, hepmass, miniboone, bsds300) with MAF's exact
    preprocessing, read from ``root`` (the MAF archive's folder)."""

    root: Optional[str] = None


@dataclass
class ImageDataConfig(DataConfig):
    """MNIST / CIFAR-10 from their standard files, dequantised to [0, 1)."""

    root: Optional[str] = None
    seed: int = 0
    dequantize: bool = True
    val_fraction: float = 0.1
    verify: bool = True


@dataclass
class PatchDataConfig(DataConfig):
    """BSDS300 8x8 patches rebuilt from the JPEG images (63 dimensions)."""

    name: str = "bsds300_images"
    root: Optional[str] = None
    preset: str = "small"
    n_train: Optional[int] = None
    n_val: Optional[int] = None
    n_test: Optional[int] = None
    seed: int = 0


@dataclass
class FileDataConfig(DataConfig):
    """A user's own ``.npy`` / ``.npz`` / ``.csv`` table (``nitsjax.data.load_file``):
    shuffled, split, dequantised where integer-valued and standardised with training
    statistics (samples are written back in the file's units)."""

    name: str = "file"
    path: str = MISSING
    label_column: Any = None
    drop_columns: List[Any] = field(default_factory=list)
    key: Optional[str] = None
    delimiter: Optional[str] = None
    header: Any = "auto"
    seed: int = 0
    shuffle: bool = True
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    standardize: bool = True
    dequantize: Any = True


# ---------------------------------------------------------------------------- train
@dataclass
class TrainConfig:
    """Keyword arguments of ``nitsjax.train.fit`` (see its docstring)."""

    steps: int = 5000
    batch_size: int = 256
    learning_rate: float = 1e-3
    patience: Optional[int] = None
    eval_every: int = 250
    schedule: str = "constant"
    warmup_steps: int = 0
    final_lr_fraction: float = 0.0
    clip_norm: Optional[float] = None
    weight_decay: float = 0.0
    ema_decay: Optional[float] = None
    min_delta: float = 0.0
    restore_best: bool = True
    progress: bool = True
    data_parallel: bool = False  # train over all jax.devices() (nitsjax.train.sharding)


@dataclass
class PlotConfig:
    """Figures written after training / sampling."""

    enabled: bool = True
    n_samples: int = 2000
    grid: int = 200
    max_dims: int = 4


# ------------------------------------------------------------------ primary configs
@dataclass
class RunConfig:
    """``nitsjax train``: one model on one data set."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = MISSING
    plots: PlotConfig = field(default_factory=PlotConfig)
    seed: int = 0
    eval_batch_size: int = 4096


@dataclass
class EvalConfig:
    """``nitsjax eval run=<dir>``: log-likelihood of a trained run on a split."""

    run: str = MISSING
    split: str = "test"
    batch_size: int = 4096
    data_root: Optional[str] = None


@dataclass
class SampleConfig:
    """``nitsjax sample run=<dir> n=1000``: samples (data units) to .npy plus a figure."""

    run: str = MISSING
    n: int = 1000
    seed: int = 0
    out: Optional[str] = None
    plot: bool = True
    data_root: Optional[str] = None


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


PRIMARY = {"train": RunConfig, "eval": EvalConfig, "sample": SampleConfig, "demo": DemoConfig}
MODELS = {
    "maf": MAFConfig,
    "iaf": IAFConfig,
    "realnvp": RealNVPConfig,
    "nsf": NSFConfig,
    "nits": NITSConfig,
}
DATA = {
    "base": DataConfig,
    "toy": ToyDataConfig,
    "digits": DigitsDataConfig,
    "uci": UCIDataConfig,
    "maf": MAFDataConfig,
    "image": ImageDataConfig,
    "patches": PatchDataConfig,
    "file": FileDataConfig,
}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent):
    ``schema/<command>``, ``schema/model/<name>``, ``schema/data/<kind>``, ``schema/train/base``.
    """
    cs = ConfigStore.instance()
    for name, node in PRIMARY.items():
        cs.store(group="schema", name=name, node=node)
    for name, node in MODELS.items():
        cs.store(group="schema/model", name=name, node=node)
    for name, node in DATA.items():
        cs.store(group="schema/data", name=name, node=node)
    cs.store(group="schema/train", name="base", node=TrainConfig)


register()


# ------------------------------------------------------------------------- locating
def config_dir() -> Path:
    """The ``configs/`` folder: ``$NITSJAX_CONFIG_DIR``, else the checkout's ``configs/``
    next to the package (editable install), else ``./configs``."""
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
    for p in (Path(__file__).resolve().parent.parent / "configs", Path.cwd() / "configs"):
        tried.append(str(p))
        if (p / "train.yaml").is_file():
            return p
    raise ConfigError(
        "nitsjax: cannot find the configs/ folder (looked in " + ", ".join(tried) + "); "
        f"install nitsjax from a checkout with `pip install -e .` or set {ENV_CONFIG_DIR} "
        "to the checkout's configs/ folder"
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
            checks += [
                (f"{t}.steps", cfg[t].steps >= 1, ">= 1"),
                (f"{t}.batch_size", cfg[t].batch_size >= 1, ">= 1"),
                (f"{t}.learning_rate", cfg[t].learning_rate > 0, "> 0"),
                (f"{t}.eval_every", cfg[t].eval_every >= 1, ">= 1"),
                (
                    f"{t}.patience",
                    cfg[t].patience is None or cfg[t].patience >= 1,
                    ">= 1 or null",
                ),
                (
                    f"{t}.ema_decay",
                    cfg[t].ema_decay is None or 0.0 < cfg[t].ema_decay < 1.0,
                    "in (0, 1) or null",
                ),
            ]
        checks += [
            ("eval_batch_size", cfg.eval_batch_size >= 1, ">= 1"),
            ("plots.n_samples", cfg.plots.n_samples >= 1, ">= 1"),
            ("plots.grid", cfg.plots.grid >= 2, ">= 2"),
            ("plots.max_dims", cfg.plots.max_dims >= 2, ">= 2"),
        ]
        datas = ("toy_data", "image_data") if command == "demo" else ("data",)
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
    for key, ok, expected in checks:
        if not ok:
            got = OmegaConf.select(cfg, key)
            raise ConfigError(f"{key}: expected {expected}, got {got!r} (from {where(key)})")


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
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if command not in PRIMARY:
        raise ConfigError(f"command: expected one of {', '.join(PRIMARY)}, got {command!r}")
    overrides = list(overrides or [])
    if GlobalHydra.instance().is_initialized():
        cfg = hydra_compose(config_name=command, overrides=overrides)
    else:
        with initialize_config_dir(str(config_dir()), version_base="1.3", job_name=command):
            cfg = hydra_compose(config_name=command, overrides=overrides)
    validate(cfg, command)
    return cfg
