"""GitHub Classroom: the runner result its autograding reporter turns into points.

`classroom-resources/autograding-grading-reporter` reads, for each runner named in its `runners`
input, an environment variable `<RUNNER>_RESULTS` holding base64-encoded JSON
`{"version": 1, "status": "pass"|"fail"|"error", "max_score": ..., "tests": [{"name", "status", "score",
"message"}, ...]}` and posts `sum(test scores) / sum(max_score)` to the classroom. Each visible check is one
test with its own (partial) score; hidden checks are folded into one anonymous entry, since the reporter
prints every test's name in the workflow log.

Command line (used by classroom/github-classroom.yml):
    python -m grader.reports.classroom results.json   # prints the base64 runner result
where the file is a Gradescope results.json written by this package or a saved grader result.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from grader.reports._common import fmt_number, hidden_count, one_line, shown_view
from grader.reports.gradescope import from_gradescope
from grader.results import SubmissionResult


def to_classroom_runner(result: SubmissionResult) -> dict[str, Any]:
    """The reporter's runner result: one test per visible check, the hidden ones as a single entry."""
    tests = [
        {
            "name": f"{check.number} {check.name}",
            "status": "pass" if check.status == "passed" else "fail",
            "score": check.score,
            "message": one_line(check.output, 300) if check.status == "failed" else "",
            "line_no": None,
            "execution_time": f"{fmt_number(round(check.duration, 2))}s",
        }
        for check in shown_view(result, show_hidden=False).checks
    ]
    hidden = [check for check in result.checks if check.hidden]
    if hidden:
        hidden_part = SubmissionResult(submission=result.submission, checks=hidden)
        tests.append(
            {
                "name": f"{hidden_count(result)} hidden checks",
                "status": "pass" if all(c.status == "passed" for c in hidden) else "fail",
                "score": hidden_part.score,
                "message": "Hidden checks are graded but their details are not shown.",
                "line_no": None,
                "execution_time": "0s",
            }
        )
    if result.status == "error":
        status = "error"
    else:
        status = "fail" if any(c.status == "failed" for c in result.checks) else "pass"
    return {"version": 1, "status": status, "max_score": result.max_score, "tests": tests}


def encode_classroom_runner(result: SubmissionResult) -> str:
    """The runner result as the reporter's environment variable wants it: base64 of UTF-8 JSON."""
    text = json.dumps(to_classroom_runner(result), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def load_any_result(path: str | Path) -> SubmissionResult:
    """A result from either a saved grader result (has "checks") or a Gradescope results.json."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return SubmissionResult.from_dict(data) if "checks" in data else from_gradescope(data)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m grader.reports.classroom RESULTS_JSON", file=sys.stderr)
        return 2
    print(encode_classroom_runner(load_any_result(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
