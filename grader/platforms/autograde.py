"""Grade the one submission a platform's container holds, and always leave its results.json behind.

Gradescope (spec: gradescope/autograder_samples docs/specs.md): the submission's files are in
`<root>/submission`, the result goes to `<root>/results/results.json`, `<root>/submission_metadata.json`
may be there; root is /autograder. PrairieLearn (docs/externalGrading.md): the files are in
`<root>/student`, the result goes to `<root>/results/results.json` (folder created here); root is /grade.

Three outcomes, each written as the platform's results.json:
- graded: the result model rendered by grader.reports.gradescope / grader.reports.prairielearn;
- unusable submission (SubmissionError): Gradescope score 0 with the reason, PrairieLearn gradable false;
- grader fault (any other exception): still a results.json, whose output says what failed, for the staff.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grader.results import SubmissionResult, write_json_atomic

Platform = Literal["gradescope", "prairielearn"]
PLATFORMS: tuple[Platform, ...] = ("gradescope", "prairielearn")
ROOT_ENV = {"gradescope": "GRADER_AUTOGRADER_ROOT", "prairielearn": "GRADER_PL_ROOT"}
DEFAULT_ROOT = {"gradescope": Path("/autograder"), "prairielearn": Path("/grade")}
_SUBMISSION_FOLDER = {"gradescope": "submission", "prairielearn": "student"}
# Gradescope shows a student their total unless a test that counts is held back: tests marked "hidden" do not
# hold it back (the spec keeps those for tests worth no points), so the total would reveal the hidden checks.
HIDDEN_VISIBILITIES = ("after_published", "after_due_date", "hidden")


@dataclass(frozen=True)
class Layout:
    """Where a platform puts the submission and expects the results."""

    platform: Platform
    root: Path
    submission: Path
    results: Path
    metadata: Path | None  # Gradescope's submission_metadata.json (may be absent)


Kind = Literal["graded", "unusable", "fault"]


@dataclass
class Outcome:
    kind: Kind
    results: Path
    document: dict[str, Any]
    result: SubmissionResult | None = None
    notes: list[str] = field(default_factory=list)
    details: str = ""  # a grader fault's traceback: for the platform's staff-only log, not for students


def layout(platform: Platform, root: Path | str | None = None) -> Layout:
    """The platform's layout under `root`, else under $GRADER_AUTOGRADER_ROOT / $GRADER_PL_ROOT, else the real one."""
    if platform not in PLATFORMS:
        raise ValueError(f"Received: platform={platform!r}, expected one of {', '.join(PLATFORMS)}")
    base = Path(root) if root is not None else Path(os.environ.get(ROOT_ENV[platform]) or DEFAULT_ROOT[platform])
    return Layout(
        platform=platform,
        root=base,
        submission=base / _SUBMISSION_FOLDER[platform],
        results=base / "results" / "results.json",
        metadata=base / "submission_metadata.json" if platform == "gradescope" else None,
    )


def find_submission(folder: Path) -> Path:
    """What to grade in the platform's submission folder: the folder itself when it holds modules (other
    files are ignored by grader.intake.submission), else its one notebook, else its one .zip, else the folder
    (grader.intake.submission then says what is missing)."""
    if folder.is_dir():
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        if not any(p.suffix == ".py" for p in files):
            for suffix in (".ipynb", ".zip"):
                found = [p for p in files if p.suffix.lower() == suffix]
                if len(found) == 1:
                    return found[0]
    return folder


def autograde(platform: Platform, root: Path | str | None = None, *, options: Any = None,
              hidden_visibility: str = "after_published") -> Outcome:
    """Grade `<root>/submission` (or `student`) with the hidden checks and write the platform's results.json.

    `options` is a grader.judge.grading.GradeOptions (run_hidden is forced on). On Gradescope the hidden checks get
    `hidden_visibility`: after_published (default; their details and the total appear once the instructor
    publishes the grades), after_due_date, or hidden (never shown, but the total shows their points).
    Never raises for a bad submission or a grader fault: both are written to results.json; only a failure
    to write that file itself propagates.
    """
    if hidden_visibility not in HIDDEN_VISIBILITIES:
        raise ValueError(f"Received: hidden_visibility={hidden_visibility!r}, expected one of "
                         f"{', '.join(HIDDEN_VISIBILITIES)}")
    where = layout(platform, root)
    started = time.perf_counter()
    metadata, notes = _read_metadata(where.metadata)
    result: SubmissionResult | None = None
    details = ""
    kind: Kind
    try:
        from grader.faults import GraderFault
        from grader.intake.submission import SubmissionError
        from grader.judge import grading as judge

        grade_options = _options(options, where)
        try:
            result = judge.grade(find_submission(where.submission), grade_options)
            if result.extra.get("grader_fault"):  # the grader failed in it: not a score to post
                raise GraderFault(f"the grader failed while grading: {result.extra['grader_fault']}")
        except SubmissionError as exc:
            document, kind = _unusable(platform, str(exc), started, metadata, notes), "unusable"
        else:
            document, kind = _render(platform, result, metadata, notes, hidden_visibility), "graded"
    except Exception:  # a grader fault: never a silent crash, never the student's failure
        details = traceback.format_exc()
        document, kind = _fault(platform, details, started, metadata, notes), "fault"
    where.results.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(where.results, document)
    return Outcome(kind=kind, results=where.results, document=document, result=result, notes=notes, details=details)


