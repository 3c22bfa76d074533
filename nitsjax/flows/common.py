"""Argument checks shared by the flow constructors."""

from __future__ import annotations

from typing import Optional

from nitsjax.validation import check_hidden, check_positive_int


def check_common(dim, layers, hidden, context_dim: Optional[int], dropout: float):
    """Validate the arguments every constructor shares; returns ``hidden`` as a tuple."""
    check_positive_int(dim, "dim")
    check_positive_int(layers, "layers")
    hidden = check_hidden(hidden, "hidden")
    if context_dim is not None:
        check_positive_int(context_dim, "context_dim")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout: expected 0 <= dropout < 1, got {dropout}")
    return hidden
