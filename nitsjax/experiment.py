"""What the command line and notebooks share, in one namespace (the modules of
``nitsjax.app`` hold the code)::

    from nitsjax.config import compose
    from nitsjax import experiment as ex

    cfg = compose("train", ["model=nsf", "data=moons", "train.steps=2000"])
    run_dir = ex.run_train(cfg, out_dir="runs/nsf_moons")
    ex.run_eval(run_dir)                       # {"log_likelihood": ..., "stderr": ...}
    run = ex.load_run(run_dir)                 # flow, params, config, data units
    x = run.sample(jax.random.key(0), 1000)    # samples in the data's own units
"""

from nitsjax.app.commands import (
    hydra_output_dir,
    output_path,
    run_demo,
    run_eval,
    run_sample,
    run_train,
    train_validated,
)
from nitsjax.app.datasets import Dataset, data_options, load_data
from nitsjax.app.evaluation import format_ll, log_likelihoods, sample_in_batches, summarize
from nitsjax.app.figures import write_figures
from nitsjax.app.models import build_flow, flow_constructor, model_options, takes_image_shape
from nitsjax.app.params_io import load_params, save_params
from nitsjax.app.trained import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    PARAMS_FILE,
    STANDARDIZATION_FILE,
    TrainedRun,
    load_run,
)

__all__ = [
    "CONFIG_FILE", "Dataset", "HISTORY_FILE", "METRICS_FILE", "PARAMS_FILE",
    "STANDARDIZATION_FILE", "TrainedRun", "build_flow", "data_options", "flow_constructor",
    "format_ll", "hydra_output_dir", "load_data", "load_params", "load_run",
    "log_likelihoods", "model_options", "output_path", "run_demo",
    "run_eval", "run_sample", "run_train", "sample_in_batches", "save_params", "summarize",
    "takes_image_shape", "train_validated", "write_figures",
]
