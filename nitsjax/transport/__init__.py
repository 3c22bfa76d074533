"""Monotone triangular transport maps fitted by the adaptive transport map (ATM)
algorithm (Baptista, Marzouk, Zahm, arXiv 2009.10303).

``flow, params, info = nj.transport.fit_atm(x_train, x_val=None, *, max_terms=None,
basis="hermite", rectifier="softplus", folds=5)`` and ``nj.transport.active_variables(info)``.
Modules: ``basis`` (1-D bases, rectifiers, quadrature), ``map`` (the map as a bijector and
``TransportFlow``), ``atm`` (the greedy cross-validated fit).
"""

from nitsjax.transport.atm import ATMInfo, active_variables, default_max_terms, fit_atm
from nitsjax.transport.map import TransportFlow, atm_flow, triangular_map

__all__ = ["ATMInfo", "TransportFlow", "active_variables", "atm_flow", "default_max_terms",
           "fit_atm", "triangular_map"]

from nitsjax.registry import register  # noqa: E402

register("atm", fit_atm, kind="transport")
