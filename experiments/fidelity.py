"""Fidelity of every flow on raw-scale and small data, next to FlowJAX and a Gaussian.

    python experiments/fidelity.py                  # full budget (see --help for the knobs)
    python experiments/fidelity.py --quick          # every code path, tiny budget
    python experiments/fidelity.py --part target --steps 3000 --batch-size 256

Part A (``--part target``): the KL gap ``E_p[log p(x) - log q(x)]`` (nats, estimated on a
fresh test sample, +- its standard error) between a known 6-D density ``p`` with an exact
log-density (:class:`Target`: raw scale, coordinates of very different scales and
offsets, heavy-tailed, skewed, bimodal and curved components, correlated) and each flow
``q`` fitted to samples of ``p``:

* every nitsjax flow, built as the README builds it: ``nj.flows.<name>(6, layers=...,
  hidden=..., [bins=...])`` from ``flow.init(key)``, trained with ``nj.fit``;
* fitted on the raw samples and on samples standardised with the training mean and std;
  for the latter ``log q(x) = log q_z((x - m) / s) - sum(log s)``, so both gaps are gaps
  to the same ``p`` in the data's units;
* next to FlowJAX (``flowjax.flows``) at the same architecture (layers, hidden widths and
  depth, spline bins and interval) and budget (optimisation steps, batch size, Adam
  learning rate), trained with its own ``fit_to_data``. FlowJAX counts epochs, not steps:
  it gets ``max_epochs = ceil(steps / (n_train // batch_size))`` epochs of
  ``n_train // batch_size`` steps (at most one epoch more than ``steps``), early stopping
  off (``max_patience = max_epochs``) and the best-on-validation params, as ``nj.fit``
  with ``patience=None`` returns its best-on-validation params. FlowJAX splits off its
  validation rows itself: it gets the same training + validation rows and the same
  validation fraction, so the same amounts.
* the full-covariance Gaussian fitted to the training rows, for reference.

Part B (``--part tables``): test log-likelihood (nats per row, +- standard error) on the
small UCI tables of ``--root`` (wine red, wine white, HTRU2, MAGIC), each subsampled to
``--rows`` rows (seeded shuffle; 0 keeps every row), split 72/8/20 (test = last 20%,
validation = last 10% of the rest: nitsjax's split rule) and standardised with the
training split's mean and std; the loader dequantises integer-valued columns
(``nj.data.load``'s default). Flows: ``maf(d)``, ``nsf(d)``, ``nits(d)`` with the
constructors' defaults, ``nj.fit`` with ``--patience``; next to the full-covariance
Gaussian fitted to the training rows, with the paired difference flow - Gaussian on the
test rows. The column report of ``nj.data.describe_columns`` on the training rows is
printed, and for each fit which params ``fit`` returned (its history).

Results go to stdout and, as markdown, into ``--out`` (between the markers
``<!-- fidelity:begin -->`` and ``<!-- fidelity:end -->`` if the file already has them,
so text around them is kept).
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nitsjax as nj
from nitsjax.data.preprocessing import split_rows, standardize

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- fidelity:begin -->", "<!-- fidelity:end -->"
TABLES = {"wine_red": "winequality-red", "wine_white": "winequality-white",
          "htru2": "htru2", "magic": "magic04"}
FLOWS = ("maf", "iaf", "realnvp", "nsf_coupling", "nsf_autoregressive", "nits")
FLOWJAX = ("maf", "realnvp", "nsf_coupling", "nsf_autoregressive")


def say(*args):
    print(*args, flush=True)


# --------------------------------------------------------------------------- the target


def log_t(u, nu):
    return (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
            - (nu + 1) / 2 * np.log1p(u**2 / nu))


def log_normal(u, loc=0.0, scale=1.0):
    z = (u - loc) / scale
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - math.log(scale)


class Target:
    """A 6-D density with an exact log-density, on a raw scale.

    Six independent latent coordinates ``u``:
    ``u0 ~ t(4)`` (heavy tails), ``u1 ~ N(0, 1)``, ``u2 ~ Gamma(3, 1) - 3`` (skewed,
    bounded below), ``u3 ~ N(0, 1)``, ``u4 ~ 0.5 N(-1.5, 0.5^2) + 0.5 N(1.5, 0.5^2)``
    (bimodal), ``u5 ~ Logistic(0, 1)``; a curved (banana) coordinate
    ``w3 = u3 + 0.5 (u1^2 - 1)`` (unit Jacobian); correlation by a fixed unit lower
    triangular ``M`` (``c = M w``, det 1); then the coordinates permuted and put on very
    different scales and offsets: ``x = shift + scale * c[perm]``. So
    ``log p(x) = sum_i log p_i(u_i) - sum(log scale)``.
    """

    dim = 6
    scale = np.array([0.05, 1.0, 8.0, 2.5, 40.0, 0.3])
    shift = np.array([3.0, -2.0, 25.0, 0.0, 100.0, -7.0])
    perm = np.array([3, 0, 5, 1, 4, 2])
    mix = np.array([
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.6, 1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, -0.5, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.4, 1.0, 0.0, 0.0],
        [0.7, 0.0, 0.0, -0.3, 1.0, 0.0],
        [0.0, 0.0, 0.3, 0.0, 0.5, 1.0],
    ])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        u = np.stack([
            rng.standard_t(4.0, n),
            rng.standard_normal(n),
            rng.gamma(3.0, 1.0, n) - 3.0,
            rng.standard_normal(n),
            np.where(rng.random(n) < 0.5, -1.5, 1.5) + 0.5 * rng.standard_normal(n),
            rng.logistic(0.0, 1.0, n),
        ], axis=1)
        w = u.copy()
        w[:, 3] = u[:, 3] + 0.5 * (u[:, 1] ** 2 - 1.0)
        c = w @ self.mix.T
        return self.shift + self.scale * c[:, self.perm]

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        c = np.empty_like(x)
        c[:, self.perm] = (x - self.shift) / self.scale
        w = np.linalg.solve(self.mix, c.T).T
        u = w.copy()
        u[:, 3] = w[:, 3] - 0.5 * (w[:, 1] ** 2 - 1.0)
        y = u[:, 2] + 3.0
        log_gamma = np.where(y > 0, 2.0 * np.log(np.maximum(y, 1e-300)) - y - math.lgamma(3.0),
                             -np.inf)
        bimodal = np.logaddexp(log_normal(u[:, 4], -1.5, 0.5),
                               log_normal(u[:, 4], 1.5, 0.5)) + math.log(0.5)
        logistic = -u[:, 5] - 2.0 * np.log1p(np.exp(-u[:, 5]))
        parts = (log_t(u[:, 0], 4.0) + log_normal(u[:, 1]) + log_gamma
                 + log_normal(u[:, 3]) + bimodal + logistic)
        return parts - np.log(self.scale).sum()


# --------------------------------------------------------------------------- helpers


def gaussian_log_prob(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log N(x; mean, cov) with the maximum-likelihood mean and covariance of ``train``."""
    train = np.asarray(train, np.float64)
    mean = train.mean(axis=0)
    chol = np.linalg.cholesky(np.cov(train, rowvar=False, bias=True))
    z = np.linalg.solve(chol, (np.asarray(x, np.float64) - mean).T)
    return (-0.5 * (z**2).sum(axis=0) - np.log(np.diag(chol)).sum()
            - 0.5 * train.shape[1] * math.log(2 * math.pi))


