"""Shared pytest setup: the generic bijector/flow case registry lives in ``cases_*.py``
(importable by name: ``pythonpath = ["tests", ...]`` in pyproject.toml)."""

import importlib
import os
import pathlib

import jax
from hypothesis import settings

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
