"""nj.flows.cnf: option checks (fast), Hutchinson in training / exact in evaluation and a
short fit (slow: every ODE program compiles for seconds)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj


@pytest.mark.parametrize("kw, match", [
    ({"trace": "hutch"}, "trace: expected one of"),
    ({"rtol": -1e-5}, "rtol: expected a positive tolerance"),
    ({"atol": 0.0}, "atol: expected a positive tolerance"),
    ({"solver": "rk4"}, "solver: expected one of"),
    ({"adjoint": "adjoint"}, "adjoint: expected one of"),
    ({"time": -1.0}, "time: expected a positive"),
    ({"activation": "relu"}, "activation: expected one of"),
    ({"hidden": (0,)}, "hidden"),
    ({"max_steps": 0}, "max_steps"),
])
def test_bad_options_name_the_argument(kw, match):
    with pytest.raises(ValueError, match=match):
        nj.flows.cnf(2, **kw)


def test_registered_as_model_cnf():
    assert nj.registry.get("cnf") is nj.flows.cnf


@pytest.mark.slow
def test_hutchinson_in_training_exact_in_evaluation():
    """With a key (training) the log-density is Hutchinson's unbiased estimate, without a
    key it is exact; the estimates average to the exact value."""
    flow = nj.flows.cnf(2, hidden=(16,), trace="hutchinson", standardize=None)
    params = flow.init(jax.random.key(0))
    params = jax.tree_util.tree_map(
        lambda a: a + 0.5 * jax.random.normal(jax.random.key(1), a.shape, a.dtype), params)
    x = jnp.tile(jnp.array([[0.3, -0.7]], jnp.float32), (512, 1))
    exact = flow.log_prob(params, x[:1])[0]
    lp = jax.jit(flow.log_prob_batch)(params, x, None, jax.random.key(2))
    assert float(jnp.std(lp)) > 1e-3  # estimated, not exact
    se = float(jnp.std(lp)) / np.sqrt(x.shape[0])
    assert abs(float(jnp.mean(lp)) - float(exact)) < 4 * se + 1e-4


@pytest.mark.slow
def test_fit_on_moons_beats_the_gaussian():
    x = np.asarray(nj.data.toys.sample("moons", 2000, seed=0), np.float32)
    flow = nj.flows.cnf(2, hidden=(32, 32), trace="hutchinson", rtol=1e-3, atol=1e-3)
    params = flow.init(jax.random.key(0), x)
    start = float(flow.log_prob(params, x[:500]).mean())
    params, _ = nj.fit(flow, params, x[:1500], x[1500:], steps=150, batch_size=128,
                       learning_rate=3e-3, key=jax.random.key(1), progress=False)
    end = float(flow.log_prob(params, x[:500]).mean())
    assert end > start + 0.2, (start, end)
