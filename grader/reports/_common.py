"""Small helpers shared by the renderers: number formatting and the student's (visible) view.

None of these compute a score: totals always come from `SubmissionResult.score`, either of the
result itself or of a copy restricted to its visible checks.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from grader.results import CheckResult, SubmissionResult

ACCURACY_TAG = "accuracy"


def fmt_number(value: float) -> str:
    """A score or duration without float noise: 12.5, 3, 0.3333 (4 decimals at most).

    `float(fmt_number(x)) == round(x, 4)` for every finite x, so parsing a report gives back the score.
    """
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    rounded = round(number, 4)
    if rounded == 0:
        return "0"
    if rounded.is_integer() and abs(rounded) < 1e15:
        return str(int(rounded))
    text = repr(rounded)
    return text


def fmt_seconds(value: float) -> str:
    """A duration for people: 0.4 s, 12 s, 3 min 05 s."""
    seconds = max(float(value), 0.0)
    if seconds < 60:
        return f"{fmt_number(round(seconds, 1))} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def shown_view(result: SubmissionResult, show_hidden: bool) -> SubmissionResult:
    """The result as a student sees it: a copy without hidden checks unless `show_hidden`.

    Its `score` and `max_score` are the model's own totals over the checks kept.
    """
    if show_hidden:
        return result
    return replace(result, checks=result.visible_checks())


def hidden_count(result: SubmissionResult) -> int:
    return sum(1 for check in result.checks if check.hidden)


def sorted_checks(checks: list[CheckResult]) -> list[CheckResult]:
    """Checks in the order a report lists them: by exercise (assignment order), then by number."""
    from grader.results import exercise_order

    order = {name: i for i, name in enumerate(exercise_order(checks))}
    return sorted(
        checks,
        key=lambda c: (order.get(c.exercise, len(order)), c.exercise, _number_key(c.number)),
    )


def _number_key(number: str) -> tuple[tuple[int, int | str], ...]:
    parts = re.split(r"[.\s]+", str(number).strip())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def is_accuracy_gate(check: CheckResult) -> bool:
    return ACCURACY_TAG in check.tags


def one_line(text: str, limit: int = 160) -> str:
    """The first non-empty line of a feedback text, shortened to `limit` characters."""
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""
