"""``nitsjax snf``: a stochastic normalizing flow fitted to a target with a known normaliser
(``nitsjax.snf``), against the same flow alone at the same budget.

The config (``configs/snf.yaml``, schema ``SNFConfig``) describes

* ``target``: a test target of ``nitsjax.snf.targets`` (group ``configs/target/``: name and
  the constructor's options);
* ``flow``: a registered flow (the ``model`` group, placed at ``flow``: ``model@flow:
  realnvp``), built with ``dim`` of the target; use ``standardize: null`` (no data);
* ``chain``: the layers in sampling order: ``flow`` (a fresh copy of the flow, own
  params) or a one-key mapping ``{langevin|metropolis|vae_layer: {options}}`` whose
  options are the keyword arguments of ``nj.snf.langevin``/``metropolis``/``vae_layer``;
* ``fit``: the options of ``nitsjax.snf.fit_reverse`` (steps, batch_size, ...).

``run_snf`` trains the chain by the reverse path KL and, with ``compare_flow``, the chain's
flow copies alone (the stochastic layers dropped) with the same steps, batch and seed; it
writes ``metrics.json`` (``log Z`` +- s.e., the exact ``log Z``, ESS, mode coverage, wall
time, for both), ``samples.npy`` (the SNF's samples), ``snf_samples.png`` (samples over the
target's density) and ``snf_ess.png`` (the batch ESS along training).
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List

import jax
import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf

from nitsjax.app.schema import signature_schema
from nitsjax.config import ConfigError, ModelConfig, to_container

log = logging.getLogger("nitsjax")


def _layer_makers() -> dict:
    import nitsjax.snf as snf

    return {"langevin": snf.langevin, "metropolis": snf.metropolis, "vae_layer": snf.vae_layer}


STOCHASTIC = ("langevin", "metropolis", "vae_layer")


# ------------------------------------------------------------------------- schemas
@dataclass
class TargetConfig:
    """A target of ``nitsjax.snf.targets`` by ``name``; the other keys are its options."""

    name: str = MISSING


def target_schema(name: str) -> type:
    """The schema of ``target=<name>``: ``TargetConfig`` plus the constructor's arguments."""
    from nitsjax.snf.targets import TARGETS

    fn = TARGETS[name]
    return signature_schema(fn, f"{name}TargetConfig", bases=(TargetConfig,), positional=True,
                            defaults={"name": name},
                            doc=f"Options of ``nitsjax.snf.targets.{name}`` (target={name}).")


def fit_schema() -> type:
    """The schema of ``fit``: the options of ``nitsjax.snf.fit_reverse`` (its signature)."""
    from nitsjax.snf import fit_reverse

    return signature_schema(fit_reverse, "SNFFitConfig",
                            doc="Keyword arguments of ``nitsjax.snf.fit_reverse``.")


SNFFitConfig = fit_schema()


@dataclass
class SNFConfig:
    """``nitsjax snf``: a stochastic normalizing flow on a target with known ``log Z``,
    against the flow alone (``compare_flow``) at the same budget (module docstring)."""

    target: TargetConfig = MISSING
    flow: ModelConfig = MISSING
    chain: List[Any] = field(default_factory=lambda: ["flow"])
    fit: SNFFitConfig = field(default_factory=SNFFitConfig)
    compare_flow: bool = True
    plots: bool = True
    seed: int = 0


def register() -> None:
    """Store ``schema/snf`` and ``schema/target/<name>`` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    from nitsjax.snf.targets import TARGETS

    cs = ConfigStore.instance()
    cs.store(group="schema", name="snf", node=SNFConfig)
    for name in TARGETS:
        cs.store(group="schema/target", name=name, node=target_schema(name))


# ---------------------------------------------------------------------- validating
def check_chain(chain, where=lambda key: "snf.yaml") -> list:
    """The ``chain`` entries as ``("flow", None)`` or ``(layer type, options)``; a
    ConfigError naming ``chain[i]...`` for an entry that is neither, an unknown layer
    type or an option the layer's constructor does not take."""
    entries = OmegaConf.to_container(chain, resolve=True) if OmegaConf.is_config(chain) \
        else chain
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"chain: expected a non-empty list of layers (flow, {{langevin: "
                          f"{{...}}}}, ...), got {entries!r} (from {where('chain')})")
    makers, out = _layer_makers(), []
    for i, entry in enumerate(entries):
        if entry == "flow":
            out.append(("flow", None))
            continue
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise ConfigError(
                f"chain[{i}]: expected 'flow' or one of {{{', '.join(STOCHASTIC)}}}: "
                f"{{options}}, got {entry!r} (from {where('chain')})")
        (kind, options), = entry.items()
        if kind not in makers:
            raise ConfigError(f"chain[{i}]: unknown layer {kind!r}; expected 'flow' or one of "
                              f"{', '.join(STOCHASTIC)} (from {where('chain')})")
        options = dict(options or {})
        takes = [p for p in inspect.signature(makers[kind]).parameters if p != "dim"]
        for key in options:
            if key not in takes:
                raise ConfigError(
                    f"chain[{i}].{kind}.{key}: nj.snf.{kind} has no argument {key!r}; its "
                    f"arguments are {', '.join(takes)} (from {where('chain')})")
        out.append((kind, options))
    if not any(kind == "flow" for kind, _ in out) and not any(
            kind == "vae_layer" for kind, _ in out):
        log.info("chain: no flow and no vae_layer: nothing to train")
    return out


