"""Data files: a missing, truncated, malformed or unsafe file is an error naming the file
and the fix; and a source audit that nothing unpickles without an opt-in."""

import ast
import gzip
import pathlib
import re

import numpy as np
import pytest

from nitsjax import data as nd

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _write(tmp_path, kind):
    """A broken data file of ``kind``: (path, call, exception, regexes)."""
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    if kind == "missing":
        p = tmp_path / "absent.npy"
        return p, lambda: nd.load_file(p), nd.DataNotFoundError, [r"no such file", r"pass the path"]
    if kind == "truncated_npy":
        p = tmp_path / "t.npy"
        np.save(p, x)
        p.write_bytes(p.read_bytes()[:300])
        return p, lambda: nd.load_file(p), nd.DataFormatError, [r"truncated", r"Write it again"]
    if kind == "truncated_npz":
        p = tmp_path / "t.npz"
        np.savez(p, x=x)
        p.write_bytes(p.read_bytes()[:300])
        return p, lambda: nd.load_file(p), nd.DataFormatError, [r"truncated", r"Write it again"]
    if kind == "object_npy":
        p = tmp_path / "o.npy"
        np.save(p, np.array([{"a": 1}, 2], dtype=object), allow_pickle=True)
        return p, lambda: nd.load_file(p), nd.DataFormatError, [r"pickle", r"refused", r"np\.save"]
    if kind == "wrong_shape":
        p = tmp_path / "w.npy"
        np.save(p, np.zeros((4, 3, 2), np.float32))
        return (p, lambda: nd.load_file(p), nd.DataFormatError,
                [r"expected a 2-D table \(n, d\), got shape \(4, 3, 2\)"])
    if kind == "power_wrong_width":
        p = tmp_path / "power" / "data.npy"
        p.parent.mkdir()
        np.save(p, np.zeros((10, 3)))
        return (p, lambda: nd.load("power", root=tmp_path, cache=False), nd.DataFormatError,
                [r"shape \(10, 3\), expected \(n, 8\)", r"download"])
    if kind == "power_missing":
        p = tmp_path / "power" / "data.npy"
        return (p, lambda: nd.load("power", root=tmp_path, cache=False), nd.DataNotFoundError,
                [r"Looked for", r"download", r"NITSJAX_DATA"])
    if kind == "mnist_checksum":  # canonical sizes, wrong bytes (zeros): the md5 check fires
        from data_fixtures import write_idx

        root = tmp_path / "mnist"
        for name, shape in (("train-images-idx3-ubyte", (60000, 28, 28)),
                            ("train-labels-idx1-ubyte", (60000,)),
                            ("t10k-images-idx3-ubyte", (10000, 28, 28)),
                            ("t10k-labels-idx1-ubyte", (10000,))):
            write_idx(root / name, np.zeros(shape, np.uint8))
        p = root / "train-images-idx3-ubyte.gz"
        return (p, lambda: nd.load("mnist", root=root), nd.DataFormatError,
                [r"has md5 [0-9a-f]{32} .*expected 6bbc9ace898e44ae57da46a324031adb",
                 r"Download it again", r"verify=False"])
    if kind == "gzip_truncated":
        p = tmp_path / "table.csv.gz"
        rows = "".join(f"{a:.6f},{b:.6f}\n" for a, b in x[:, :2].astype(float).tolist() * 20)
        full = gzip.compress(("a,b\n" + rows).encode())
        p.write_bytes(full[: len(full) // 2])
        return p, lambda: nd.load_file(p), nd.DataFormatError, [r"truncated", r"again"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "truncated_npy", "truncated_npz", "object_npy",
                                  "wrong_shape", "power_wrong_width", "power_missing",
                                  "mnist_checksum", "gzip_truncated"])
def test_data_file_errors_name_the_file_and_the_fix(tmp_path, kind):
    path, call, exc, patterns = _write(tmp_path, kind)
    with pytest.raises(exc) as err:
        call()
    msg = str(err.value)
    assert str(path) in msg, msg
    for pattern in patterns:
        assert re.search(pattern, msg), (pattern, msg)


# ------------------------------------------------------------ safe-loading audit
# Calls that can execute code from a file. Each allowed use names the function that must
# check the opt-in (``pickle_allowed``) before reaching it.
UNSAFE_CALLS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "pd.read_pickle",
                "pandas.read_pickle", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
                "torch.load", "joblib.load", "dill.load", "cloudpickle.load", "marshal.load"}
ALLOWED = {
    ("nitsjax/data/images.py", "_read_cifar_py"): "read_cifar10",
    ("nitsjax/data/maf.py", "read_gas_pickle"): "read_gas_pickle",
}


def _dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def _audit(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    found = []
    funcs = {}

    def visit(node, func):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            funcs[node.name] = node
            func = node.name
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            kw = {k.arg: k.value for k in node.keywords}
            pickle_kw = kw.get("allow_pickle")
            if name in UNSAFE_CALLS:
                found.append((func, name, node.lineno))
            elif name.endswith("load") and pickle_kw is not None and not (
                isinstance(pickle_kw, ast.Constant) and pickle_kw.value is False
            ):
                found.append((func, f"{name}(allow_pickle=...)", node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, None)
    return found, funcs


def test_nothing_unpickles_without_an_opt_in():
    files = sorted((ROOT / "nitsjax").rglob("*.py")) + sorted((ROOT / "experiments").rglob("*.py"))
    assert len(files) > 20
    seen = set()
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        found, funcs = _audit(path)
        for func, call, line in found:
            assert (rel, func) in ALLOWED, (
                f"{rel}:{line}: {call} in {func}() can run code from a file; load without "
                f"pickle, or guard it with nitsjax.data._files.pickle_allowed and list it here")
            seen.add((rel, func))
            guard = funcs[ALLOWED[(rel, func)]]
            calls = {_dotted(n.func) for n in ast.walk(guard) if isinstance(n, ast.Call)}
            assert "pickle_allowed" in calls, (
                f"{rel}: {ALLOWED[(rel, func)]} does not check the opt-in")
            if ALLOWED[(rel, func)] != func:  # the unguarded reader is called from the guard only
                callers = {f for f, node in funcs.items()
                           if any(_dotted(n.func) == func for n in ast.walk(node)
                                  if isinstance(n, ast.Call))}
                refs = {f for f, node in funcs.items()
                        if any(isinstance(n, ast.Name) and n.id == func for n in ast.walk(node))}
                assert callers | refs <= {ALLOWED[(rel, func)]}, (rel, func, callers | refs)
        # np.load must say allow_pickle=False explicitly (not rely on the default)
        tree = ast.parse(path.read_text())
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and _dotted(n.func) in ("np.load", "numpy.load"):
                kw = {k.arg: k.value for k in n.keywords}
                flag = kw.get("allow_pickle")
                assert isinstance(flag, ast.Constant) and flag.value is False, (
                    f"{rel}:{n.lineno}: np.load without allow_pickle=False")
    assert seen == set(ALLOWED), f"stale audit entries: {set(ALLOWED) - seen}"
