# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A small sweep, its results as a table and a plot
#
# `nitsjax train -m model=maf,realnvp train.learning_rate=1e-3,3e-3` runs a sweep from
# the command line. The same runs can be driven from Python with the functions the
# command line calls: `nitsjax.config.compose` builds and validates a config from
# overrides exactly as the CLI does, and `nitsjax.experiment.run_train` trains,
# evaluates and writes one run folder (`config.yaml`, `params.npz`, `history.jsonl`,
# `metrics.json`, figures). Here: four tiny runs on `moons` in a temporary folder, read
# back with plain Python and NumPy.

# %%
import itertools
import json
import logging
import pathlib
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np

from nitsjax import experiment
from nitsjax.config import compose

logging.getLogger("nitsjax").setLevel(logging.WARNING)  # keep the notebook's output short

# %% [markdown]
# ## Run the sweep
#
# Every combination of the swept values, plus fixed overrides that keep each run to a few
# seconds (`train=fast` with fewer steps, small networks, no figures).

# %%
sweep = {"model": ["maf", "realnvp"], "train.learning_rate": [1e-3, 5e-3]}
fixed = ["data=moons", "train=fast", "train.steps=300",
         "train.progress=false", "model.layers=3", "model.hidden=[32,32]",
         "plots.enabled=false"]

root = pathlib.Path(tempfile.mkdtemp(prefix="nitsjax_sweep_"))
run_dirs = []
for i, values in enumerate(itertools.product(*sweep.values())):
    overrides = [f"{k}={v}" for k, v in zip(sweep, values)] + fixed
    cfg = compose("train", overrides)
    run_dirs.append(experiment.run_train(cfg, out_dir=root / f"{i}_{values[0]}_lr{values[1]}"))
    print("done:", run_dirs[-1].name)

# %% [markdown]
# ## Read the runs into a table
#
# `metrics.json` holds the validation and test log-likelihoods (nats per example) with
# their standard errors; `config.yaml` the full resolved config; `history.jsonl` one
# record per evaluation. No pandas needed: a list of dicts is the table. (The first run
# of each model includes its compilation; later runs of the same shapes reuse it.)

# %%
rows = []
for d in sorted(run_dirs):
    metrics = json.loads((d / "metrics.json").read_text())
    cfg = experiment.load_run(d).cfg
    rows.append({
        "run": d.name,
        "model": metrics["model"],
        "lr": cfg.train.learning_rate,
        "steps": metrics["steps"],
        "val_ll": metrics["val_log_likelihood"],
        "test_ll": metrics["test_log_likelihood"],
        "test_se": metrics["test_log_likelihood_stderr"],
        "seconds": metrics["train_seconds"],
    })

header = (f"{'run':24s} {'model':8s} {'lr':>7s} {'steps':>6s} {'val LL':>8s} "
          f"{'test LL (+- 2 SE)':>19s} {'s':>6s}")
print(header)
print("-" * len(header))
for r in sorted(rows, key=lambda r: -r["test_ll"]):
    print(f"{r['run']:24s} {r['model']:8s} {r['lr']:7.0e} {r['steps']:6d} {r['val_ll']:8.3f} "
          f"{r['test_ll']:10.3f} +- {2 * r['test_se']:.3f} {r['seconds']:6.1f}")
best = max(rows, key=lambda r: r["val_ll"])
print(f"\nbest on validation: {best['run']} (test {best['test_ll']:.3f})")

# %% [markdown]
# ## Plot: final test log-likelihood and the validation curves
#
# The error bars are two standard errors over test points; the curves come from each
# run's `history.jsonl` (one JSON record per line).

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
labels = [r["run"] for r in rows]
axes[0].errorbar(np.arange(len(rows)), [r["test_ll"] for r in rows],
                 yerr=[2 * r["test_se"] for r in rows], fmt="o", capsize=4)
axes[0].set_xticks(np.arange(len(rows)), labels, rotation=20)
axes[0].set(ylabel="test log-likelihood (nats)", title="test log-likelihood, +- 2 SE")
for d in sorted(run_dirs):
    records = [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines() if line]
    steps = [r["step"] for r in records if r.get("val_nll") is not None]
    val_nll = [r["val_nll"] for r in records if r.get("val_nll") is not None]
    axes[1].plot(steps, val_nll, "o-", label=d.name)
axes[1].set(xlabel="step", ylabel="validation NLL", title="validation curves")
axes[1].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# A trained run loads back as a `TrainedRun` (flow, params and the data's
# standardisation): sample from the best one, in the data's original units.

# %%
run = experiment.load_run(root / best["run"])
x = run.sample(jax.random.key(0), 1000)
print(type(x).__name__, x.shape)
plt.figure(figsize=(4, 3))
plt.scatter(*np.asarray(x).T, s=2)
plt.title(f"samples of {best['run']}")
plt.gca().set_aspect("equal")
plt.show()
