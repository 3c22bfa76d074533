"""The notebooks: every ``notebooks/*.py`` (jupytext percent format, the source) has an
``.ipynb`` twin with the same cells and no stored outputs.

The notebooks themselves run top to bottom under ``pytest --nbmake notebooks`` (part of
``make test``). After editing a ``.py``, regenerate its twin with
``jupytext --to ipynb notebooks/<name>.py``.
"""

import pathlib

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))
REQUIRED = ("01_quickstart", "02_nits_in_depth", "03_your_own_bijector", "04_sweep_results")


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_required_notebooks_exist():
    names = {p.stem for p in SOURCES}
    assert set(REQUIRED) <= names, f"missing notebooks: {sorted(set(REQUIRED) - names)}"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_ipynb_in_sync_with_py(source):
    ipynb = source.with_suffix(".ipynb")
    fix = f"run: jupytext --to ipynb notebooks/{source.name}"
    assert ipynb.exists(), f"{ipynb.name} is missing; {fix}"
    from_py = jupytext.read(source)
    stored = nbformat.read(ipynb, as_version=4)
    assert _cells(stored) == _cells(from_py), f"{ipynb.name} differs from {source.name}; {fix}"
    for cell in stored.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{ipynb.name} stores outputs; {fix} (or clear the outputs)"
            )
