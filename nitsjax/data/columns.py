"""Column checks before training: constant, linearly dependent and lattice (discrete) columns.

A continuous density on ``R^d`` needs data that fill ``R^d``. Three things common in real
tables break that, and a flow trained on them reports log-likelihoods that grow without
bound instead of failing:

* a **constant** column (``max == min``): its log-density is unbounded;
* a column that is an exact **linear combination** of others (a total next to its parts,
  a column in two units): the rows lie on a hyperplane, which has no density in ``R^d``;
* a **lattice** column whose values lie on a grid ``a + k * s`` (counts, ratings, 8-bit
  pixels, also after standardisation): a probability mass function, not a density; the
  usual fix is uniform dequantisation by one step ``s`` (Uria et al., NeurIPS 2013;
  Theis et al., ICLR 2016), after which the log-likelihood is a bound on the discrete one.

:func:`describe_columns` finds all three from the training split and returns a
:class:`ColumnReport` whose ``str`` says which columns and what to do;
:func:`lattice_steps` returns the step of each column's grid (0 for continuous columns).

Example::

    from nitsjax.data.columns import describe_columns
    report = describe_columns(train, names=["age", "visits", "total"])
    if not report.ok:
        print(report)
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

__all__ = ["ColumnReport", "describe_columns", "lattice_steps"]

# A grid may be up to this many times finer than the smallest gap seen between values
# (levels {0, 2, 5}: smallest gap 2, step 1).
MAX_SUBDIVISION = 10
# Values may sit this far (as a fraction of the step) from the grid, beyond float rounding.
LATTICE_RTOL = 1e-3
# A column whose part outside the span of the other (centred) columns is below this
# fraction of its norm is reported as a linear combination of them (float32 rounding of
# an exact total is ~1e-7; a total of parts rounded to 4 significant digits is found).
DEPENDENCE_RTOL = 1e-4


def check_table(x, name: str = "x") -> np.ndarray:
    """``x`` as a float64 array of shape ``(n, dim)``; a clear error for anything else."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as err:  # ragged lists and the like
            raise TypeError(f"{name}: expected a numeric array of shape (n, dim), "
                            f"got {type(x).__name__} ({err})") from None
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name}: expected a float or integer array of shape (n, dim), "
                        f"got dtype {x.dtype}; convert the columns to numbers first")
    if x.ndim != 2:
        hint = "; a single column needs x[:, None]" if x.ndim == 1 else ""
        raise ValueError(f"{name}: expected shape (n, dim), got {x.shape}{hint}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one row and one column, got {x.shape}")
    finite = np.isfinite(x)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(f"{name}: expected finite values, got {x[row, col]} at row {row}, "
                         f"column {col}; drop or impute those rows first")
    return x


def resolution(x: np.ndarray) -> float:
    """Machine epsilon of ``x``'s dtype (float64's for integer input)."""
    if np.issubdtype(x.dtype, np.floating):
        return float(np.finfo(x.dtype).eps)
    return float(np.finfo(np.float64).eps)


def column_step(values: np.ndarray, eps: float) -> float:
    """The lattice step of one column (float64 values), or 0.0 (continuous or constant)."""
    u = np.unique(values)
    n, levels = len(values), len(u)
    # Few levels relative to n: every level seen twice on average. A continuous column
    # has (almost surely) n distinct values, so it never passes, however its gaps fall.
    if levels < 2 or 2 * levels > n:
        return 0.0
    offsets = u - u[0]
    smallest = float(np.min(np.diff(u)))
    scale = float(np.max(np.abs(u)))
    rounding = 16.0 * eps * scale  # float error of values computed as a + k * s
    for m in range(1, MAX_SUBDIVISION + 1):
        step = smallest / m
        if step <= 64.0 * eps * scale:  # a grid at float resolution says nothing
            return 0.0
        k = np.round(offsets / step)
        step = float(np.dot(k, offsets) / np.dot(k, k))  # least-squares step on that grid
        if np.max(np.abs(offsets - k * step)) <= LATTICE_RTOL * step + rounding:
            return step
    return 0.0


