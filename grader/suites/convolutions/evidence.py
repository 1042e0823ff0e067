"""What the judge asks of a fit record's weights, given the initial weights it drew itself (test_experiments).

Kept apart from the checks so that it can be tested without collecting them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ForgedRecord(ValueError):
    """A fit record that the judge's own initial weights give away: not a fit that trained them."""


TRAINED_FROM = 0.5  # the least share of the initial weights a fit's weights keep (see test_experiments._losses)


def trained_from(initial: list[np.ndarray], after: list[Any]) -> None:
    """`after` keeps at least TRAINED_FROM of `initial`: sum<after, initial> / sum<initial, initial>, over every
    array (measured: 0.95-1.10 for real one-epoch fits of the lab's models, adam or sgd, with or without softmax,
    a float16 last layer; 0.003 for a second initialisation)."""
    arrays = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in zip(after, initial, strict=True)]
    if not all(np.all(np.isfinite(a)) for a, _ in arrays):
        return  # weights that trained to NaN or inf: their loss says that they did not learn
    size = sum(float(np.vdot(b, b)) for _, b in arrays)
    if size == 0.0:
        return
    kept = sum(float(np.vdot(a, b)) for a, b in arrays) / size
    if kept < TRAINED_FROM:
        raise ForgedRecord(f"weights after fit that were not trained from the judge's initial weights "
                           f"(they keep {kept:.1%} of them)")
