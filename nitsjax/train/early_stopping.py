"""Early stopping on the validation NLL, counted in evaluations."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class EarlyStopping:
    """Tracks the best validation NLL and the evaluations since it improved.

    ``update(value)`` returns True when ``value`` improves on the best by more than
    ``min_delta`` (the caller then keeps those params); after ``patience`` evaluations in a
    row without improvement ``stop`` is True. ``patience=None`` never stops. A non-finite
    value never improves.

    Example::

        es = EarlyStopping(patience=2)
        [es.update(v) for v in (3.0, 2.0, 2.5, 2.1)]  # [True, True, False, False]
        es.stop, es.best                              # (True, 2.0)
    """

    patience: int | None = None
    min_delta: float = 0.0
    best: float = math.inf
    bad: int = 0  # evaluations since the last improvement

    def update(self, value: float) -> bool:
        if math.isfinite(value) and value < self.best - self.min_delta:
            self.best, self.bad = value, 0
            return True
        self.bad += 1
        return False

    @property
    def stop(self) -> bool:
        return self.patience is not None and self.bad >= self.patience
