"""A ``Flow`` from a model config: ``name`` picks the registered constructor
(``nitsjax.registry``), every other key is its keyword argument, ``logit`` a preprocessing
layer in front."""

from __future__ import annotations

from typing import Callable, Optional

from nitsjax import registry
from nitsjax.config import ConfigError, to_container


def flow_constructor(name: str) -> Callable:
    """The registered constructor of ``model.name=<name>``; a ConfigError listing the
    registered names otherwise."""
    import nitsjax.flows  # noqa: F401  (registers the built-in flows)

    try:
        return registry.get(name, "flow")
    except KeyError:
        raise ConfigError(
            f"model.name: unknown flow {name!r}; expected one of {registry.names('flow')} "
            "(nitsjax.registry.register adds one)"
        ) from None


def model_options(model_cfg) -> tuple[Callable, dict]:
    """``(constructor, keyword arguments)`` of a model config, checked against the
    constructor's signature: a key it does not take is a ConfigError naming
    ``model.<key>`` and listing the arguments it does take."""
    import inspect

    kw = to_container(model_cfg)
    if "name" not in kw:
        raise ConfigError(f"model.name: missing; the model config has keys {sorted(kw)}")
    logit_alpha(kw.pop("logit", None))  # a preprocessing layer, not a constructor argument
    name = kw.pop("name")
    ctor = flow_constructor(name)
    sig = inspect.signature(ctor)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    accepted = [p for p in sig.parameters if p != "dim"]
    unknown = [k for k in kw if k not in sig.parameters or k == "dim"]
    if unknown and not takes_any:
        raise ConfigError(
            f"model.{unknown[0]}: the {name} flow ({ctor.__module__}.{ctor.__name__}) has no "
            f"argument {unknown[0]!r}; its arguments are {', '.join(accepted)}"
        )
    return ctor, kw


def _frozen(v):
    return tuple(_frozen(a) for a in v) if isinstance(v, (list, tuple)) else v


def build_flow(model_cfg, dim: int, context_dim: Optional[int] = None):
    """A ``Flow`` on R^dim from a model config: ``name`` picks the constructor, every
    other key is a keyword argument (lists become tuples). Unknown keys raise a
    ``ConfigError`` naming the key and the constructor's arguments.

    Flows are values: the same config and ``dim`` give equal flows (``Flow.spec``), and
    the compiled functions of ``fit`` and ``Flow`` are keyed on that value, so the jobs of
    a sweep over training settings (``-m train.learning_rate=...``) compile once."""
    ctor, kw = model_options(model_cfg)
    alpha = logit_alpha(to_container(model_cfg).get("logit"))
    kw = {k: _frozen(v) for k, v in kw.items()}
    if context_dim is not None:
        kw["context_dim"] = context_dim
    return with_logit(ctor(dim, **kw), alpha)


def logit_alpha(alpha) -> Optional[float]:
    """``model.logit``: None or a number in [0, 0.5)."""
    if alpha is None:
        return None
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < 0.5:
        raise ConfigError(f"model.logit: expected null or a number in [0, 0.5), got {alpha!r}")
    return float(alpha)


def with_logit(flow, alpha: Optional[float]):
    """``flow`` behind ``x -> logit(alpha + (1 - 2 alpha) x)`` (data in [0, 1)); the
    log-likelihood includes the logit's log-determinant, samples come back in [0, 1)."""
    if alpha is None:
        return flow
    from nitsjax.bijectors.elementwise import logit

    return flow.with_preprocessing(logit(0.0, 1.0, alpha=alpha), spec=("logit", alpha))
