"""Trainable models that are not normalizing flows, each registered once
(``nitsjax.registry``, kind ``"model"``), so ``model=<name>`` and ``nj.fit`` take them
like a flow.

A model is a hashable value (equal models built the same way share compiled code, as
``Flow`` does) with ``name``, ``dim`` (the modelled variable), ``context_dim`` (``None``,
or the size of the conditioning input) and ``init(key, x=None, context=None)``, plus what
its training objective needs: ``log_prob_batch(params, x, context, key)`` for the NLL,
``sample_batch`` (reparameterised draws, declared by ``reparameterized = True``) for
the energy loss (``nitsjax.losses.energy``).
Data-dependent setup (scales, bin ranges) follows the flows' protocol
(``data_init(params, x, context)`` and ``needs_data_init(params)``), which ``nj.fit``
runs on fresh params.

Conditional density models of ``p(y | x)`` (``dim = y_dim``, ``context_dim = x_dim``;
``nitsjax.models.conditional``): ``ddn`` (deconvolutional density network) and ``mdn``
(mixture density network). Their constructors take ``(x_dim, y_dim, **options)``.

Two-step models (``two_step``: an autoencoder, then a density on its codes; Loaiza-Ganem
et al., arXiv 2204.07172) train in two ``nj.fit`` stages by their own ``fit`` method
(``fits_in_stages = True``); ``model=two_step`` builds ``two_step_mlp``.
"""

from nitsjax import registry
from nitsjax.diffusion import diffusion
from nitsjax.models.ddn import ddn
from nitsjax.models.generator import Generator, generator
from nitsjax.models.gm_wae import GMWAE, gm_wae
from nitsjax.models.mdn import mdn
from nitsjax.models.two_step import TwoStep, two_step, two_step_mlp

KIND = "model"

registry.register("generator", generator, KIND)
registry.register("ddn", ddn, KIND)
registry.register("mdn", mdn, KIND)
registry.register("gm_wae", gm_wae, KIND)
registry.register("two_step", two_step_mlp, KIND)
registry.register("diffusion", diffusion, KIND)

__all__ = ["GMWAE", "Generator", "TwoStep", "ddn", "generator", "gm_wae", "mdn", "two_step",
           "two_step_mlp"]
