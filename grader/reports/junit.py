"""JUnit XML: one <testsuite> per submission, one <testcase> per check.

CI systems (GitHub, GitLab, Jenkins) read this to list failing checks. The submission's score is in
each suite's <properties> (score, max_score, status, hidden_checks).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from grader.reports._common import fmt_number, hidden_count, one_line, shown_view
from grader.results import CheckResult, SubmissionResult
from grader.textcap import JUNIT_BUDGET, clip, clip_messages

# Characters XML 1.0 cannot carry at all, even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """`text` with the characters XML 1.0 forbids replaced by U+FFFD."""
    return _XML_ILLEGAL.sub("\ufffd", str(text))


def to_junit_xml(results: Iterable[SubmissionResult], include_hidden: bool = True) -> str:
    """The JUnit XML document (a string, with an XML declaration) for a batch of submissions."""
    root = ET.Element("testsuites", name="convgrader")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for result in results:
        suite = _suite(result, include_hidden)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        total_time += result.execution_time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(total_time))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(result: SubmissionResult, include_hidden: bool) -> ET.Element:
    shown = shown_view(result, show_hidden=include_hidden)
    suite = ET.Element("testsuite", name=xml_text(result.submission))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("score", fmt_number(shown.score)),
        ("max_score", fmt_number(shown.max_score)),
        ("status", result.status),
        ("assignment", xml_text(result.assignment)),
        ("hidden_checks", str(hidden_count(result))),
        ("hidden_checks_included", "true" if include_hidden else "false"),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    failures = errors = 0
    budget = _Budget(JUNIT_BUDGET)  # a class's junit.xml grows by a few KB per submission, whatever it printed
    for check in shown.checks:
        suite.append(_case(result.submission, check, budget))
        failures += check.status == "failed"
    if result.status == "error":
        suite.append(_error_case(result, budget))
        errors = 1
    if result.messages:
        ET.SubElement(suite, "system-out").text = budget.take("\n".join(clip_messages(list(result.messages), 300)))
    count = len(shown.checks) + errors
    suite.attrib.update(
        tests=str(count),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=_seconds(result.execution_time),
    )
    return suite


def _case(submission: str, check: CheckResult, budget: _Budget) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=xml_text(f"{submission}.{check.exercise}"),
        name=xml_text(check.name),
        time=_seconds(check.duration),
    )
    score = f"{fmt_number(check.score)} / {fmt_number(check.max_score)}"
    if check.status == "failed":
        message = budget.take(one_line(check.output, 120), whole=True) or f"failed ({score})"
        failure = ET.SubElement(case, "failure", message=message, type="CheckFailed")
        failure.text = budget.take(check.output) or message
    ET.SubElement(case, "system-out").text = xml_text(f"{check.id}: {score}")
    return case


def _error_case(result: SubmissionResult, budget: _Budget) -> ET.Element:
    """A test case that makes a submission the grader could not grade show up as an error."""
    case = ET.Element("testcase", classname=xml_text(f"{result.submission}.grader"), name="grading", time="0")
    why = "\n".join(clip_messages(list(result.messages), 300)) or "the grader could not grade this submission"
    error = ET.SubElement(case, "error", message=xml_text(one_line(why)), type="GradingError")
    error.text = budget.take(why)
    return case


class _Budget:
    """Escaped bytes of feedback a submission's suite may still add; each text is clipped to what is left."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, text: str, whole: bool = False) -> str:
        """`text` made XML-safe and clipped (marked) to the budget; with `whole`, all of it or nothing."""
        safe = xml_text(text)
        cost = _escaped_size(safe)
        if cost > self.left:
            if whole or self.left < 80:
                return ""
            keep = self.left // 6  # & < > " escape to up to 6 bytes each
            safe = clip(safe, keep)
            cost = _escaped_size(safe)
        self.left -= cost
        return safe


def _escaped_size(text: str) -> int:
    from xml.sax.saxutils import escape

    return len(escape(text, {'"': "&quot;"}).encode("utf-8"))


def _seconds(value: float) -> str:
    return f"{max(float(value), 0.0):.3f}"
