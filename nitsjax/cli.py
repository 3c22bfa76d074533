"""The ``nitsjax`` command: ``nitsjax <command> [Hydra overrides and flags]``.

The first argument picks the command (train, eval, sample, demo); the rest goes to a
``hydra.main`` application whose primary config is ``configs/<command>.yaml``, so
overrides (``train.steps=2000``), group choices (``model=nsf``), sweeps (``-m``),
``--cfg job``, ``--help``, launchers and output folders work as in any Hydra app.

Before Hydra runs anything, every job of the command line (each combination of a ``-m``
sweep) is composed and validated, so an unknown key, a wrong type or a missing required
value stops the command at once, with a message naming the key and the YAML file.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from nitsjax.config import COMMANDS, ConfigError, config_dir, validate

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

`nitsjax <command> --help` lists the command's config groups and values;
`nitsjax <command> --cfg job` prints the composed config without running.
configs: {configs}
"""

# Hydra flags after which nothing runs, so nothing needs validating first.
_NO_RUN_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")
MAX_PREFLIGHT_JOBS = 256


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``nitsjax`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        try:
            where = str(config_dir())
        except ConfigError as err:
            where = f"not found ({err})"
        print(USAGE.format(configs=where))
        return 0 if argv else 2
    if argv[0] == "--version":
        from nitsjax import __version__

        print(f"nitsjax {__version__}")
        return 0
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
        preflight(command, rest, cfg_dir)
    except ConfigError as err:
        print(f"nitsjax {command}: {err}", file=sys.stderr)
        return 2
    except SystemExit as err:  # argparse of Hydra's flags
        return _code(err)
    return _run_hydra(command, rest, cfg_dir)


def _code(err: SystemExit) -> int:
    return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)


def _run_hydra(command: str, rest: list[str], cfg_dir: Path) -> int:
    import hydra

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


# ------------------------------------------------------------------------ the tasks
def _task(command: str):
    def run(cfg) -> None:
        from nitsjax import experiment as ex
        from nitsjax.data._files import DataFormatError
        from nitsjax.train import FitDiverged

        try:
            validate(cfg, command)
            if command == "train":
                ex.run_train(cfg)
            elif command == "demo":
                ex.run_demo(cfg)
            elif command == "eval":
                ex.run_eval(cfg.run, cfg.split, cfg.batch_size, cfg.data_root,
                            out_dir=ex.hydra_output_dir())
            elif command == "sample":
                ex.run_sample(cfg.run, cfg.n, cfg.seed, cfg.out, cfg.plot, cfg.data_root,
                              out_dir=ex.hydra_output_dir())
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


_TASKS = {c: _task(c) for c in COMMANDS}


# -------------------------------------------------------------------- preflight checks
def preflight(command: str, args: Sequence[str], cfg_dir: Path) -> int:
    """Compose and validate every job the command line would run; raise ConfigError
    naming the key and the file at the first problem. Returns the number of jobs checked
    (0 when the flags say nothing will run, e.g. ``--help``)."""
    from hydra._internal.utils import get_args_parser

    parsed = get_args_parser().parse_args(list(args))
    if any(getattr(parsed, f, None) for f in _NO_RUN_FLAGS):
        return 0
    if command in ("eval", "sample") and parsed.config_name is None and not any(
        re.match(r"^\+{0,2}run=", o) for o in parsed.overrides
    ):
        raise ConfigError(
            f"run: required; pass the output folder of `nitsjax train`, e.g. "
            f"`nitsjax {command} run=outputs/train/<date>/<time>_maf_moons` "
            f"(run is ??? in {cfg_dir / (command + '.yaml')})"
        )
    config_name = parsed.config_name or command
    extra_dir = parsed.config_dir
    jobs = _expand(parsed.overrides) if parsed.multirun else [list(parsed.overrides)]
    with _Composer(cfg_dir, extra_dir, command) as composer:
        for job in jobs[:MAX_PREFLIGHT_JOBS]:
            composer.check(config_name, job)
    return len(jobs[:MAX_PREFLIGHT_JOBS])


def _expand(overrides: list[str]) -> list[list[str]]:
    """The override list of each job of a basic ``-m`` sweep (cartesian product)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        batches = BasicSweeper.split_arguments(parsed, None)
    except HydraException as err:
        raise ConfigError(str(err)) from err
    return [job for batch in batches for job in batch] or [[]]


class _Composer:
    """Compose configs with the same search path as the ``hydra.main`` app."""

    def __init__(self, cfg_dir: Path, extra_dir: Optional[str], command: str):
        self.cfg_dir, self.extra_dir, self.command = cfg_dir, extra_dir, command

    def __enter__(self):
        from hydra._internal.hydra import Hydra
        from hydra._internal.utils import create_automatic_config_search_path
        from hydra.core.config_search_path import SearchPathQuery
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        sp = create_automatic_config_search_path(None, None, str(self.cfg_dir))
        if self.extra_dir is not None:
            d = os.path.abspath(self.extra_dir)
            if not os.path.isdir(d):
                raise ConfigError(f"--config-dir: no such folder {d}")
            sp.prepend("command-line", f"file://{d}", anchor=SearchPathQuery(provider="schema"))
        self.hydra = Hydra.create_main_hydra2(task_name=self.command, config_search_path=sp)
        return self

    def __exit__(self, *exc):
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        return False

    def compose(self, config_name: str, overrides: list[str]):
        from hydra.types import RunMode

        return self.hydra.compose_config(
            config_name, overrides, run_mode=RunMode.RUN, with_log_configuration=False
        )

    def check(self, config_name: str, overrides: list[str]) -> None:
        try:
            cfg = self.compose(config_name, overrides)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - rewritten with key and file
            raise ConfigError(self._explain(err, config_name, overrides)) from None
        where = self._locator(cfg, config_name)
        job = {k: v for k, v in cfg.items() if k != "hydra"}
        from omegaconf import OmegaConf

        job = OmegaConf.masked_copy(cfg, list(job))
        try:
            validate(job, self.command, where)
        except ConfigError as err:
            if len(overrides):
                raise ConfigError(f"{err} [job overrides: {' '.join(overrides)}]") from None
            raise
        if self.command in ("train", "demo"):  # model and data keys vs their functions
            from nitsjax import experiment as ex

            ex.model_options(job.model)
            for d in ("data",) if self.command == "train" else ("toy_data", "image_data"):
                ex.data_options(job[d])
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
        text = str(err).strip()
        cause = err.__cause__
        if cause is not None and str(cause) not in text:
            text = f"{text}\n{cause}"
        key = getattr(cause, "full_key", None)
        if not key:
            m = re.search(r"full_key: (\S+)", text) or re.search(r"override '([^']+)'", text)
            key = m.group(1) if m else None
        m = re.search(r"^In '([^']+)'", text)
        if m:
            source = self._file(*_split_config_path(m.group(1)))
        elif key:
            source = self._where_from_group_choices(config_name, overrides)(key)
        else:
            source = self._file(None, config_name)
        obj = re.search(r"object_type=(\w+)", text)
        known = _schema_keys(obj.group(1)) if obj else None
        lines = [f"config error at {key!r} (file: {source})" if key else
                 f"config error (file: {source})"]
        lines.append(text.replace("\n", "\n  "))
        if known:
            lines.append(f"valid keys of {obj.group(1)}: {', '.join(known)}")
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


def _split_config_path(path: str):
    group, _, name = path.rpartition("/")
    return (group or None), name


def _schema_keys(type_name: str) -> Optional[list[str]]:
    import dataclasses

    from nitsjax import config as C

    obj = getattr(C, type_name, None)
    if obj is None or not dataclasses.is_dataclass(obj):
        return None
    return [f.name for f in dataclasses.fields(obj)]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
