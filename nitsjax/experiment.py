"""What the command line and notebooks share: build a flow from a config, train it into an
output folder, evaluate and sample a trained run.

::

    from nitsjax.config import compose
    from nitsjax import experiment as ex

    cfg = compose("train", ["model=nsf", "data=moons", "train.steps=2000"])
    run_dir = ex.run_train(cfg, out_dir="runs/nsf_moons")
    ex.run_eval(run_dir)                       # {"log_likelihood": ..., "stderr": ...}
    run = ex.load_run(run_dir)                 # flow, params, config, data units
    x = run.sample(jax.random.key(0), 1000)    # samples in the data's own units

A run folder holds ``config.yaml`` (resolved config), ``params.npz`` (final params, one
array per leaf, named by its path in the pytree; no pickle), ``standardization.npz``
(``shift``/``scale`` when the loader standardised the data: ``original = x * scale +
shift``), ``checkpoints/`` and ``history.jsonl`` (``nitsjax.train.fit``; rerunning in the
same folder resumes), ``metrics.json`` and the figures.

Log-likelihoods are reported per example in nats, as mean +- 2 standard errors over the
test points (the MAF paper's convention, Papamakarios et al. 2017), in the units the data
loader returns (the benchmarks' units), and, when the loader standardised the data, also in
the data's original units: ``log p_orig(x) = log p(z) - sum(log scale)``.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import importlib
import inspect
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from nitsjax import results
from nitsjax.config import ConfigError, to_container, validate

log = logging.getLogger("nitsjax")

PathLike = Union[str, Path]

#: model config ``name`` -> (module, constructor). ``register_flow`` adds more.
FLOWS: dict[str, tuple[str, str]] = {
    "maf": ("nitsjax.flows.affine", "maf"),
    "iaf": ("nitsjax.flows.affine", "iaf"),
    "realnvp": ("nitsjax.flows.affine", "realnvp"),
    "nsf": ("nitsjax.flows.spline", "nsf"),
    "nsf_ar": ("nitsjax.flows.spline", "nsf"),
    "nits": ("nitsjax.flows.nits", "nits"),
}
_REGISTERED: dict[str, Callable] = {}

PARAMS_FILE = "params.npz"
STANDARDIZATION_FILE = "standardization.npz"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.jsonl"


# ------------------------------------------------------------------------------ flows
def register_flow(name: str, constructor: Callable) -> None:
    """Make ``model.name=<name>`` build ``constructor(dim, **other model keys)``."""
    if not callable(constructor):
        raise TypeError(f"constructor: expected a callable, got {type(constructor).__name__}")
    _REGISTERED[name] = constructor


def flow_constructor(name: str) -> Callable:
    """The constructor for a model config ``name`` (see ``FLOWS``)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in FLOWS:
        raise ConfigError(
            f"model.name: unknown flow {name!r}; expected one of "
            f"{sorted(set(FLOWS) | set(_REGISTERED))}"
        )
    module, fn = FLOWS[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"model.name: flow {name!r} needs {module}, which is not available ({err})"
        ) from err
    return getattr(mod, fn)


def model_options(model_cfg) -> tuple[Callable, dict]:
    """``(constructor, keyword arguments)`` of a model config, checked against the
    constructor's signature: a key it does not take is a ConfigError naming
    ``model.<key>`` and listing the arguments it does take."""
    kw = to_container(model_cfg)
    if "name" not in kw:
        raise ConfigError(f"model.name: missing; the model config has keys {sorted(kw)}")
    _logit_alpha(kw.pop("logit", None))  # a preprocessing layer, not a constructor argument
    name = kw.pop("name")
    ctor = flow_constructor(name)
    sig = inspect.signature(ctor)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    accepted = [p for p in sig.parameters if p != "dim"]
    unknown = [k for k in kw if k not in sig.parameters or k == "dim"]
    if unknown and not takes_any:
        raise ConfigError(
            f"model.{unknown[0]}: the {name} flow ({ctor.__module__}.{ctor.__name__}) has no "
            f"argument {unknown[0]!r}; its arguments are {', '.join(accepted)}"
        )
    return ctor, kw


