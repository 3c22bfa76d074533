"""Tensor-train density by TT sketching (nitsjax.tt): exact normalisation, product densities,
exact sampling, errors; the tensorizing flow's training is slow."""

import jax
import numpy as np
import pytest

import nitsjax as nj

RNG = np.random.default_rng(0)
CORR = RNG.multivariate_normal([0.0, 1.0], [[1.0, 0.7], [0.7, 1.0]], size=400)
SD = np.array([1.0, 0.5])
INDEP = RNG.normal(size=(600, 2)) * SD


@pytest.fixture(scope="module")
def tt_rank3():
    return nj.tt.fit(CORR, rank=3, grid=14)


def test_rank1_is_exactly_normalised_on_the_grid():
    tt = nj.tt.fit(CORR, rank=1, grid=14)  # grid and rank as below: compiled once
    g = np.asarray(tt.grid)
    pts = np.stack(np.meshgrid(g[0], g[1], indexing="ij"), -1).reshape(-1, 2)
    q = np.exp(np.asarray(tt.log_prob(pts))).reshape(14, 14)
    w = [np.asarray(nj.tt._trapezoid(tt.grid[k])) for k in range(2)]
    # the rank-1 TT is nonnegative: q is multilinear in each cell, trapezoid is exact
    assert abs(w[0] @ q @ w[1] - 1.0) < 1e-5
    np.testing.assert_allclose(q, np.asarray(tt.grid_values()), rtol=1e-4, atol=1e-6)


def test_higher_rank_integrates_to_one_and_beats_rank1(tt_rank3):
    g = np.asarray(tt_rank3.grid)
    m = 4 * 13  # midpoints of a 4x finer grid
    e0, e1 = (np.linspace(g[k, 0], g[k, -1], m + 1) for k in range(2))
    c0, c1 = (e[:-1] + np.diff(e) / 2 for e in (e0, e1))
    pts = np.stack(np.meshgrid(c0, c1, indexing="ij"), -1).reshape(-1, 2)
    mass = np.exp(np.asarray(tt_rank3.log_prob(pts))).sum() * np.diff(e0)[0] * np.diff(e1)[0]
    assert abs(mass - 1.0) < 1e-2
    assert tt_rank3.ranks == (3,)
    lp3 = float(tt_rank3.log_prob(CORR).mean())
    lp1 = float(nj.tt.fit(CORR, rank=1, grid=14).log_prob(CORR).mean())
    assert lp3 > lp1 + 0.1  # the correlation needs rank > 1


def test_product_density_recovered_at_rank1():
    tt = nj.tt.fit(INDEP, rank=1, grid=14)
    test = RNG.normal(size=(400, 2)) * SD
    true = (-0.5 * (test / SD) ** 2 - np.log(SD) - 0.5 * np.log(2 * np.pi)).sum(1)
    assert abs(float(tt.log_prob(test).mean()) - true.mean()) < 0.1
    assert np.isneginf(np.asarray(tt.log_prob(np.full((1, 2), 1e3)))).all()  # outside the box


@pytest.mark.slow
def test_samples_match_the_density(tt_rank3):
    s = np.asarray(tt_rank3.sample(jax.random.PRNGKey(0), 4000))
    assert s.shape == (4000, 2) and np.isfinite(tt_rank3.log_prob(s)).all()
    q = np.asarray(tt_rank3.grid_values())
    g = np.asarray(tt_rank3.grid)
    w = [np.asarray(nj.tt._trapezoid(tt_rank3.grid[k])) for k in range(2)]
    mean0 = w[0] @ (q * g[0][:, None]) @ w[1]
    mean1 = w[0] @ (q * g[1][None, :]) @ w[1]
    np.testing.assert_allclose(s.mean(0), [mean0, mean1], atol=0.06)
    assert np.corrcoef(s.T)[0, 1] > 0.4


@pytest.mark.parametrize("kwargs, match", [
    (dict(rank=0, grid=8), "rank"),
    (dict(rank=2, grid=1), "grid"),
    (dict(rank=2, grid=8, bandwidth=-1.0), "bandwidth"),
    (dict(rank=2, grid=8, bandwidth=[1.0, 1.0, 1.0]), "bandwidth"),
])
def test_fit_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nj.tt.fit(CORR, **kwargs)


