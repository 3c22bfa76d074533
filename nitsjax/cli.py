"""The ``nitsjax`` command: ``nitsjax <command> [Hydra overrides and flags]``.

The first argument picks the command (train, eval, sample, demo); the rest goes to a
``hydra.main`` application whose primary config is ``configs/<command>.yaml``, so
overrides (``train.steps=2000``), group choices (``model=nsf``), sweeps (``-m``),
``--cfg job``, ``--help``, launchers and output folders work as in any Hydra app.

Before Hydra runs anything, every job of the command line (each combination of a ``-m``
sweep) is composed and validated, so an unknown key, a wrong type or a missing required
value stops the command at once, with a message naming the key and the YAML file. Only
Hydra's public API is used: ``hydra.initialize_config_dir``/``hydra.compose`` to compose
and ``OverridesParser`` with its sweep iterators to expand a sweep.

Needs the ``cli`` extra; with the library core alone the command says which to install.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

COMMANDS = ("train", "eval", "sample", "demo", "rd", "snf")
EXTRA_HINT = 'pip install "nitsjax[cli]"'

USAGE = """\
usage: nitsjax <command> [key=value ...] [-m] [--cfg job] [--help]

commands:
  train    fit a model to a data set, evaluate it, write figures
             nitsjax train model=nsf data=power train.steps=20000
             nitsjax train data=file data.path=my.npy model=nsf
             nitsjax train -m model=maf,realnvp train.learning_rate=1e-3,3e-4
  eval     test log-likelihood (mean +- 2 standard errors) of a trained run
             nitsjax eval run=outputs/train/<date>/<time>_maf_moons
  sample   samples of a trained run to .npy (data units) and a figure
             nitsjax sample run=<run folder> n=1000
  demo     the default model on embedded data (2-D toy + sklearn digits), a few minutes
  rd       rate-distortion sandwich bounds of a source (nitsjax.rd), metrics and a figure
             nitsjax rd source=banana rd.lambdas=[0.5,1,2,4,8]
             nitsjax rd data=mnist n=20000 rd.upper.latent_dim=32 rd.lower_lambdas=[0.02,0.1]
  snf      a stochastic normalizing flow on a target with known log Z, against the flow
           alone at the same budget: log Z +- s.e., ESS, mode coverage, figures
             nitsjax snf +experiment=snf_funnel
             nitsjax snf target=gaussian_mixture fit.steps=2000

`nitsjax <command> --help` lists the command's config groups, values and every option of
the chosen model and of training (from their signatures and docstrings);
`nitsjax <command> --cfg job` prints the composed config without running.
configs: {configs}
"""

# Hydra flags after which nothing runs, so nothing needs validating first.
_NO_RUN_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")
MAX_PREFLIGHT_JOBS = 256
_PREFLIGHT = {"jobs": 0}  # jobs of the current command line already validated


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``nitsjax`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        from nitsjax import __version__

        print(f"nitsjax {__version__}")
        return 0
    try:
        from nitsjax.config import ConfigError, config_dir
    except ModuleNotFoundError as err:  # the library core without the cli extra
        print(f"nitsjax: the command line needs the 'cli' extra ({err.name} is not installed); "
              f"install it with: {EXTRA_HINT}", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help", "help"):
        try:
            where = str(config_dir())
        except ConfigError as err:
            where = f"not found ({err})"
        print(USAGE.format(configs=where))
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"nitsjax: unknown command {command!r}; expected one of {', '.join(COMMANDS)} "
            "(nitsjax --help)",
            file=sys.stderr,
        )
        return 2
    if os.environ.get("NITSJAX_DISTRIBUTED") == "1":
        import jax

        jax.distributed.initialize()  # multi-host: one process per host, see README
    try:
        cfg_dir = config_dir()
        _PREFLIGHT["jobs"] = preflight(command, rest, cfg_dir)
    except ConfigError as err:
        print(f"nitsjax {command}: {err}", file=sys.stderr)
        return 2
    except SystemExit as err:  # argparse of Hydra's flags
        return _code(err)
    try:
        if "--help" in rest or "-h" in rest:
            return _help(command, rest, cfg_dir)
        return _run_hydra(command, rest, cfg_dir)
    finally:
        _PREFLIGHT["jobs"] = 0


def _code(err: SystemExit) -> int:
    return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)


def _run_hydra(command: str, rest: list[str], cfg_dir: Path) -> int:
    import hydra

    from nitsjax.config import register

    register()  # flows registered since import get their schema
    task = hydra.main(config_path=str(cfg_dir), config_name=command, version_base="1.3")(
        _TASKS[command]
    )
    saved = sys.argv
    sys.argv = [f"nitsjax {command}", *rest]
    try:
        task()
    except SystemExit as err:
        return _code(err)
    finally:
        sys.argv = saved
    return 0


def _help(command: str, rest: list[str], cfg_dir: Path) -> int:
    """Hydra's ``--help`` (groups, composed config), then every option of the chosen
    model and of ``train`` with its type, default and the docstring's sentence."""
    code = _run_hydra(command, rest, cfg_dir)
    if code != 0:
        return code
    from nitsjax.app.help import options_help
    from nitsjax.config import compose

    args = _args_parser().parse_args(rest)
    overrides = [o for o in args.overrides if not _is_sweep(o)]
    try:
        cfg = compose(command, overrides)
    except Exception:  # noqa: BLE001 - the Hydra part above already said what is wrong
        return code
    print(options_help(cfg, command))
    return code