def lattice_steps(x) -> np.ndarray:
    """Per column, the step ``s`` of the grid ``a + k * s`` (``k`` integer) its values lie on.

    Args:
      x: training rows, array of shape ``(n, dim)`` (float32/64 or integer).

    Returns:
      float64 array of shape ``(dim,)``: the step of each lattice column (1.0 for counts,
      ratings and 8-bit pixels; ``1 / std`` of the same after standardisation), 0.0 for
      continuous and for constant columns (see :func:`describe_columns` for those).

    The rule, per column: take the sorted distinct values ``u`` (``L`` of them). The column
    is a lattice column if (1) ``2 <= L <= n / 2`` (each level seen twice on average, so a
    column of ``n`` distinct values, which a continuous column almost surely is, never
    qualifies; a binary column of 4 or more rows does) and (2) for ``s`` the smallest gap
    of ``u`` divided by the smallest ``m`` in ``1..10`` that works, every ``u - u[0]`` is
    an integer multiple of ``s`` within ``0.001 * s`` plus float rounding
    (``s`` refitted by least squares on those integers). Steps at the float resolution of
    the values are not reported.
    """
    x = check_table(x)
    eps = resolution(x)
    cols = np.asarray(x, dtype=np.float64)
    return np.array([column_step(cols[:, j], eps) for j in range(cols.shape[1])])


def dependent_columns(x: np.ndarray, constant: Sequence[int]):
    """Columns in the span of earlier non-constant columns, and which columns they combine.

    Gram-Schmidt over the centred, unit-norm columns in order, done as an outer-product
    Cholesky of their Gram (correlation) matrix that skips a column instead of pivoting on
    it when its squared residual norm, the Schur complement ``S_jj``, is below
    ``DEPENDENCE_RTOL ** 2``: such a column lies in the span of the kept earlier columns
    (affine combinations included, as the columns are centred). The set is minimal
    (``dim - #constant - rank`` columns) and names the later column of each relation.
    Cost: one ``(dim, n) @ (n, dim)`` product and ``O(dim^3)``.
    """
    n, dim = x.shape
    varying = [j for j in range(dim) if j not in constant]
    z = x[:, varying] - x[:, varying].mean(axis=0)
    z /= np.linalg.norm(z, axis=0)
    gram = z.T @ z
    schur = gram.copy()
    kept, dependent, combines = [], [], []
    for i, j in enumerate(varying):
        if schur[i, i] <= DEPENDENCE_RTOL**2 or len(kept) >= n - 1:
            k = [varying.index(c) for c in kept]
            coef = np.linalg.lstsq(gram[np.ix_(k, k)], gram[k, i], rcond=None)[0]
            used = np.flatnonzero(np.abs(coef) > 1e-3 * np.abs(coef).max())
            dependent.append(j)
            combines.append(tuple(kept[u] for u in used))
        else:
            col = schur[i:, i] / np.sqrt(schur[i, i])
            schur[i:, i:] -= np.outer(col, col)
            kept.append(j)
    return tuple(dependent), tuple(combines)


