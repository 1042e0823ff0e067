"""The one result model: every check produces a CheckResult; every report is a view of these.

Nothing in this module computes a score from student behaviour: scores are set by the judge
when a check runs, and renderers (terminal, results.json, CSV, JUnit, HTML) only read them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from grader.textcap import FIELD_LIMIT, OUTPUT_LIMIT, RECORD_VALUE_LIMIT, clip, clip_data, clip_messages

Status = Literal["passed", "failed", "error"]  # error: the grader failed in this check, not the student
SubmissionStatus = Literal["graded", "partial", "error"]



@dataclass
class CheckResult:
    """The outcome of one graded check."""

    id: str  # stable identifier: "<exercise>::<function name>"
    name: str  # the title a student sees (the check's docstring)
    exercise: str  # the exercise module it grades: one of its assignment's modules
    number: str  # ordering key, e.g. "2.3"
    max_score: float
    score: float
    status: Status
    hidden: bool = False
    tags: list[str] = field(default_factory=list)
    output: str = ""  # the whole feedback text shown for this check
    expected: str | None = None
    got: str | None = None
    hint: str | None = None
    duration: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. learning curve of an accuracy gate

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class SubmissionResult:
    """Everything the grader found out about one submission."""

    submission: str  # the submission's id: its file or folder name
    assignment: str = ""  # the assignment's name (grader.assignment)
    status: SubmissionStatus = "graded"
    checks: list[CheckResult] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # submission-level notes (bad cells, limits hit)
    execution_time: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # seed, library versions, profile, ...

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks), 4)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_score for c in self.checks), 4)

    def visible_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.hidden]

    def by_exercise(self, include_hidden: bool = True) -> dict[str, tuple[float, float]]:
        """(score, max) per exercise, in the assignment's exercise order."""
        totals: dict[str, list[float]] = {}
        for check in self.checks:
            if check.hidden and not include_hidden:
                continue
            entry = totals.setdefault(check.exercise, [0.0, 0.0])
            entry[0] += check.score
            entry[1] += check.max_score
        order = {name: i for i, name in enumerate(exercise_order(self.checks))}
        return {
            name: (round(v[0], 4), round(v[1], 4))
            for name, v in sorted(totals.items(), key=lambda kv: order.get(kv[0], len(order)))
        }

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON data, every text and value within its cap (grader.textcap): what a submission
        put into its feedback is bounded here too, not only in the reports made from it."""
        data = asdict(self)
        data["score"] = self.score
        data["max_score"] = self.max_score
        data["messages"] = clip_messages([str(m) for m in self.messages])
        data["extra"] = {str(k): clip_data(v, RECORD_VALUE_LIMIT) for k, v in self.extra.items()}
        for check in data["checks"]:
            check["output"] = clip(check["output"], OUTPUT_LIMIT)
            for name in ("expected", "got", "hint"):
                if check[name] is not None:
                    check[name] = clip(check[name], FIELD_LIMIT)
            check["extra"] = clip_data(check["extra"])  # a gate's curve and interval: a few KB
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubmissionResult:
        return cls(
            submission=data["submission"],
            assignment=data.get("assignment", ""),
            status=data.get("status", "graded"),
            checks=[CheckResult.from_dict(c) for c in data.get("checks", [])],
            messages=list(data.get("messages", [])),
            execution_time=float(data.get("execution_time", 0.0)),
            extra=dict(data.get("extra", {})),
        )


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a file so that readers see either the old content or the whole new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results and cache entries are shared with other users
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_result(result: SubmissionResult, path: str | os.PathLike[str]) -> None:
    """Our own full-fidelity record (grader-result.json), read back by reports and resume."""
    write_json_atomic(path, result.to_dict())


def load_result(path: str | os.PathLike[str]) -> SubmissionResult:
    return SubmissionResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def exercise_order(checks: Iterable[CheckResult]) -> list[str]:
    """The exercises of these checks in their assignment's order: a check's number starts with its
    exercise's position ("3.2" is the third exercise's second check); ties and odd numbers by name."""
    first: dict[str, float] = {}
    for check in checks:
        head = str(check.number).split(".", 1)[0].strip()
        position = float(head) if head.isdigit() else float("inf")
        first[check.exercise] = min(position, first.get(check.exercise, float("inf")))
    return sorted(first, key=lambda name: (first[name], name))
