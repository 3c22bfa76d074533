"""A ``Flow`` (or another model) from a model config: ``name`` picks the registered
constructor (``nitsjax.registry``), every other key is its keyword argument, ``logit`` a
preprocessing layer in front.

Calling conventions, told apart by the constructor's first parameter:

- ``dim`` (every flow): ``ctor(dim, **options)``, plus ``context_dim=`` when the data set
  is conditional (``data.target``): a conditional flow of the target columns given the
  others;
- ``x_dim`` (conditional density models, ``ddn``, ``mdn``: ``ctor(x_dim, y_dim,
  **options)``): ``ctor(context_dim, dim, **options)``; they need ``data.target``;
- ``shape`` (image models, ``image_nits``): ``ctor((H, W, C), **options)``.

A flow fitted in part from the data before training (``tensorizing``: its tensor-train
base) takes the training rows as the keyword ``x_train`` (not a config option: an array);
``build_flow`` passes them when given, and a reloaded run builds it without them and loads
the fitted part from its params.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from nitsjax import registry
from nitsjax.config import ConfigError, to_container


def flow_constructor(name: str) -> Callable:
    """The registered constructor (or transport fitter, ``is_transport``) of
    ``model.name=<name>``; a ConfigError listing the registered names otherwise."""
    import nitsjax.flows  # noqa: F401  (registers the built-in flows)
    import nitsjax.models  # noqa: F401  (and models)
    import nitsjax.transport  # noqa: F401  (and transport fitters)

    try:
        return registry.get_model(name)
    except KeyError:
        raise ConfigError(
            f"model.name: unknown model {name!r}; expected one of {registry.model_names()} "
            "(nitsjax.registry.register adds one)"
        ) from None


def is_transport(model_cfg) -> bool:
    """Whether ``model.name`` is a transport fitter (``atm``): fitted by its own
    function on the training and validation rows, not built here and trained by ``fit``."""
    import nitsjax.transport  # noqa: F401

    return registry.kind_of(to_container(model_cfg)["name"]) == "transport"


def fit_transport(model_cfg, train, val):
    """``(flow, params, info)`` of a transport fitter from its model config."""
    ctor, kw = model_options(model_cfg)
    if to_container(model_cfg).get("logit") is not None:
        raise ConfigError(f"model.logit: not supported by {model_cfg.name}; leave it null")
    return ctor(train, val, **{k: _frozen(v) for k, v in kw.items()})


def transport_flow(model_cfg, dim: int, terms: int):
    """The (unfitted) flow a transport fit returns, rebuilt to load its params: ``terms``
    slots per component (the params' ``coef`` width)."""
    from nitsjax.transport import atm_flow

    kw = to_container(model_cfg)
    keep = ("basis", "rectifier", "max_degree", "quadrature")
    return atm_flow(dim, terms=terms, **{k: kw[k] for k in keep if k in kw})


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
    inputs = ("dim", "x_dim", "y_dim")  # the call's inputs, not options
    if registry.kind_of(name) == "transport":  # a fitter: its keyword-only parameters
        accepted = [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]
    else:
        accepted = [p for p in sig.parameters if p not in inputs]
    unknown = [k for k in kw if k not in accepted]
    if unknown and not takes_any:
        raise ConfigError(
            f"model.{unknown[0]}: the {name} flow ({ctor.__module__}.{ctor.__name__}) has no "
            f"argument {unknown[0]!r}; its arguments are {', '.join(accepted)}"
        )
    return ctor, kw


def _frozen(v):
    return tuple(_frozen(a) for a in v) if isinstance(v, (list, tuple)) else v


def takes_image_shape(model_cfg) -> bool:
    """Whether the model's constructor takes an image ``shape`` (``image_nits``) instead
    of ``dim``: its data are 8-bit images, loaded as raw pixel values 0..255."""
    import inspect

    ctor = flow_constructor(to_container(model_cfg)["name"])
    first = next(iter(inspect.signature(ctor).parameters), None)
    return first == "shape"


def is_conditional_model(model_cfg) -> bool:
    """Whether the model's constructor takes ``(x_dim, y_dim, ...)`` (``ddn``, ``mdn``):
    a model of ``p(y | x)`` only, built from a conditional data set (``data.target``)."""
    import inspect

    ctor = flow_constructor(to_container(model_cfg)["name"])
    first = next(iter(inspect.signature(ctor).parameters), None)
    return first == "x_dim"


def takes_training_rows(model_cfg) -> bool:
    """Whether the model's constructor takes the training rows ``x_train`` (``tensorizing``
    fits its tensor-train base on them before training)."""
    import inspect

    ctor = flow_constructor(to_container(model_cfg)["name"])
    return "x_train" in inspect.signature(ctor).parameters


def image_model_shape(image_shape, dim: int, channels_first: bool = False) -> tuple:
    """``(H, W, C)`` of an image model from the data's ``image_shape`` (``(H, W)``: one
    channel; ``(C, H, W)`` when ``channels_first``, CIFAR-10's layout)."""
    if image_shape is None:
        raise ConfigError(
            "data.image_shape: this model takes images; use an image data set (data=mnist, "
            "data=cifar10) or set data.image_shape=[H,W] / [H,W,C]"
        )
    s = tuple(int(v) for v in image_shape)
    if len(s) == 2:
        shape = s + (1,)
    elif len(s) == 3 and channels_first and s[0] < s[-1]:  # written (C, H, W)
        shape = (s[1], s[2], s[0])
    else:
        shape = s
    if len(shape) != 3 or int(np.prod(shape)) != dim:
        raise ConfigError(f"data.image_shape: {list(s)} does not describe rows of {dim} values")
    return shape


def build_flow(model_cfg, dim: int, context_dim: Optional[int] = None,
               image_shape: Optional[tuple] = None, x_train=None):
    """A ``Flow`` on R^dim from a model config: ``name`` picks the constructor, every
    other key is a keyword argument (lists become tuples). Unknown keys raise a
    ``ConfigError`` naming the key and the constructor's arguments. An image model
    (``takes_image_shape``) is built on ``image_model_shape(image_shape, dim)``.

    ``context_dim`` (the number of context columns of a conditional data set) makes a
    flow conditional and is the ``x_dim`` of a conditional model (module docstring).

    Flows are values: the same config and ``dim`` give equal flows (``Flow.spec``), and
    the compiled functions of ``fit`` and ``Flow`` are keyed on that value, so the jobs of
    a sweep over training settings (``-m train.learning_rate=...``) compile once.

    ``x_train``: the training rows, passed to a constructor that takes ``x_train``
    (``takes_training_rows``; module docstring)."""
    if is_transport(model_cfg):
        name = to_container(model_cfg)["name"]
        raise ConfigError(f"model.name: {name} fits itself from the data "
                          f"(nitsjax.app.models.fit_transport), it is not built from a dim")
    ctor, kw = model_options(model_cfg)
    alpha = logit_alpha(to_container(model_cfg).get("logit"))
    kw = {k: _frozen(v) for k, v in kw.items()}
    if is_conditional_model(model_cfg):
        name = to_container(model_cfg)["name"]
        if context_dim is None:
            raise ConfigError(
                f"data.target: model={name} is a conditional density model p(y | x); choose "
                "the columns it predicts, e.g. data.target=[0] (the others become x)"
            )
        if alpha is not None:
            raise ConfigError(f"model.logit: not available for model={name}; leave it null")
        return ctor(context_dim, dim, **kw)
    if context_dim is not None:
        kw["context_dim"] = context_dim
    if x_train is not None and takes_training_rows(model_cfg):
        kw["x_train"] = x_train
    if takes_image_shape(model_cfg):
        shape = image_model_shape(image_shape, dim, bool(kw.get("channels_first", False)))
        return with_logit(ctor(shape, **kw), alpha)
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
    if not hasattr(flow, "with_preprocessing"):
        raise ConfigError(f"model.logit: {type(flow).__name__} takes no preprocessing layer "
                          "(only flows do); leave model.logit null")
    from nitsjax.bijectors.elementwise import logit

    return flow.with_preprocessing(logit(0.0, 1.0, alpha=alpha), spec=("logit", alpha))