_FLOW_CACHE: dict = {}
_FLOW_CACHE_SIZE = 32


def _frozen(v):
    return tuple(_frozen(a) for a in v) if isinstance(v, (list, tuple)) else v


def build_flow(model_cfg, dim: int, context_dim: Optional[int] = None):
    """A ``Flow`` on R^dim from a model config: ``name`` picks the constructor, every
    other key is a keyword argument (lists become tuples). Unknown keys raise a
    ``ConfigError`` naming the key and the constructor's arguments.

    Flows are immutable, so the same config and ``dim`` return the same ``Flow`` object;
    ``fit`` and ``Flow`` cache their compiled functions on it, so the jobs of a sweep
    over training settings (``-m train.learning_rate=...``) compile once."""
    ctor, kw = model_options(model_cfg)
    alpha = _logit_alpha(to_container(model_cfg).get("logit"))
    kw = {k: _frozen(v) for k, v in kw.items()}
    if context_dim is not None:
        kw["context_dim"] = context_dim
    try:
        cache_key = (ctor, int(dim), tuple(sorted(kw.items())), alpha)
        hash(cache_key)
    except TypeError:  # an unhashable option: build afresh
        return _with_logit(ctor(dim, **kw), alpha)
    if cache_key not in _FLOW_CACHE:
        if len(_FLOW_CACHE) >= _FLOW_CACHE_SIZE:
            _FLOW_CACHE.pop(next(iter(_FLOW_CACHE)))
        _FLOW_CACHE[cache_key] = _with_logit(ctor(dim, **kw), alpha)
    return _FLOW_CACHE[cache_key]


def _logit_alpha(alpha) -> Optional[float]:
    """``model.logit``: None or a number in [0, 0.5)."""
    if alpha is None:
        return None
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < 0.5:
        raise ConfigError(f"model.logit: expected null or a number in [0, 0.5), got {alpha!r}")
    return float(alpha)


def _with_logit(flow, alpha: Optional[float]):
    """``flow`` behind ``x -> logit(alpha + (1 - 2 alpha) x)`` (data in [0, 1)); the
    log-likelihood includes the logit's log-determinant, samples come back in [0, 1)."""
    if alpha is None:
        return flow
    from nitsjax.bijectors.base import chain
    from nitsjax.bijectors.elementwise import logit
    from nitsjax.flow import Flow

    return Flow(flow.base, chain([logit(0.0, 1.0, alpha=alpha), flow.bijector]), flow.dim,
                flow.context_dim, name=f"logit_{flow.name}")


