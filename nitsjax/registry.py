"""Named constructors: the one place a flow (or another kind of method) is registered.

A flow module defines its constructor ``f(dim, *, option=default, ...) -> Flow``; one line
in ``nitsjax/flows/__init__.py`` registers it::

    register("maf", maf)

Everything else derives from that registration and the constructor's signature: the
command line's ``model=<name>`` builds ``get(name)(dim, **model options)``, and the config
schema of ``model.<option>`` (types, defaults, ``--help``) is generated from the signature
by the application layer (``nitsjax.config``). The core never imports the application.

``kind`` separates namespaces: ``"flow"`` (a constructor ``f(dim, **options) -> Flow``,
trained by ``nj.fit``), ``"model"`` (trainable models that are not flows,
``nitsjax.models``, also trained by ``nj.fit``), ``"transport"`` (a fitter
``f(x_train, x_val, **options) -> (flow, params, info)`` that fits itself, e.g.
``nj.transport.fit_atm`` as ``"atm"``) and ``"loss"`` (``nj.fit``'s objectives,
``nitsjax.losses``). A name is unique across kinds, so ``model=<name>`` (which looks in
``MODEL_KINDS``) is unambiguous.
"""

from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, dict[str, Callable]] = {}
#: the kinds ``model=<name>`` chooses from (``get_model``)
MODEL_KINDS = ("flow", "model", "transport")


def register(name: str, constructor: Callable, kind: str = "flow") -> Callable:
    """Register ``constructor`` under ``name`` (returns it, so it can decorate).

    Registering the same constructor again is a no-op; another constructor under a taken
    name is a ``ValueError`` (pick another name)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: expected an identifier such as 'my_flow', got {name!r}")
    if not callable(constructor):
        raise TypeError(f"constructor: expected a callable, got {type(constructor).__name__}")
    for other, names_ in _REGISTRY.items():
        if other != kind and name in names_:
            raise ValueError(f"name: {name!r} is already registered as a {other}; "
                             f"register the {kind} under another name")
    table = _REGISTRY.setdefault(kind, {})
    old = table.get(name)
    if old is not None and old is not constructor:
        raise ValueError(
            f"name: {kind} {name!r} is already registered ({_qualname(old)}); register "
            f"{_qualname(constructor)} under another name"
        )
    table[name] = constructor
    return constructor


def get(name: str, kind: str = "flow") -> Callable:
    """The constructor registered as ``name``; a ``KeyError`` listing the names if none."""
    table = _REGISTRY.get(kind, {})
    if name not in table:
        raise KeyError(
            f"{kind} {name!r} is not registered; registered {kind}s: "
            f"{', '.join(sorted(table)) or 'none'} (nitsjax.registry.register adds one)"
        )
    return table[name]


def get_model(name: str) -> Callable:
    """The flow or model constructor (or transport fitter) registered as ``name``
    (``model=<name>``); a ``KeyError`` listing them all if none."""
    for kind in MODEL_KINDS:
        if name in _REGISTRY.get(kind, {}):
            return _REGISTRY[kind][name]
    raise KeyError(f"{name!r} is not a registered flow or model; registered: "
                   f"{', '.join(model_names()) or 'none'} (nitsjax.registry.register adds one)")


def model_names() -> list[str]:
    """Names of every registered flow and model, sorted."""
    return sorted(n for kind in MODEL_KINDS for n in _REGISTRY.get(kind, {}))


def kind_of(name: str) -> str:
    """The kind ``name`` is registered under (``"flow"`` when it is not registered)."""
    for kind, table in _REGISTRY.items():
        if name in table:
            return kind
    return "flow"


def names(kind: str = "flow") -> list[str]:
    """Registered names of ``kind``, sorted."""
    return sorted(_REGISTRY.get(kind, {}))


def _qualname(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
