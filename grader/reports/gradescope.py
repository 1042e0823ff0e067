"""Gradescope's results.json: the submission's checks as Gradescope test cases.

Spec: https://gradescope-autograders.readthedocs.io/en/latest/specs/ . The top-level `score` is the
result's own total (it overrides the sum of the tests on Gradescope); hidden checks become tests with
`visibility: "hidden"`. The top-level `output` (Markdown) only speaks of visible checks.
"""

from __future__ import annotations

import math
import os
from typing import Any

from grader.reports._common import fmt_number, fmt_seconds, hidden_count, one_line, shown_view
from grader.results import CheckResult, SubmissionResult, write_json_atomic
from grader.textcap import REPORT_BUDGET, REPORT_CHECK_LIMIT, Budget, clip_data, clip_messages

_VISIBILITIES = ["hidden", "after_due_date", "after_published", "visible"]
_FORMATS = ["text", "html", "simple_format", "md", "ansi"]
_BIG_STRING = 4096  # strings longer than this in extra_data are images or logs: left out

_TEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "max_score": {"type": "number", "minimum": 0},
        "status": {"enum": ["passed", "failed"]},
        "name": {"type": "string"},
        "name_format": {"enum": _FORMATS},
        "number": {"type": ["string", "number"]},
        "output": {"type": "string"},
        "output_format": {"enum": _FORMATS},
        "tags": {"type": "array", "items": {"type": "string"}},
        "visibility": {"enum": _VISIBILITIES},
        "extra_data": {"type": "object"},
    },
    "required": ["score", "max_score", "name", "status", "visibility"],
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": {"enum": _FORMATS},
        "test_output_format": {"enum": _FORMATS},
        "test_name_format": {"enum": _FORMATS},
        "visibility": {"enum": _VISIBILITIES},
        "stdout_visibility": {"enum": _VISIBILITIES},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": _TEST_SCHEMA},
        "leaderboard": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "order": {"enum": ["asc", "desc"]}},
                "required": ["name", "value"],
            },
        },
    },
    "required": ["score", "tests"],
}


def to_gradescope(result: SubmissionResult) -> dict[str, Any]:
    """The results.json document for one submission (all checks, hidden ones marked hidden)."""
    extra = clip_data(_strip_binary(result.extra))
    extra_data = dict(extra) if isinstance(extra, dict) else {}
    extra_data["status"] = result.status
    extra_data["messages"] = clip_messages(list(result.messages))
    extra_data["submission"] = result.submission
    budget = Budget(REPORT_BUDGET, REPORT_CHECK_LIMIT)  # the file stays well under 2 MB whatever was returned
    return {
        "score": result.score,
        "execution_time": round(float(result.execution_time), 3),
        "output": _summary_output(result),
        "output_format": "md",
        "test_output_format": "text",
        "tests": [_test(check, budget) for check in result.checks],
        "extra_data": extra_data,
    }


def from_gradescope(data: dict[str, Any]) -> SubmissionResult:
    """A SubmissionResult back from a results.json this module wrote (for tools that only get that file).

    The checks keep their id, exercise, title, number, scores, status, visibility, tags and output.
    """
    extra = dict(data.get("extra_data") or {})
    checks = []
    for i, test in enumerate(data.get("tests", [])):
        test_extra = test.get("extra_data") or {}
        checks.append(
            CheckResult(
                id=str(test_extra.get("id", f"check::{i}")),
                name=str(test.get("name", "")),
                exercise=str(test_extra.get("exercise", "")),
                number=str(test.get("number", i + 1)),
                max_score=float(test.get("max_score", 0.0)),
                score=float(test.get("score", 0.0)),
                status="passed" if test.get("status", "passed") == "passed" else "failed",
                hidden=test.get("visibility") == "hidden",
                tags=list(test.get("tags", [])),
                output=str(test.get("output", "")),
            )
        )
    return SubmissionResult(
        submission=str(extra.pop("submission", "")),
        status=extra.pop("status", "graded"),
        checks=checks,
        messages=list(extra.pop("messages", [])),
        execution_time=float(data.get("execution_time", 0.0)),
        extra=extra,
    )


def write_results_json(result: SubmissionResult, path: str | os.PathLike[str]) -> None:
    """Write results.json atomically: Gradescope never reads half a file."""
    write_json_atomic(path, to_gradescope(result))


def validate_gradescope(data: Any) -> list[str]:
    """Problems that would make Gradescope reject or misread `data`; empty when it is valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]
    problems.extend(f"{where}: {value!r} is not a finite number" for where, value in _non_finite(data, ""))
    if problems or not isinstance(data, dict):
        return problems
    tests = data.get("tests", [])
    for i, test in enumerate(tests):
        if test["score"] > test["max_score"] + 1e-9:
            problems.append(f"tests/{i}: score {test['score']} exceeds max_score {test['max_score']}")
    total = sum(test["score"] for test in tests)
    if tests and abs(total - data["score"]) > 1e-3:
        problems.append(f"score: {data['score']} differs from the sum of the tests' scores ({total})")
    return problems


def _test(check: CheckResult, budget: Budget) -> dict[str, Any]:
    return {
        "name": check.name,
        "number": str(check.number),
        "score": check.score,
        "max_score": check.max_score,
        "status": check.status,
        "output": budget.take(check.output),
        "output_format": "text",
        "visibility": "hidden" if check.hidden else "visible",
        "tags": list(check.tags),
        "extra_data": {"id": check.id, "exercise": check.exercise},
    }


def _summary_output(result: SubmissionResult) -> str:
    """A short Markdown note for the top of the Gradescope page (visible checks only)."""
    visible = shown_view(result, show_hidden=False)
    failed = [c for c in visible.checks if c.status == "failed"]
    lines = [f"**Status:** {result.status} · graded in {fmt_seconds(result.execution_time)}"]
    if visible.checks:
        lines.append(
            f"**Visible checks:** {fmt_number(visible.score)} / {fmt_number(visible.max_score)} "
            f"({len(visible.checks) - len(failed)} of {len(visible.checks)} passed)"
        )
    hidden = hidden_count(result)
    if hidden:
        lines.append(f"{hidden} hidden check{'s are' if hidden != 1 else ' is'} graded but not shown.")
    for message in clip_messages(list(result.messages)):
        lines.append(f"- {one_line(message, 300)}")
    return "\n\n".join(lines)


def _strip_binary(value: Any) -> Any:
    """A JSON-safe copy of `value` without images (keys named png), bytes and very long strings."""
    if isinstance(value, dict):
        return {
            str(k): _strip_binary(v)
            for k, v in value.items()
            if str(k).lower() not in {"png", "image", "images_png"} and not _is_big(v)
        }
    if isinstance(value, (list, tuple)):
        return [_strip_binary(v) for v in value if not _is_big(v)]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a NumPy scalar
        return _strip_binary(value.item())
    if hasattr(value, "tolist") and getattr(value, "size", _BIG_STRING) < 1000:  # a small NumPy array
        return _strip_binary(value.tolist())
    return repr(value)[:200]


def _is_big(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview)) or (isinstance(value, str) and len(value) > _BIG_STRING)


def _non_finite(value: Any, where: str) -> list[tuple[str, float]]:
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(where or "<root>", value)]
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in _non_finite(v, f"{where}/{k}".lstrip("/"))]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in _non_finite(v, f"{where}/{i}".lstrip("/"))]
    return []