# ------------------------------------------------------------------------------- data
@dataclasses.dataclass
class Dataset:
    """Train / validation / test splits in model units, plus the map back to the data's
    original units (``original = x * scale + shift``; both None when nothing was done)."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    shift: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None
    image_shape: Optional[tuple] = None

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split: expected train, val or test, got {name!r}")
        return getattr(self, name)

    def to_original(self, x):
        return _to_original(x, self.shift, self.scale)


def _to_original(x, shift, scale):
    x = np.asarray(x)
    if scale is not None:
        x = x * scale
    if shift is not None:
        x = x + shift
    return x


def _log_scale(scale) -> float:
    return 0.0 if scale is None else float(np.sum(np.log(np.asarray(scale, np.float64))))


def data_options(data_cfg, root: Optional[str] = None) -> tuple[str, dict]:
    """``(name, loader options)`` of a data config, checked against the loader's
    signature: an option it does not take is a ConfigError naming ``data.<key>``."""
    from nitsjax.data.registry import REGISTRY

    kw = to_container(data_cfg)
    name = kw.pop("name")
    kw.pop("image_shape", None)
    kw.update(kw.pop("kwargs", None) or {})
    if name not in REGISTRY:
        raise ConfigError(f"data.name: unknown data set {name!r}; expected one of {list(REGISTRY)}")
    params = _loader_params(name)
    if root is not None:
        if "root" not in params:
            raise ConfigError(f"data_root: the {name!r} data set reads no files")
        kw["root"] = root
    if kw.get("root", 0) is None:
        kw.pop("root")
    for k in kw:
        if k not in params:
            raise ConfigError(
                f"data.{k}: the {name!r} data set does not take {k!r}; it takes "
                f"{', '.join(params) or 'no options'}"
            )
    return name, kw


def _loader_params(name: str) -> list[str]:
    from nitsjax.data import tabular
    from nitsjax.data.registry import REGISTRY

    fn = tabular.load_file if name == "file" else REGISTRY[name].loader
    return [p for p in inspect.signature(fn).parameters if p != "return_info"]


def load_data(data_cfg, root: Optional[str] = None) -> Dataset:
    """Load the data set a data config names (``root`` overrides ``data.root``).

    When the loader standardised the data its ``mean``/``std`` become ``shift``/``scale``,
    so samples and densities can be mapped back to the data's original units."""
    from nitsjax import data as D
    from nitsjax.data import tabular

    name, kw = data_options(data_cfg, root)
    if name == "file":  # load_file's own signature names every option
        (train, val, test), info = tabular.load_file(return_info=True, **kw)
    else:
        (train, val, test), info = D.load(name, return_info=True, **kw)
    shift = scale = None
    if info.get("std") is not None:
        scale = np.asarray(info["std"], np.float64)
        shift = np.asarray(info["mean"], np.float64)
    image_shape = data_cfg.get("image_shape") or info.get("image_shape")
    splits = [np.ascontiguousarray(a, dtype=np.float32) for a in (train, val, test)]
    if image_shape is not None and math.prod(image_shape) != splits[0].shape[1]:
        raise ConfigError(
            f"data.image_shape: {list(image_shape)} has {math.prod(image_shape)} values but the "
            f"{name} rows have {splits[0].shape[1]}"
        )
    return Dataset(
        name, *splits, shift=shift, scale=scale,
        image_shape=None if image_shape is None else tuple(image_shape),
    )


# ---------------------------------------------------------------------- params on disk
def save_params(path: PathLike, params) -> Path:
    """Write a params pytree as ``.npz``: one array per leaf, named by its pytree path."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    arrays = {jax.tree_util.keystr(p): np.asarray(v) for p, v in flat}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_params(path: PathLike, template):
    """Read ``save_params``' file into the structure of ``template`` (a params pytree or
    its ``jax.eval_shape``); every leaf must be present with the template's shape."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    with np.load(Path(path), allow_pickle=False) as z:
        stored = set(z.files)
        leaves = []
        for p, t in flat:
            k = jax.tree_util.keystr(p)
            if k not in stored:
                raise ValueError(
                    f"{path}: has no array for parameter {k}; was it written for another model "
                    f"config? (it holds {len(stored)} arrays, the model needs {len(flat)})"
                )
            a = z[k]
            if tuple(a.shape) != tuple(t.shape):
                raise ValueError(
                    f"{path}: parameter {k} has shape {a.shape}, the model needs {tuple(t.shape)}"
                )
            leaves.append(jax.numpy.asarray(a, dtype=t.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)


# ------------------------------------------------------------------------- evaluation
def log_likelihoods(flow, params, x, batch_size: int = 4096) -> np.ndarray:
    """Per-row log-likelihoods of ``x`` (n, d), in batches of exactly ``batch_size`` rows
    (the last one padded), so every split and the density grid share one compilation."""
    x = np.asarray(x, np.float32)
    n = len(x)
    bs = max(1, int(batch_size))
    out = []
    for i in range(0, n, bs):
        chunk = x[i : i + bs]
        m = len(chunk)
        if m < bs:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], bs - m, axis=0)])
        out.append(np.asarray(_log_prob_fn(flow)(params, chunk))[:m])
    return np.concatenate(out).astype(np.float64)


