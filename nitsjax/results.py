"""Test log-likelihood summaries and the published numbers they are compared with.

``summarize(log_probs)`` gives the mean test log-likelihood and its standard error over
test points (the MAF paper's convention is mean +- 2 standard errors).
``published()`` reads ``nitsjax/published.csv`` (transcribed tables with citations).
``markdown_table(runs)`` puts runs next to the published numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

PUBLISHED_CSV = Path(__file__).with_name("published.csv")


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean test log-likelihood (nats per example), its standard error, and n."""

    mean: float
    stderr: float
    n: int

    def __str__(self):
        return f"{self.mean:.3f} +- {2 * self.stderr:.3f}"


def summarize(log_probs) -> Summary:
    """Mean and standard error of per-example log-likelihoods (1-D array, all finite)."""
    lp = np.asarray(log_probs, np.float64).ravel()
    if lp.size == 0:
        raise ValueError("summarize: got no log-likelihoods")
    bad = int((~np.isfinite(lp)).sum())
    if bad:
        raise ValueError(
            f"summarize: {bad} of {lp.size} test log-likelihoods are not finite "
            "(points outside a bounded model's support, or a diverged model)"
        )
    se = float(lp.std(ddof=1) / math.sqrt(lp.size)) if lp.size > 1 else float("nan")
    return Summary(float(lp.mean()), se, int(lp.size))


@dataclasses.dataclass(frozen=True)
class Published:
    dataset: str
    model: str
    metric: str
    value: float
    err: Optional[float]
    source: str


def published(dataset: Optional[str] = None) -> list[Published]:
    """Published results, optionally for one data set."""
    rows = []
    with open(PUBLISHED_CSV) as f:
        lines = [line for line in f if not line.startswith("#")]
    for r in csv.DictReader(lines):
        if dataset is not None and r["dataset"] != dataset:
            continue
        err = float(r["err"]) if r["err"] else None
        rows.append(
            Published(r["dataset"], r["model"], r["metric"], float(r["value"]), err, r["source"])
        )
    return rows


def markdown_table(runs: Iterable[dict]) -> str:
    """A markdown table of runs next to the published numbers for the same data set/model.

    Each run is a dict with ``dataset``, ``model``, ``mean``, ``stderr`` and optionally
    ``budget`` (a short text such as "2000 steps, hidden 128").
    """
    lines = [
        "| data set | model | this run (mean +- 2 SE) | budget | published | source |",
        "|---|---|---|---|---|---|",
    ]
    pub = published()
    for run in runs:
        match = [p for p in pub if p.dataset == run["dataset"] and p.model == run["model"]]
        ref = match[0] if match else None
        ref_txt = "-" if ref is None else (
            f"{ref.value:.2f}" + ("" if ref.err is None else f" +- {ref.err:.2f}")
        )
        lines.append(
            f"| {run['dataset']} | {run['model']} | {run['mean']:.3f} +- "
            f"{2 * run['stderr']:.3f} | {run.get('budget', '-')} | {ref_txt} | "
            f"{'-' if ref is None else ref.source} |"
        )
    return "\n".join(lines)
