"""``nits``: the Neural Inverse Transform Sampler as a ready-made ``Flow``.

Li & Kluger, "Neural Inverse Transform Sampler", ICML 2022: an autoregressive model whose
conditionals are 1-D probabilistically normalised networks (PNNs) with exact CDFs, trained
by maximum likelihood and sampled by inverting the CDFs coordinate by coordinate.

Unbounded by default: a logistic squash puts the support on all of R^dim, so no test
point can fall outside it. ``bounds=(A, B)`` gives the bounded form of the paper, where
``flow.log_prob`` raises on rows outside the box (``out_of_support="-inf"`` returns an
explicit ``-inf`` instead; inside ``jit``, ``log_prob_batch`` always returns ``-inf``).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from nitsjax.bijectors.nits import check_bounds, check_squash, nits_bijector
from nitsjax.bijectors.pnn import DEFAULT_MONOTONIC_CONST, check_arch
from nitsjax.distributions.base import uniform
from nitsjax.flow import Flow
from nitsjax.flows.common import (
    check_common,
    check_order,
    check_standardize,
    flow_bijector,
    flow_spec,
)
from nitsjax.root_finding import check_method
from nitsjax.validation import check_positive_int


@dataclasses.dataclass(frozen=True, eq=False)
class NITSFlow(Flow):
    """A ``Flow`` that records its NITS support options (the support rule itself is the
    ``Flow.support`` hook, so ``with_preprocessing`` keeps it).

    Attributes (beyond ``Flow``'s):
      bounds: ``(low, high)`` arrays of shape ``(dim,)`` for the bounded form, else None.
      rotated: whether a learned rotation precedes the bounds.
      out_of_support: ``"error"``: ``log_prob`` raises ``ValueError`` naming the first row
        outside the bounds; ``"-inf"``: those rows get ``-inf``.
    """

    bounds: Optional[tuple] = None
    rotated: bool = False
    out_of_support: str = "error"


def _bounded_support(bounds, rotated: bool):
    """The ``Flow.support`` message of bounded NITS: which row, which dimension."""
    lo, hi = bounds

    def support(params, x, bad):
        i = int(np.argmax(bad))
        row = x[i]
        where = "after the learned rotation " if rotated else ""
        detail = ""
        if not rotated:
            j = int(np.argmax((row < lo) | (row > hi)))
            detail = f"; dimension {j} = {row[j]} is outside [{lo[j]}, {hi[j]}]"
        return (
            f"x: {int(bad.sum())} row(s) lie outside the bounded NITS support "
            f"{where}(first: row {i}{detail}). Use the unbounded form (nits(dim) without "
            f"bounds, the default), widen bounds=... (support_from_data(x_train, "
            f"margin=...)), or build with out_of_support='-inf' to get -inf for them"
        )

    return support


def nits(
    dim: int,
    *,
    context_dim: Optional[int] = None,
    arch: Sequence[int] = (16, 16),
    hidden: int = 1024,
    blocks: int = 4,
    dropout: float = 0.0,
    bounds=None,
    squash_loc=0.0,
    squash_scale=1.0,
    learn_squash: bool = False,
    squash: str = "normal",
    rotate: bool = False,
    monotonic_const: float = DEFAULT_MONOTONIC_CONST,
    solver: str = "newton",
    tol: Optional[float] = None,
    degrees: str = "sequential",
    out_of_support: str = "error",
    standardize: Optional[str] = "whiten",
    order: Optional[Sequence[int]] = None,
) -> NITSFlow:
    """Autoregressive NITS on R^dim with a ``Uniform[0, 1]^dim`` base.

    Args:
      dim: event size.
      context_dim: size of a conditioning input (conditional NITS), or None.
      arch: PNN hidden widths: each conditional is a PNN ``[1, *arch, 1]``.
      hidden, blocks, dropout: the residual MADE conditioner (paper defaults: 1024 units,
        4 residual blocks; dropout only when a key is given to ``log_prob_batch``).
      bounds: None (default): unbounded, through the standardising layer (``standardize``)
        and a squash onto (0, 1): ``squash="normal"`` (default, the Gaussian CDF, so a
        fresh data-initialised NITS is within ~0.04 nats per coordinate of the
        full-covariance Gaussian fitted to the data: the PNNs start close to, not exactly
        at, the identity) or ``"logistic"`` (sigmoid), with ``squash_loc``,
        ``squash_scale`` (fixed, or learned when ``learn_squash``). ``(A, B)`` (floats or
        per-dimension arrays): bounded support, to be computed from the training data
        only, e.g. ``support_from_data(x_train)``.
      rotate: learned rotation of the data first (QR of a free matrix, log-det 0). In
        bounded mode the bounds apply to the rotated data: use
        ``support_from_data(x_train, rotation_invariant=True)``.
      monotonic_const: the PNN's ``c``.
      solver: sampling solver, ``"newton"`` (safeguarded, default), ``"chandrupatla"`` or
        ``"bisection"``.
      tol: solver tolerance on the unit interval of each coordinate (the squashed value,
        or the fraction of the bound width); default 2^-22 (float32), 2^-40 (float64).
      out_of_support: bounded mode only: ``"error"`` or ``"-inf"`` (see ``NITSFlow``).
      standardize: unbounded mode: the data-side standardising layer before the squash,
        ``"whiten"`` (default, full covariance), ``"diagonal"`` or None, initialised from
        data by ``flow.init(key, x)`` / ``flow.data_init`` (``nj.fit`` does it for fresh
        params), so the squash sees standardised data whatever the data's scale. Bounded
        mode adds no standardising layer whatever this says: the box map
        ``(x - A) / (B - A)`` is already an affine map fitted to the data (through
        ``support_from_data``), so bounded NITS is affine-invariant as it is, and a
        whitening layer in front would move the data out of bounds computed on raw data.
      order: None or a permutation of ``range(dim)``: the autoregressive order (a fixed
        data-side permutation; densities, ``bounds`` and samples stay in your
        coordinates).

    Params: ``{"bijector": {"standardize": ..., "nits": {["rotation",] "squash" |
    "unit_box", "made"}}, "base": {}}`` (no ``"standardize"`` entry when bounded or None).
    """
    order = check_order(order, dim)
    spec = flow_spec("nits", locals())
    check_common(dim, 1, (hidden,), context_dim, dropout)
    check_standardize(standardize)
    check_positive_int(blocks, "blocks", minimum=0)
    check_arch(arch)
    check_method(solver, "solver")
    if out_of_support not in ("error", "-inf"):
        raise ValueError(f"out_of_support: expected 'error' or '-inf', got {out_of_support!r}")
    check_squash(squash)
    checked = None if bounds is None else check_bounds(bounds, dim)
    seen = checked  # the bounds as the NITS layer sees them: after the order permutation
    if checked is not None and order is not None:
        seen = (checked[0][list(order)], checked[1][list(order)])
    bij = nits_bijector(
        dim, arch=arch, hidden=hidden, blocks=blocks, context_dim=context_dim,
        dropout=dropout, bounds=seen, squash_loc=squash_loc, squash_scale=squash_scale,
        learn_squash=learn_squash, squash=squash, rotate=rotate,
        monotonic_const=monotonic_const, solver=solver, tol=tol, degrees=degrees,
    )
    bij = flow_bijector(bij, dim, standardize if checked is None else None, order)
    support = None
    if checked is not None and out_of_support == "error":
        support = _bounded_support(checked, rotate)
    return NITSFlow(
        uniform(dim), bij, dim, context_dim, name="nits", spec=spec, support=support,
        bounds=checked, rotated=rotate, out_of_support=out_of_support,
    )