def chunked(fn, x: np.ndarray, size: int = 8192) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[i:i + size])) for i in range(0, len(x), size)])


def mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    if not np.isfinite(v).all():
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def fmt(m: float, se: float) -> str:
    return "diverged" if not np.isfinite(m) else f"{m:.3f} +- {se:.3f}"


def returned(history) -> str:
    """Which params ``nj.fit`` returned, from its history (as far as it says)."""
    parts = []
    for attr in ("returned", "fallback"):  # reported by newer versions of fit
        value = getattr(history, attr, None)
        if value is not None:
            parts.append(f"{attr}={value}")
    if history.best_step is not None:
        parts.append(f"best val @ step {history.best_step}")
    if len(history):
        parts.append(f"{len(history)} evals to step {history[-1]['step']}")
    if history.stopped:
        parts.append(str(history.stopped))
    if history.skipped_steps:
        parts.append(f"{history.skipped_steps} skipped steps")
    return "; ".join(parts)


def nitsjax_flows(dim, args):
    hidden = tuple(args.hidden)
    return {
        "maf": lambda: nj.flows.maf(dim, layers=args.layers, hidden=hidden),
        "iaf": lambda: nj.flows.iaf(dim, layers=args.layers, hidden=hidden),
        "realnvp": lambda: nj.flows.realnvp(dim, layers=args.layers, hidden=hidden),
        "nsf_coupling": lambda: nj.flows.nsf(dim, layers=args.layers, hidden=hidden,
                                             bins=args.bins),
        "nsf_autoregressive": lambda: nj.flows.nsf(dim, layers=args.layers, hidden=hidden,
                                                   bins=args.bins, autoregressive=True),
        "nits": lambda: nj.flows.nits(dim, hidden=args.nits_hidden, blocks=args.nits_blocks),
    }


