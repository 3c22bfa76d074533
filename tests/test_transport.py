"""``nj.transport``: the ATM fit against a known target, the triangular flow's extra
methods, structure learning and bad input. One small fit shared by the module (the
contract case of the map itself is in ``cases_transport.py``)."""

import jax
import numpy as np
import pytest

import nitsjax as nj
from nitsjax.transport.atm import reduced_margin, select_terms


def _chain_gaussian(n, seed=0):
    """x0 ~ N(1, 2^2), x1 = 0.8 x0 + noise, x2 = -1.5 x1 + noise: x2 _|_ x0 | x1, with
    columns on different scales (the fit is on standardised data)."""
    rng = np.random.default_rng(seed)
    x0 = 1 + 2 * rng.normal(size=n)
    x1 = 0.8 * x0 + rng.normal(size=n)
    x2 = -1.5 * x1 + 0.5 * rng.normal(size=n)
    return np.stack([x0, x1, 100 * x2], 1)


def _chain_log_prob(train, x):
    """The maximum-likelihood Gaussian with the chain's structure (the product of
    least-squares conditionals p(x0) p(x1 | x0) p(x2 | x1)) fitted to ``train``."""
    total = 0.0
    for k, parents in ((0, []), (1, [0]), (2, [1])):
        a = np.column_stack([np.ones(len(train))] + [train[:, j] for j in parents])
        coef, *_ = np.linalg.lstsq(a, train[:, k], rcond=None)
        var = np.mean((train[:, k] - a @ coef) ** 2)
        b = np.column_stack([np.ones(len(x))] + [x[:, j] for j in parents])
        total = total - 0.5 * (x[:, k] - b @ coef) ** 2 / var - 0.5 * np.log(2 * np.pi * var)
    return total


@pytest.fixture(scope="module")
def fitted():
    x = _chain_gaussian(1500)
    train, val, test = x[:750], x[750:1125], x[1125:]
    flow, params, info = nj.transport.fit_atm(train, val, max_terms=4, progress=False)
    return train, test, flow, params, info


def test_fit_atm_on_a_gaussian_chain_is_the_linear_map_and_finds_the_structure(fitted):
    train, test, flow, params, info = fitted
    assert info.selection == "validation" and info.terms == [len(a) for a in info.multi_indices]
    for a in info.multi_indices:  # Hermite bumps were not selected: the map is linear
        assert np.all(a.sum(axis=1) <= 1), a
    assert nj.transport.active_variables(info) == [set(), {0}, {1}]
    lp = np.asarray(flow.log_prob(params, test))
    np.testing.assert_allclose(lp, _chain_log_prob(train, test), atol=2e-3)


def test_conditionals_sampling_and_normalisation(fitted):
    train, test, flow, params, _ = fitted
    lp = np.asarray(flow.log_prob(params, test[:5]))
    full = np.asarray(flow.conditional_log_prob(params, test[:5], given=0))
    np.testing.assert_allclose(full, lp, rtol=1e-5, atol=1e-4)
    # p(x1, x2 | x0) integrates to one over a 2-D grid (x2 is in units of 100)
    g1, g2 = np.linspace(-12, 14, 161), np.linspace(-2500, 2500, 161)
    a, b = np.meshgrid(g1, g2)
    rows = np.stack([np.full(a.size, 1.5), a.ravel(), b.ravel()], 1)
    c = np.asarray(flow.conditional_log_prob(params, rows, given=1), np.float64)
    assert abs(np.exp(c).sum() * (g1[1] - g1[0]) * (g2[1] - g2[0]) - 1) < 0.01
    draws = np.asarray(flow.conditional_sample(params, jax.random.key(1), [3.0, 2.0], 300))
    assert draws.shape == (300, 3) and np.all(draws[:, :2] == np.float32([3.0, 2.0]))
    # x2 | x1 = 2 is N(-300 + ..., 50^2): the draws' mean and spread in data units
    assert abs(draws[:, 2].mean() - (-300)) < 25 and 35 < draws[:, 2].std() < 65


def test_reduced_margin_and_selection_rules():
    active = [(0, 0), (1, 0), (0, 1)]
    assert sorted(reduced_margin(active, 1, 8)) == [(0, 2), (1, 1), (2, 0)]
    assert sorted(reduced_margin([(0, 0), (1, 0)], 1, 8)) == [(0, 1), (2, 0)]
    assert reduced_margin([(0, 0, 0)], 0, 8) == [(1, 0, 0)]  # component 0: x_0 only
    rows = np.array([[1.0, 1.0, 1.0, 1.0], [0.5, 0.6, 0.4, 0.5], [0.48, 0.61, 0.4, 0.5]])
    assert select_terms(rows) == 2  # the third term's gain is within one standard error
    rows[2] = rows[1] - 0.1
    assert select_terms(rows) == 3


_X = np.random.default_rng(0).normal(size=(10, 2))


@pytest.mark.parametrize("call, match", [
    (lambda: nj.transport.fit_atm(_X[:3], folds=5), "fewer than folds"),
    (lambda: nj.transport.fit_atm(np.array([[0.0, np.nan], [1, 2], [3, 4]]), folds=2), "NaN"),
    (lambda: nj.transport.fit_atm(np.zeros(10)), "2-D"),
    (lambda: nj.transport.fit_atm(np.ones((10, 2))), "constant"),
    (lambda: nj.transport.fit_atm(_X, np.zeros((4, 3))), "x_val"),
    (lambda: nj.transport.fit_atm(_X, rectifier="relu"), "rectifier"),
    (lambda: nj.transport.fit_atm(_X, basis="legendre"), "basis"),
    (lambda: nj.transport.fit_atm(_X, max_terms=1), "max_terms"),
    (lambda: nj.transport.active_variables({}), "ATMInfo"),
])
def test_bad_input_is_refused_with_the_argument_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_conditional_arguments_are_checked(fitted):
    _, test, flow, params, _ = fitted
    with pytest.raises(ValueError, match="given"):
        flow.conditional_log_prob(params, test, given=3)
    with pytest.raises(ValueError, match="x_given"):
        flow.conditional_sample(params, jax.random.key(0), [1.0, 2.0, 3.0], 4)