def _is_sweep(override: str) -> bool:
    return "," in override.partition("=")[2]


# ------------------------------------------------------------------------ the tasks
def _task(command: str):
    def run(cfg) -> None:
        from nitsjax import experiment as ex
        from nitsjax.config import ConfigError, validate
        from nitsjax.data._files import DataFormatError
        from nitsjax.train import FitDiverged

        try:
            if _job_number() >= _PREFLIGHT["jobs"]:  # not among the jobs preflight checked
                validate(cfg, command)
            if command == "train":
                ex.train_validated(cfg)
            elif command == "demo":
                ex.run_demo(cfg, validated=True)
            elif command == "eval":
                ex.run_eval(cfg.run, cfg.split, cfg.batch_size, cfg.data_root,
                            out_dir=ex.hydra_output_dir())
            elif command == "sample":
                ex.run_sample(cfg.run, cfg.n, cfg.seed, cfg.out, cfg.plot, cfg.data_root,
                              out_dir=ex.hydra_output_dir())
            elif command == "rd":
                from nitsjax.app.rd import run_rd

                run_rd(cfg, validated=True)
            elif command == "snf":
                from nitsjax.app.snf import run_snf

                run_snf(cfg, validated=True)
        except (ConfigError, FileNotFoundError, PermissionError, DataFormatError) as err:
            # bad config, missing / refused / malformed data file: a message, no traceback
            print(f"nitsjax {command}: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except FitDiverged as err:  # the last good checkpoint is intact
            print(f"nitsjax {command}: training diverged: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt as err:  # fit checkpoints before raising FitInterrupted
            out = ex.hydra_output_dir()
            hint = (
                f"; resume with the same command plus hydra.run.dir={out}"
                if command == "train" and out is not None else ""
            )
            print(f"nitsjax {command}: interrupted ({err}){hint}", file=sys.stderr)
            raise SystemExit(130) from None

    run.__name__ = f"nitsjax_{command}"
    run.__qualname__ = run.__name__
    return run


def _job_number() -> int:
    """The running Hydra job's number in its sweep (0 for a single run or outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 0
    num = HydraConfig.get().job.get("num")
    return int(num) if num is not None else 0


_TASKS = {c: _task(c) for c in COMMANDS}


# -------------------------------------------------------------------- preflight checks
def _args_parser() -> argparse.ArgumentParser:
    """The flags ``hydra.main`` accepts (Hydra 1.3), parsed here only to know which jobs
    the command line will run; Hydra parses them again when it runs."""
    p = argparse.ArgumentParser(prog="nitsjax <command>", add_help=False)
    p.add_argument("overrides", nargs="*")
    for flag, short in (("--help", "-h"), ("--hydra-help", None), ("--resolve", None),
                        ("--run", "-r"), ("--multirun", "-m"),
                        ("--shell-completion", "-sc")):
        p.add_argument(*[f for f in (flag, short) if f], action="store_true")
    p.add_argument("--cfg", "-c", choices=["job", "hydra", "all"])
    p.add_argument("--package", "-p")
    for flag, short in (("--config-path", "-cp"), ("--config-name", "-cn"),
                        ("--config-dir", "-cd")):
        p.add_argument(flag, short)
    p.add_argument("--experimental-rerun")
    p.add_argument("--info", "-i", const="all", nargs="?",
                   choices=["all", "config", "defaults", "defaults-tree", "plugins",
                            "searchpath"])
    return p


def preflight(command: str, args: Sequence[str], cfg_dir: Path) -> int:
    """Compose and validate every job the command line would run; raise ConfigError
    naming the key and the file at the first problem. Returns the number of jobs checked
    (0 when the flags say nothing will run, e.g. ``--help``)."""
    from nitsjax.config import ConfigError

    parsed = _args_parser().parse_args(list(args))
    if any(getattr(parsed, f, None) for f in _NO_RUN_FLAGS):
        return 0
    if command in ("eval", "sample") and parsed.config_name is None and not any(
        re.match(r"^\+{0,2}run=", o) for o in parsed.overrides
    ):
        raise ConfigError(
            f"run: required; pass the output folder of `nitsjax train`, e.g. "
            f"`nitsjax {command} run=outputs/train/<date>/<time>_maf_moons` "
            f"(run has no default in {cfg_dir / (command + '.yaml')} nor in the signature "
            f"of nitsjax.app.commands.run_{command})"
        )
    config_name = parsed.config_name or command
    jobs = expand_sweep(parsed.overrides) if parsed.multirun else [list(parsed.overrides)]
    jobs = jobs[:MAX_PREFLIGHT_JOBS]
    with _Composer(cfg_dir, parsed.config_dir, command) as composer:
        for job in jobs:
            composer.check(config_name, job)
    return len(jobs)


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The override list of each job of a basic ``-m`` sweep: the cartesian product of
    the sweep overrides' values (``a=1,2 b=x,y`` -> 4 jobs), as Hydra's basic sweeper."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from nitsjax.config import ConfigError

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        choices = {}
        for o in parsed:
            key = o.get_key_element()
            if not o.is_sweep_override():
                choices[key] = [f"{key}={o.get_value_element_as_str()}"]
            elif o.is_discrete_sweep():
                choices[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
            else:
                raise ConfigError(
                    f"{o.key_or_group}: the basic sweeper takes a list of values "
                    f"(a=1,2,3 or choice(...)); got {o.input_line!r}"
                )
    except HydraException as err:
        raise ConfigError(str(err)) from err
    return [list(job) for job in itertools.product(*choices.values())] or [[]]


class _Composer:
    """Compose configs with the search path of the ``hydra.main`` app (``configs/`` plus
    ``--config-dir``), through ``hydra.initialize_config_dir`` and ``hydra.compose``."""

    def __init__(self, cfg_dir: Path, extra_dir: Optional[str], command: str):
        self.cfg_dir, self.extra_dir, self.command = cfg_dir, extra_dir, command
        self._init = None

    def __enter__(self):
        from hydra import initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        from nitsjax.config import ConfigError, register

        register()
        if self.extra_dir is not None:
            d = os.path.abspath(self.extra_dir)
            if not os.path.isdir(d):
                raise ConfigError(f"--config-dir: no such folder {d}")
            self.extra_dir = d
        GlobalHydra.instance().clear()
        self._init = initialize_config_dir(str(self.cfg_dir), version_base="1.3",
                                           job_name=self.command)
        self._init.__enter__()
        return self

    def __exit__(self, *exc):
        self._init.__exit__(*exc)
        return False

    def compose(self, config_name: str, overrides: list[str]):
        from hydra import compose

        extra = [f"hydra.searchpath=[file://{self.extra_dir}]"] if self.extra_dir else []
        return compose(config_name, [*overrides, *extra], return_hydra_config=True)

    def check(self, config_name: str, overrides: list[str]) -> None:
        from omegaconf import OmegaConf

        from nitsjax import experiment as ex
        from nitsjax.config import ConfigError, validate

        try:
            cfg = self.compose(config_name, overrides)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - rewritten with key and file
            raise ConfigError(self._explain(err, config_name, overrides)) from None
        where = self._locator(cfg, config_name)
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        try:
            validate(job, self.command, where)
        except ConfigError as err:
            if len(overrides):
                raise ConfigError(f"{err} [job overrides: {' '.join(overrides)}]") from None
            raise
        if self.command in ("train", "demo"):  # model and data keys vs their functions
            import inspect

            from nitsjax.app.datasets import fit_dequantize
            from nitsjax.train import fit

            ex.model_options(job.model)
            for d in ("data",) if self.command == "train" else ("toy_data", "image_data"):
                ex.data_options(job[d])
                fit_dequantize(job[d], inspect.signature(fit).parameters)
        if self.command == "rd" and job.source == "data":  # data keys vs the loader
            ex.data_options(job.data)
        try:  # the output folder must resolve (it may interpolate job values)
            str(cfg.hydra.run.dir)
        except Exception as err:  # noqa: BLE001
            raise ConfigError(f"hydra.run.dir: cannot be resolved: {err}") from None

    # ------------------------------------------------------------ naming the file
    def _file(self, group: Optional[str], choice: str) -> str:
        for base in ([self.extra_dir] if self.extra_dir else []) + [str(self.cfg_dir)]:
            p = Path(base) / (f"{group}/{choice}.yaml" if group else f"{choice}.yaml")
            if p.is_file():
                return str(p)
        return f"{group}/{choice}" if group else choice

    def _locator(self, cfg, config_name: str):
        """``key -> file`` from the composed config's group choices."""
        choices = dict(cfg.hydra.runtime.choices) if "hydra" in cfg else {}
        packages = {}
        for entry, choice in choices.items():
            if entry.startswith("hydra/") or choice is None:
                continue
            group, _, pkg = entry.partition("@")
            packages[pkg or group] = (group, choice)

        def where(key: str) -> str:
            parts = key.split(".")
            for i in range(len(parts), 0, -1):
                head = ".".join(parts[:i])
                if head in packages:
                    return self._file(*packages[head])
            return self._file(None, config_name)

        return where

    def _explain(self, err: Exception, config_name: str, overrides: list[str]) -> str:
        """The message of a composition error: the key (from the OmegaConf exception's
        ``full_key``), the YAML file it comes from, Hydra's text and, for an unknown key,
        the keys the schema (``object_type``) has."""
        text = str(err).strip()
        cause = err.__cause__
        if cause is not None and str(cause) not in text:
            text = f"{text}\n{cause}"
        key = next((e.full_key for e in _causes(err) if getattr(e, "full_key", None)), None)
        if not key:
            m = re.search(r"full_key: (\S+)", text) or re.search(r"override '([^']+)'", text)
            key = m.group(1) if m else None
        m = re.search(r"^In '([^']+)'", text)  # Hydra names the config that failed
        if m:
            source = self._file(*_split_config_path(m.group(1)))
        elif key:
            source = self._where_from_group_choices(config_name, overrides)(key)
        else:
            source = self._file(None, config_name)
        schema = next((e.object_type for e in _causes(err)
                       if isinstance(getattr(e, "object_type", None), type)), None)
        lines = [f"config error at {key!r} (file: {source})" if key else
                 f"config error (file: {source})"]
        lines.append(text.replace("\n", "\n  "))
        if isinstance(schema, type) and dataclasses.is_dataclass(schema):
            keys = ", ".join(f.name for f in dataclasses.fields(schema))
            lines.append(f"valid keys of {schema.__name__}: {keys}")
        return "\n  ".join(lines)

    def _where_from_group_choices(self, config_name: str, overrides: list[str]):
        """Locator built from a composition with only the group-choice overrides."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            base = self.compose(config_name, [])
            groups = set(base.hydra.runtime.choices)
            keep = []
            for o in OverridesParser.create().parse_overrides(overrides):
                entry = o.key_or_group + (f"@{o.package}" if o.package else "")
                if entry in groups and not o.is_sweep_override():
                    keep.append(o.input_line)
            cfg = self.compose(config_name, keep)
        except Exception:  # noqa: BLE001 - fall back to the primary config
            return lambda key: self._file(None, config_name)
        return self._locator(cfg, config_name)


def _causes(err: BaseException):
    """``err`` and its chain of causes."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _split_config_path(path: str):
    group, _, name = path.rpartition("/")
    return (group or None), name


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