def flowjax_flows(dim, args, bound):
    """FlowJAX at nitsjax's architecture: same layers, MLP width/depth, bins, interval."""
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow, masked_autoregressive_flow

    if len(set(args.hidden)) != 1:
        raise ValueError(f"--hidden: FlowJAX's MLPs have equal widths, got {args.hidden}")
    kw = dict(base_dist=Normal(jnp.zeros(dim)), flow_layers=args.layers,
              nn_width=args.hidden[0], nn_depth=len(args.hidden))
    spline = RationalQuadraticSpline(knots=args.bins, interval=bound)
    return {
        "maf": lambda key: masked_autoregressive_flow(key, **kw),
        "realnvp": lambda key: coupling_flow(key, **kw),
        "nsf_coupling": lambda key: coupling_flow(key, transformer=spline, **kw),
        "nsf_autoregressive": lambda key: masked_autoregressive_flow(key, transformer=spline,
                                                                     **kw),
    }


def fit_nitsjax(make, train, val, args, seed, steps, batch_size, patience):
    flow = make()
    params = flow.init(jax.random.key(seed))
    t0 = time.perf_counter()
    params, history = nj.fit(flow, params, train, val, key=jax.random.key(seed + 1),
                             steps=steps, batch_size=batch_size,
                             learning_rate=args.lr, patience=patience,
                             progress=args.progress)
    secs = time.perf_counter() - t0
    return (lambda x: chunked(lambda b: flow.log_prob(params, b), x)), history, secs


def fit_flowjax(make, train, val, args, seed):
    import equinox as eqx
    from flowjax.train import fit_to_data

    per_epoch = len(train) // args.batch_size
    epochs = math.ceil(args.steps / per_epoch)
    data = np.concatenate([train, val])
    dist = make(jax.random.key(seed))
    t0 = time.perf_counter()
    dist, losses = fit_to_data(jax.random.key(seed + 1), dist, data,
                               learning_rate=args.lr, max_epochs=epochs, max_patience=epochs,
                               batch_size=args.batch_size, val_prop=len(val) / len(data),
                               return_best=True, show_progress=args.progress)
    secs = time.perf_counter() - t0
    log_prob = eqx.filter_jit(lambda d, x: d.log_prob(x))
    best = int(np.argmin(losses["val"])) + 1
    info = f"best val @ epoch {best} of {len(losses['val'])} ({epochs * per_epoch} steps)"
    return (lambda x: chunked(lambda b: log_prob(dist, b), x)), info, secs


