"""The instructor's gradebook: one CSV row per submission, one column per exercise."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable

from grader.reports._common import fmt_number
from grader.results import SubmissionResult, exercise_order, write_atomic

FIXED_COLUMNS = ("id", "status", "total", "max")
LAST_COLUMNS = ("seconds",)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def gradebook_columns(results: Iterable[SubmissionResult]) -> list[str]:
    """id, status, total, max, the exercises in assignment order, then `seconds`.

    Every exercise any submission has checks for gets a column, so that the total is always the sum of
    the exercise columns.
    """
    return [*FIXED_COLUMNS, *exercise_order(c for r in results for c in r.checks), *LAST_COLUMNS]


def gradebook_rows(results: Iterable[SubmissionResult]) -> list[dict[str, str]]:
    """The rows, as strings. An exercise with no checks in a submission is left empty (not 0)."""
    rows = []
    for result in results:
        row = {
            "id": safe_cell(result.submission),
            "status": result.status,
            "total": fmt_number(result.score),
            "max": fmt_number(result.max_score),
            "seconds": fmt_number(round(result.execution_time, 1)),
        }
        for exercise, (score, _max) in result.by_exercise(include_hidden=True).items():
            row[exercise] = fmt_number(score)
        rows.append(row)
    return rows


def to_gradebook_csv(results: Iterable[SubmissionResult]) -> str:
    results = list(results)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=gradebook_columns(results), restval="")
    writer.writeheader()
    writer.writerows(gradebook_rows(results))
    return buffer.getvalue()


def write_gradebook(results: Iterable[SubmissionResult], path: str | os.PathLike[str]) -> None:
    """Write gradebook.csv (UTF-8, csv-module dialect: rows end in CRLF) atomically.

    `write_atomic` writes in text mode, which on POSIX leaves the CSV's line ends as they are.
    """
    write_atomic(path, to_gradebook_csv(results))


def safe_cell(text: str) -> str:
    """A submission id that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    return "'" + text if text[:1] in _FORMULA_STARTS else text
