"""``elf``: Exact-Lipschitz flows (Gopal, arXiv 2112.06997) as a ready-made ``Flow``.

Layers of ``nitsjax.bijectors.elf`` (residual autoregressive maps whose 1-D networks have
a closed-form Lipschitz bound, so each is invertible by construction), the coordinate
order reversed between layers, behind the project's standardising layer, standard normal
base. ``log_prob`` is one network pass per layer; sampling inverts every layer by a
parallel fixed-point iteration, and ``sample_with_info`` reports its iterations and
residuals.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax.bijectors.base import stack
from nitsjax.bijectors.elf import check_lipschitz, elf_parts
from nitsjax.distributions.base import standard_normal
from nitsjax.flow import Flow
from nitsjax.flows.common import (
    check_common,
    check_order,
    check_standardize,
    flow_bijector,
    flow_layer,
    flow_spec,
    standardize_layer,
)
from nitsjax.validation import check_key, check_positive_int


class SampleInfo(NamedTuple):
    """The inverse's report per sample and layer (``layers`` axis in the order layers are
    applied to data): ``iterations`` (n, layers) fixed-point iterations, ``residual``
    (n, layers) ``max_i |F(x)_i - z_i|``, ``converged`` (n, layers)."""

    iterations: jax.Array
    residual: jax.Array
    converged: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class ELFFlow(Flow):
    """A ``Flow`` with ``sample_with_info``. Attributes beyond ``Flow``'s: ``options``, the
    constructor's arguments (to rebuild the layer's inverse with its report)."""

    options: tuple = ()

    def sample_with_info(self, params, key, n: int, context=None):
        """``n`` samples (n, dim), their log-densities (n,) and a ``SampleInfo``."""
        check_key(key, "key")
        n = check_positive_int(n, "n")
        context = self._broadcast_context(context, n)
        return _sample_with_info(self, params, key, n, context)

    def _sample_single_with_info(self, params, key, context=None):
        o = dict(self.options)
        _, inv_info = _layer(self.dim, o)
        std = standardize_layer(self.dim, o["standardize"])
        z = self.base.sample(params["base"], key).astype(jnp.result_type(float))
        lp = self.base.log_prob(params["base"], z)
        bij = params["bijector"]
        layers = bij["layers"]["elf"]

        def step(y, p):
            x, ld, info = inv_info(p, y[::-1], context)  # the layer's reversal undone first
            return x, (ld, info)

        x, (lds, infos) = jax.lax.scan(step, z, layers, reverse=True)
        total = jnp.sum(lds)
        if std is not None:
            x, ld_std = std.inverse(bij["standardize"], x)
            total = total + ld_std
        if o["order"] is not None:  # the data-side permutation, undone (log-det 0)
            x = x[np.argsort(o["order"])]
        return x, lp - total, SampleInfo(*infos)


@functools.cache
def _layer_cached(dim, items):
    o = dict(items)
    return elf_parts(dim, o["hidden"], units=o["units"], lipschitz=o["lipschitz"],
                     context_dim=o["context_dim"], dropout=o["dropout"],
                     max_iter=o["max_iter"])


def _layer(dim, o):
    keys = ("hidden", "units", "lipschitz", "context_dim", "dropout", "max_iter")
    return _layer_cached(dim, tuple((k, o[k]) for k in keys))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _sample_with_info(flow, params, key, n, context):
    keys = jax.random.split(key, n)
    ax = None if context is None else 0
    return jax.vmap(flow._sample_single_with_info, in_axes=(None, 0, ax))(params, keys, context)


def elf(
    dim: int,
    *,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    units: int = 8,
    lipschitz: float = 0.8,
    context_dim: Optional[int] = None,
    dropout: float = 0.0,
    max_iter: int = 1000,
    standardize: Optional[str] = "whiten",
    order: Optional[Sequence[int]] = None,
) -> ELFFlow:
    """Exact-Lipschitz flow (Gopal, arXiv 2112.06997): ``layers`` ELF layers
    (``nitsjax.bijectors.elf``), coordinates reversed between layers.

    Args:
      dim: event size.
      layers: number of ELF layers.
      hidden: MADE hidden widths of each layer's conditioner.
      units: hidden units of each 1-D residual network.
      lipschitz: Lipschitz bound in (0, 1) of each 1-D residual network (sampling error
        falls like ``lipschitz ** iterations``).
      context_dim: size of a conditioning input, or None.
      dropout: MADE dropout rate, active when training with a key.
      max_iter: cap on the fixed-point iterations of each layer's inverse.
      standardize: data-side standardising layer, ``"whiten"``, ``"diagonal"`` or None.
      order: None or a permutation of ``range(dim)``: the order in which the layers see
        the coordinates (``nitsjax.flows.common.order_layer``; densities and samples stay
        in the user's coordinates).

    Params: ``{"bijector": {["order": {},] "standardize": ..., "layers": {"elf",
    "reverse"}}, "base": {}}``.
    """
    order = check_order(order, dim)
    spec = flow_spec("elf", locals())
    hidden = check_common(dim, layers, hidden, context_dim, dropout)
    check_positive_int(units, "units")
    check_positive_int(max_iter, "max_iter")
    lipschitz = check_lipschitz(lipschitz)
    check_standardize(standardize)
    options = dict(hidden=hidden, units=int(units), lipschitz=lipschitz,
                   context_dim=context_dim, dropout=float(dropout), max_iter=int(max_iter),
                   standardize=standardize, order=order)
    core, _ = _layer(dim, options)
    bij = flow_bijector(stack(flow_layer(core, dim, False, None), layers, name="layers"), dim,
                        standardize, order)
    return ELFFlow(standard_normal(dim), bij, dim, context_dim, name="elf", spec=spec,
                   options=tuple(sorted(options.items())))
