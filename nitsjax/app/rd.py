"""``nitsjax rd``: rate-distortion sandwich bounds of a source (``nitsjax.rd``, Yang &
Mandt, ICLR 2022, arXiv 2111.12166) from a config.

The source is a data set (``source=data``, the ``data`` group: every split of it, as
i.i.d. samples in the loader's units), a Gaussian ``N(0, diag(variances))`` (R(D) known in
closed form: reverse water-filling) or the 2-D banana ``x = (z_1, z_2 + 0.5 z_1^2 - 0.5)``,
``z ~ N(0, diag(1, 0.1))``. ``rd.upper.*`` and ``rd.lower.*`` are the keyword arguments of
``nitsjax.rd.upper_bound`` / ``lower_bound`` (the schemas are derived from their
signatures); ``seed`` goes to both. The output folder gets ``config.yaml``,
``metrics.json`` (the points of both bounds, and the closed form for a Gaussian source)
and ``rd.png`` (``nitsjax.rd.plot``)::

    nitsjax rd source=banana rd.lambdas=[0.5,1,2,4,8]
    nitsjax rd source=gaussian variances=[1,0.25] rd.upper.steps=2000 rd.lower.k=512
    nitsjax rd data=mnist n=20000 rd.upper.latent_dim=32 rd.lower_lambdas=[0.02,0.1]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf

from nitsjax.app.schema import signature_schema
from nitsjax.config import ConfigError, DataConfig, to_container

log = logging.getLogger("nitsjax")

#: where a source comes from: the ``data`` group, or a generated one
SOURCES = ("data", "gaussian", "banana")
#: ``upper_bound``/``lower_bound`` arguments the command supplies (the top-level ``seed``)
BOUND_SUPPLIED = ("seed",)
FIGURE_FILE = "rd.png"


def _bound_schemas():
    from nitsjax.rd import lower_bound, upper_bound

    upper = signature_schema(upper_bound, "RdUpperConfig", exclude=BOUND_SUPPLIED,
                             doc="Keyword arguments of ``nitsjax.rd.upper_bound``.")
    lower = signature_schema(lower_bound, "RdLowerConfig", exclude=BOUND_SUPPLIED,
                             doc="Keyword arguments of ``nitsjax.rd.lower_bound``.")
    return upper, lower


RdUpperConfig, RdLowerConfig = _bound_schemas()


@dataclass
class RdBoundsConfig:
    """``lambdas``: the slopes of the upper bound (one trained compressor each) and, unless
    ``lower_lambdas`` is set, of the lower bound (one line each); ``lower_lambdas=[]``
    skips the lower bound. ``upper``/``lower``: the bounds' options (their signatures)."""

    lambdas: List[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0])
    lower_lambdas: Optional[List[float]] = None
    upper: RdUpperConfig = field(default_factory=RdUpperConfig)
    lower: RdLowerConfig = field(default_factory=RdLowerConfig)


@dataclass
class RdConfig:
    """``nitsjax rd``: the sandwich bounds of one source (module docstring).

    ``source``: ``data`` (the ``data`` group), ``gaussian`` (``N(0, diag(variances))``) or
    ``banana``; ``n``: samples drawn from a generated source (null: 20000), or at most
    ``n`` rows of the data set, a random subset (null: all rows); ``bits``: the figure's
    rates in bits (metrics.json is in nats)."""

    data: DataConfig = MISSING
    source: str = "data"
    variances: List[float] = field(default_factory=lambda: [1.0, 0.25])
    n: Optional[int] = None
    rd: RdBoundsConfig = field(default_factory=RdBoundsConfig)
    seed: int = 0
    bits: bool = False


GENERATED_N = 20000


# --------------------------------------------------------------------------- checks
def checks(cfg) -> list[tuple[str, bool, str]]:
    """``(key, ok, expected)`` range checks of an ``rd`` config (``nitsjax.config.validate``)."""
    lams = list(cfg.rd.lambdas)
    lower = cfg.rd.lower_lambdas
    return [
        ("source", cfg.source in SOURCES, f"one of {', '.join(SOURCES)}"),
        ("variances", len(cfg.variances) >= 1 and all(v > 0 for v in cfg.variances),
         "a non-empty list of positive variances"),
        ("n", cfg.n is None or cfg.n >= 2, ">= 2 or null"),
        ("rd.lambdas", len(lams) >= 1 and all(v > 0 for v in lams),
         "a non-empty list of positive slopes, e.g. [0.5,1,2,4]"),
        ("rd.lower_lambdas", lower is None or all(v > 0 for v in lower),
         "null (rd.lambdas), [] (no lower bound) or positive slopes"),
    ]


# --------------------------------------------------------------------------- source
def banana(n: int, seed: int) -> np.ndarray:
    """``n`` samples of the 2-D banana ``(z_1, z_2 + 0.5 z_1^2 - 0.5)``, ``z ~ N(0,
    diag(1, 0.1))``, float32 (n, 2)."""
    z = np.random.default_rng(seed).normal(size=(n, 2)) * np.sqrt([1.0, 0.1])
    return np.stack([z[:, 0], z[:, 1] + 0.5 * z[:, 0] ** 2 - 0.5], axis=1).astype(np.float32)


