"""``History``: one record per evaluation of a ``fit`` run, with JSONL round-trip.

Each record is a dict with at least ``step`` (optimisation steps done), ``train_nll``
(mean minibatch loss over the steps since the last evaluation, skipped steps excluded),
``val_nll`` (mean NLL on the validation set, ``None`` without one), ``lr`` (learning rate
of the last step), ``time`` (seconds of training so far, summed over resumed runs),
``skipped`` (non-finite steps skipped in this period) and ``skipped_total``. With
validation data the first record is the evaluation at step 0 (before any update; its
``train_nll`` and ``lr`` are ``None``).

Trained by another objective than the NLL (``fit(..., loss="crps")``), records also have
``train_loss`` and ``val_loss`` (that objective; early stopping follows ``val_loss``),
``train_nll`` is ``None`` and ``val_nll`` is the NLL when the model has a density.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from typing import Any


class History:
    """Per-evaluation records of a training run.

    ``history.records`` is the list of dicts; ``history["val_nll"]`` is the column as a
    list; ``history[-1]`` is the last record. ``best_step``/``best_val_nll`` name the
    evaluation whose params were kept (``best_val_loss``: its value of the objective when
    that is not the NLL; ``loss`` names the objective), ``stopped`` says why training ended early
    (``"early_stopping"``, ``"callback"`` or ``None``) and ``skipped_steps`` counts
    non-finite steps.

    Set by ``fit`` as well: ``returned`` (``"best"``, ``"final"`` or ``"initial"``, the
    params of step 0) and ``returned_step``: which params ``fit`` returned;
    ``gaussian_val_nll``: validation NLL of the full-covariance Gaussian fitted to the
    training rows (``None`` without validation data); ``dequantized``: ``{column: step}``
    of the dequantised columns (``None``: none; then every NLL is a bound on the discrete
    data's NLL); ``data_initialized``: whether ``fit`` initialised data-dependent layers.
    """

    #: the run-level fields, saved with the records
    FIELDS = ("loss", "best_step", "best_val_nll", "best_val_loss", "stopped", "returned",
              "returned_step", "gaussian_val_nll", "dequantized", "data_initialized")

    def __init__(self, records: list[dict] | None = None):
        self.records: list[dict] = list(records or [])
        self.loss: str = "nll"
        self.best_step: int | None = None
        self.best_val_nll: float | None = None
        self.best_val_loss: float | None = None
        self.stopped: str | None = None
        self.returned: str | None = None
        self.returned_step: int | None = None
        self.gaussian_val_nll: float | None = None
        self.dequantized: dict[int, float] | None = None
        self.data_initialized: bool = False

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records)

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            if self.records and key not in self.records[0]:
                raise KeyError(
                    f"History has no column {key!r}; columns are {sorted(self.records[0])}"
                )
            return [r.get(key) for r in self.records]
        return self.records[key]

    def keys(self) -> list[str]:
        return list(self.records[0]) if self.records else []

    @property
    def skipped_steps(self) -> int:
        """Total non-finite optimisation steps skipped."""
        return int(self.records[-1]["skipped_total"]) if self.records else 0

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        return (
            f"History({len(self)} evaluations, last={last}, best_step={self.best_step}, "
            f"stopped={self.stopped}, returned={self.returned})"
        )

    # ------------------------------------------------------------ serialisation
    def to_json(self) -> dict:
        """A JSON-safe dict (non-finite floats become ``None``)."""
        out = {"records": [{k: _json_float(v) for k, v in r.items()} for r in self.records]}
        for name in self.FIELDS:
            out[name] = _json_float(getattr(self, name))
        if self.dequantized is not None:  # JSON object keys are strings
            out["dequantized"] = {str(k): v for k, v in self.dequantized.items()}
        return out

    @classmethod
    def from_json(cls, data: dict) -> History:
        h = cls(data.get("records", []))
        for name in cls.FIELDS:
            if name in data:
                setattr(h, name, data[name])
        if h.dequantized is not None:
            h.dequantized = {int(k): float(v) for k, v in h.dequantized.items()}
        h.data_initialized = bool(h.data_initialized)
        return h

    def write_jsonl(self, path: str) -> None:
        """Write one JSON line per record, atomically (temp file + rename)."""
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".history-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                for r in self.records:
                    f.write(json.dumps({k: _json_float(v) for k, v in r.items()}) + "\n")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def read_jsonl(cls, path: str) -> History:
        with open(path) as f:
            return cls([json.loads(line) for line in f if line.strip()])


def _json_float(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
