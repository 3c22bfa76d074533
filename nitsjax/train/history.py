"""``History``: one record per evaluation of a ``fit`` run, with JSONL round-trip.

Each record is a dict with at least ``step`` (optimisation steps done), ``train_nll``
(mean minibatch loss over the steps since the last evaluation, skipped steps excluded),
``val_nll`` (mean NLL on the validation set, ``None`` without one), ``lr`` (learning rate
of the last step), ``time`` (seconds of training so far, summed over resumed runs),
``skipped`` (non-finite steps skipped in this period) and ``skipped_total``.
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
    evaluation whose params were kept, ``stopped`` says why training ended early
    (``"early_stopping"`` or ``None``) and ``skipped_steps`` counts non-finite steps.
    """

    def __init__(self, records: list[dict] | None = None):
        self.records: list[dict] = list(records or [])
        self.best_step: int | None = None
        self.best_val_nll: float | None = None
        self.stopped: str | None = None

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
            f"stopped={self.stopped})"
        )

    # ------------------------------------------------------------ serialisation
    def to_json(self) -> dict:
        """A JSON-safe dict (non-finite floats become ``None``)."""
        return {
            "records": [{k: _json_float(v) for k, v in r.items()} for r in self.records],
            "best_step": self.best_step,
            "best_val_nll": _json_float(self.best_val_nll),
            "stopped": self.stopped,
        }

    @classmethod
    def from_json(cls, data: dict) -> History:
        h = cls(data.get("records", []))
        h.best_step = data.get("best_step")
        h.best_val_nll = data.get("best_val_nll")
        h.stopped = data.get("stopped")
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
