"""The four commands, as functions: ``run_train``, ``run_eval``, ``run_sample`` and
``run_demo`` (the CLI's tasks, and what a notebook calls).

A run folder holds ``config.yaml`` (resolved config), ``params.npz`` (final params),
``standardization.npz`` (``shift``/``scale`` when the loader standardised the data:
``original = x * scale + shift``), ``checkpoints/`` and ``history.jsonl``
(``nitsjax.train.fit``; rerunning in the same folder resumes), ``metrics.json`` and the
figures. Log-likelihoods are per example in nats, mean +- 2 standard errors over the test
points (Papamakarios et al. 2017), in the loader's units and, when the loader
standardised the data, also in the original units: ``log p_orig(x) = log p(z) -
sum(log scale)``.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import logging
import math
import time
from pathlib import Path
from typing import Optional, Union

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from nitsjax.app.datasets import Dataset, fit_dequantize, load_data, log_scale
from nitsjax.app.evaluation import (
    dequantized_log_likelihoods,
    discrete_log_likelihoods,
    energy_distances,
    format_ll,
    has_density,
    summarize,
    zero_density_note,
)
from nitsjax.app.figures import write_figures, write_sample_figure
from nitsjax.app.models import build_flow, fit_transport, is_transport, takes_image_shape
from nitsjax.app.params_io import save_params
from nitsjax.app.trained import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    PARAMS_FILE,
    STANDARDIZATION_FILE,
    TrainedRun,
    load_run,
)
from nitsjax.config import ConfigError, to_container, validate

log = logging.getLogger("nitsjax")

PathLike = Union[str, Path]


# ------------------------------------------------------------------------- helpers
def hydra_output_dir() -> Optional[Path]:
    """The running Hydra job's output folder, or None outside a Hydra job (a config left
    by ``--cfg``/``--help`` in the same process has no output folder)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    out = OmegaConf.select(HydraConfig.get(), "runtime.output_dir", throw_on_missing=False)
    return Path(out) if out else None


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


# --------------------------------------------------------------------------- train
def run_train(cfg, out_dir: Optional[PathLike] = None) -> Path:
    """Train the model a ``train`` config describes, then evaluate and plot.

    ``out_dir``: the output folder; default: Hydra's run folder under the CLI, else
    ``outputs/train/<date>/<time>_<model>_<data>``. Rerunning into a folder that holds a
    checkpoint resumes training there. Returns the folder. The config is validated here
    (``nitsjax.config.validate``), once.
    """
    cfg = _as_cfg(cfg)
    validate(cfg, "train")
    return train_validated(cfg, out_dir)


