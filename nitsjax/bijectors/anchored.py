"""A data-initialised layer split into a frozen anchor and a learned correction.

``anchored(b)`` runs ``b`` twice: first with params set by ``b.data_init`` and then held
fixed (the *anchor*), then with a second, trainable copy of ``b``'s params that starts at
``b``'s identity init (the *correction*):

    z = b(correction, b(anchor, x)),    log|det| = log|det_anchor| + log|det_correction|.

Why: a standardising layer initialised from the data (``whiten``, ``actnorm``) holds the
data's mean and scale in its params. Trained directly, its step sizes under Adam are in
data units (a shift of 1e-3 is nothing on a column of scale 1e3 and much on one of
scale 1e-3), so training on ``a * x + b`` does not follow training on ``x``. With the
anchor fixed, every trained param acts on standardised values: a fit from the same fresh
params on ``x`` and on ``A x + c`` (``A`` diagonal positive, or lower-triangular with the
full whitening) visits the same correction params at every step, and the densities
differ by exactly ``log|det A|`` up to rounding.

Params ``{"frozen": b's params, "learned": b's params}``. Gradients do not reach
``frozen`` (``stop_gradient``), ``nj.fit`` never updates it (weight decay included), and
``trainable_mask(params)`` marks it for other training loops, for example
``optax.masked(optax.adamw(1e-3, weight_decay=1e-4), nj.bijectors.trainable_mask)``.
``b``'s ``init`` must be the identity map (``whiten`` and ``actnorm`` are).
"""

from __future__ import annotations

import jax

from nitsjax.bijectors.base import Bijector, needs_data_init

FROZEN = "frozen"  # params under a dict key of this name are constants set by data init


def anchored(b: Bijector) -> Bijector:
    """``b`` with a frozen data-initialised anchor and a learned correction after it.

    Args:
      b: a bijector with ``data_init`` whose ``init`` is the identity.

    Returns:
      A ``Bijector`` with ``b``'s name and event size; params
      ``{"frozen": ..., "learned": ...}`` (each ``b``'s params).
    """
    if b.data_init is None:
        raise ValueError(f"anchored: {b.name} has no data_init: nothing to anchor")

    def init(key):
        return {FROZEN: b.init(key), "learned": b.init(key)}

    def forward(params, x, context=None, key=None):
        anchor = jax.lax.stop_gradient(params[FROZEN])
        y, ld_anchor = b.forward(anchor, x, context, key)
        z, ld = b.forward(params["learned"], y, context, key)
        return z, ld_anchor + ld

    def inverse(params, z, context=None, key=None):
        y, ld = b.inverse(params["learned"], z, context, key)
        x, ld_anchor = b.inverse(jax.lax.stop_gradient(params[FROZEN]), y, context, key)
        return x, ld + ld_anchor

    def data_init(params, x, context=None):
        """The anchor from ``x`` (n, dim); the correction is kept -> (params, z (n, dim))."""
        anchor, y = b.data_init(params[FROZEN], x, context)
        learned = params["learned"]
        if context is None:
            z, _ = jax.vmap(lambda yi: b.forward(learned, yi))(y)
        else:
            z, _ = jax.vmap(lambda yi, ci: b.forward(learned, yi, ci))(y, context)
        return {FROZEN: anchor, "learned": learned}, z

    def pending(params):
        return needs_data_init(b, params[FROZEN])

    def conditional_inverse(params, x, z, context=None, key=None):
        anchor = jax.lax.stop_gradient(params[FROZEN])
        y, _ = b.forward(anchor, x, context, key)
        w = b.conditional_inverse(params["learned"], y, z, context, key)
        return b.conditional_inverse(anchor, x, w, context, key)

    return Bijector(init, forward, inverse, data_init, event_size=b.event_size, name=b.name,
                    needs_data_init=pending,
                    conditional_inverse=(conditional_inverse if b.conditional_inverse is not None
                                         else None))


def trainable_mask(params):
    """A pytree of bools like ``params``: False on the leaves under a ``"frozen"`` key
    (constants set by data init, see ``anchored``), True elsewhere."""

    def trainable(path, _):
        return not any(getattr(k, "key", None) == FROZEN for k in path)

    return jax.tree_util.tree_map_with_path(trainable, params)
