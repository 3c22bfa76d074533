"""Contract cases for the standard layers: sigmoid/logit/tanh, LU linear, ActNorm, whitening
(also data-initialised from a random batch), and affine flows that use them (actnorm + LU
linear inside each scanned layer). Kept few and small: each case costs compile time in two
dtypes; test_actnorm.py, test_linear.py, test_elementwise.py, test_coupling.py and
test_standardize.py cover the rest."""

import jax
from contract import BijectorCase, FlowCase

from nitsjax.bijectors.actnorm import actnorm
from nitsjax.bijectors.base import chain, invert
from nitsjax.bijectors.elementwise import logit, sigmoid, tanh
from nitsjax.bijectors.linear import lu_linear
from nitsjax.bijectors.standardize import whiten
from nitsjax.flows.affine import iaf, realnvp

BIJECTORS = [
    BijectorCase("sigmoid_interval", lambda: sigmoid(-2.0, 3.0), 2, low=-4.0, high=4.0),
    BijectorCase("logit", lambda: logit(), 3, low=0.01, high=0.99),
    BijectorCase(
        "logit_alpha_interval", lambda: logit(-1.0, 2.0, alpha=0.05), 4, low=-0.99, high=1.99
    ),
    BijectorCase("invert_logit", lambda: invert(logit()), 3, low=-5.0, high=5.0),
    BijectorCase("tanh", lambda: tanh(), 3, low=-3.0, high=3.0),
    BijectorCase("lu_linear", lambda: lu_linear(4), 4),
    BijectorCase("actnorm", lambda: actnorm(3), 3),
    BijectorCase("invert_actnorm", lambda: invert(actnorm(3)), 3),
    BijectorCase(
        "logit_actnorm_lu_chain",
        lambda: chain([logit(alpha=0.01), actnorm(3), lu_linear(3, seed=1)]),
        3,
        low=0.05,
        high=0.95,
        perturb=0.3,
    ),
]



def _data_initialised(bij, dim):
    """``bij`` whose ``init`` runs ``data_init`` on a random correlated batch, so the contract
    checks the non-identity path of a data-initialised layer."""

    def init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        mix = jax.random.normal(k1, (dim, dim))
        x = jax.random.normal(k2, (64, dim)) @ mix.T + jax.random.normal(k3, (dim,))
        return bij.data_init(bij.init(key), x)[0]

    return bij._replace(init=init)  # keeps event_size, name and the data-init fields


BIJECTORS += [
    BijectorCase("whiten", lambda: whiten(3), 3, perturb=0.3),
    BijectorCase("whiten_data_init", lambda: _data_initialised(whiten(4), 4), 4, perturb=0.05),
]

FLOWS = [
    FlowCase(
        "realnvp_actnorm_lu",
        lambda: realnvp(2, layers=3, hidden=(8,), actnorm=True, linear="lu"),
    ),
    FlowCase(
        "iaf_actnorm_lu_context",
        lambda: iaf(3, layers=2, hidden=(8,), context_dim=2, actnorm=True, linear="lu"),
    ),
]
