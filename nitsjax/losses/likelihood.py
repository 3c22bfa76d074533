"""The likelihood objective."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def nll(flow, params, x, context=None, key=None) -> jax.Array:
    """Mean negative log-likelihood ``-(1/n) sum_i log p(x_i | c_i)`` in nats.

    Maximum likelihood = minimising the forward KL from the data to the model
    (Papamakarios et al., JMLR 2021, section 2.3.1). Needs a model with a density
    (``log_prob_batch``).
    """
    return -jnp.mean(flow.log_prob_batch(params, x, context, key))


def _check_nll(model) -> None:
    if not callable(getattr(model, "log_prob_batch", None)):
        raise ValueError(
            f"loss='nll': the {getattr(model, 'name', type(model).__name__)} model has no "
            "density (no log_prob_batch); train it with a sample-based loss such as "
            "loss='energy'"
            + (", or by its own objective, loss='objective'"
               if callable(getattr(model, "objective_batch", None)) else "")
        )


nll.check = _check_nll