# --------------------------------------------------------------------------- part A


def part_target(args) -> list[str]:
    target = Target()
    rng = np.random.default_rng(args.seed)
    train = target.sample(args.n_train, rng).astype(np.float32)
    val = target.sample(args.n_val, rng).astype(np.float32)
    test = target.sample(args.n_test, rng)
    log_p = target.log_prob(test)
    mean, std = train.mean(0, dtype=np.float64), train.std(0, dtype=np.float64)
    log_s = float(np.log(std).sum())
    scaled = {"raw": (train, val, lambda x: x, 0.0),
              "standardised": ((train - mean) / std, (val - mean) / std,
                               lambda x: (x - mean) / std, log_s)}
    for key in ("raw", "standardised"):  # float32 arrays for both libraries
        tr, va, to, ld = scaled[key]
        scaled[key] = (tr.astype(np.float32), va.astype(np.float32), to, ld)
    say(f"[target] p: 6-D, train {len(train)}, val {len(val)}, test {len(test)}; coordinate "
        f"std {np.array2string(std, precision=2)}; mean {np.array2string(mean, precision=1)}")

    def gap(log_q_fn, which):
        """(mean, standard error, largest term) of log p - log q on the test samples."""
        _, _, to_model, logdet = scaled[which]
        log_q = log_q_fn(to_model(test).astype(np.float32)).astype(np.float64) - logdet
        terms = log_p - log_q
        return (*mean_se(terms), float(np.max(terms)))

    results = {}  # (library, flow, scale) -> (gap, se, info, secs)
    for which in scaled:
        m, se, _ = gap(lambda x, w=which: gaussian_log_prob(scaled[w][0], x), which)
        results[("gaussian", "full-cov Gaussian", which)] = (m, se, "closed form", 0.0)
    bound = inspect.signature(nj.flows.nsf).parameters["bound"].default
    makers = {"nitsjax": nitsjax_flows(6, args)}
    if not args.no_flowjax:
        makers["flowjax"] = flowjax_flows(6, args, bound)
    for name in args.flows:
        for lib, fns in makers.items():
            if name not in fns:
                continue
            for which in ("raw", "standardised"):
                tr, va, _, _ = scaled[which]
                say(f"[target] {lib} {name} on {which} data: {args.steps} steps ...")
                if lib == "nitsjax":
                    log_q, history, secs = fit_nitsjax(fns[name], tr, va, args, args.seed,
                                                       args.steps, args.batch_size, None)
                    info = returned(history)
                else:
                    log_q, info, secs = fit_flowjax(fns[name], tr, va, args, args.seed)
                m, se, top = gap(log_q, which)  # a heavy tail of the terms shows in top
                info = f"{info}; largest log p - log q on one test sample {top:.3g}"
                results[(lib, name, which)] = (m, se, info, secs)
                say(f"[target]   KL gap {fmt(m, se)} nats ({secs:.0f} s; {info})")

    lines = [
        "### A. KL gap to a known 6-D density (nats; mean +- standard error)",
        "",
        f"Budget: {args.steps} steps, batch {args.batch_size}, Adam lr {args.lr}, seed "
        f"{args.seed}; {args.n_train} training, {args.n_val} validation, {args.n_test} test "
        f"samples. Architecture: {args.layers} layers, hidden {tuple(args.hidden)}, "
        f"{args.bins} bins (spline interval +-{bound}, nitsjax's default); NITS: "
        f"`nits(6, hidden={args.nits_hidden}, blocks={args.nits_blocks})`.",
        "",
        "| flow | nitsjax raw | nitsjax standardised | raw - standardised "
        "| FlowJAX raw | FlowJAX standardised | nitsjax time, s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ["full-cov Gaussian", *args.flows]:
        lib = "gaussian" if name == "full-cov Gaussian" else "nitsjax"
        raw = results.get((lib, name, "raw"))
        std_ = results.get((lib, name, "standardised"))
        if raw is None:
            continue
        diff = raw[0] - std_[0]
        diff_se = math.hypot(raw[1], std_[1])  # independent fits: SEs add in quadrature
        fj = [results.get(("flowjax", name, w)) for w in ("raw", "standardised")]
        fj = [fmt(r[0], r[1]) if r else "-" for r in fj]
        lines.append(f"| {name} | {fmt(*raw[:2])} | {fmt(*std_[:2])} | "
                     f"{fmt(diff, diff_se)} | {fj[0]} | {fj[1]} | "
                     f"{raw[3] + std_[3]:.0f} |")
    lines += ["", "Which params each fit returned:", ""]
    for (lib, name, which), (_, _, info, secs) in results.items():
        if lib != "gaussian":
            lines.append(f"- {lib} {name}, {which}: {info} ({secs:.0f} s)")
    return lines


# --------------------------------------------------------------------------- part B


def load_table(name, args):
    """Shuffled (seeded), dequantised table, subsampled, split and standardised on train."""
    folder = Path(args.root) / TABLES[name]
    splits = nj.data.load(name, root=str(folder), seed=args.seed, standardize=False)
    x = np.concatenate(list(splits))  # nj.data.load shuffled and dequantised the rows
    if args.rows:
        x = x[:args.rows]
    train, val, test = split_rows(x, val_fraction=0.1, test_fraction=0.2)
    train, val, test, _, _ = standardize(train, val, test)
    return (np.asarray(train, np.float32), np.asarray(val, np.float32),
            np.asarray(test, np.float32))


def part_tables(args) -> list[str]:
    rows = []
    makers = {
        "maf": lambda d: nj.flows.maf(d),
        "nsf": lambda d: nj.flows.nsf(d),
        "nits": lambda d: nj.flows.nits(d),
    }
    reports = []
    for name in args.tables:
        train, val, test = load_table(name, args)
        d = train.shape[1]
        say(f"[tables] {name}: d={d}, train {len(train)}, val {len(val)}, test {len(test)}")
        report = nj.data.describe_columns(train)
        say("[tables] " + str(report).replace("\n", "\n[tables] "))
        reports.append(f"- {name}: " + str(report).replace("\n", "\n  "))
        g_test = gaussian_log_prob(train, test)
        g_val = mean_se(gaussian_log_prob(train, val))
        rows.append((name, d, len(train), "full-cov Gaussian", fmt(*mean_se(g_test)),
                     fmt(*g_val), "-", "closed form", 0.0))
        batch = min(args.table_batch_size, len(train))
        for model in args.table_flows:
            say(f"[tables] {name} {model}: {args.table_steps} steps, batch {batch} ...")
            log_q, history, secs = fit_nitsjax(lambda m=model, d=d: makers[m](d), train, val,
                                               args, args.seed, args.table_steps, batch,
                                               args.patience)
            lq_test, lq_val = log_q(test), log_q(val)
            test_s, val_s = mean_se(lq_test), mean_se(lq_val)
            paired = mean_se(lq_test - g_test)
            rows.append((name, d, len(train), model, fmt(*test_s), fmt(*val_s), fmt(*paired),
                         returned(history), secs))
            say(f"[tables]   test LL {fmt(*test_s)} (Gaussian {fmt(*mean_se(g_test))}); "
                f"{rows[-1][7]}; {secs:.0f} s")
    lines = [
        "### B. Small tables: test log-likelihood (nats per row; mean +- standard error)",
        "",
        f"Rows per table: {args.rows or 'all'} (seeded shuffle), split 72/8/20 "
        f"(train/val/test), standardised on train. Budget: {args.table_steps} steps, "
        f"batch {args.table_batch_size} (at most the training rows), Adam lr {args.lr}, "
        f"patience {args.patience}, seed {args.seed}; constructors' defaults "
        "(`maf(d)`, `nsf(d)`, `nits(d)`). Paired = mean over test rows of "
        "log q(x) - log N(x).",
        "",
        "| data | d | train rows | model | test LL | val LL | paired vs Gaussian "
        "| returned params | time, s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| " + " | ".join([*map(str, r[:8]), f"{r[8]:.0f}"]) + " |")
    lines += ["", "Column check of each training split (`nj.data.describe_columns`):", "",
              *reports]
    return lines


# --------------------------------------------------------------------------- main


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                             capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nitsjax"], cwd=HERE,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + (" (nitsjax/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(out: Path, lines: list[str]) -> None:
    block = "\n".join([BEGIN, *lines, END]) + "\n"
    if out.exists() and BEGIN in (text := out.read_text()) and END in text:
        head, rest = text.split(BEGIN, 1)
        block = head + block + rest.split(END, 1)[1].lstrip("\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(block)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("all", "target", "tables"), default="all")
    ap.add_argument("--quick", action="store_true",
                    help="tiny budget and samples, to check the script end to end")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (both parts)")
    ap.add_argument("--progress", action="store_true", help="progress bars of the fits")
    g = ap.add_argument_group("part A (known density)")
    g.add_argument("--steps", type=int, default=3000)
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--n-train", type=int, default=20_000)
    g.add_argument("--n-val", type=int, default=2_000)
    g.add_argument("--n-test", type=int, default=50_000)
    g.add_argument("--layers", type=int, default=5)
    g.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    g.add_argument("--bins", type=int, default=8)
    g.add_argument("--nits-hidden", type=int, default=256)
    g.add_argument("--nits-blocks", type=int, default=2)
    g.add_argument("--flows", nargs="+", choices=FLOWS, default=list(FLOWS))
    g.add_argument("--no-flowjax", action="store_true")
    g = ap.add_argument_group("part B (small tables)")
    g.add_argument("--root", default=str(HERE.parents[1] / "shared" / "data"),
                   help="folder holding magic04/, htru2/, winequality-red/, ...")
    g.add_argument("--tables", nargs="+", choices=tuple(TABLES), default=list(TABLES))
    g.add_argument("--rows", type=int, default=500, help="rows per table (0: all)")
    g.add_argument("--table-steps", type=int, default=2000)
    g.add_argument("--table-batch-size", type=int, default=128)
    g.add_argument("--patience", type=int, default=20)
    g.add_argument("--table-flows", nargs="+", choices=("maf", "nsf", "nits"),
                   default=["maf", "nsf", "nits"])
    ap.add_argument("--out", default=str(HERE / "results" / "fidelity.md"))
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.n_train, args.n_val, args.n_test = 40, 1_000, 200, 2_000
        args.batch_size, args.hidden, args.nits_hidden, args.nits_blocks = 128, [16, 16], 32, 1
        args.table_steps, args.table_batch_size, args.patience = 20, 64, 5
        args.tables = ["wine_red", "magic"] if args.tables == list(TABLES) else args.tables
    return args


def main(argv=None):
    args = parse(argv)
    command = "python experiments/fidelity.py " + " ".join(sys.argv[1:] if argv is None
                                                            else argv)
    t0 = time.perf_counter()
    lines = [
        f"Command: `{command.strip()}`  ",
        f"nitsjax commit {git_commit()}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, jax backend {jax.default_backend()}, "
        f"jax {jax.__version__}" + (", **--quick: a smoke run, not results**" if args.quick
                                    else ""),
        "",
    ]
    if args.part in ("all", "target"):
        lines += [*part_target(args), ""]
    if args.part in ("all", "tables"):
        lines += [*part_tables(args), ""]
    lines.append(f"Total time {time.perf_counter() - t0:.0f} s.")
    say("\n".join(lines))
    if args.out:
        write(Path(args.out), lines)
        say(f"written to {args.out}")


if __name__ == "__main__":
    main()
