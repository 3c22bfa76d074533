"""Results tables of trained runs next to the published numbers.

    python experiments/results.py outputs/reduced/*/*  [--out results.md]

Each argument is a run folder of ``nitsjax train`` (``config.yaml`` + ``metrics.json``) or a
folder searched for them (``-m`` sweep folders). The table gives the test log-likelihood
as mean +- 2 standard errors over the test points, next to the published value for the
same data set and model (``nitsjax/published.csv`` via ``nitsjax.results.markdown_table``).

Units:

* tabular data: nats per example, in the units the model was trained in (for the MAF
  benchmarks that is MAF's preprocessing, the units of the published numbers; for the UCI
  tables, the training-standardised units);
* image models of the 8-bit values (``image_nits``): the discrete bits per dimension its
  run reports, ``-log P(x) / (D ln 2)`` (``test_bits_per_dim`` in ``metrics.json``);
* images (MNIST, CIFAR-10, dequantised to [0, 1) by the loader): bits per dimension of the
  dequantised 8-bit pixels, ``-(LL + log|det|) / (D ln 2)`` where ``log|det| = -D ln 256``
  is the scaling to [0, 1) (``nitsjax.data.scale_logdet``); a logit (``model.logit``) is
  part of the model, so its Jacobian is already in LL (``nitsjax.data.bits_per_dim``).

Published-model keys: ``maf`` with 5 layers is ``maf5`` (MAF (5)), otherwise ``maf``
(MAF (10)); ``nsf`` is the coupling and ``nsf_ar`` the autoregressive NSF. Runs on
``bsds300_images`` (patches rebuilt from the JPEGs) are compared with the ``bsds300`` row.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path

from omegaconf import OmegaConf

from nitsjax.data import bits_per_dim, scale_logdet
from nitsjax.results import markdown_table

IMAGE_DATA = {"mnist": 256, "cifar10": 256}  # data set -> pixel levels of its dequantisation
COMPARE_AS = {"bsds300_images": "bsds300"}


def find_runs(paths: Iterable) -> list[Path]:
    """Run folders (holding ``config.yaml`` and ``metrics.json``) at or under ``paths``,
    without the ``eval/`` and ``samples/`` folders of later commands; sorted, unique."""
    found = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"runs: no such file or folder {p}")
        cands = [p] if (p / "metrics.json").is_file() else sorted(
            m.parent for m in p.rglob("metrics.json"))
        for c in cands:
            if (c / "config.yaml").is_file() and not {"eval", "samples"} & set(c.parts[-3:]):
                found.append(c)
    return sorted(set(found))


def model_key(model_cfg) -> str:
    """The ``published.csv`` model name of a model config."""
    name = str(model_cfg.get("name"))
    if name == "maf":
        return "maf5" if int(model_cfg.get("layers", 0)) == 5 else "maf"
    if name == "nsf" and bool(model_cfg.get("autoregressive", False)):
        return "nsf_ar"
    return name


def budget(cfg, metrics: dict) -> str:
    """A short text of what the run cost: steps, batch, model size, training rows, time."""
    m, t = cfg.model, cfg.train
    size = []
    for k in ("layers", "blocks", "hidden", "filters", "resnets", "arch", "bins"):
        if k in m and m.get(k) is not None:
            v = m.get(k)
            v = "x".join(map(str, v)) if OmegaConf.is_list(v) or isinstance(v, list) else v
            size.append(f"{k} {v}")
    steps = metrics.get("steps")
    best = metrics.get("best_step")
    parts = [f"{steps} steps" + (f" (best {best})" if best not in (None, steps) else ""),
             f"batch {t.batch_size}", ", ".join(size)]
    if metrics.get("n_train") is not None:
        parts.append(f"n_train {metrics['n_train']}")
    if metrics.get("train_seconds") is not None:
        parts.append(f"{metrics['train_seconds']:.0f} s")
    if cfg.data.name in COMPARE_AS:
        parts.append(f"{cfg.data.name} preset {cfg.data.get('preset', '?')}")
    return "; ".join(parts)


def read_run(run_dir) -> dict | None:
    """One table row of a run folder, or None when the run has no test result yet.

    Returns ``{"dataset", "model", "mean", "stderr", "budget", "metric", "data",
    "run"}``: ``metric`` is ``"test_ll"`` (nats) or ``"bits_per_dim"``."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if metrics.get("test_log_likelihood") is None:
        return None
    cfg = OmegaConf.load(run_dir / "config.yaml")
    data = str(cfg.data.name)
    ll = float(metrics["test_log_likelihood"])
    se = metrics.get("test_log_likelihood_stderr")
    se = float("nan") if se is None else float(se)
    row = {"dataset": COMPARE_AS.get(data, data), "model": model_key(cfg.model), "data": data,
           "budget": budget(cfg, metrics), "run": str(run_dir)}
    if "test_bits_per_dim" in metrics:  # an image model of the 8-bit values (image_nits)
        dim = int(metrics["dim"])
        row.update(metric="bits_per_dim", mean=float(metrics["test_bits_per_dim"]),
                   stderr=se / (dim * math.log(2.0)))
    elif data in IMAGE_DATA and cfg.data.get("dequantize", True):
        dim = int(metrics["dim"])
        if "test_log_likelihood_original_units" in metrics:  # standardised pixels
            ll = float(metrics["test_log_likelihood_original_units"])
        logdet = scale_logdet(dim, IMAGE_DATA[data])
        row.update(metric="bits_per_dim", mean=float(bits_per_dim(-ll, dim, logdet)),
                   stderr=se / (dim * math.log(2.0)))
    else:
        row.update(metric="test_ll", mean=ll, stderr=se)
    return row


def collect(paths: Iterable) -> list[dict]:
    """Rows of every finished run at or under ``paths`` (unfinished ones are skipped)."""
    rows = []
    for r in find_runs(paths):
        row = read_run(r)
        if row is None:
            print(f"results: {r} has no test result (unfinished?), skipped", file=sys.stderr)
        else:
            rows.append(row)
    return rows


def tables(rows: list[dict]) -> str:
    """Markdown: one table of nats (tabular) and one of bits/dim (images)."""
    order = lambda r: (r["dataset"], r["model"], r["run"])  # noqa: E731
    out = []
    ll = sorted((r for r in rows if r["metric"] == "test_ll"), key=order)
    bpd = sorted((r for r in rows if r["metric"] == "bits_per_dim"), key=order)
    if ll:
        out += ["### Test log-likelihood (nats per example, higher is better)", "",
                markdown_table(ll), ""]
    if bpd:
        out += ["### Bits per dimension (lower is better)", "",
                markdown_table(bpd).replace("this run (mean +- 2 SE)",
                                            "this run, bits/dim (mean +- 2 SE)"), ""]
    if not out:
        out = ["(no finished runs)", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders or folders holding them")
    ap.add_argument("--out", help="also write the markdown to this file")
    args = ap.parse_args(argv)
    try:
        text = tables(collect(args.runs))
    except FileNotFoundError as err:
        print(f"results: {err}", file=sys.stderr)
        return 2
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
