"""The application layer: configs, runs and figures on top of the library core.

Needs the ``cli`` extra (hydra-core, omegaconf, matplotlib, ...). The core (``bijectors``,
``flows``, ``distributions``, ``nn``, ``train``, ``data``) never imports this package.

* ``schema``: config schemas derived from function signatures;
* ``models``: a ``Flow`` from a model config (registry lookup, ``model.logit``);
* ``datasets``: a ``Dataset`` (splits and units) from a data config;
* ``params_io``: params pytrees to and from ``.npz``;
* ``evaluation``: batched log-likelihoods, mean +- SE, batched sampling;
* ``trained``: ``TrainedRun`` and ``load_run`` (a run folder);
* ``commands``: ``run_train``, ``run_eval``, ``run_sample``, ``run_demo``;
* ``figures``: the figures a run writes.
* ``snf``: ``run_snf``, the ``nitsjax snf`` command (stochastic normalizing flows).
"""

# ``nitsjax.config`` registers the schemas when imported, and the eval/sample schemas are
# derived from ``app.commands``: importing it first, whichever module of this package is
# imported, keeps that order (config -> commands -> datasets -> config, already complete).
from nitsjax import config as _config  # noqa: E402,F401
