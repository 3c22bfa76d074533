"""Named constructors: the one place a flow (or another kind of method) is registered.

A flow module defines its constructor ``f(dim, *, option=default, ...) -> Flow``; one line
in ``nitsjax/flows/__init__.py`` registers it::

    register("maf", maf)

Everything else derives from that registration and the constructor's signature: the
command line's ``model=<name>`` builds ``get(name)(dim, **model options)``, and the config
schema of ``model.<option>`` (types, defaults, ``--help``) is generated from the signature
by the application layer (``nitsjax.config``). The core never imports the application.

``kind`` separates namespaces (``"flow"`` today; later methods register their own kind).
"""

from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, dict[str, Callable]] = {}


def register(name: str, constructor: Callable, kind: str = "flow") -> Callable:
    """Register ``constructor`` under ``name`` (returns it, so it can decorate).

    Registering the same constructor again is a no-op; another constructor under a taken
    name is a ``ValueError`` (pick another name)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: expected an identifier such as 'my_flow', got {name!r}")
    if not callable(constructor):
        raise TypeError(f"constructor: expected a callable, got {type(constructor).__name__}")
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


def names(kind: str = "flow") -> list[str]:
    """Registered names of ``kind``, sorted."""
    return sorted(_REGISTRY.get(kind, {}))


def _qualname(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
