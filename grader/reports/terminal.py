"""Plain-text (optionally coloured) reports for the terminal: `grader check` and `grader grade`."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable

from grader.reports._common import fmt_number, fmt_seconds, hidden_count, one_line, shown_view, sorted_checks
from grader.results import CheckResult, SubmissionResult
from grader.textcap import OUTPUT_LIMIT, clip, clip_messages

_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
# Control characters a submission could use to rewrite the terminal (ANSI escapes, backspaces, ...).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STATUS_STYLE = {"graded": "green", "partial": "yellow", "error": "red"}


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_STYLES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def clean(text: str) -> str:
    """Submission text made harmless for a terminal: control characters shown as `?`."""
    return _CONTROL.sub("?", str(text).replace("\r\n", "\n"))


def render_terminal(result: SubmissionResult, *, color: bool, verbose: bool, quiet: bool, show_hidden: bool) -> str:
    """The report `grader check` prints. quiet: the total line only; verbose: passed checks too."""
    paint = _Painter(color)
    total = _total_line(result, show_hidden, paint)
    if quiet:
        return total + "\n"
    shown = shown_view(result, show_hidden)
    lines = [
        paint(f"{clean(result.assignment)} · {clean(result.submission)}", "bold")
        + f"  ({paint(result.status, _STATUS_STYLE.get(result.status, 'bold'))}, "
        f"{fmt_seconds(result.execution_time)})",
        "",
    ]
    lines += [f"! {clean(m)}" for m in clip_messages(list(result.messages))]
    lines += ([""] if result.messages else []) + _exercise_table(shown, paint)
    checks = sorted_checks(shown.checks)
    if verbose:
        lines += ["", paint("Checks", "bold")]
        lines += [_check_line(c, paint) for c in checks]
    errors = [c for c in checks if c.status == "error"]
    if errors:  # one account of the grader's fault, not one per check
        lines += ["", paint(f"Grader errors ({len(errors)} checks could not run; not the submission's fault)", "bold")]
        lines += [_check_line(c, paint) for c in errors] + ["", *_feedback(errors[0])]
    failed = [c for c in checks if c.status == "failed"]
    if failed:
        lines += ["", paint(f"Failures ({len(failed)})", "bold")]
        for check in failed:
            lines += ["", _check_line(check, paint), *_feedback(check)]
    lines += ["", total]
    return "\n".join(lines) + "\n"


def render_batch_summary(rows: Iterable[SubmissionResult], *, color: bool = False) -> str:
    """The table at the end of `grader grade`: each submission, its status, total (all checks) and why."""
    paint = _Painter(color)
    results = list(rows)
    table = [("Submission", "Status", "Total", "Why")]
    for result in results:
        total = f"{fmt_number(result.score)} / {fmt_number(result.max_score)}"
        if result.extra.get("grader_fault"):
            total = "-"  # never a score: the grader failed on it
        table.append((clean(result.submission), result.status, total, _why(result)))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = []
    for i, row in enumerate(table):
        cells = [row[j].ljust(widths[j]) for j in range(3)]
        if i == 0:
            cells = [paint(c, "bold") for c in cells]
        else:
            cells[1] = paint(cells[1], _STATUS_STYLE.get(row[1], "bold"))
        lines.append("  ".join([*cells, row[3]]).rstrip())
    counts = {s: sum(r.status == s for r in results) for s in ("graded", "partial", "error")}
    lines.append("")
    lines.append(
        f"{len(results)} submission{'s' if len(results) != 1 else ''}: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
    )
    return "\n".join(lines) + "\n"


def _why(result: SubmissionResult) -> str:
    if result.messages:
        more = f" (+{len(result.messages) - 1} more)" if len(result.messages) > 1 else ""
        return clean(one_line(result.messages[0], 100)) + more
    failed = sum(c.status == "failed" for c in result.checks)
    if result.status == "error":
        return "the grader could not grade this submission"
    return f"{failed} of {len(result.checks)} checks failed" if failed else ""


def _total_line(result: SubmissionResult, show_hidden: bool, paint: _Painter) -> str:
    if result.extra.get("grader_fault"):
        return paint("No score: the grader itself failed (see above); this is not a grade of the submission.",
                     "bold", "yellow")
    shown = shown_view(result, show_hidden)
    hidden = hidden_count(result)
    text = f"Total: {fmt_number(shown.score)} / {fmt_number(shown.max_score)}"
    if hidden and not show_hidden:
        text += f" (visible checks only; {hidden} hidden check{'s' if hidden != 1 else ''} not shown)"
    full = shown.max_score > 0 and shown.score >= shown.max_score
    return paint(text, "bold", "green" if full else "yellow" if shown.score > 0 else "red")


def _exercise_table(shown: SubmissionResult, paint: _Painter) -> list[str]:
    per_exercise = shown.by_exercise(include_hidden=True)
    if not per_exercise:
        return ["No checks ran."]
    names = [clean(name) for name in per_exercise]
    width = max(len("Exercise"), *(len(n) for n in names))
    lines = [paint(f"{'Exercise'.ljust(width)}  {'Score':>7}  {'Max':>7}", "bold")]
    for name, (score, maximum) in zip(names, per_exercise.values(), strict=True):
        style = "green" if score >= maximum else "yellow" if score > 0 else "red"
        score_cell = paint(fmt_number(score).rjust(7), style)
        lines.append(f"{name.ljust(width)}  {score_cell}  {fmt_number(maximum):>7}")
    return lines


def _check_line(check: CheckResult, paint: _Painter) -> str:
    mark = {"passed": paint("PASS", "green"), "error": paint("ERROR", "yellow")}.get(check.status, paint("FAIL", "red"))
    hidden = paint(" [hidden]", "dim") if check.hidden else ""
    score = f"{fmt_number(check.score)}/{fmt_number(check.max_score)}"
    return f"  {mark} {clean(check.number)} {clean(check.exercise)}: {clean(check.name)} ({score}){hidden}"


def _feedback(check: CheckResult) -> list[str]:
    body = clean(clip(check.output, OUTPUT_LIMIT)).rstrip() or "(no feedback)"
    return textwrap.indent(body, "      ").split("\n")