def validate_snf(cfg: DictConfig, where=None) -> None:
    """The checks composition cannot make: the chain's entries, ranges of ``fit``."""
    where = where or (lambda key: "snf.yaml")
    check_chain(cfg.chain, where)
    try:
        target = build_target(cfg.target)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"target: {err} (from {where('target')})") from None
    build_chain(cfg.chain, cfg.flow, target.dim)  # flow options and step sizes, no params
    f = cfg.fit
    checks = [("fit.steps", f.steps >= 0, ">= 0"), ("fit.batch_size", f.batch_size >= 1, ">= 1"),
              ("fit.learning_rate", f.learning_rate > 0, "> 0"),
              ("fit.n_samples", f.n_samples >= 2, ">= 2"), ("fit.chunk", f.chunk >= 1, ">= 1")]
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{key}: expected {expected}, got {OmegaConf.select(cfg, key)!r} "
                              f"(from {where(key)})")


# ------------------------------------------------------------------------ building
def build_target(target_cfg):
    """The ``nitsjax.snf.targets.Target`` of a ``target`` config."""
    from nitsjax.snf import targets

    kw = to_container(target_cfg)
    return targets.target(kw.pop("name"), **kw)


def build_chain(chain_cfg, flow_cfg, dim: int, *, stochastic: bool = True):
    """``nj.snf.chain`` of the ``chain`` entries: each ``flow`` a fresh flow of the
    ``flow`` config (``nitsjax.app.models.build_flow``), each other entry its SNF layer;
    ``stochastic=False`` drops the stochastic layers (the flow alone)."""
    import nitsjax.snf as snf
    from nitsjax.app.models import build_flow

    makers, layers = _layer_makers(), []
    for kind, options in check_chain(chain_cfg):
        if kind == "flow":
            try:
                layers.append(build_flow(flow_cfg, dim).bijector)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"flow: {err}") from None
        elif stochastic:
            args = (dim,) if kind == "vae_layer" else ()
            try:
                layers.append(makers[kind](*args, **options))
            except (TypeError, ValueError) as err:
                raise ConfigError(f"chain: {kind}: {err}") from None
    try:
        return snf.chain(layers, dim=dim)
    except ValueError as err:
        raise ConfigError(f"chain: {err}") from None


# ------------------------------------------------------------------------- metrics
def summary(fit, target, batch_size: int, seconds: float) -> dict:
    """Metrics of one ``ReverseFit``: ``log Z`` +- s.e. and its error against the exact
    value, ESS (count and fraction), mode coverage (weighted and raw samples)."""
    from nitsjax.snf.targets import mode_coverage

    n = int(fit.samples.shape[0])
    out = {
        "log_z": float(fit.log_z), "log_z_se": float(fit.log_z_se),
        "log_z_exact": float(target.log_z), "log_z_error": float(fit.log_z) - target.log_z,
        "ess": float(fit.ess), "ess_fraction": float(fit.ess) / n, "n_samples": n,
        "final_batch_ess_fraction": (float(np.mean(fit.batch_ess[-50:])) / batch_size
                                     if len(fit.batch_ess) else None),
        "final_loss": float(np.mean(fit.losses[-50:])) if len(fit.losses) else None,
        "train_seconds": round(seconds, 2),
    }
    cov = mode_coverage(target, fit.samples)
    if cov is not None:
        wcov = mode_coverage(target, fit.samples, fit.weights)
        out.update(modes=len(target.modes), modes_covered=cov[1],
                   modes_covered_weighted=wcov[1], mode_masses=cov[0].round(4).tolist())
    return out


def fit_chain(chain, target, fit_cfg, seed: int, progress=None):
    """``nj.snf.fit_reverse`` of ``chain`` on ``target`` with the ``fit`` options
    (``progress``: overrides ``fit.progress`` unless None); ``(fit, seconds)``."""
    import nitsjax.snf as snf

    kw = to_container(fit_cfg) if OmegaConf.is_config(fit_cfg) else dict(fit_cfg)
    if progress is not None:
        kw["progress"] = progress
    k_init, k_fit = jax.random.split(jax.random.key(seed))
    start = time.perf_counter()
    fit = snf.fit_reverse(chain, chain.init(k_init), target.log_prob, key=k_fit, **kw)
    jax.block_until_ready(fit.log_z)
    return fit, time.perf_counter() - start