@functools.lru_cache(maxsize=32)
def _log_prob_fn(flow):
    """``flow.log_prob_batch`` jitted once per flow; unlike ``flow.log_prob`` it gives
    ``-inf`` (not an error) outside a bounded flow's support, as a density grid needs."""
    return jax.jit(flow.log_prob_batch)


def summarize(lp) -> dict:
    """``{"mean", "stderr", "n"}`` of per-example log-likelihoods (``results.summarize``)."""
    s = results.summarize(lp)
    return {"mean": s.mean, "stderr": s.stderr, "n": s.n}


def format_ll(s: dict) -> str:
    return f"{s['mean']:.4f} +- {2 * s['stderr']:.4f} (mean +- 2 SE, n={s['n']})"


def sample_in_batches(flow, params, key, n: int, batch: int = 10000) -> np.ndarray:
    """``n`` samples drawn in equal batches (one compilation), as a numpy array."""
    batch = max(1, min(int(batch), int(n)))
    keys = jax.random.split(key, -(-int(n) // batch))
    parts = [np.asarray(flow.sample(params, k, batch)) for k in keys]
    return np.concatenate(parts)[:n]


# ------------------------------------------------------------------------ a trained run
@dataclasses.dataclass
class TrainedRun:
    """A trained run loaded from its folder: its config, flow, params and units."""

    path: Path
    cfg: DictConfig
    flow: Any
    params: Any
    shift: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None

    def log_prob(self, x, original_units: bool = True, batch_size: int = 4096) -> np.ndarray:
        """Log-density of rows of ``x``; in the data's original units by default."""
        x = np.asarray(x, np.float64)
        if not original_units:
            return log_likelihoods(self.flow, self.params, x, batch_size)
        z = x
        if self.shift is not None:
            z = z - self.shift
        if self.scale is not None:
            z = z / self.scale
        return log_likelihoods(self.flow, self.params, z, batch_size) - _log_scale(self.scale)

    def sample(self, key, n: int, original_units: bool = True) -> np.ndarray:
        """``n`` samples, in the data's original units by default."""
        x = sample_in_batches(self.flow, self.params, key, n)
        return _to_original(x, self.shift, self.scale) if original_units else x

    def load_data(self, root: Optional[str] = None) -> Dataset:
        return load_data(self.cfg.data, root=root)


def load_run(run_dir: PathLike) -> TrainedRun:
    """Load a run folder written by ``run_train`` (``config.yaml`` + ``params.npz``)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run: no such folder {run_dir}")
    if not cfg_path.is_file():
        raise FileNotFoundError(
            f"run: {run_dir} has no {CONFIG_FILE}; pass the output folder of `nitsjax train`"
        )
    params_path = run_dir / PARAMS_FILE
    if not params_path.is_file():
        raise FileNotFoundError(
            f"run: {run_dir} has no {PARAMS_FILE} (training did not finish?); rerun "
            f"`nitsjax train hydra.run.dir={run_dir}` to resume it"
        )
    cfg = OmegaConf.load(cfg_path)
    meta_path = run_dir / METRICS_FILE
    dim = json.loads(meta_path.read_text()).get("dim") if meta_path.is_file() else None
    shift = scale = None
    std_path = run_dir / STANDARDIZATION_FILE
    if std_path.is_file():
        with np.load(std_path, allow_pickle=False) as z:
            shift = z["shift"] if "shift" in z.files and z["shift"].size else None
            scale = z["scale"] if "scale" in z.files and z["scale"].size else None
    if dim is None:
        raise ValueError(f"run: {run_dir / METRICS_FILE} is missing or has no 'dim'")
    flow = build_flow(cfg.model, int(dim))
    template = jax.eval_shape(flow.init, jax.random.key(0))
    params = load_params(params_path, template)
    return TrainedRun(run_dir, cfg, flow, params, shift, scale)


# --------------------------------------------------------------------------- commands
def hydra_output_dir() -> Optional[Path]:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return None


def _default_out_dir(kind: str, suffix: str = "") -> Path:
    now = datetime.datetime.now()
    return Path("outputs") / kind / now.strftime("%Y-%m-%d") / (now.strftime("%H-%M-%S") + suffix)


def _as_cfg(cfg) -> DictConfig:
    if isinstance(cfg, DictConfig):
        return cfg
    if isinstance(cfg, dict) or dataclasses.is_dataclass(cfg):
        return OmegaConf.create(cfg)
    raise TypeError(f"cfg: expected a DictConfig or dict, got {type(cfg).__name__}")


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _finite_or_none(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _check_output_folder(out: Path, arg: str) -> None:
    """Create ``out`` and check it is writable with enough free disk space
    (``nitsjax.train.checkpoint.check_writable``); a ConfigError naming ``arg`` if not."""
    from nitsjax.train.checkpoint import check_writable

    try:
        check_writable(out, arg)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def run_train(cfg, out_dir: Optional[PathLike] = None) -> Path:
    """Train the model a ``train`` config describes, then evaluate and plot.

    ``out_dir``: the output folder; default: Hydra's run folder under the CLI, else
    ``outputs/train/<date>/<time>_<model>_<data>``. Rerunning into a folder that holds a
    checkpoint resumes training there. Returns the folder.
    """
    from nitsjax.train import fit

    cfg = _as_cfg(cfg)
    validate(cfg, "train")
    out = Path(out_dir) if out_dir is not None else hydra_output_dir()
    arg = "out_dir" if out_dir is not None else "hydra.run.dir"
    if out is None:
        out = _default_out_dir("train", f"_{cfg.model.name}_{cfg.data.name}")
    _check_output_folder(out, arg)  # unwritable or full disk: now, not after training
    log.info(f"output folder: {out}")
    OmegaConf.save(cfg, out / CONFIG_FILE, resolve=True)

    data = load_data(cfg.data)
    t = cfg.train
    if t.batch_size > len(data.train):
        raise ConfigError(
            f"train.batch_size: {t.batch_size} is larger than the training split of "
            f"{cfg.data.name} ({len(data.train)} rows); pass train.batch_size=<{len(data.train)}"
        )
    log.info(
        f"data {cfg.data.name}: dim {data.dim}, train {len(data.train)}, val {len(data.val)}, "
        f"test {len(data.test)}; model {cfg.model.name}"
    )
    flow = build_flow(cfg.model, data.dim)
    metrics = {"model": cfg.model.name, "data": cfg.data.name, "dim": data.dim}
    _write_json(out / METRICS_FILE, metrics)  # completed after training
    k_init, k_fit, k_plot = jax.random.split(jax.random.key(cfg.seed), 3)
    params = flow.init(k_init, x=data.train[: min(len(data.train), 4096)])
    fit_kw = {k: v for k, v in to_container(t).items()}
    start = time.perf_counter()
    params, history = fit(
        flow, params, data.train, data.val, key=k_fit, checkpoint_dir=str(out),
        eval_batch_size=cfg.eval_batch_size, **fit_kw,
    )
    seconds = time.perf_counter() - start
    save_params(out / PARAMS_FILE, params)
    if data.shift is not None or data.scale is not None:
        np.savez(
            out / STANDARDIZATION_FILE,
            shift=np.zeros(0) if data.shift is None else data.shift,
            scale=np.zeros(0) if data.scale is None else data.scale,
        )
    records = list(getattr(history, "records", history))
    if hasattr(history, "write_jsonl"):
        history.write_jsonl(str(out / HISTORY_FILE))
    else:
        (out / HISTORY_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))

    metrics.update({
        "n_train": len(data.train),
        "steps": int(records[-1]["step"]) if records else 0,
        "best_step": getattr(history, "best_step", None),
        "stopped": getattr(history, "stopped", None),
        "train_seconds": round(seconds, 2),
    })
    for split in ("val", "test"):
        lp = log_likelihoods(flow, params, data.split(split), cfg.eval_batch_size)
        s = summarize(lp)
        metrics[f"{split}_log_likelihood"] = s["mean"]
        metrics[f"{split}_log_likelihood_stderr"] = _finite_or_none(s["stderr"])
        metrics[f"n_{split}"] = s["n"]
        if data.scale is not None:
            metrics[f"{split}_log_likelihood_original_units"] = s["mean"] - _log_scale(data.scale)
    _write_json(out / METRICS_FILE, metrics)
    s = {"mean": metrics["test_log_likelihood"], "stderr": metrics["test_log_likelihood_stderr"]
         or float("nan"), "n": metrics["n_test"]}
    log.info(f"test log-likelihood: {format_ll(s)} nats per example")
    if "test_log_likelihood_original_units" in metrics:
        log.info(
            f"test log-likelihood in the data's original units: "
            f"{metrics['test_log_likelihood_original_units']:.4f}"
        )
    if cfg.plots.enabled:
        run = TrainedRun(out, cfg, flow, params, data.shift, data.scale)
        for f in write_figures(run, data, k_plot, cfg.plots, records, cfg.eval_batch_size):
            log.info(f"figure: {f}")
    log.info(f"output folder: {out}")
    return out


def write_figures(run: TrainedRun, data: Dataset, key, plots_cfg, records=None,
                  batch_size: int = 4096) -> list[Path]:
    """Training curve, samples vs data (image grid for image data), density (d == 2)."""
    from nitsjax import plots

    out, written = run.path, []
    if records:
        written.append(out / "training_curve.png")
        plots.plot_history(records, written[-1], title=f"{run.cfg.model.name} on {data.name}")
    test = data.to_original(data.test)
    samples = run.sample(key, plots_cfg.n_samples)
    written.append(out / "samples.png")
    if data.image_shape is not None:
        plots.plot_image_samples(samples, data.image_shape, test, written[-1])
    else:
        plots.plot_samples(samples, test, written[-1], max_dims=plots_cfg.max_dims)
    if data.dim == 2:
        written.append(out / "density.png")
        plots.plot_density_2d(
            lambda pts: run.log_prob(pts, batch_size=batch_size), test, written[-1],
            grid=plots_cfg.grid,
        )
    return written


def run_eval(run: PathLike, split: str = "test", batch_size: int = 4096,
             data_root: Optional[str] = None, out_dir: Optional[PathLike] = None) -> dict:
    """Log-likelihood of a trained run on a split (mean, 2 SE, n); written to
    ``<out_dir>/metrics.json`` when ``out_dir`` is given (the CLI passes Hydra's folder)."""
    r = load_run(run)
    data = r.load_data(root=data_root)
    lp = log_likelihoods(r.flow, r.params, data.split(split), batch_size)
    s = summarize(lp)
    metrics = {
        "run": str(run),
        "split": split,
        "log_likelihood": s["mean"],
        "log_likelihood_stderr": _finite_or_none(s["stderr"]),
        "n": s["n"],
    }
    if r.scale is not None:
        metrics["log_likelihood_original_units"] = s["mean"] - _log_scale(r.scale)
    log.info(f"{split} log-likelihood of {run}: {format_ll(s)} nats per example")
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        _write_json(Path(out_dir) / METRICS_FILE, metrics)
        log.info(f"metrics: {Path(out_dir) / METRICS_FILE}")
    return metrics


def output_path(path: PathLike, base: PathLike, arg: str) -> Path:
    """Where a path from a config is written: a relative path without ``..`` goes inside
    the output folder ``base``, so a config cannot write elsewhere by accident; an
    absolute path, or one with ``..``, is taken as the user wrote it and logged."""
    p = Path(path).expanduser()
    if not p.is_absolute() and ".." not in p.parts:
        return Path(base) / p
    log.warning(f"{arg}: {path} is outside the output folder {base}; writing to "
                f"{p.resolve()} as given")
    return p


def run_sample(run: PathLike, n: int = 1000, seed: int = 0, out: Optional[PathLike] = None,
               plot: bool = True, data_root: Optional[str] = None,
               out_dir: Optional[PathLike] = None) -> Path:
    """Draw ``n`` samples (the data's original units) into ``out`` (default
    ``<out_dir>/samples.npy``) and a figure next to it; returns the .npy path.

    A relative ``out`` is inside the output folder (``out_dir``, else ``<run>/samples``);
    an absolute one, or one with ``..``, is used as written and logged (``output_path``)."""
    r = load_run(run)
    base = Path(out_dir) if out_dir is not None else Path(run) / "samples"
    npy = base / "samples.npy" if out is None else output_path(out, base, "out")
    npy.parent.mkdir(parents=True, exist_ok=True)
    x = r.sample(jax.random.key(seed), int(n)).astype(np.float32)
    np.save(npy, x, allow_pickle=False)
    log.info(f"samples: {npy} (shape {x.shape})")
    if plot:
        from nitsjax import plots

        data_units = None
        try:
            data = r.load_data(root=data_root)
            data_units = data.to_original(data.test)
            image_shape = data.image_shape
        except (OSError, ValueError) as err:  # the figure then shows the samples alone
            log.warning(f"data of {run} not available for the figure ({err})")
            image_shape = r.cfg.data.get("image_shape")
        fig = npy.with_suffix(".png")
        if image_shape is not None:
            plots.plot_image_samples(x, image_shape, data_units, fig)
        else:
            plots.plot_samples(x, data_units, fig)
        log.info(f"figure: {fig}")
    return npy


def run_demo(cfg, out_dir: Optional[PathLike] = None) -> Path:
    """The ``demo`` config: train ``model`` on ``toy_data`` (density figure) and on
    ``image_data`` (sample grid next to real images) into ``<out>/toy`` and
    ``<out>/images``; print and write both test log-likelihoods."""
    cfg = _as_cfg(cfg)
    validate(cfg, "demo")
    out = Path(out_dir) if out_dir is not None else hydra_output_dir()
    if out is None:
        out = _default_out_dir("demo")
    _check_output_folder(out, "out_dir" if out_dir is not None else "hydra.run.dir")
    log.info(f"output folder: {out}")
    summary = {}
    for tag, data_key, train_key in (("toy", "toy_data", "train"),
                                     ("images", "image_data", "image_train")):
        sub = OmegaConf.create({
            "model": cfg.model, "data": cfg[data_key], "train": cfg[train_key],
            "plots": cfg.plots, "seed": cfg.seed, "eval_batch_size": cfg.eval_batch_size,
        })
        log.info(f"--- {tag}: {cfg.model.name} on {cfg[data_key].name}")
        run_dir = run_train(sub, out / tag)
        m = json.loads((run_dir / METRICS_FILE).read_text())
        summary[tag] = {"data": m["data"], "dir": str(run_dir), **{
            k: m[k] for k in ("test_log_likelihood", "test_log_likelihood_stderr", "n_test",
                              "train_seconds")}}
    _write_json(out / METRICS_FILE, summary)
    log.info("")
    log.info(f"demo finished; output folder: {out}")
    for m in summary.values():
        s = {"mean": m["test_log_likelihood"], "stderr": m["test_log_likelihood_stderr"]
             or float("nan"), "n": m["n_test"]}
        figs = ", ".join(p.name for p in sorted(Path(m["dir"]).glob("*.png")))
        log.info(f"  {m['data']}: test log-likelihood {format_ll(s)}; figures in "
                 f"{m['dir']}: {figs}")
    return out
