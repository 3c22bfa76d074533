"""A model's own training objective (``loss="objective"``): for latent variable models
whose loss is not a log-likelihood of the data (``nitsjax.models.gm_wae``: the WAE loss or
a GM-VAE's negative ELBO)."""

from __future__ import annotations

import jax


def objective(model, params, x, context=None, key=None) -> jax.Array:
    """``model.objective_batch(params, x, context, key)``: the scalar the model declares as
    its training objective (``key`` None at evaluation: the model uses a fixed key)."""
    return model.objective_batch(params, x, context, key)


def _check_objective(model) -> None:
    if not callable(getattr(model, "objective_batch", None)):
        raise ValueError(
            f"loss='objective': the {getattr(model, 'name', type(model).__name__)} model "
            "declares no training objective (no objective_batch); use loss='nll' for flows "
            "or loss='energy' for samplers"
        )


objective.check = _check_objective
