"""Stochastic normalizing flows: a flow as a pair of Markov chains (Wu, Koehler & Noe,
NeurIPS 2020; Hagemann, Hertrich & Steidl, arXiv 2109.11375).

    import nitsjax as nj
    target = nj.snf.targets.double_well()
    flow = nj.flows.realnvp(2, layers=4, hidden=(32, 32), standardize=None)
    chain = nj.snf.chain([flow.bijector, nj.snf.metropolis("mala", 0.05, n_steps=5),
                          nj.snf.langevin(0.01, n_steps=2)])
    fit = nj.snf.fit_reverse(chain, chain.init(key), target.log_prob, key=key, steps=1000)
    fit.samples, fit.weights, fit.ess, fit.log_z, fit.log_z_se

Layers (``layers.py``): any nitsjax bijector, ``metropolis`` (random-walk or MALA,
blackjax kernels), ``langevin`` (unadjusted), ``vae_layer`` (learned Gaussian kernels);
``chain.py`` composes them and computes path weights; ``fit.py`` trains by the reverse
(``fit_reverse``) or forward (``fit_forward``) path KL; ``targets.py`` holds test targets
with known normalisers.
"""

from nitsjax.snf import targets
from nitsjax.snf.chain import (
    Chain,
    Importance,
    chain,
    importance,
    log_prob_bound,
    reverse_path,
    sample_path,
    sample_paths,
)
from nitsjax.snf.fit import ReverseFit, check_log_target, fit_forward, fit_reverse
from nitsjax.snf.layers import Layer, from_bijector, langevin, metropolis, vae_layer

__all__ = [
    "Chain", "Importance", "Layer", "ReverseFit", "chain", "check_log_target", "fit_forward",
    "fit_reverse", "from_bijector", "importance", "langevin", "log_prob_bound", "metropolis",
    "reverse_path", "sample_path", "sample_paths", "targets", "vae_layer",
]
