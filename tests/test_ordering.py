"""``nj.ordering.suggest`` and ``order=`` on the flow constructors: the permutation is a
data-side layer (densities in the user's coordinates), checked, and it makes a flow
non-triangular in the data order."""

import jax
import numpy as np
import pytest

import nitsjax as nj


def _sine(n, seed=0):
    """Columns (v, w, u): v = sin(2.5 u) + noise (non-monotone in u), w independent."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(n)
    v = np.sin(2.5 * u) + 0.15 * rng.standard_normal(n)
    return np.column_stack([v, 3.0 * rng.standard_normal(n), u])


def test_greedy_puts_the_cause_before_its_non_monotone_function():
    x = _sine(1500)
    order = nj.ordering.suggest(x[:1200], x[1200:])
    assert order.dtype == np.int64 and sorted(order.tolist()) == [0, 1, 2]
    assert order.tolist().index(2) < order.tolist().index(0)  # u before v = f(u) + noise
    ll = nj.ordering.order_log_likelihood
    assert ll(x[:1200], x[1200:], order) > ll(x[:1200], x[1200:], [0, 1, 2]) + 0.5
    np.testing.assert_array_equal(nj.ordering.suggest(x, method="variance"), [1, 2, 0])
    np.testing.assert_array_equal(nj.ordering.suggest(x), order)  # x_val=None: own split


@pytest.mark.parametrize("kwargs, match", [
    (dict(x_train=np.zeros((5, 2))), "x_train: expected at least 10 rows"),
    (dict(x_train=np.zeros((20, 2)), x_val=np.zeros((20, 3))), r"x_val: expected shape \(n, 2\)"),
    (dict(x_train=np.zeros((20, 2)), method="paper"), "method: expected one of"),
])
def test_suggest_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nj.ordering.suggest(**kwargs)


@pytest.mark.parametrize("make", [nj.flows.maf, nj.flows.iaf, nj.flows.realnvp, nj.flows.nsf,
                                  nj.flows.nits, nj.flows.mtaf], ids=lambda f: f.__name__)
@pytest.mark.parametrize("order", [[0, 0, 1], [0, 1], [1.0, 0.0, 2.0], [0, 1, 3], "abc"])
def test_order_must_be_a_permutation(make, order):
    with pytest.raises(ValueError, match=r"order: expected None or a permutation of range\(3\)"):
        make(3, order=order)


def test_order_is_a_data_side_permutation():
    """maf(order=o) on x is maf() on x[:, o] with the same params; log-det 0."""
    x = _sine(64).astype(np.float32)
    o = [2, 0, 1]
    ordered, plain = nj.flows.maf(3, layers=1, hidden=(8,), order=o), nj.flows.maf(
        3, layers=1, hidden=(8,))
    assert ordered == nj.flows.maf(3, layers=1, hidden=(8,), order=np.array(o))
    params = ordered.init(jax.random.key(0), x)
    assert params["bijector"]["order"] == {}
    same = {"bijector": {k: v for k, v in params["bijector"].items() if k != "order"},
            "base": params["base"]}
    np.testing.assert_allclose(ordered.log_prob(params, x), plain.log_prob(same, x[:, o]),
                               rtol=1e-6, atol=1e-6)
    assert not ordered.is_triangular
    assert nj.flows.maf(3, layers=1, order=[0, 1, 2]).is_triangular
    with pytest.raises(ValueError, match=r"order=\[2, 0, 1\]\) models the coordinates"):
        ordered.cdf(params, x)
