"""Training objectives. A loss is ``loss(flow, params, x, context, key) -> scalar``.

``x`` is a minibatch ``(batch, dim)``, ``context`` ``(batch, context_dim)`` or ``None``,
``key`` a PRNG key (dropout) during training or ``None`` at evaluation. Losses are pure
and traceable; ``fit`` jits them with the flow as a static argument, so a loss must be a
hashable callable (a module-level function, not a fresh lambda per call, if you want
repeated ``fit`` calls to reuse compiled code).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def nll(flow, params, x, context=None, key=None) -> jax.Array:
    """Mean negative log-likelihood ``-(1/n) sum_i log p(x_i | c_i)`` in nats.

    Maximum likelihood = minimising the forward KL from the data to the model
    (Papamakarios et al., JMLR 2021, section 2.3.1).
    """
    return -jnp.mean(flow.log_prob_batch(params, x, context, key))
