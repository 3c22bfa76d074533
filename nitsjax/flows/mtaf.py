"""Marginal tail-adaptive flows (mTAF; gTAF with learned degrees of freedom).

Laszkiewicz, Lederer, Fischer, "Marginal Tail-Adaptive Normalizing Flows", ICML 2022
(arXiv 2206.10311). The paper proves that an autoregressive flow's marginal tails are set
by its base's marginal tails, provided its layers preserve tails; mTAF therefore

1. estimates every coordinate's tail index from the training data and calls it heavy or
   light (``nj.tails.is_heavy``: Hill's estimator against a Gaussian reference; the
   paper's own estimator was not available here, see ``nitsjax.tails``),
2. gives heavy coordinates Student-t base marginals with the estimated degrees of
   freedom (``learn_df=True``: learned from there, the paper's gTAF) and light ones
   Gaussian ones (``nitsjax.distributions.marginal_t``),
3. orders the coordinates light first, heavy last, and mixes them only within each group
   (the coordinate reversal between layers is a reversal within each group), so a light
   coordinate never depends on a heavy one,
4. uses rational-quadratic spline transformers with linear tails (identity outside
   ``[-bound, bound]``, ``nitsjax.bijectors.spline``), conditioned by a MADE.

Why the tails survive: outside ``[-bound, bound]`` every spline is the identity, and
inside it maps ``[-bound, bound]`` onto itself, so for ``t > bound`` the event ``|x_j| >
t`` is the event ``|z_j| > t`` layer after layer: each data coordinate keeps exactly the
tail of its base marginal (up to the per-coordinate standardisation in front). A
full-covariance whitening or an LU layer would mix heavy into light coordinates, so
mTAF's standardising layer is per coordinate: ``standardize="robust"`` (default: median
and interquartile range / 1.349, which exist for every tail index) or ``"diagonal"``
(mean and standard deviation) or None.

Where the mask lives: the heavy mask (in the coordinates the core sees, after ``order``)
is a frozen param of the core (``params["bijector"]["mtaf"]["frozen"]["heavy"]``) and
of the base, so a flow built with ``heavy=None`` estimates it at data init
(``flow.init(key, x)``, ``flow.data_init`` or ``nj.fit`` from fresh params) and the same
compiled program serves any mask: the grouping permutation is computed from the mask
(``argsort``, static shapes). ``flow.tails(params)`` returns the mask and the degrees of
freedom in your coordinates.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nitsjax import tails as tails_lib
from nitsjax.bijectors.actnorm import actnorm
from nitsjax.bijectors.anchored import anchored
from nitsjax.bijectors.autoregressive import masked_autoregressive
from nitsjax.bijectors.base import Bijector, chain, split_key
from nitsjax.bijectors.spline import rational_quadratic_transformer
from nitsjax.distributions.marginal_t import (
    UNKNOWN_HEAVY,
    check_df,
    check_heavy,
    marginal_t,
    tails_pending,
    with_tails,
)
from nitsjax.flow import Flow, _data_init_compiled
from nitsjax.flows.common import check_common, check_order, flow_spec, order_layer
from nitsjax.validation import check_context, check_data

#: ``standardize=`` values of ``mtaf``: per coordinate only (a whitening would mix tails).
STANDARDIZE = ("robust", "diagonal", None)
#: estimated degrees of freedom are clipped to this range
DF_RANGE = (0.5, 50.0)


@dataclasses.dataclass(frozen=True, eq=False)
class MTAFFlow(Flow):
    """A ``Flow`` whose base marginals are set from the data at data init.

    Attributes (beyond ``Flow``'s):
      core: the path of the mTAF core's params in ``params["bijector"]``.
      order: the ``order=`` permutation (a tuple) or None.
      tail_k: order statistics for the tail estimates (None: ``nj.tails.default_k``).
      estimate_df: whether data init estimates the degrees of freedom (``df=None``).
    """

    core: tuple = ("mtaf",)
    order: Optional[tuple] = None
    tail_k: Optional[int] = None
    estimate_df: bool = True

    def init(self, key, x=None, context=None):
        """Fresh params; with ``x`` (n, dim) the standardising layer, the heavy mask and
        the degrees of freedom are set from the data (``data_init``)."""
        if x is not None:  # checked before any work
            x = check_data(x, self.dim, "x")
            context = check_context(context, self.context_dim, x.shape[0], "context")
        params = super().init(key)
        return params if x is None else self.data_init(params, x, context)

    def data_init(self, params, x, context=None):
        """``params`` with the standardising layer, the heavy mask (``heavy=None``) and
        the degrees of freedom (``df=None``) set from the batch ``x`` (n, dim)."""
        x = check_data(x, self.dim, "x")
        context = check_context(context, self.context_dim, x.shape[0], "context")
        return _data_init_compiled(self, params, jnp.asarray(x), context)

    def needs_data_init(self, params) -> bool:
        """True while the data-initialised layers are fresh or the base's tails unknown."""
        return super().needs_data_init(params) or bool(tails_pending(params["base"]))

    def _data_init_params(self, params, x, context):
        bij = params["bijector"]
        if self.bijector.data_init is not None:
            bij, z = self.bijector.data_init(bij, x, context)
        else:
            z = jax.vmap(lambda xi, ci: self.bijector.forward(bij, xi, ci)[0],
                         in_axes=(0, None if context is None else 0))(x, context)
        core = bij
        for k in self.core:
            core = core[k]
        heavy = core["frozen"]["heavy"]
        df = params["base"]["frozen"]["df"]
        if self.estimate_df:
            k = self.tail_k or tails_lib.default_k(x.shape[0])
            df = jnp.clip(tails_lib.hill(z, min(k, x.shape[0] - 1)), *DF_RANGE)
        return {"bijector": bij, "base": with_tails(params["base"], heavy, df)}

    def with_preprocessing(self, bijector, *, spec=None):
        flow = super().with_preprocessing(bijector, spec=spec)
        return dataclasses.replace(flow, core=("flow",) + self.core)

    def tails(self, params):
        """``(heavy, df)``: the heavy mask (bools) and the degrees of freedom in use (a
        learned correction included; entries of light coordinates unused), both ``(dim,)``
        NumPy arrays in the data's coordinates."""
        base = params["base"]
        heavy = np.asarray(base["frozen"]["heavy"]) > 0.5
        df = np.asarray(base["frozen"]["df"], np.float64)
        if "log_df" in base:
            df = df * np.exp(np.asarray(base["log_df"], np.float64))
        if self.order is not None:  # base coordinate i is data coordinate order[i]
            inv = np.argsort(np.asarray(self.order))
            heavy, df = heavy[inv], df[inv]
        return heavy, df


def robust_standardize(dim: int) -> Bijector:
    """A per-coordinate affine layer (ActNorm's maths) whose data init uses the median
    and the interquartile range / 1.349 (the standard deviation for Gaussian data), so
    heavy-tailed columns are scaled by their body, not by their largest values."""
    base = actnorm(dim)

    def data_init(params, x, context=None):
        med = jnp.median(x, axis=0)
        q1, q3 = jnp.percentile(x, jnp.asarray([25.0, 75.0]), axis=0)
        scale = (q3 - q1) / 1.349
        fallback = jnp.std(x, axis=0)
        scale = jnp.where(scale > 0, scale, jnp.where(fallback > 0, fallback, 1.0))
        new = {"shift": med.astype(params["shift"].dtype),
               "log_scale": jnp.log(scale).astype(params["log_scale"].dtype)}
        z, _ = jax.vmap(lambda xi: base.forward(new, xi))(x)
        return new, z

    return base._replace(data_init=data_init, inverse_data_init=None, name="robust")


def _standardize_layer(dim: int, standardize) -> Optional[Bijector]:
    if standardize not in STANDARDIZE:
        raise ValueError(
            f"standardize: expected one of {STANDARDIZE} for mtaf ('robust': median and "
            f"interquartile range, 'diagonal': mean and standard deviation, None); a "
            f"full-covariance 'whiten' would mix heavy- and light-tailed coordinates, got "
            f"{standardize!r}"
        )
    if standardize == "robust":
        return anchored(robust_standardize(dim))
    if standardize == "diagonal":
        return anchored(actnorm(dim))
    return None


def tail_preserving_autoregressive(
    made: Bijector, dim: int, layers: int, heavy: Optional[np.ndarray], *,
    tail_k: Optional[int] = None, threshold: Optional[float] = None,
) -> Bijector:
    """``layers`` copies of the autoregressive layer ``made`` (independent params,
    ``lax.scan``) on the coordinates grouped light first, heavy last (each group in the
    given order), the order reversed within each group between layers, and the result
    put back in the input's coordinates, so latent ``j`` belongs to input ``j``.

    Params ``{"frozen": {"heavy": (dim,)}, "layers": made's params stacked}``; ``heavy``
    given: fixed, None: ``-1`` (unknown, all light) until ``data_init`` estimates it
    from the batch (``nj.tails.heavy_mask``).
    """
    h0 = np.full(dim, UNKNOWN_HEAVY) if heavy is None else heavy.astype(np.float64)

    def init(key):
        keys = jax.random.split(key, layers)
        return {"frozen": {"heavy": jnp.asarray(h0, jnp.float32)},
                "layers": jax.vmap(made.init)(keys)}

    def perms(params):
        """Grouping (light then heavy), within-group reversal and the final positions."""
        h = jax.lax.stop_gradient(params["frozen"]["heavy"]) > 0.5
        group = jnp.argsort(h.astype(jnp.int32), stable=True)
        n_light = dim - jnp.sum(h.astype(jnp.int32))
        i = jnp.arange(dim)
        rev = jnp.where(i < n_light, n_light - 1 - i, dim - 1 + n_light - i)  # an involution
        last = group[rev] if layers % 2 else group  # input coordinate at each position
        return group, rev, last

    def _scan(fn, params, y, context, key, reverse):
        keys = None if key is None else jnp.stack(split_key(key, layers))

        def body(carry, xs):
            y, total = carry
            p, k = xs
            y, ld = fn(p, y, context, k)
            return (y, total + ld), None

        (y, total), _ = jax.lax.scan(body, (y, jnp.zeros((), y.dtype)),
                                     (params["layers"], keys), reverse=reverse)
        return y, total

    def forward(params, x, context=None, key=None):
        group, rev, last = perms(params)

        def step(p, y, c, k):
            y, ld = made.forward(p, y, c, k)
            return y[rev], ld

        y, total = _scan(step, params, x[group], context, key, reverse=False)
        return y[jnp.argsort(last)], total

    def inverse(params, z, context=None, key=None):
        group, rev, last = perms(params)

        def step(p, y, c, k):
            return made.inverse(p, y[rev], c, k)

        y, total = _scan(step, params, z[last], context, key, reverse=True)
        return y[jnp.argsort(group)], total

    data_init = pending = None
    if heavy is None:
        def data_init(params, x, context=None):
            k = tail_k or tails_lib.default_k(x.shape[0])
            mask = tails_lib.heavy_mask(x, min(k, x.shape[0] - 1), threshold)
            new = {"frozen": {"heavy": mask.astype(params["frozen"]["heavy"].dtype)},
                   "layers": params["layers"]}
            z = jax.vmap(lambda xi, ci: forward(new, xi, ci)[0],
                         in_axes=(0, None if context is None else 0))(x, context)
            return new, z

        def pending(params):
            return jnp.all(params["frozen"]["heavy"] < 0)

    return Bijector(init, forward, inverse, data_init, event_size=dim, name="mtaf",
                    needs_data_init=pending)


def mtaf(
    dim: int,
    *,
    heavy: Optional[Sequence[bool]] = None,
    df=None,
    learn_df: bool = False,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    bins: int = 8,
    context_dim: Optional[int] = None,
    order: Optional[Sequence[int]] = None,
    bound: float = 4.0,
    residual: bool = False,
    degrees: str = "sequential",
    dropout: float = 0.0,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
    standardize: Optional[str] = "robust",
    tail_k: Optional[int] = None,
    tail_threshold: Optional[float] = None,
) -> MTAFFlow:
    """A marginal tail-adaptive flow on R^dim (module docstring; Laszkiewicz et al., 2022).

    Args:
      dim: event size.
      heavy: ``dim`` booleans, True for a heavy-tailed coordinate (Student-t base
        marginal), in your coordinates; None (default): estimated from the data at data
        init (``nj.tails.is_heavy``).
      df: degrees of freedom of the heavy coordinates' Student-t marginals: a number
        > 0 or ``dim`` numbers > 0; None (default): each coordinate's Hill tail index,
        estimated at data init (clipped to ``DF_RANGE``).
      learn_df: learn the degrees of freedom (a per-coordinate correction starting at
        the estimate or ``df``): the paper's generalised TAF (gTAF).
      layers: autoregressive spline layers.
      hidden: MADE hidden widths.
      bins: spline bins (>= 2).
      context_dim: size of a conditioning input, or None.
      order: None or a permutation of ``range(dim)``: the coordinates' order within the
        light and the heavy group (a fixed data-side permutation).
      bound: the splines act on ``[-bound, bound]`` of standardised values and are the
        identity (linear tails) outside.
      residual, degrees, dropout: the MADE conditioner (as in ``nsf``).
      min_width, min_height, min_derivative: spline floors (as in ``nsf``).
      standardize: ``"robust"`` (median, IQR; default), ``"diagonal"`` (mean, standard
        deviation) or None; per coordinate only.
      tail_k: order statistics of the tail estimates (None: ``nj.tails.default_k``).
      tail_threshold: heavy when the tail index is below this (None: the Gaussian
        reference of ``nj.tails.is_heavy``).

    Returns:
      An ``MTAFFlow``; params ``{"bijector": {["order",] ["standardize",] "mtaf":
      {"frozen": {"heavy"}, "layers": {made...}}}, "base": {"frozen": {"heavy", "df"},
      ["log_df"]}}``. ``flow.tails(params)`` gives the mask and degrees of freedom.
    """
    order = check_order(order, dim)
    spec = flow_spec("mtaf", locals())
    hidden = check_common(dim, layers, hidden, context_dim, dropout)
    heavy_user = check_heavy(heavy, dim)
    df_user = check_df(df, dim)
    if not isinstance(learn_df, bool):
        raise ValueError(f"learn_df: expected True or False, got {learn_df!r}")
    if tail_k is not None and (isinstance(tail_k, bool) or not isinstance(tail_k, int)
                               or tail_k < 2):
        raise ValueError(f"tail_k: expected None or an integer >= 2, got {tail_k!r}")
    if tail_threshold is not None and not float(tail_threshold) > 0:
        raise ValueError(f"tail_threshold: expected None or a number > 0, got {tail_threshold!r}")
    perm = None if order is None else np.asarray(order)
    heavy_seen = heavy_user if heavy_user is None or perm is None else heavy_user[perm]
    df_seen = df_user if df_user is None or perm is None else df_user[perm]
    t = rational_quadratic_transformer(bins, bound, min_width, min_height, min_derivative)
    made = masked_autoregressive(t, dim, hidden, context_dim=context_dim, residual=residual,
                                 degrees=degrees, dropout=dropout)
    core = tail_preserving_autoregressive(made, dim, layers, heavy_seen, tail_k=tail_k,
                                          threshold=tail_threshold)
    parts = {}
    first = order_layer(dim, order)
    if first is not None:
        parts["order"] = first
    std = _standardize_layer(dim, standardize)
    if std is not None:
        parts["standardize"] = std
    parts["mtaf"] = core
    base = marginal_t(dim, heavy=heavy_seen, df=df_seen, learn_df=learn_df)
    return MTAFFlow(base, chain(parts, name="flow"), dim, context_dim, name="mtaf", spec=spec,
                    order=order, tail_k=tail_k, estimate_df=df_user is None)
