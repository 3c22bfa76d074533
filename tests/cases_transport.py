"""Contract case for the monotone triangular map of ``nj.transport`` (Baptista, Marzouk,
Zahm): Hermite-function terms up to total degree 2 in every component, so the
perturbed map is nonlinear, coupled and its inverse needs the bracketed Newton solve."""

import itertools

import numpy as np
from contract import BijectorCase

from nitsjax.transport.map import triangular_map


def _total_degree_index(dim: int, degree: int) -> np.ndarray:
    rows = []
    for k in range(dim):
        terms = [a for a in itertools.product(range(degree + 1), repeat=k + 1)
                 if sum(a) <= degree]
        rows.append([list(a) + [0] * (dim - k - 1) for a in terms])
    size = max(len(r) for r in rows)
    index = np.zeros((dim, size, dim), np.int32)
    for k, r in enumerate(rows):
        index[k, : len(r)] = r
    return index


BIJECTORS = [
    BijectorCase("triangular_map", lambda: triangular_map(
        3, 10, index=_total_degree_index(3, 2), max_degree=2, quadrature=12), 3,
        perturb=0.3, slow=("float64",)),
]
