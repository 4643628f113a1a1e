"""How a table or figure writes a key value (``fmt_value``), a cell (``fmt_cell``: ``mean ± std
(n)`` in percent, ``—`` where no run is) and in which order labels sort (``sort_key``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MISSING = "—"


def sort_key(value: Any):
    """Numbers first, by value; then everything else, by its text."""
    return (
        (0, float(value), "")
        if isinstance(value, int | float | np.number)
        else (1, 0.0, str(value))
    )


def fmt_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | np.integer) and abs(value) >= 1000:
        from experiments.sweep_spec import human_count

        return human_count(value)
    return str(value)


def fmt_cell(mean: float, std: float, n: int, digits: int) -> str:
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    text = f"{100 * mean:.{digits}f}"
    if n > 1 and not math.isnan(std):
        text += f" ± {100 * std:.{digits}f}"
    return f"{text} ({n})"
