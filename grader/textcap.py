"""Size caps for feedback text: a submission decides what its checks print, so every text has a limit.

A returned dict of 20,000 keys of 100 characters once made a results.json of 14.6 MB. Text is cut where it
is produced (a check's Mismatch fields, its whole output) and again where each report is written, each
report with its own budget: per check and per submission. Where text was cut, a marker says how much.

| where | limit |
|---|---|
| a Mismatch's message / expected, got, hint, details | MESSAGE_LIMIT / FIELD_LIMIT characters |
| a check's output | OUTPUT_LIMIT characters |
| results.json, report.html | REPORT_CHECK_LIMIT per check, REPORT_BUDGET per submission |
| junit.xml | JUNIT_BUDGET escaped bytes of feedback per submission |
| grader-result.json | check fields as above and DATA_LIMIT of check extra; MESSAGES_KEPT; RECORD_VALUE_LIMIT |
"""

from __future__ import annotations

import json
from typing import Any

MESSAGE_LIMIT = 4_000
FIELD_LIMIT = 2_000
OUTPUT_LIMIT = 8_000
REPORT_CHECK_LIMIT = 4_000
REPORT_BUDGET = 100_000
DATA_LIMIT = 64 * 1024  # a JSON value of extra data, serialised
RECORD_VALUE_LIMIT = 1024 * 1024  # one value of a record's own extra data (judge-made, e.g. the activation maps)
JUNIT_BUDGET = 3_000
MESSAGES_KEPT = 20


def clip(text: Any, limit: int) -> str:
    """`text`, at most `limit` characters of it, with a marker saying how much was cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:max(limit, 0)] + marker(len(text) - max(limit, 0))


def marker(cut: int) -> str:
    return f"\n[... {cut:,} more characters cut by the grader ...]"


class Budget:
    """Characters a report may still spend on one submission's feedback; each text is clipped to what is left."""

    def __init__(self, total: int, per_text: int) -> None:
        self.left = total
        self.per_text = per_text

    def take(self, text: Any) -> str:
        text = str(text)
        clipped = clip(text, min(self.per_text, self.left))
        self.left = max(self.left - min(len(text), self.per_text), 0)
        return clipped


def clip_data(value: Any, limit: int = DATA_LIMIT) -> Any:
    """A JSON-able value as it is, or a note in its place where it serialises to more than `limit` characters."""
    try:
        size = len(json.dumps(value, default=str))
    except (TypeError, ValueError, RecursionError):
        return {"left_out": "a value that is not JSON data"}
    return value if size <= limit else {"left_out": f"{size:,} characters of data, more than the {limit:,} kept"}


def clip_messages(messages: list[str], limit: int = FIELD_LIMIT) -> list[str]:
    kept = [clip(message, limit) for message in messages[:MESSAGES_KEPT]]
    if len(messages) > MESSAGES_KEPT:
        kept.append(f"[... {len(messages) - MESSAGES_KEPT:,} more messages cut by the grader ...]")
    return kept
