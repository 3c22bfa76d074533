"""``nitsjax train --help``: every option of the chosen model and of training, with its
type and default from the signature and its description from the docstring."""

from __future__ import annotations

import inspect
import textwrap
import typing

from omegaconf import OmegaConf

from nitsjax.app.schema import option_docs, options

_EMPTY = inspect.Parameter.empty


def _type_name(t) -> str:
    if t is typing.Any:
        return "any"
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return " | ".join(_type_name(a) for a in inner) + " | null"
    if origin is list:
        return f"list[{_type_name(args[0])}]" if args else "list"
    return getattr(t, "__name__", str(t))


def _section(title: str, prefix: str, fn, current: dict, exclude=(),
             positional: bool = False) -> list[str]:
    docs = option_docs(fn)
    lines = [f"== {title}: {fn.__module__}.{fn.__qualname__} ==", ""]
    for key, (t, default) in options(fn, exclude, positional).items():
        required = default is _EMPTY
        value = current.get(key, "???" if required else default)
        head = f"  {prefix}.{key}: {_type_name(t)} = {_show(value)}"
        if required:
            head += "  (required: no default in the signature)"
        elif _show(value) != _show(default):
            head += f"  (signature default {_show(default)})"
        lines.append(head)
        if key in docs:
            lines += textwrap.wrap(docs[key], 88, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6)
    return lines + [""]




def _show(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        v = list(v)
    return str(v)


def options_help(cfg, command: str = "train") -> str:
    """The options of a composed config, current values next to the signature defaults:
    ``model``, ``train`` and the data set(s) of ``train``/``demo``; the command function's
    arguments for ``eval``/``sample``."""
    from nitsjax.app import commands
    from nitsjax.app.models import flow_constructor
    from nitsjax.config import (
        COMMAND_SUPPLIED,
        DATA_SUPPLIED,
        FIT_SUPPLIED,
        MODEL_SUPPLIED,
        data_loader,
    )
    from nitsjax.train import fit

    if command in ("eval", "sample"):
        fn = getattr(commands, f"run_{command}")
        current = OmegaConf.to_container(cfg, resolve=False)
        lines = _section(f"Options of nitsjax {command}", "", fn, current, COMMAND_SUPPLIED,
                         positional=True)
        return "\n".join(line.replace("  .", "  ", 1) for line in lines)

    if command == "rd":  # the bounds' signatures, then the data set's loader
        from nitsjax.app.rd import options_sections

        lines = []
        for section in options_sections(cfg):
            lines += _section(*section)
        data = OmegaConf.to_container(cfg.data, resolve=False)
        lines += _section(f"Data options (data={data['name']}, with source=data)", "data",
                          data_loader(data["name"]), data, DATA_SUPPLIED, positional=True)
        return "\n".join(lines)

    if command == "snf":  # the flow, nj.snf.fit_reverse and the target
        from nitsjax.snf import fit_reverse
        from nitsjax.snf.targets import TARGETS

        flow = OmegaConf.to_container(cfg.flow, resolve=False)
        target = OmegaConf.to_container(cfg.target, resolve=False)
        lines = _section(f"Flow options (model@flow={flow['name']})", "flow",
                         flow_constructor(flow["name"]), flow, MODEL_SUPPLIED)
        lines += _section("Fit options (fit.*: nj.snf.fit_reverse)", "fit", fit_reverse,
                          OmegaConf.to_container(cfg.fit, resolve=False), ())
        lines += _section(f"Target options (target={target['name']})", "target",
                          TARGETS[target["name"]], target, (), positional=True)
        lines.append("chain: a list of `flow` and {langevin|metropolis|vae_layer: {options}} "
                     "(nj.snf.langevin, metropolis, vae_layer); see configs/snf.yaml")
        return "\n".join(lines)

    model = OmegaConf.to_container(cfg.model, resolve=False)
    train = OmegaConf.to_container(cfg.train, resolve=False)
    ctor = flow_constructor(model["name"])
    lines = _section(f"Model options (model={model['name']})", "model", ctor, model,
                     MODEL_SUPPLIED)
    lines.insert(2, "  model.logit: float | null = "
                    f"{_show(model.get('logit'))}")
    lines.insert(3, "      null, or alpha in [0, 0.5): x -> logit(alpha + (1 - 2 alpha) x) "
                    "before the flow (data in [0, 1)).")
    lines += _section("Training options (train.*)", "train", fit, train, FIT_SUPPLIED)
    for key in ("data", "toy_data", "image_data"):
        if key in cfg:
            data = OmegaConf.to_container(cfg[key], resolve=False)
            lines += _section(f"Data options ({key}={data['name']})", key,
                              data_loader(data["name"]), data, DATA_SUPPLIED, positional=True)
    return "\n".join(lines)