@dataclasses.dataclass(frozen=True)
class ColumnReport:
    """What :func:`describe_columns` found in the training rows.

    Attributes:
      n: number of rows checked.
      dim: number of columns.
      names: column names, or ``None`` (then columns are named by index).
      constant: indices of constant columns (``max == min``).
      dependent: indices of columns that are (numerically) a linear combination of
        others: a minimal set, dropping them leaves full column rank.
      dependent_on: for each entry of ``dependent``, the columns it combines.
      lattice: indices of lattice (discrete) columns.
      steps: ``(dim,)`` grid step per column, 0.0 for non-lattice columns
        (:func:`lattice_steps`).
    """

    n: int
    dim: int
    names: Optional[tuple[str, ...]]
    constant: tuple[int, ...]
    dependent: tuple[int, ...]
    dependent_on: tuple[tuple[int, ...], ...]
    lattice: tuple[int, ...]
    steps: tuple[float, ...]

    @property
    def degenerate(self) -> bool:
        """True if a constant or dependent column leaves the data without a density."""
        return bool(self.constant or self.dependent)

    @property
    def ok(self) -> bool:
        """True if nothing was found: no constant, dependent or lattice column."""
        return not (self.degenerate or self.lattice)

    def label(self, j: int, note: str = "") -> str:
        notes = ([repr(self.names[j])] if self.names is not None else []) + [note] * bool(note)
        return f"{j} ({', '.join(notes)})" if notes else str(j)

    def labels(self, cols: Sequence[int]) -> str:
        return _listed([self.label(j) for j in cols])

    def __str__(self) -> str:
        head = f"Column check of {self.n} training rows x {self.dim} columns"
        if self.ok:
            return f"{head}: no constant, linearly dependent or discrete (lattice) column."
        lines = [f"{head}:"]
        if self.constant:
            lines.append(
                f"- constant column(s) {self.labels(self.constant)}: a constant has no "
                "density (the log-likelihood grows without bound); drop these columns.")
        shown = list(zip(self.dependent, self.dependent_on))
        for j, used in shown[:LISTED]:
            lines.append(
                f"- column {self.label(j)} is a linear combination of column(s) "
                f"{self.labels(used)}: the rows lie on a hyperplane, which has no density; "
                f"drop column {self.label(j)} (or one of the columns it combines).")
        if len(shown) > LISTED:
            lines.append(f"- ... and {len(shown) - LISTED} more linearly dependent columns "
                         f"(all in report.dependent).")
        if self.lattice:
            steps = _listed([self.label(j, f"step {self.steps[j]:.4g}") for j in self.lattice])
            lines.append(
                f"- discrete (lattice) column(s) {steps}: values on a grid have a probability "
                "mass, not a density. nj.fit dequantises such columns by default (uniform "
                "noise of one step; the log-likelihood is then a bound on the discrete one; "
                "dequantize= turns it off).")
        return "\n".join(lines)


LISTED = 12  # a report names at most this many columns per finding (wide tables, images)


def _listed(items: Sequence[str]) -> str:
    """The first ``LISTED`` items, comma separated, then how many more there are."""
    more = f", ... and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return ", ".join(items[:LISTED]) + more


def describe_columns(x, names: Optional[Sequence[str]] = None) -> ColumnReport:
    """Check the training rows for constant, linearly dependent and lattice columns.

    Args:
      x: training rows, array of shape ``(n, dim)`` (float32/64 or integer). Use the
        training split only (that is what the model sees).
      names: optional column names (``dim`` strings) used in the message.

    Returns:
      A :class:`ColumnReport`; ``report.ok`` is True when nothing was found, and
      ``str(report)`` names the columns and says what to do.

    Constant: ``max == min``. Linear dependence: in-order Gram-Schmidt on the standardised
    non-constant columns (rank-revealing; relative tolerance ``DEPENDENCE_RTOL = 1e-4``,
    well above float32 rounding). With ``n <= dim`` rows every column past the
    first ``n - 1`` is reported as dependent, as it must be. Lattice: :func:`lattice_steps`.
    """
    x = check_table(x)
    dim = x.shape[1]
    if names is not None:
        if isinstance(names, str) or len(names) != dim:
            raise ValueError(f"names: expected {dim} column names (one per column of x), "
                             f"got {names!r}")
        names = tuple(str(s) for s in names)
    cols = np.asarray(x, dtype=np.float64)
    constant = tuple(int(j) for j in np.flatnonzero(cols.max(axis=0) == cols.min(axis=0)))
    dependent, dependent_on = dependent_columns(cols, constant)
    steps = lattice_steps(x)
    lattice = tuple(int(j) for j in np.flatnonzero(steps > 0))
    return ColumnReport(n=int(x.shape[0]), dim=dim, names=names, constant=constant,
                        dependent=dependent, dependent_on=dependent_on, lattice=lattice,
                        steps=tuple(float(s) for s in steps))
