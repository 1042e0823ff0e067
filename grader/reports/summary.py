"""A Markdown summary for `$GITHUB_STEP_SUMMARY` (GitHub-flavoured Markdown).

Hidden checks are counted, never revealed: no name, output or score of a hidden check is written
unless `show_hidden`, and the total then covers the visible checks only (and says so).
"""

from __future__ import annotations

import re

from grader.reports._common import fmt_number, fmt_seconds, hidden_count, shown_view, sorted_checks
from grader.results import CheckResult, SubmissionResult
from grader.textcap import REPORT_CHECK_LIMIT, clip, clip_messages

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def md_escape(text: str) -> str:
    """`text` as literal Markdown inline text (one line; safe inside a table cell)."""
    flat = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def md_fence(text: str, info: str = "text") -> str:
    """A fenced code block that `text` cannot close early (the fence outgrows its backtick runs)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def total_line(result: SubmissionResult, show_hidden: bool) -> str:
    shown = shown_view(result, show_hidden)
    hidden = hidden_count(result)
    scope = "all checks" if show_hidden or not hidden else "visible checks only"
    return f"**Total ({scope}): {fmt_number(shown.score)} / {fmt_number(shown.max_score)}**"


def to_markdown_summary(result: SubmissionResult, show_hidden: bool = False) -> str:
    shown = shown_view(result, show_hidden)
    hidden = hidden_count(result)
    failed = [c for c in sorted_checks(shown.checks) if c.status == "failed"]
    lines = [
        f"## {md_escape(result.assignment)}: {md_escape(result.submission)}",
        "",
        total_line(result, show_hidden),
        "",
        f"Status: `{result.status}` · {len(shown.checks) - len(failed)} of {len(shown.checks)} "
        f"{'' if show_hidden or not hidden else 'visible '}checks passed · graded in "
        f"{fmt_seconds(result.execution_time)}",
    ]
    if hidden and not show_hidden:
        verb = "checks are" if hidden != 1 else "check is"
        lines += ["", f"> {hidden} hidden {verb} not shown; they are graded separately."]
    if result.messages:
        lines += ["", "### Notes", ""] + [f"- {md_escape(m)}" for m in clip_messages(list(result.messages))]
    lines += ["", *_exercise_table(shown)]
    if failed:
        lines += ["", "### Failures"]
        for check in failed:
            lines += ["", *_failure(check)]
    elif shown.checks:
        every = "All checks" if show_hidden or not hidden else "All visible checks"
        lines += ["", f"{every} passed."]
    return "\n".join(lines) + "\n"


def _exercise_table(shown: SubmissionResult) -> list[str]:
    per_exercise = shown.by_exercise(include_hidden=True)
    if not per_exercise:
        return ["No checks ran."]
    rows = ["| Exercise | Score | Max | Checks failed |", "|---|---:|---:|---:|"]
    for exercise, (score, maximum) in per_exercise.items():
        failed = sum(1 for c in shown.checks if c.exercise == exercise and c.status == "failed")
        rows.append(f"| {md_escape(exercise)} | {fmt_number(score)} | {fmt_number(maximum)} | {failed} |")
    return rows


def _failure(check: CheckResult) -> list[str]:
    head = (
        f"#### {md_escape(check.number)} {md_escape(check.name)} "
        f"({fmt_number(check.score)} / {fmt_number(check.max_score)})"
    )
    body = clip(check.output.strip(), REPORT_CHECK_LIMIT) or "(no feedback)"
    return [head, "", md_fence(body)]