# ------------------------------------------------------------------------- figures
def plot_samples(ax, target, samples, title: str, n: int = 2000, lim=None):
    """Samples (first two coordinates) over the target's density: its contours in 2-D,
    else exact target samples in grey."""
    import jax.numpy as jnp

    s = np.asarray(samples)[:n]
    if target.dim == 2:
        lo, hi = lim or _limits(target)
        g = np.linspace(lo, hi, 150)
        xx, yy = np.meshgrid(g, g)
        pts = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], 1), jnp.float32)
        dens = np.exp(np.asarray(jax.vmap(target.log_prob)(pts)) - target.log_z)
        ax.contour(xx, yy, dens.reshape(xx.shape), levels=8, cmap="Greys", linewidths=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    else:
        ref = target.sample(jax.random.key(123), n)
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.7", alpha=0.5, label="target")
        lo, hi = np.percentile(ref[:, :2], [0.5, 99.5])
        ax.set_xlim(-9, 9)
        ax.set_ylim(lo, hi)
    ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4, c="C3")
    ax.set_title(title, fontsize=9)


def _limits(target):
    if target.modes is not None:
        r = float(np.abs(target.modes).max()) + 2.5
        return -r, r
    return -4.0, 4.0


def plot_ess(ax, curves: dict, batch_size: int, title: str, window: int = 50):
    """Batch ESS fraction along training (running mean over ``window`` steps)."""
    for label, ess in curves.items():
        e = np.asarray(ess, float) / batch_size
        if len(e) == 0:
            continue
        w = max(1, min(window, len(e)))
        smooth = np.convolve(e, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w, len(e) + 1), smooth, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("ESS / batch")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)


# ---------------------------------------------------------------------------- run
def run_snf(cfg, out_dir=None, *, validated: bool = False) -> Path:
    """Run an ``snf`` config (module docstring); returns the output folder (default:
    Hydra's run folder under the CLI, else ``outputs/snf/<date>/<time>_<target>``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nitsjax.app.commands import (
        _as_cfg,
        _check_output_folder,
        _default_out_dir,
        _write_json,
        hydra_output_dir,
    )
    from nitsjax.config import validate

    cfg = _as_cfg(cfg)
    if not validated:
        validate(cfg, "snf")
    out = Path(out_dir) if out_dir is not None else hydra_output_dir()
    if out is None:
        out = _default_out_dir("snf", f"_{cfg.target.name}")
    _check_output_folder(out, "out_dir" if out_dir is not None else "hydra.run.dir")
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    target = build_target(cfg.target)
    runs = {"snf": True, "flow": False} if cfg.compare_flow else {"snf": True}
    metrics: dict = {"target": target.name, "dim": target.dim, "log_z_exact": target.log_z,
                     "steps": int(cfg.fit.steps), "batch_size": int(cfg.fit.batch_size)}
    fits = {}
    for label, stochastic in runs.items():
        chain = build_chain(cfg.chain, cfg.flow, target.dim, stochastic=stochastic)
        log.info(f"--- {label}: {len(chain.layers)} layers ({', '.join(chain.names)})")
        fit, seconds = fit_chain(chain, target, cfg.fit, int(cfg.seed))
        fits[label] = fit
        metrics[label] = summary(fit, target, int(cfg.fit.batch_size), seconds)
        m = metrics[label]
        log.info(f"{label}: log Z {m['log_z']:.4f} +- {m['log_z_se']:.4f} (exact "
                 f"{target.log_z:.4f}), ESS {m['ess_fraction']:.3f} of {m['n_samples']}"
                 + (f", modes {m['modes_covered']}/{m['modes']}" if "modes" in m else "")
                 + f", {seconds:.1f} s")
    _write_json(out / "metrics.json", metrics)
    np.save(out / "samples.npy", np.asarray(fits["snf"].samples, np.float32),
            allow_pickle=False)
    if cfg.plots:
        fig, axes = plt.subplots(1, len(fits), figsize=(4 * len(fits), 4), squeeze=False)
        for ax, (label, fit) in zip(axes[0], sorted(fits.items())):
            m = metrics[label]
            plot_samples(ax, target, fit.samples,
                         f"{label}: ESS {m['ess_fraction']:.2f}, log Z err "
                         f"{m['log_z_error']:+.3f}")
        fig.tight_layout()
        fig.savefig(out / "snf_samples.png", dpi=110)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        plot_ess(ax, {k: f.batch_ess for k, f in sorted(fits.items())},
                 int(cfg.fit.batch_size), target.name)
        fig.tight_layout()
        fig.savefig(out / "snf_ess.png", dpi=110)
        plt.close(fig)
    log.info(f"output folder: {out}")
    return out


__all__ = ["SNFConfig", "TargetConfig", "build_chain", "build_target", "check_chain",
           "fit_chain", "plot_ess", "plot_samples", "register", "run_snf", "summary",
           "validate_snf"]
