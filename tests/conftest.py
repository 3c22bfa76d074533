"""Shared pytest setup: the generic bijector/flow case registry lives in ``cases_*.py``."""

import importlib
import pathlib
import sys

import jax

jax.config.update("jax_default_matmul_precision", "highest")
sys.path.insert(0, str(pathlib.Path(__file__).parent))


def collect(attr: str):
    """Concatenate ``attr`` (a list) from every ``tests/cases_*.py`` module."""
    out = []
    for path in sorted(pathlib.Path(__file__).parent.glob("cases_*.py")):
        out.extend(getattr(importlib.import_module(path.stem), attr, []))
    return out
