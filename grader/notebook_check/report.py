"""What grader.check() returns: the result of a check, shown as a small HTML table in a notebook and as
plain text elsewhere. A view of the result model (grader.results): it computes no score of its own."""

from __future__ import annotations

import html
from dataclasses import dataclass

from grader.reports._common import fmt_number, fmt_seconds, sorted_checks
from grader.reports.terminal import render_terminal
from grader.results import CheckResult, SubmissionResult

_STYLE = """<style>
.convgrader-check {font-family: system-ui, sans-serif; font-size: 13px; max-width: 60em}
.convgrader-check table {border-collapse: collapse; margin: 4px 0}
.convgrader-check th, .convgrader-check td {border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left;
  vertical-align: top}
.convgrader-check td.num {text-align: right; white-space: nowrap}
.convgrader-check .mark-passed {color: #1a7f37; font-weight: 600}
.convgrader-check .mark-failed {color: #c62828; font-weight: 600}
.convgrader-check tr.feedback td {background: #fff6f6}
.convgrader-check dl {display: grid; grid-template-columns: max-content auto; gap: 2px 10px; margin: 4px 0}
.convgrader-check dt {font-weight: 600}
.convgrader-check dd {margin: 0}
.convgrader-check pre {margin: 2px 0; white-space: pre-wrap; font-size: 12px}
.convgrader-check .notes {background: #fff8e1; padding: 4px 8px 4px 24px; margin: 4px 0}
.convgrader-check .total-full {color: #1a7f37}
.convgrader-check .total-partial {color: #c62828}
</style>"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class CheckReport:
    """The outcome of grader.check(): `score`, `max_score`, `checks` (one entry per check) and `messages`."""

    result: SubmissionResult
    exercise: str | None = None  # the exercise checked; None: all of them

    @property
    def score(self) -> float:
        return self.result.score

    @property
    def max_score(self) -> float:
        return self.result.max_score

    @property
    def checks(self) -> list[CheckResult]:
        return sorted_checks(self.result.checks)

    @property
    def messages(self) -> list[str]:
        return self.result.messages

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "failed"]

    @property
    def call(self) -> str:
        return f'grader.check("{self.exercise}")' if self.exercise else "grader.check()"

    def __str__(self) -> str:
        body = render_terminal(self.result, color=False, verbose=True, quiet=False, show_hidden=False)
        return f"{self.call}\n{body}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        full = self.max_score > 0 and self.score >= self.max_score
        failed = len(self.failed)
        summary = "every check passed" if not failed else f"{failed} of {len(self.checks)} checks failed"
        parts = [
            '<div class="convgrader-check">', _STYLE,
            f'<p><b>{esc(self.call)}</b>: <b class="total-{"full" if full else "partial"}" data-score="'
            f'{fmt_number(self.score)}" data-max="{fmt_number(self.max_score)}">{fmt_number(self.score)} / '
            f"{fmt_number(self.max_score)} points</b> · {esc(summary)} · {esc(fmt_seconds(self.result.execution_time))}"
            + ("" if self.result.status == "graded" else f" · {esc(self.result.status)}") + "</p>",
        ]
        if self.messages:
            parts.append('<ul class="notes">' + "".join(f"<li>{esc(m)}</li>" for m in self.messages) + "</ul>")
        if self.checks:
            parts.append('<table><thead><tr><th>#</th><th>check</th><th class="num">points</th><th>result</th>'
                         "</tr></thead><tbody>")
            parts.extend(_row(check) for check in self.checks)
            parts.append("</tbody></table>")
        parts.append("</div>")
        return "\n".join(parts)


def _row(check: CheckResult) -> str:
    mark = {"passed": "✔ passed", "error": "⚠ grader error (not your code)"}.get(check.status, "✘ failed")
    row = (f'<tr class="{esc(check.status)}" data-id="{esc(check.id)}"><td>{esc(check.number)}</td>'
           f"<td>{esc(check.name)}</td><td class=\"num\">{fmt_number(check.score)} / {fmt_number(check.max_score)}"
           f'</td><td class="mark-{esc(check.status)}">{mark}</td></tr>')
    if check.status == "passed":
        return row
    return row + f'<tr class="feedback"><td></td><td colspan="3">{_feedback(check)}</td></tr>'


def _feedback(check: CheckResult) -> str:
    """The failure's message, expected / got, what else it said (the layer table), then the hint."""
    rest = check.output.rstrip()
    fields: dict[str, str] = {}
    for label, value in (("expected", check.expected), ("got", check.got), ("hint", check.hint)):
        if value is not None:
            rest = rest.replace(_labelled(label, value), "", 1)
            fields[label] = f"<dt>{label}</dt><dd><pre>{esc(value)}</pre></dd>"
    lines = rest.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    details = "\n".join(lines[first + 1:] if first is not None else []).strip("\n")
    out = f"<div>{esc(lines[first])}</div>" if first is not None else ""
    if "expected" in fields or "got" in fields:
        out += "<dl>" + fields.get("expected", "") + fields.get("got", "") + "</dl>"
    if details.strip():
        out += f'<pre class="details">{esc(details)}</pre>'
    if "hint" in fields:
        out += "<dl>" + fields["hint"] + "</dl>"
    return out


def _labelled(label: str, text: str) -> str:
    """A field as grader.checks.Mismatch writes it into the feedback text."""
    if "\n" in text:
        indented = "\n".join("    " + line for line in text.splitlines())
        return f"  {label}:\n{indented}"
    return f"  {label}: {text}"