def source_samples(cfg) -> tuple[np.ndarray, dict]:
    """The (n, dim) samples the config's source names, and what metrics.json says of
    them (``source``, ``data``, ``units``)."""
    if cfg.source == "gaussian":
        var = np.asarray(cfg.variances, np.float64)
        n = cfg.n or GENERATED_N
        x = np.random.default_rng(cfg.seed).normal(size=(n, var.size)) * np.sqrt(var)
        return x.astype(np.float32), {"source": "gaussian", "variances": var.tolist()}
    if cfg.source == "banana":
        return banana(cfg.n or GENERATED_N, cfg.seed), {"source": "banana"}
    from nitsjax.app.datasets import load_data

    data = load_data(cfg.data)
    if data.target is not None:
        raise ConfigError("data.target: the bounds are of the joint distribution of every "
                          "column; leave data.target null")
    x = np.concatenate([data.train, data.val, data.test])
    if cfg.n is not None and cfg.n < len(x):
        x = x[np.random.default_rng(cfg.seed).choice(len(x), cfg.n, replace=False)]
    units = ("standardised by the loader (x - mean) / std" if data.scale is not None
             else "the loader's")
    return x, {"source": "data", "data": cfg.data.name, "units": units}


# ------------------------------------------------------------------------------ run
def run_rd(cfg, out_dir: Optional[Union[str, Path]] = None, *,
           validated: bool = False) -> dict:
    """The upper bound at every ``rd.lambdas``, the lower bound at every
    ``rd.lower_lambdas`` (default: the same), a figure and ``metrics.json``; returns the
    metrics. ``out_dir``: default Hydra's run folder under the CLI, else
    ``outputs/rd/<date>/<time>_<source>``."""
    from nitsjax import rd
    from nitsjax.app.commands import (
        _as_cfg,
        _check_output_folder,
        _default_out_dir,
        _write_json,
        hydra_output_dir,
    )
    from nitsjax.app.trained import CONFIG_FILE, METRICS_FILE
    from nitsjax.config import validate

    cfg = _as_cfg(cfg)
    if not validated:
        validate(cfg, "rd")
    out = Path(out_dir) if out_dir is not None else hydra_output_dir()
    arg = "out_dir" if out_dir is not None else "hydra.run.dir"
    if out is None:
        name = cfg.data.name if cfg.source == "data" else cfg.source
        out = _default_out_dir("rd", f"_{name}")
    _check_output_folder(out, arg)
    log.info(f"output folder: {out}")
    OmegaConf.save(cfg, out / CONFIG_FILE, resolve=True)

    x, metrics = source_samples(cfg)
    metrics.update(n=int(x.shape[0]), dim=int(x.shape[1]),
                   distortion="squared error summed over coordinates, per sample",
                   rate_units="nats per sample")
    log.info(f"source {metrics.get('data', cfg.source)}: {x.shape[0]} samples, dim {x.shape[1]}")
    upper_kw = to_container(cfg.rd.upper)
    lower_kw = to_container(cfg.rd.lower)
    lams = list(cfg.rd.lambdas)
    lower_lams = lams if cfg.rd.lower_lambdas is None else list(cfg.rd.lower_lambdas)

    start = time.perf_counter()
    ub = _bound(rd.upper_bound, "rd.upper", x, lams, seed=cfg.seed, **upper_kw)
    seconds = {"upper": round(time.perf_counter() - start, 2)}
    metrics["upper"] = {
        "lambdas": ub.lambdas, "distortion": ub.distortion, "rate": ub.rate,
        "distortion_se": ub.distortion_se, "rate_se": ub.rate_se, "points": ub.points,
    }
    for lam, (d, r) in zip(lams, ub.points):
        log.info(f"upper bound, lambda {lam:g}: D = {d:.4g}, R = {r:.4g} nats")
    lb = None
    if lower_lams:
        start = time.perf_counter()
        lb = _bound(rd.lower_bound, "rd.lower", x, lower_lams, seed=cfg.seed, **lower_kw)
        seconds["lower"] = round(time.perf_counter() - start, 2)
        metrics["lower"] = {
            "lambdas": lb.lambdas, "intercepts": lb.intercepts,
            "intercept_se": lb.intercept_se, "k": lb.k,
            "points": lb.points(ub.distortion),  # at the upper bound's distortions
        }
        for lam, c in zip(lower_lams, lb.intercepts):
            log.info(f"lower bound, lambda {lam:g}: R(D) >= {c:.4g} - {lam:g} D")
    truth = None
    if cfg.source == "gaussian":
        var = list(cfg.variances)
        truth = lambda d: rd.gaussian_rd(var, d)  # noqa: E731
        metrics["gaussian_rd"] = {"distortion": ub.distortion, "rate": truth(ub.distortion)}
    metrics["seconds"] = seconds
    _write_json(out / METRICS_FILE, _plain(metrics))
    title = f"{metrics.get('data', cfg.source)}: n={x.shape[0]}, dim={x.shape[1]}"
    rd.plot(ub, lb, truth=truth, bits=cfg.bits, title=title, path=out / FIGURE_FILE)
    log.info(f"figure: {out / FIGURE_FILE}")
    log.info(f"metrics: {out / METRICS_FILE}")
    return metrics


def _bound(fn, key: str, x, lambdas, **kw):
    """``fn(x, lambdas, **kw)``; its argument errors become ConfigErrors naming ``key``."""
    try:
        return fn(x, lambdas, **kw)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{key}: {err}") from None


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def options_sections(cfg: DictConfig) -> list[tuple[str, str, object, dict, tuple]]:
    """``(title, prefix, function, current values, excluded)`` of ``nitsjax rd --help``."""
    from nitsjax.rd import lower_bound, upper_bound

    return [
        ("Upper bound options (rd.upper.*)", "rd.upper", upper_bound,
         OmegaConf.to_container(cfg.rd.upper, resolve=False), BOUND_SUPPLIED),
        ("Lower bound options (rd.lower.*)", "rd.lower", lower_bound,
         OmegaConf.to_container(cfg.rd.lower, resolve=False), BOUND_SUPPLIED),
    ]


__all__ = ["RdConfig", "banana", "checks", "run_rd", "source_samples"]
