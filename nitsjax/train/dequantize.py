"""Uniform dequantisation of integer-valued (lattice) columns.

A column whose values lie on a grid ``a + k * s`` has a probability mass function, not a
density: a continuous model can put unbounded density on the grid points. ``fit`` trains
instead on ``x + (u - 1/2) * s`` with ``u ~ U[0, 1)`` drawn afresh every step, on device,
for each lattice column (Uria et al., NeurIPS 2013; Theis et al., ICLR 2016): the bin of
``x`` is ``[x - s/2, x + s/2)``, centred on the grid point, as in
``flow.log_prob_discrete`` and the discretised image likelihoods. For the discrete data
this gives the variational bound

    -log P(x) <= E_u[-log p(x + (u - 1/2) * s)] - sum_j log s_j,

and every NLL ``fit`` reports (train, validation, Gaussian floor) is this bound: the
continuous NLL minus ``sum_j log s_j``. Validation uses one fixed noise draw, so that
evaluations are comparable.
"""

from __future__ import annotations

import numpy as np

#: Seed of the fixed noise of the validation rows (and of the rows used for data init).
NOISE_SEED = 0


def resolve(dequantize, steps_found: np.ndarray, dim: int) -> np.ndarray | None:
    """The per-column steps ``(dim,)`` to dequantise with (0: column left alone), or None.

    Args:
      dequantize: ``"auto"`` (the lattice columns found), ``True`` (the same; an error if
        none was found), ``False`` (none) or an array of ``dim`` steps ``>= 0``.
      steps_found: ``nitsjax.data.columns.lattice_steps`` of the training rows.
    """
    if isinstance(dequantize, str):
        if dequantize != "auto":
            raise ValueError(f"dequantize: expected 'auto', True, False or an array of {dim} "
                             f"steps, got {dequantize!r}")
        steps = np.asarray(steps_found, np.float64)
    elif dequantize is True:
        steps = np.asarray(steps_found, np.float64)
        if not np.any(steps > 0):
            raise ValueError("dequantize: True, but no column of the training data lies on a "
                             "lattice (integer-valued or on a grid); pass dequantize='auto' or "
                             "False, or an array of per-column steps")
    elif dequantize is False or dequantize is None:
        return None
    else:
        steps = np.asarray(dequantize, np.float64)
        if steps.shape != (dim,) or not np.all(np.isfinite(steps)) or np.any(steps < 0):
            raise ValueError(f"dequantize: expected an array of {dim} finite steps >= 0 (0: "
                             f"no noise on that column), got {dequantize!r}")
    return steps if np.any(steps > 0) else None


def log_volume(steps: np.ndarray | None) -> float:
    """``sum_j log s_j`` over the dequantised columns (0 without dequantisation)."""
    if steps is None:
        return 0.0
    return float(np.sum(np.log(steps[steps > 0])))


def with_fixed_noise(x: np.ndarray, steps: np.ndarray | None, seed: int = NOISE_SEED):
    """``x + (u - 1/2) * steps`` with one fixed draw of ``u ~ U[0, 1)`` (``x`` without
    steps)."""
    if steps is None:
        return x
    u = np.random.default_rng(seed).random(x.shape)
    return (np.asarray(x, np.float64) + (u - 0.5) * steps).astype(np.asarray(x).dtype)
