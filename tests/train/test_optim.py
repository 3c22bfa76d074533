"""``nitsjax.train.optim``: the default optimizer is optax's clipped AdamW with a schedule
whose numbers live in the optimiser state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nitsjax.train import optim


def _params():
    return {"w": jnp.array([[0.5, -1.0], [2.0, 0.1]]), "b": jnp.array([0.3, -0.2])}


def _grads(i):
    return jax.tree_util.tree_map(lambda p: jnp.sin(p * (i + 1.0)) + 0.1 * i, _params())


def _run(tx, steps=4):
    params, state = _params(), tx.init(_params())
    for i in range(steps):
        updates, state = tx.update(_grads(i), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def _close(a, b, rtol=1e-6):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-7)


def test_default_is_adam_then_adamw_then_clipped_adamw():
    ours, _ = _run(optim.default_optimizer(1e-2, steps=10))
    _close(ours, _run(optax.adam(1e-2))[0])
    ours, _ = _run(optim.default_optimizer(1e-2, steps=10, weight_decay=0.1))
    _close(ours, _run(optax.adamw(1e-2, weight_decay=0.1))[0])
    ours, _ = _run(optim.default_optimizer(1e-2, steps=10, clip_norm=0.5))
    ref = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-2))
    _close(ours, _run(ref)[0])


def test_schedule_is_optax_cosine_after_the_warmup():
    hp = {k: jnp.float32(v) for k, v in dict(lr=2.0, warmup=0, decay_end=100,
                                             final_fraction=0.1, cosine=1.0).items()}
    ref = optax.cosine_decay_schedule(2.0, 100, alpha=0.1)
    for s in (0, 1, 37, 99, 100, 150):
        np.testing.assert_allclose(float(optim.learning_rate_at(hp, s)), float(ref(s)),
                                   rtol=1e-5)


def test_schedule_shapes():
    hp = {k: jnp.float32(v) for k, v in dict(lr=1.0, warmup=10, decay_end=110,
                                             final_fraction=0.1, cosine=1.0).items()}
    lr = [float(optim.learning_rate_at(hp, s)) for s in (0, 4, 9, 10, 60, 110, 500)]
    np.testing.assert_allclose(lr[:4], [0.1, 0.5, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(lr[4], 0.1 + 0.9 * 0.5, rtol=1e-5)
    np.testing.assert_allclose(lr[5:], [0.1, 0.1], rtol=1e-5)
    hp["cosine"] = jnp.float32(0.0)
    assert float(optim.learning_rate_at(hp, 500)) == 1.0


def test_hyperparameters_live_in_the_state_and_share_one_update():
    a = optim.default_optimizer(1e-3, steps=100, schedule="cosine", warmup_steps=5)
    b = optim.default_optimizer(5e-2, steps=7, clip_norm=1.0, weight_decay=1e-4)
    assert a.update is b.update and optim.is_default(a) and not optim.is_default(optax.sgd(1))
    sa, sb = a.init(_params()), b.init(_params())
    assert jax.tree_util.tree_structure(sa) == jax.tree_util.tree_structure(sb)
    assert float(sb.hyperparams["learning_rate"]) == pytest.approx(5e-2)
    assert float(sb.hyperparams["clip_norm"]) == 1.0
    assert optim.describe(a, sa) == "default"
    # the learning rate of the last update: warm-up step 2 of 5 -> 3/5 of the peak
    _, state = _run(a, steps=3)
    reader = optim.learning_rate_reader(a)
    assert float(reader(state)) == pytest.approx(3 / 5 * 1e-3, rel=1e-5)
    # a user optimizer: the injected learning rate, or NaN when there is none
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.25)
    assert float(optim.learning_rate_reader(tx)(tx.init(_params()))) == 0.25
    assert np.isnan(float(optim.learning_rate_reader(optax.sgd(1.0))(
        optax.sgd(1.0).init(_params()))))
    assert optim.describe(tx, tx.init(_params())).startswith("custom ")


def test_bad_schedule():
    with pytest.raises(ValueError, match="schedule: expected one of"):
        optim.default_optimizer(1e-3, steps=10, schedule="linear")
