"""Views of the result model: every renderer reads `SubmissionResult`s and never changes a score.

| module | view |
|---|---|
| `gradescope` | Gradescope's results.json |
| `prairielearn` | PrairieLearn's results.json (external grading), with figures as data URLs |
| `gradebook` | the instructor's CSV, a row per submission |
| `junit` | JUnit XML for CI systems |
| `summary` | Markdown for `$GITHUB_STEP_SUMMARY` |
| `terminal` | what `grader check` / `grader grade` print |
| `html` | a self-contained report page with learning curves and activation maps |
| `images` | the PNG figures the HTML page embeds |
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from grader.reports.gradebook import write_gradebook
from grader.reports.gradescope import to_gradescope, validate_gradescope, write_results_json
from grader.reports.html import to_html
from grader.reports.junit import to_junit_xml
from grader.reports.summary import to_markdown_summary
from grader.reports.terminal import render_batch_summary, render_terminal
from grader.results import SubmissionResult, write_atomic

__all__ = [
    "render_batch_summary",
    "render_terminal",
    "to_gradescope",
    "to_html",
    "to_junit_xml",
    "to_markdown_summary",
    "validate_gradescope",
    "write_batch_reports",
    "write_gradebook",
    "write_results_json",
    "write_submission_reports",
]


def write_submission_reports(
    result: SubmissionResult, folder: str | os.PathLike[str], *, show_hidden: bool = True
) -> dict[str, Path]:
    """Write results.json (Gradescope) and report.html into `folder`; returns their paths by name."""
    target = Path(folder)
    paths = {"results.json": target / "results.json", "report.html": target / "report.html"}
    write_results_json(result, paths["results.json"])
    write_atomic(paths["report.html"], to_html(result, show_hidden=show_hidden))
    return paths


def write_batch_reports(results: Iterable[SubmissionResult], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write gradebook.csv and junit.xml (hidden checks included) into `out_dir`; returns their paths."""
    results = list(results)
    target = Path(out_dir)
    paths = {"gradebook.csv": target / "gradebook.csv", "junit.xml": target / "junit.xml"}
    # A submission the grader failed on was never really graded: no gradebook row, no score to import.
    write_gradebook([r for r in results if not r.extra.get("grader_fault")], paths["gradebook.csv"])
    write_atomic(paths["junit.xml"], to_junit_xml(results, include_hidden=True))
    return paths
