"""A ``Dataset`` (splits in model units, and the map back to the data's original units)
from a data config: ``nitsjax.data.load(name, **options)``, options checked against the
loader's signature."""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Optional

import numpy as np

from nitsjax.config import ConfigError, to_container


@dataclasses.dataclass
class Dataset:
    """Train / validation / test splits in model units, plus the map back to the data's
    original units (``original = x * scale + shift``; both None when nothing was done).

    A conditional data set (``data.target``) holds the target columns in ``train`` /
    ``val`` / ``test`` (``shift``/``scale`` are theirs) and the other columns, the
    context, in ``contexts`` (``{"train": ..., "val": ..., "test": ...}``)."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    shift: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None
    image_shape: Optional[tuple] = None
    contexts: Optional[dict] = None
    target: Optional[tuple] = None

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    @property
    def context_dim(self) -> Optional[int]:
        """Number of context columns; None for a joint (unconditional) data set."""
        return None if self.contexts is None else int(self.contexts["train"].shape[1])

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split: expected train, val or test, got {name!r}")
        return getattr(self, name)

    def context(self, name: str) -> Optional[np.ndarray]:
        """The context rows of split ``name`` (None for a joint data set)."""
        self.split(name)
        return None if self.contexts is None else self.contexts[name]

    def to_original(self, x):
        return to_original(x, self.shift, self.scale)


def to_original(x, shift, scale):
    """``x * scale + shift`` (each skipped when None), as numpy."""
    x = np.asarray(x)
    if scale is not None:
        x = x * scale
    if shift is not None:
        x = x + shift
    return x


def log_scale(scale) -> float:
    """``sum(log scale)``: what standardising added to every log-density."""
    return 0.0 if scale is None else float(np.sum(np.log(np.asarray(scale, np.float64))))


def loader_params(name: str) -> list[str]:
    """The options the loader of data set ``name`` takes."""
    from nitsjax.data import tabular
    from nitsjax.data.registry import REGISTRY

    fn = tabular.load_file if name == "file" else REGISTRY[name].loader
    return [p for p in inspect.signature(fn).parameters if p != "return_info"]


def data_options(data_cfg, root: Optional[str] = None) -> tuple[str, dict]:
    """``(name, loader options)`` of a data config, checked against the loader's
    signature: an option it does not take is a ConfigError naming ``data.<key>``.
    ``dequantize`` is a loader option only for loaders that take it (``fit_dequantize``)."""
    from nitsjax.data.registry import REGISTRY

    kw = to_container(data_cfg)
    name = kw.pop("name")
    kw.pop("image_shape", None)
    kw.pop("target", None)
    kw.update(kw.pop("kwargs", None) or {})
    if name not in REGISTRY:
        raise ConfigError(f"data.name: unknown data set {name!r}; expected one of {list(REGISTRY)}")
    params = loader_params(name)
    if "dequantize" not in params:
        kw.pop("dequantize", None)
    elif kw.get("dequantize") is None:
        kw.pop("dequantize", None)
    if root is not None:
        if "root" not in params:
            raise ConfigError(f"data_root: the {name!r} data set reads no files")
        kw["root"] = root
    if kw.get("root", 0) is None:
        kw.pop("root")
    for k in kw:
        if k not in params:
            raise ConfigError(
                f"data.{k}: the {name!r} data set does not take {k!r}; it takes "
                f"{', '.join(params) or 'no options'}"
            )
    return name, kw


def fit_dequantize(data_cfg, fit_params) -> dict:
    """``{"dequantize": value}`` for ``fit`` when the data config sets ``dequantize`` and
    its loader does not take it (the loader dequantises when it can: it knows the
    columns' steps), ``{"dequantize": False}`` when the loader took ``false``; ``{}``
    otherwise. A value nothing takes is a ConfigError."""
    value = data_cfg.get("dequantize") if hasattr(data_cfg, "get") else None
    if value is None:
        return {}
    if "dequantize" in loader_params(data_cfg["name"]):
        # the loader decided; ``false`` means no dequantisation anywhere, fit's included
        return {"dequantize": False} if value is False else {}
    if "dequantize" not in fit_params:
        raise ConfigError(
            f"data.dequantize: the {data_cfg['name']!r} loader does not dequantise and this "
            "version of nitsjax.fit takes no dequantize argument; leave it null"
        )
    return {"dequantize": value}


def load_data(data_cfg, root: Optional[str] = None, *, raw_pixels: bool = False) -> Dataset:
    """Load the data set a data config names (``root`` overrides ``data.root``).

    When the loader standardised the data its ``mean``/``std`` become ``shift``/``scale``,
    so samples and densities can be mapped back to the data's original units.
    ``raw_pixels`` (image models: ``image_nits``, which model the 8-bit values and report
    the dequantised bits/dim themselves): the loader's integer values 0..255, whatever
    ``data.dequantize`` says (the image loaders' default is to dequantise)."""
    from nitsjax import data as D
    from nitsjax.data import tabular

    name, kw = data_options(data_cfg, root)
    if raw_pixels:
        if "dequantize" not in loader_params(name):
            raise ConfigError(
                f"data.name: this model gives probabilities of 8-bit images; {name!r} is not "
                f"an image data set (use data=mnist or data=cifar10)"
            )
        kw["dequantize"] = False
    if name == "file":  # load_file's own signature names every option
        (train, val, test), info = tabular.load_file(return_info=True, **kw)
    else:
        (train, val, test), info = D.load(name, return_info=True, **kw)
    shift = scale = None
    if info.get("std") is not None:
        scale = np.asarray(info["std"], np.float64)
        shift = np.asarray(info["mean"], np.float64)
    image_shape = data_cfg.get("image_shape") or info.get("image_shape")
    splits = [np.ascontiguousarray(a, dtype=np.float32) for a in (train, val, test)]
    if image_shape is not None and math.prod(image_shape) != splits[0].shape[1]:
        raise ConfigError(
            f"data.image_shape: {list(image_shape)} has {math.prod(image_shape)} values but the "
            f"{name} rows have {splits[0].shape[1]}"
        )
    target = data_cfg.get("target") if hasattr(data_cfg, "get") else None
    if target is not None:
        return conditional(Dataset(name, *splits, shift=shift, scale=scale), target)
    return Dataset(
        name, *splits, shift=shift, scale=scale,
        image_shape=None if image_shape is None else tuple(image_shape),
    )


def conditional(data: Dataset, target) -> Dataset:
    """``data`` split into the ``target`` columns (the modelled ``y``) and the others
    (the context ``x``), for a model of ``p(y | x)``; a ConfigError naming
    ``data.target`` for indices that are not distinct columns or that leave no context."""
    d = data.dim
    cols = [target] if isinstance(target, (int, np.integer, str)) else list(target)
    ok = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cols)
    if not cols or not ok or len(set(cols)) != len(cols) or not all(0 <= c < d for c in cols) \
            or len(cols) == d:
        raise ConfigError(
            f"data.target: expected distinct column indices in 0..{d - 1} that leave at least "
            f"one context column (the {data.name} rows have {d} columns), got {target!r}"
        )
    rest = [c for c in range(d) if c not in cols]

    def pick(a, c):
        return None if a is None else np.ascontiguousarray(np.asarray(a)[..., c])

    return Dataset(
        data.name, *(pick(data.split(s), cols) for s in ("train", "val", "test")),
        shift=pick(data.shift, cols), scale=pick(data.scale, cols),
        contexts={s: pick(data.split(s), rest) for s in ("train", "val", "test")},
        target=tuple(int(c) for c in cols),
    )
