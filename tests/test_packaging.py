"""The package as installed: a small library core (no application imports), extras named
when missing, the package list and the configs shipped in the wheel.

The wheel itself is built and installed into fresh virtual environments by
``make wheel-check`` (``.ci/wheel-check``), after the test suite in CI."""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "nitsjax"
APP_MODULES = ("nitsjax.cli", "nitsjax.config", "nitsjax.experiment", "nitsjax.app",
               "nitsjax.plots")
APP_PACKAGES = ("hydra", "omegaconf", "matplotlib")
OPTIONAL = ("sklearn", "h5py", "PIL", "pandas", "orbax")  # imported where needed only
CORE = sorted(
    [p for d in ("bijectors", "flows", "distributions", "nn", "train", "data")
     for p in (PKG / d).rglob("*.py")]
    + [PKG / f for f in ("__init__.py", "flow.py", "distribution_functions.py", "registry.py",
                         "results.py", "root_finding.py", "validation.py")]
)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_import_nitsjax_imports_no_application():
    out = _python("import nitsjax, sys; print('hydra' in sys.modules, "
                  "'matplotlib' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
    out = _python("import nitsjax, sys; print(sorted({m.split('.')[0] for m in sys.modules} & "
                  f"{set(APP_PACKAGES + OPTIONAL[:-1])!r}))")
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)


def test_import_nitsjax_imports_no_orbax():
    out = _python("import nitsjax, sys; print('orbax' in sys.modules)")
    assert out.stdout.strip() == "False", out.stderr


def _imports(path: pathlib.Path):
    """``(module, top_level)`` of every import in a source file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            yield name, id(node) in top


def test_the_core_never_imports_the_application():
    assert len(CORE) > 30
    for path in CORE:
        rel = path.relative_to(ROOT)
        for name, top in _imports(path):
            root = name.split(".")[0]
            assert not name.startswith(APP_MODULES), f"{rel}: imports {name} (application)"
            assert root not in APP_PACKAGES, f"{rel}: imports {name} (an application package)"
            if root in OPTIONAL[:-1]:
                assert not top, f"{rel}: imports {name} at import time; import it lazily"


def test_missing_extras_are_named():
    # the command line without the cli extra
    out = _python("import sys; sys.modules['hydra'] = sys.modules['omegaconf'] = None\n"
                  "from nitsjax.cli import main; sys.exit(main(['train']))")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert 'pip install "nitsjax[cli]"' in out.stderr, out.stderr
    # a data reader without the data extra
    out = _python("import sys; sys.modules['sklearn'] = None\n"
                  "import nitsjax.data as nd\n"
                  "try:\n    nd.load('digits')\n"
                  "except ImportError as err:\n    print(err)\n")
    assert 'pip install "nitsjax[data]"' in out.stdout and "scikit-learn" in out.stdout, (
        out.stdout, out.stderr)


def test_every_package_and_config_folder_is_in_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    code = {".".join(p.parent.relative_to(ROOT).parts) for p in PKG.rglob("__init__.py")}
    configs = {".".join(("nitsjax", *d.relative_to(ROOT).parts)) for d in
               (ROOT / "configs").rglob("*") if d.is_dir()} | {"nitsjax.configs"}
    assert tool["package-dir"]["nitsjax.configs"] == "configs"
    assert listed == code | configs, (sorted((code | configs) - listed),
                                      sorted(listed - code - configs))
    data = tool["package-data"]
    for pkg in configs:
        folder = ROOT / "configs" / pathlib.Path(*pkg.split(".")[2:])
        if any(folder.glob("*.yaml")):
            assert data.get(pkg) == ["*.yaml"], pkg


def test_config_dir_finds_the_copy_inside_an_installed_package(tmp_path, monkeypatch):
    from nitsjax import config as C

    site = tmp_path / "site-packages" / "nitsjax"
    (site / "configs").mkdir(parents=True)
    (site / "configs" / "train.yaml").write_text("{}\n")
    monkeypatch.delenv(C.ENV_CONFIG_DIR, raising=False)
    monkeypatch.setattr(C, "__file__", str(site / "config.py"))
    assert C.config_dir() == (site / "configs").resolve()
    (site / "configs" / "train.yaml").unlink()
    with pytest.raises(C.ConfigError, match="cannot find the configs"):
        C.config_dir()