def train_validated(cfg: DictConfig, out_dir: Optional[PathLike] = None) -> Path:
    """``run_train`` for a config already validated (the CLI validates every job of a
    sweep before the first runs; ``run_demo`` validates the demo config)."""
    from nitsjax.train import fit

    out = Path(out_dir) if out_dir is not None else hydra_output_dir()
    arg = "out_dir" if out_dir is not None else "hydra.run.dir"
    if out is None:
        out = _default_out_dir("train", f"_{cfg.model.name}_{cfg.data.name}")
    _check_output_folder(out, arg)  # unwritable or full disk: now, not after training
    log.info(f"output folder: {out}")
    OmegaConf.save(cfg, out / CONFIG_FILE, resolve=True)

    images = takes_image_shape(cfg.model)
    data = load_data(cfg.data, raw_pixels=images)
    t = cfg.train
    transport = is_transport(cfg.model)
    if t.batch_size > len(data.train) and not transport:
        raise ConfigError(
            f"train.batch_size: {t.batch_size} is larger than the training split of "
            f"{cfg.data.name} ({len(data.train)} rows); pass train.batch_size=<{len(data.train)}"
        )
    log.info(
        f"data {cfg.data.name}: dim {data.dim}, train {len(data.train)}, val {len(data.val)}, "
        f"test {len(data.test)}; model {cfg.model.name}"
    )
    if transport and data.target is not None:
        raise ConfigError(f"data.target: model={cfg.model.name} fits an unconditional map; "
                          "leave data.target null or pick a conditional model (ddn, mdn, nits)")
    flow = None if transport else build_flow(cfg.model, data.dim, context_dim=data.context_dim,
                                             image_shape=data.image_shape, x_train=data.train)
    metrics = {"model": cfg.model.name, "data": cfg.data.name, "dim": data.dim}
    if data.target is not None:  # p(target columns | the others): conditional scores
        metrics.update(target=list(data.target), context_dim=data.context_dim)
        log.info(f"conditional: p(columns {list(data.target)} | the other {data.context_dim})")
    if data.image_shape is not None:
        metrics["image_shape"] = list(data.image_shape)
    _write_json(out / METRICS_FILE, metrics)  # completed after training
    k_init, k_fit, k_plot = jax.random.split(jax.random.key(cfg.seed), 3)
    start = time.perf_counter()
    if transport:  # fits itself (nj.transport.fit_atm): no steps, no checkpoints
        flow, params, info = fit_transport(cfg.model, data.train, data.val)
        history = []
        metrics["terms"] = [int(m) for m in info.terms]
    else:
        params = flow.init(k_init)  # fit initialises the data-side layers from the training split
        fit_kw = dict(to_container(t))
        fit_kw.update(fit_dequantize(cfg.data, inspect.signature(fit).parameters))
        if fit_kw.get("loss", "nll") == "nll" and getattr(flow, "default_loss", None):
            fit_kw["loss"] = flow.default_loss  # a model with its own objective (gm_wae)
        trainer = fit
        if getattr(flow, "fits_in_stages", False):  # nj.fit per stage inside (two_step)
            trainer = type(flow).fit
        params, history = trainer(
            flow, params, data.train, data.val, key=k_fit, checkpoint_dir=str(out),
            eval_batch_size=cfg.eval_batch_size, context=data.context("train"),
            val_context=data.context("val"), **fit_kw,
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
    dequantized = getattr(history, "dequantized", None)
    if dequantized:
        metrics["dequantized"] = {str(k): v for k, v in dequantized.items()}
        log.info(f"fit dequantised lattice columns {sorted(dequantized)}: log-likelihoods are "
                 f"the bound on the discrete data's log-probability")
    density = has_density(flow)
    if not density:  # a sampler without a density (model=generator): the energy distance
        k_plot, k_eval = jax.random.split(k_plot)
        metrics.update(energy_distances(flow, params, {s: data.split(s) for s in
                                                       ("val", "test")}, k_eval))
        log.info(f"{cfg.model.name} has no density: no log-likelihoods; test energy distance "
                 f"(beta=1, {metrics['n_test']} rows vs as many samples): "
                 f"{metrics['test_energy_distance']:.4f}")
    for split in ("val", "test") if density else ():
        lp = discrete_log_likelihoods(flow, params, data.split(split), dequantized,
                                      cfg.eval_batch_size, data.context(split))
        s = summarize(lp)
        metrics[f"{split}_log_likelihood"] = _finite_or_none(s["mean"])
        metrics[f"{split}_log_likelihood_stderr"] = _finite_or_none(s["stderr"])
        metrics[f"n_{split}"] = s["n"]
        metrics.update(zero_density_note(split, s))
        if data.scale is not None:
            metrics[f"{split}_log_likelihood_original_units"] = _finite_or_none(
                s["mean"] - log_scale(data.scale))
        if images:
            metrics.update(image_bits_per_dim(flow, params, data.split(split), split, s,
                                              cfg.eval_batch_size))
    _write_json(out / METRICS_FILE, metrics)
    if density:  # s: the test split's summary (the loop's last)
        what = ("conditional test log-likelihood" if data.target is not None
                else "test log-likelihood")
        log.info(f"{what}: {format_ll(s)} nats per example")
    if "test_bits_per_dim" in metrics:
        log.info(f"test bits/dim: {metrics['test_bits_per_dim']:.4f} (discrete), "
                 f"{metrics['test_bits_per_dim_dequantized']:.4f} (dequantised)")
    if metrics.get("test_log_likelihood_original_units") is not None:
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


def image_bits_per_dim(flow, params, x, split: str, discrete: dict, batch_size: int) -> dict:
    """Bits/dim of an image model (``image_nits``) on 8-bit images both ways: from the
    discrete log-likelihood summary ``discrete`` (``{"mean", "stderr", "n"}``, nats) and
    from the continuous density of the dequantised images (one fixed noise draw).
    Keys ``<split>_bits_per_dim[_stderr]`` and ``<split>_bits_per_dim_dequantized[_stderr]``."""
    per = flow.dim * math.log(2.0)
    deq = summarize(dequantized_log_likelihoods(flow, params, x, batch_size))
    out = {}
    for suffix, s in (("", discrete), ("_dequantized", deq)):
        out[f"{split}_bits_per_dim{suffix}"] = -s["mean"] / per
        se = _finite_or_none(s["stderr"])
        out[f"{split}_bits_per_dim{suffix}_stderr"] = None if se is None else se / per
    return out


# ---------------------------------------------------------------------------- eval
def run_eval(run: PathLike, split: str = "test", batch_size: int = 4096,
             data_root: Optional[str] = None, out_dir: Optional[PathLike] = None) -> dict:
    """Log-likelihood of a trained run on a split (mean, 2 SE, n); for a model without a
    density (``model=generator``) the energy distance of as many samples to the split.

    Args:
      run: the output folder of ``nitsjax train``.
      split: ``"train"``, ``"val"`` or ``"test"``.
      batch_size: rows per log-likelihood batch.
      data_root: where the data set lives, if not where training found it.
      out_dir: writes ``<out_dir>/metrics.json`` (the CLI passes Hydra's folder).
    """
    r = load_run(run)
    data = r.load_data(root=data_root)
    trained = Path(run) / METRICS_FILE
    dequantized = (json.loads(trained.read_text()).get("dequantized")
                   if trained.exists() else None)
    if not has_density(r.flow):  # a generator: the energy distance of samples to the split
        e = energy_distances(r.flow, r.params, {split: data.split(split)}, jax.random.key(0))
        metrics = {"run": str(run), "split": split,
                   "energy_distance": e[f"{split}_energy_distance"], "n": e[f"n_{split}"]}
        log.info(f"{r.cfg.model.name} has no density; {split} energy distance of {run} "
                 f"(beta=1, {metrics['n']} rows): {metrics['energy_distance']:.4f}")
    else:
        lp = discrete_log_likelihoods(r.flow, r.params, data.split(split), dequantized,
                                      batch_size, data.context(split))
        s = summarize(lp)
        metrics = {
            "run": str(run),
            "split": split,
            "log_likelihood": _finite_or_none(s["mean"]),
            "log_likelihood_stderr": _finite_or_none(s["stderr"]),
            "n": s["n"],
        }
        metrics.update({k.replace(f"{split}_", "", 1): v
                        for k, v in zero_density_note(split, s).items()})
        if r.scale is not None:
            metrics["log_likelihood_original_units"] = _finite_or_none(
                s["mean"] - log_scale(r.scale))
        log.info(f"{split} log-likelihood of {run}: {format_ll(s)} nats per example")
    if takes_image_shape(r.cfg.model):
        bpd = image_bits_per_dim(r.flow, r.params, data.split(split), split, s, batch_size)
        metrics.update({k.replace(f"{split}_", "", 1): v for k, v in bpd.items()})
        log.info(f"{split} bits/dim: {metrics['bits_per_dim']:.4f} (discrete), "
                 f"{metrics['bits_per_dim_dequantized']:.4f} (dequantised)")
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        _write_json(Path(out_dir) / METRICS_FILE, metrics)
        log.info(f"metrics: {Path(out_dir) / METRICS_FILE}")
    return metrics


# -------------------------------------------------------------------------- sample
def run_sample(run: PathLike, n: int = 1000, seed: int = 0, out: Optional[PathLike] = None,
               plot: bool = True, data_root: Optional[str] = None,
               out_dir: Optional[PathLike] = None) -> Path:
    """Draw ``n`` samples (the data's original units) into a ``.npy`` file and a figure
    next to it; returns the .npy path.

    Args:
      run: the output folder of ``nitsjax train``.
      n: number of samples.
      seed: seed of the sampling key.
      out: the .npy to write; relative: inside the output folder (``out_dir``, else
        ``<run>/samples``); absolute or with ``..``: as written, and logged
        (``output_path``). None: ``<output folder>/samples.npy``.
      plot: also write the figure (samples next to the test data).
      data_root: where the data set lives (for the data half of the figure).
      out_dir: the output folder (the CLI passes Hydra's folder).
    """
    r = load_run(run)
    base = Path(out_dir) if out_dir is not None else Path(run) / "samples"
    npy = base / "samples.npy" if out is None else output_path(out, base, "out")
    npy.parent.mkdir(parents=True, exist_ok=True)
    x = r.sample(jax.random.key(seed), int(n)).astype(np.float32)
    np.save(npy, x, allow_pickle=False)
    log.info(f"samples: {npy} (shape {x.shape})")
    if plot:
        data_units = None
        try:
            data: Dataset = r.load_data(root=data_root)
            data_units = data.to_original(data.test)
            image_shape = data.image_shape
        except (OSError, ValueError) as err:  # the figure then shows the samples alone
            log.warning(f"data of {run} not available for the figure ({err})")
            image_shape = r.cfg.data.get("image_shape")
        fig = write_sample_figure(x, image_shape, data_units, npy.with_suffix(".png"))
        log.info(f"figure: {fig}")
    return npy


# ---------------------------------------------------------------------------- demo
def run_demo(cfg, out_dir: Optional[PathLike] = None, *, validated: bool = False) -> Path:
    """The ``demo`` config: train ``model`` on ``toy_data`` (density figure) and on
    ``image_data`` (sample grid next to real images) into ``<out>/toy`` and
    ``<out>/images``; print and write both test log-likelihoods."""
    cfg = _as_cfg(cfg)
    if not validated:
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
        run_dir = train_validated(sub, out / tag)
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
