"""Config schemas derived from function signatures: one declaration per option.

``signature_schema(fn, ...)`` turns ``fn``'s keyword-only parameters into the fields of an
OmegaConf structured config (a dataclass): the parameter's annotation gives the field type,
its default the field default (a parameter without a default is required: ``???``). So a
flow constructor's or ``nitsjax.fit``'s signature is the only place an option's name,
type and default are written; the YAML files hold presets (what differs).

Which parameters are config material is a rule, not a list:

* positional parameters are the call's inputs (``dim``; ``flow, params, train, val``);
* a keyword-only parameter whose type is not plain data (a callable, an array, an optax
  transformation, any class other than bool/int/float/str and lists/optionals of them) is
  left to Python callers (``loss``, ``callback``, ``optimizer``, ``key``);
* ``exclude`` names what the caller supplies itself (``context_dim``, ``checkpoint_dir``).

Types: ``Sequence[int]``/``tuple`` -> ``List[int]``, ``X | None`` -> ``Optional[X]``; a
union keeps its plain members (``seed: int | Generator`` -> ``int``; none: not config
material), several of them -> ``Any``; an unannotated parameter -> ``Any`` (the
signature declares no type: annotate it to have values checked).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import re
import types
import typing
from typing import Any, Callable, Dict, List, Optional, Union

from omegaconf import MISSING

PLAIN = (bool, int, float, str)
_NOT_CONFIG = object()  # a type that is not config material


def config_type(annotation, default=inspect.Parameter.empty):
    """The OmegaConf field type for a parameter, or ``_NOT_CONFIG``."""
    if annotation is inspect.Parameter.empty:  # no declared type: any plain value
        return Any if _is_config_value(default) or default is inspect.Parameter.empty \
            else _NOT_CONFIG
    if annotation is Any:
        return Any
    if annotation in PLAIN:
        return annotation
    if annotation is type(None):
        return Any
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):  # keeps the members a config can hold
        inner = [a for a in args if a is not type(None)]
        mapped = [m for m in map(config_type, inner) if m is not _NOT_CONFIG]
        if not mapped:
            return _NOT_CONFIG
        one = mapped[0] if len(set(mapped)) == 1 else Any  # OmegaConf 2.3: no Union
        return Optional[one] if len(inner) < len(args) and one is not Any else one
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        return kinds.pop() if len(kinds) == 1 and kinds <= set(PLAIN) else Any
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence):
        mapped = {config_type(a) for a in args if a is not Ellipsis}
        if _NOT_CONFIG in mapped:
            return _NOT_CONFIG
        return List[mapped.pop() if len(mapped) == 1 else Any]
    if annotation in (list, tuple, collections.abc.Sequence):
        return List[Any]
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        return Dict[str, Any]
    return _NOT_CONFIG


def _config_default(value):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, (list, dict)):
        return dataclasses.field(default_factory=lambda v=value: _copy(v))
    return value


def _copy(v):
    if isinstance(v, (list, tuple)):
        return [_copy(a) for a in v]
    if isinstance(v, dict):
        return {k: _copy(a) for k, a in v.items()}
    return v


def _is_config_value(v) -> bool:
    if v is None or isinstance(v, PLAIN):
        return True
    if isinstance(v, (list, tuple)):
        return all(_is_config_value(a) for a in v)
    return False


def options(fn: Callable, exclude=(), positional: bool = False) -> dict[str, tuple[Any, Any]]:
    """``{name: (config type, default)}`` of ``fn``'s config options (module docstring);
    ``default`` is ``inspect.Parameter.empty`` for a required option. ``positional``: a
    function all of whose arguments are options (a data loader's ``root``, ``path``)."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: use defaults
        hints = {}
    out = {}
    for p in sig.parameters.values():
        kinds = (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) if positional else (p.KEYWORD_ONLY,)
        if p.kind not in kinds or p.name in exclude:
            continue
        if p.default is not p.empty and not _is_config_value(p.default):
            continue  # a callable or an object default: Python callers only
        t = config_type(hints.get(p.name, p.empty), p.default)
        if t is _NOT_CONFIG:
            continue
        out[p.name] = (t, p.default)
    return out


def signature_schema(fn: Callable, name: str, *, bases=(), exclude=(), defaults=None,
                     doc: Optional[str] = None, positional: bool = False) -> type:
    """A dataclass named ``name`` with one field per config option of ``fn``.

    ``bases``: dataclasses whose fields come first (e.g. ``ModelConfig``: ``name``,
    ``logit``); ``defaults``: values for fields of ``bases`` (``{"name": "maf"}``)."""
    fields = []
    for key, (t, default) in options(fn, exclude, positional).items():
        value = MISSING if default is inspect.Parameter.empty else default
        if value is None and t is not Any and typing.get_origin(t) is not Union:
            t = Optional[t]
        fields.append((key, t, _config_default(value)))
    for key, value in (defaults or {}).items():
        fields.append((key, type(value) if type(value) in PLAIN else Any, value))
    cls = dataclasses.make_dataclass(name, fields, bases=tuple(bases))
    cls.__doc__ = doc or f"Options of ``{fn.__module__}.{fn.__qualname__}`` (its signature)."
    cls.__module__ = "nitsjax.config"
    cls.__signature_source__ = fn
    return cls


def option_docs(fn: Callable) -> dict[str, str]:
    """``{argument: description}`` from the ``Args:`` section of ``fn``'s docstring
    (Google style; ``a, b: text`` describes both), for ``--help``."""
    doc = inspect.getdoc(fn) or ""
    out: dict[str, str] = {}
    names: list[str] = []
    inside = False
    for line in doc.splitlines():
        if line.strip() == "Args:":
            inside = True
            continue
        if not inside:
            continue
        if line and not line.startswith(" "):
            break  # the next section
        item = re.match(r"^  (\w+(?:, \w+)*):\s*(.*)$", line)
        if item:
            names = item.group(1).split(", ")
            for n in names:
                out[n] = item.group(2)
        elif line.strip() and names:
            for n in names:
                out[n] += " " + line.strip()
    return out
