"""A trained run folder: ``config.yaml`` + ``params.npz`` (+ ``standardization.npz``,
``metrics.json``) loaded back as a ``TrainedRun`` (flow, params, units)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional, Union

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from nitsjax.app.datasets import Dataset, load_data, log_scale, to_original
from nitsjax.app.evaluation import log_likelihoods, sample_in_batches
from nitsjax.app.models import build_flow, is_transport, takes_image_shape, transport_flow
from nitsjax.app.params_io import load_params

PathLike = Union[str, Path]

PARAMS_FILE = "params.npz"
STANDARDIZATION_FILE = "standardization.npz"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.jsonl"


@dataclasses.dataclass
class TrainedRun:
    """A trained run loaded from its folder: its config, flow, params and units."""

    path: Path
    cfg: DictConfig
    flow: Any
    params: Any
    shift: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None

    def log_prob(self, x, original_units: bool = True, batch_size: int = 4096,
                 context=None) -> np.ndarray:
        """Log-density of rows of ``x``; in the data's original units by default. A
        conditional run (``data.target``) takes ``context``: the other columns, in model
        units (as ``Dataset.context`` holds them)."""
        x = np.asarray(x, np.float64)
        if not original_units:
            return log_likelihoods(self.flow, self.params, x, batch_size, context)
        z = x
        if self.shift is not None:
            z = z - self.shift
        if self.scale is not None:
            z = z / self.scale
        return (log_likelihoods(self.flow, self.params, z, batch_size, context)
                - log_scale(self.scale))

    def sample(self, key, n: int, original_units: bool = True) -> np.ndarray:
        """``n`` samples, in the data's original units by default (a joint model only)."""
        if self.flow.context_dim is not None:
            raise ValueError(
                f"run: {self.path} holds a conditional model p(y | x) (data.target="
                f"{list(self.cfg.data.target)}); draw from it in Python with the contexts "
                "you condition on (nitsjax.experiment.load_run(run).flow and .params)"
            )
        x = sample_in_batches(self.flow, self.params, key, n)
        return to_original(x, self.shift, self.scale) if original_units else x

    def load_data(self, root: Optional[str] = None) -> Dataset:
        return load_data(self.cfg.data, root=root, raw_pixels=takes_image_shape(self.cfg.model))


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
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    image_shape = cfg.data.get("image_shape") or meta.get("image_shape")
    if is_transport(cfg.model):  # its width was chosen by the fit: read it from the params
        with np.load(params_path, allow_pickle=False) as z:
            terms = z["['bijector']['atm']['coef']"].shape[1]
        flow = transport_flow(cfg.model, int(dim), terms)
    else:
        flow = build_flow(cfg.model, int(dim), context_dim=meta.get("context_dim"),
                          image_shape=image_shape)
    template = jax.eval_shape(flow.init, jax.random.key(0))
    params = load_params(params_path, template)
    return TrainedRun(run_dir, cfg, flow, params, shift, scale)
