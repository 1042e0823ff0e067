"""What the batch's runners share: its options, a row per submission, grading one into its folder."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grader.faults import GraderFault, describe_fault
from grader.judge.grading import SUBMISSION_TIMEOUT, GradeOptions
from grader.results import CheckResult, SubmissionResult, load_result, save_result
from grader.sandbox import Limits

RECORD = "grader-result.json"


@dataclass
class BatchOptions:
    skip_training: bool = False
    limits: Limits = field(default_factory=Limits)
    cache_dir: Path | None = None
    seed: int = 0
    force: bool = False
    jobs: int = 1
    scheduler: str | None = None
    quiet: bool = False
    isolation: str | None = None  # see GradeOptions.isolation
    submission_timeout: float | None = SUBMISSION_TIMEOUT  # see GradeOptions.submission_timeout
    assignment: str = ""  # see GradeOptions.assignment

    def grade_options(self, hide: list[Path]) -> GradeOptions:
        return GradeOptions(skip_training=self.skip_training, run_hidden=True, limits=self.limits,
                            cache_dir=self.cache_dir, seed=self.seed, hide=hide, ahead=self.cores_to_spare(),
                            isolation=self.isolation, submission_timeout=self.submission_timeout,
                            assignment=self.assignment)

    def cores_to_spare(self) -> bool:
        """Whether each worker of this machine has a second core for a second sandbox (grader.judge.prefetch)."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return self.scheduler is None and 2 * max(1, self.jobs) <= cores

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cache_dir"] = str(self.cache_dir) if self.cache_dir else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchOptions:
        data = dict(data)
        data["limits"] = Limits(**data["limits"])
        data["cache_dir"] = Path(data["cache_dir"]) if data.get("cache_dir") else None
        return cls(**data)


@dataclass
class BatchRow:
    id: str
    source: str
    status: str  # graded | partial | error
    score: float
    max_score: float
    reason: str = ""
    seconds: float = 0.0
    resumed: bool = False  # finished in an earlier run, not regraded


def submission_ids(paths: list[Path]) -> list[tuple[str, Path]]:
    """A unique, filesystem-safe id per submission, from its file or folder name."""
    seen: dict[str, int] = {}
    out = []
    for path in paths:
        name = path.name
        for suffix in (".zip", ".ipynb"):
            name = name.removesuffix(suffix)
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "submission"
        seen[base] = seen.get(base, 0) + 1
        out.append((base if seen[base] == 1 else f"{base}-{seen[base]}", path))
    return out


def grade_to_folder(source: Path, folder: Path, options: BatchOptions, submission_id: str,
                    progress: Any = None) -> BatchRow:
    """Grade one submission and write its files; never raises for a bad submission."""
    from grader.intake.submission import SubmissionError
    from grader.judge.grading import grade

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    hide = [folder.parent.resolve()]
    grade_options = options.grade_options(hide)
    grade_options.progress = progress
    grade_options.on_partial = lambda partial: _write_record(folder, _renamed(partial, submission_id), final=False)
    try:
        result = grade(source, grade_options)
        result.submission = submission_id
    except SubmissionError as exc:
        result = error_result(submission_id, str(exc), time.perf_counter() - started)
    except GraderFault as exc:  # never graded: no score, graded again by the next run
        result = error_result(submission_id, f"grader error: {describe_fault(exc)}", time.perf_counter() - started)
        result.extra["grader_fault"] = describe_fault(exc)
    _write_record(folder, result, final=True)
    return row_of(result, str(source))


def error_result(submission_id: str, reason: str, seconds: float = 0.0) -> SubmissionResult:
    return SubmissionResult(submission=submission_id, status="error", messages=[reason],
                            execution_time=round(seconds, 3))


def row_of(result: SubmissionResult, source: str, resumed: bool = False) -> BatchRow:
    reason = "; ".join(result.messages)[:300] if result.status != "graded" else ""
    return BatchRow(result.submission, source, result.status, result.score, result.max_score, reason,
                    result.execution_time, resumed)


def finished(folder: Path) -> SubmissionResult | None:
    """The record of an earlier run, if that run finished this submission."""
    try:
        result = load_result(folder / RECORD)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if result.extra.get("grader_fault"):
        return None  # the grader failed on it last time: grade it again
    if result.extra.get("cut_off"):
        return result  # its time budget ran out: another run would cut it off again
    return result if result.status in ("graded", "error") else None


def _write_record(folder: Path, result: SubmissionResult, final: bool) -> None:
    from grader.reports import write_submission_reports

    if not final:
        result.status = "partial"
    if final and not result.extra.get("grader_fault"):  # no score is reported for what the grader failed on
        write_submission_reports(result, folder, show_hidden=True)
    save_result(result, folder / RECORD)  # last: its presence with a final status means "done"


def _renamed(result: SubmissionResult, submission_id: str) -> SubmissionResult:
    result.submission = submission_id
    return result


def partial_from(checks: list[CheckResult], submission_id: str, reason: str) -> SubmissionResult:
    return SubmissionResult(submission=submission_id, status="partial", checks=checks, messages=[reason])


def log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def dump_row(row: BatchRow) -> str:
    return json.dumps(asdict(row))


def environment_for_workers() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
