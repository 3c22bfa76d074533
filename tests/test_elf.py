"""ELF beyond the contract (``cases_elf.py``): the sampling report and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nitsjax as nj


def test_sample_with_info_reports_iterations_and_residual():
    flow = nj.flows.elf(2, layers=2, hidden=(16,), units=4)  # the contract's: shares programs
    params = flow.init(jax.random.key(0))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree_util.tree_unflatten(tree, [
        a + 0.2 * jax.random.normal(k, a.shape) if jnp.issubdtype(a.dtype, jnp.floating) else a
        for a, k in zip(leaves, keys)])
    x, lp, info = flow.sample_with_info(params, jax.random.key(2), 64)
    assert info.iterations.shape == info.residual.shape == (64, 2)
    assert np.all(info.converged) and np.all(info.iterations >= 2)
    assert np.all(info.iterations < 200) and float(info.residual.max()) < 1e-4
    x2, lp2 = flow.sample_and_log_prob(params, jax.random.key(2), 64)
    np.testing.assert_allclose(x, x2, atol=1e-5)
    np.testing.assert_allclose(lp, lp2, atol=1e-4)


@pytest.mark.parametrize("kw, match", [
    (dict(lipschitz=1.0), "lipschitz"), (dict(lipschitz=0), "lipschitz"),
    (dict(units=0), "units"), (dict(layers=0), "layers"), (dict(max_iter=0), "max_iter"),
    (dict(standardize="pca"), "standardize"),
])
def test_bad_options_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        nj.flows.elf(2, **kw)
