"""Shared pieces of the benchmark harness: configurations, data, timing, memory, machine.

Everything here is library-neutral (numpy and the standard library only), so a worker
process imports it before it imports the one library it measures.

A *task* is a plain dict (it crosses process boundaries as JSON)::

    {"kind": "train", "lib": "zuko", "flow": "maf_rqs", "data": "synth6",
     "batch": 512, "layers": 5, "hidden": [128, 128], "bins": 8, ...}

Flows (same architecture in every library):

- ``maf``      MAF, affine transformer, MADE conditioner, ``layers`` layers, coordinates
               reversed between layers (Papamakarios et al., NeurIPS 2017).
- ``maf_rqs``  MAF whose transformer is a rational-quadratic spline with ``bins`` bins on
               ``[-bound, bound]``, identity tails (Durkan et al., NeurIPS 2019).
- ``nsf``      coupling neural spline flow: half the coordinates transformed by an RQ spline
               conditioned on the other half through an MLP.
- ``realnvp``  affine coupling (Dinh et al., ICLR 2017).
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent

FLOWS = ("maf", "maf_rqs", "nsf", "realnvp")
FLOW_TITLES = {
    "maf": "MAF affine",
    "maf_rqs": "MAF RQ-spline",
    "nsf": "coupling NSF",
    "realnvp": "RealNVP",
    "cnf": "CNF (exact trace)",
    "cnf_hutchinson": "CNF (Hutchinson trace)",
}
SPLINE_BOUND = 4.0


# --------------------------------------------------------------------------- data
def data_root() -> pathlib.Path:
    """Folder with the shared real data sets: ``$NITSJAX_BENCH_DATA`` or ``../shared/data``."""
    env = os.environ.get("NITSJAX_BENCH_DATA")
    if env:
        return pathlib.Path(env)
    for cand in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data"):
        if cand.is_dir():
            return cand
    return ROOT.parent / "shared" / "data"


def _standardize(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
    return x.astype(np.float32)


def _synthetic(dim: int, n: int, seed: int = 0) -> np.ndarray:
    """A non-Gaussian synthetic set: a random 8-component Gaussian mixture pushed through a
    random orthogonal mix and an elementwise ``sinh`` (heavy-ish tails, curved dependence),
    standardised. Deterministic in ``(dim, n, seed)``."""
    rng = np.random.default_rng(seed + 1000 * dim)
    means = rng.normal(0.0, 2.0, size=(8, dim))
    scales = rng.uniform(0.3, 1.0, size=(8, dim))
    comp = rng.integers(0, 8, size=n)
    x = means[comp] + scales[comp] * rng.normal(size=(n, dim))
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    x = np.sinh(0.5 * (x @ q))
    return _standardize(x)


def _magic04() -> np.ndarray:
    """MAGIC gamma telescope, 10 real features (class column dropped), standardised.

    Uses ``nitsjax.data.load('magic04')`` when the loader exists, else reads the UCI file."""
    try:  # the project's loader, once it lands
        from nitsjax import data as nd  # noqa: PLC0415

        loader = getattr(nd, "load", None)
        if loader is not None:
            splits = loader("magic04", root=data_root() / "magic04")
            return np.asarray(splits.train, np.float32)
    except Exception:  # noqa: BLE001 - fall back to the file itself
        pass
    path = data_root() / "magic04" / "magic04.data"
    if not path.is_file():
        raise FileNotFoundError(
            f"magic04: expected the UCI file at {path}; set NITSJAX_BENCH_DATA to the folder "
            "holding magic04/magic04.data"
        )
    x = np.loadtxt(path, delimiter=",", usecols=range(10), dtype=np.float64)
    return _standardize(x)


DATASETS: dict[str, Callable[[], np.ndarray]] = {
    "magic04": _magic04,
    "synth6": lambda: _synthetic(6, 20_000),
    "synth21": lambda: _synthetic(21, 20_000),
    "synth63": lambda: _synthetic(63, 20_000),
}


def load_data(name: str) -> np.ndarray:
    """The float32 (n, d) array of data set ``name`` (one of ``DATASETS``)."""
    if name.startswith("synth") and name not in DATASETS:
        return _synthetic(int(name[5:]), 20_000)
    if name not in DATASETS:
        raise ValueError(f"data: expected one of {sorted(DATASETS)} or synth<d>, got {name!r}")
    return DATASETS[name]()


def batches(x: np.ndarray, batch: int, steps: int, seed: int = 0) -> np.ndarray:
    """``steps`` minibatches ``(steps, batch, d)`` drawn epoch by epoch (shuffled, ragged
    tail dropped): the same batches for every library."""
    rng = np.random.default_rng(seed)
    per_epoch = x.shape[0] // batch
    if per_epoch < 1:
        raise ValueError(f"batch: {batch} is larger than the data set ({x.shape[0]} rows)")
    out = []
    while len(out) < steps:
        perm = rng.permutation(x.shape[0])
        for i in range(per_epoch):
            out.append(x[perm[i * batch:(i + 1) * batch]])
            if len(out) == steps:
                break
    return np.stack(out).astype(np.float32)


# --------------------------------------------------------------------- measuring
class Timer:
    """``with Timer() as t: ...``; then ``t.s`` is the elapsed wall time in seconds."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self._t0


def median(xs):
    return float(statistics.median(xs)) if xs else float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is KiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def machine_info() -> dict:
    """CPU model, core count, memory and OS, for the table header."""
    cpu = platform.processor() or "?"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg": [round(v, 2) for v in load],
    }


def emit(result: dict) -> None:
    """Print a worker's result as the last line of stdout, tagged for the parent."""
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_worker(task: dict, python: str, timeout: float) -> dict:
    """Run ``worker.py`` on ``task`` in a fresh interpreter; return its result dict.

    A failure becomes ``{"error": ...}`` so one broken library never stops the table."""
    cmd = [python, str(HERE / "worker.py"), json.dumps(task)]
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT)
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[-300:]}


def matmul_flops_per_step(task: dict) -> float:
    """Matmul FLOPs of one training step (forward + backward ~ 3x the forward matmuls) of
    the conditioners, the same count for every library: the useful work of a step."""
    d, hidden, layers, batch = task["dim"], list(task["hidden"]), task["layers"], task["batch"]
    if task["flow"].startswith("cnf"):  # per-step work depends on the solver's step count
        return float("nan")
    k = 2 if task["flow"] in ("maf", "realnvp") else 3 * task["bins"] - 1
    if task["flow"] in ("maf", "maf_rqs"):
        n_in, n_out = d, d * k
    else:
        n_in, n_out = d // 2, (d - d // 2) * k
    widths = [n_in] + hidden + [n_out]
    fwd = sum(2 * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return 3.0 * fwd * layers * batch