def test_data_errors(tt_rank3):
    bad = CORR.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x: .*non-finite"):
        nj.tt.fit(bad, rank=2, grid=8)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, d\)"):
        nj.tt.fit(CORR[:, 0], rank=2, grid=8)
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 2\)"):
        tt_rank3.log_prob(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n:"):
        tt_rank3.sample(jax.random.PRNGKey(0), 0)


@pytest.mark.slow
def test_tensorizing_flow_trains_from_the_tt_base():
    from nitsjax.flows.tensorizing import gaussian_cnf
    tt = nj.tt.fit(CORR, rank=3, grid=16)
    flow = nj.flows.tensorizing_flow(2, tt, hidden=(16,))
    params = flow.init(jax.random.PRNGKey(0))
    start = float(flow.log_prob(params, CORR).mean())  # the flow starts as the identity
    assert abs(start - float(tt.log_prob(CORR).mean())) < 1e-2
    params, _ = nj.fit(flow, params, CORR, key=jax.random.PRNGKey(1), steps=30,
                       batch_size=64, learning_rate=3e-3, progress=False)
    assert float(flow.log_prob(params, CORR).mean()) > start
    s = flow.sample(params, jax.random.PRNGKey(2), 8)
    assert s.shape == (8, 2) and np.isfinite(np.asarray(s)).all()
    with pytest.raises(ValueError, match="tt: the tensor train is on R\\^2"):
        nj.flows.tensorizing_flow(3, tt)
    assert gaussian_cnf(2).dim == 2
    # the CNF bijector of nj.flows.cnf plugs in (data-side standardising off: the TT is
    # fitted in data space); it too starts as the identity
    bij = nj.flows.cnf(2, hidden=(8,), standardize=None, rtol=1e-3).bijector
    flow = nj.flows.tensorizing_flow(2, tt, bijector=bij)
    p = flow.init(jax.random.PRNGKey(3))
    assert abs(float(flow.log_prob(p, CORR[:50]).mean())
               - float(tt.log_prob(CORR[:50]).mean())) < 1e-2


# ----------------------------------------------------------- model=tensorizing (the CLI)
def test_tensorizing_model_config_fits_the_tt_and_reloads_into_its_shapes():
    """``model=tensorizing``: rank/grid/bandwidth are options, the training rows are not;
    built with ``x_train`` its base params are the TT fitted on them, built without (a
    reloaded run) the params have the same structure and shapes to load them into."""
    from nitsjax import config as C
    from nitsjax import experiment as ex

    cfg = C.compose("train", ["model=tensorizing", "model.rank=3", "model.grid=14",
                              "model.hidden=[8]"])
    assert {"rank", "grid", "bandwidth", "hidden"} <= set(cfg.model)
    assert "x_train" not in cfg.model
    flow = ex.build_flow(cfg.model, 2, x_train=CORR)
    tt = flow.base.init(None)["frozen"]
    want = nj.tt.fit(CORR, rank=3, grid=14)
    for a, b in zip(jax.tree_util.tree_leaves(tt), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fitted = jax.eval_shape(flow.init, jax.random.key(0))
    template = jax.eval_shape(ex.build_flow(cfg.model, 2).init, jax.random.key(0))
    assert jax.tree_util.tree_structure(fitted) == jax.tree_util.tree_structure(template)
    assert ([a.shape for a in jax.tree_util.tree_leaves(fitted)]
            == [a.shape for a in jax.tree_util.tree_leaves(template)])
    # the frozen TT is never trained
    from nitsjax.bijectors import trainable_mask
    mask = trainable_mask(fitted)
    assert not any(jax.tree_util.tree_leaves(mask["base"]))
    assert all(jax.tree_util.tree_leaves(mask["bijector"]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(x_train=CORR, rank=0), "rank: expected an integer >= 1"),
    (dict(rank=0), "rank: expected an integer >= 1"),
    (dict(x_train=CORR, grid=1), "grid: expected an integer >= 2"),
    (dict(grid=1), "grid: expected an integer >= 2"),
    (dict(x_train=np.where(np.arange(400)[:, None] == 5, np.nan, CORR)), "x: .*non-finite"),
    (dict(x_train=CORR[:, :1]), "x_train: expected rows of 2 values"),
])
def test_tensorizing_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nj.flows.tensorizing(2, **kwargs)


@pytest.mark.slow
def test_tensorizing_trains_and_evaluates_from_the_command_line(tmp_path):
    """``nitsjax train model=tensorizing`` fits the TT on the training split, trains the CNF,
    saves the TT with the params; ``nitsjax eval`` rebuilds the flow from the config and
    reproduces the test log-likelihood."""
    import json

    from nitsjax import experiment as ex
    from nitsjax.cli import main

    run = tmp_path / "run"
    assert main(["train", "model=tensorizing", "data=8gaussians", "model.rank=4",
                 "model.grid=16", "model.hidden=[8]", "train.steps=3", "train.batch_size=32",
                 "train.progress=false", "data.n_train=324", "data.n_val=36",
                 "data.n_test=40", "plots.n_samples=100", "plots.grid=16",
                 f"hydra.run.dir={run}"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["test_log_likelihood"])
    assert (run / "density.png").is_file()
    loaded = ex.load_run(run)
    want = nj.tt.fit(loaded.load_data().train, rank=4, grid=16)
    got = loaded.params["base"]["frozen"]
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert main(["eval", f"run={run}", f"hydra.run.dir={run / 'eval'}"]) == 0
    again = json.loads((run / "eval" / "metrics.json").read_text())
    assert abs(again["log_likelihood"] - metrics["test_log_likelihood"]) < 1e-5
