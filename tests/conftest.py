"""Shared pytest setup: the generic bijector/flow case registry lives in ``cases_*.py``
(importable by name: ``pythonpath = ["tests", ...]`` in pyproject.toml)."""

import importlib
import os
import pathlib

# The suite is compile-bound: hundreds of small programs, each run a few times on tiny
# shapes. LLVM's optimisation passes cost more compile time than they save at run time
# here (about 40% of the suite's CPU time), so tests compile at -O0 unless XLA_FLAGS
# already chooses a level. XLA:CPU's newer fusion emitters cost about three times the
# compile time of the classic ones on these small programs (a MAF training period: 2.5 CPU-s
# against 0.8), so tests use the classic ones. Set before jax loads, so the subprocesses
# the suite starts (CLI, resume, multi-process, notebook kernels) inherit them.
_FLAGS = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _FLAGS:
    _FLAGS = f"{_FLAGS} --xla_backend_optimization_level=0".strip()
if "xla_cpu_use_fusion_emitters" not in _FLAGS:
    _FLAGS = f"{_FLAGS} --xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = _FLAGS

import jax  # noqa: E402
from hypothesis import settings  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

# CI replays the same examples every run (a property failure found locally is reproduced
# there, and CI is not flaky); locally hypothesis explores new examples each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def collect(attr: str):
    """Concatenate ``attr`` (a list) from every ``tests/cases_*.py`` module."""
    out = []
    for path in sorted(pathlib.Path(__file__).parent.glob("cases_*.py")):
        out.extend(getattr(importlib.import_module(path.stem), attr, []))
    return out


def scaled_data(n, dtype, seed=0):
    """(n, 4) rows whose columns have very different means and scales, the last one
    constant (data-init tests)."""
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) * np.array([1e3, 1e-2, 1.0, 1.0]) + np.array([-7.0, 30.0, 0.0, 0.0])
    x[:, 3] = 2.5
    return jnp.asarray(x, dtype)