def _options(options: Any, where: Layout) -> Any:
    from dataclasses import replace

    from grader.judge.grading import GradeOptions

    base = options if options is not None else GradeOptions()
    return replace(base, run_hidden=True, hide=(*base.hide, where.results.parent))


def _read_metadata(path: Path | None) -> tuple[dict[str, Any], list[str]]:
    """The few fields of Gradescope's submission_metadata.json worth keeping (no names or e-mails)."""
    if path is None or not path.is_file():
        return {}, []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, [f"submission_metadata.json could not be read ({exc}); graded without it"]
    if not isinstance(data, dict):
        return {}, [f"submission_metadata.json holds a {type(data).__name__}, expected an object; graded without it"]
    kept: dict[str, Any] = {key: data[key] for key in ("id", "created_at", "submission_method") if key in data}
    assignment = data.get("assignment")
    if isinstance(assignment, dict):
        kept["assignment"] = {k: assignment[k] for k in ("id", "title", "due_date") if k in assignment}
    users = data.get("users")
    if isinstance(users, list):
        kept["user_ids"] = [u.get("id") for u in users if isinstance(u, dict) and "id" in u]
    previous = data.get("previous_submissions")
    if isinstance(previous, list):
        kept["previous_submissions"] = len(previous)
    return kept, []


def _render(platform: Platform, result: SubmissionResult, metadata: dict[str, Any], notes: list[str],
            hidden_visibility: str) -> dict[str, Any]:
    if platform == "prairielearn":
        from grader.reports.prairielearn import to_prairielearn

        document = to_prairielearn(result)
        if notes:
            document["output"] = "\n".join([*notes, document["output"]]).strip()
        return document
    from grader.reports.gradescope import to_gradescope

    document = to_gradescope(result)
    for test in document["tests"]:
        if test["visibility"] == "hidden":
            test["visibility"] = hidden_visibility
    if metadata:
        document["extra_data"]["submission_metadata"] = metadata
    if notes:
        document["extra_data"]["notes"] = notes
    return document


def _unusable(platform: Platform, reason: str, started: float, metadata: dict[str, Any],
              notes: list[str]) -> dict[str, Any]:
    if platform == "prairielearn":
        from grader.reports.prairielearn import unusable_submission

        return unusable_submission(reason, "\n".join(notes))
    return {
        "score": 0.0,
        "execution_time": round(time.perf_counter() - started, 3),
        "output": f"**Nothing could be graded:** {reason}\n\nSubmit your modules (data.py, models.py, ...), "
                  "the lab notebook (.ipynb) or a .zip of either, then resubmit.",
        "output_format": "md",
        "tests": [],
        "extra_data": {"status": "unusable", "reason": reason, "submission_metadata": metadata, "notes": notes},
    }


def _fault(platform: Platform, details: str, started: float, metadata: dict[str, Any],
           notes: list[str]) -> dict[str, Any]:
    """The error's last line goes where students read; the traceback stays in the staff's log and extra_data."""
    error = (details.strip().splitlines() or ["unknown error"])[-1][:500]
    if platform == "prairielearn":
        from grader.reports.prairielearn import grader_failure

        return grader_failure("\n".join([*notes, f"grader error: {error}"]))
    return {
        "score": 0.0,
        "execution_time": round(time.perf_counter() - started, 3),
        "output": "The grader failed while grading this submission; this is not a problem with your work and "
                  "0 is not your score. Your instructor can see the details and regrade it.\n\n"
                  f"Grader error: `{error}` (the full traceback is in the autograder output).",
        "output_format": "md",
        "tests": [],
        "extra_data": {"status": "grader_error", "error": error, "traceback": details[-8000:],
                       "submission_metadata": metadata, "notes": notes},
    }
