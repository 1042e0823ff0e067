"""Feedback is bounded: whatever a submission returns or prints, each check's text and each report file has a
size cap, with a marker where text was cut."""

from __future__ import annotations

import json
from pathlib import Path

from grader.checks import Mismatch
from grader.judge.plugin import _failure_text, _fault_text
from grader.judge.student import describe_value
from grader.reports import to_junit_xml, to_markdown_summary, write_submission_reports
from grader.reports.terminal import render_terminal
from grader.results import CheckResult, SubmissionResult, load_result, save_result
from grader.sandbox.protocol import Opaque, decode_value
from grader.textcap import MESSAGES_KEPT, OUTPUT_LIMIT, Budget, clip, clip_data

MB = 1024**2
BIG_DICT = {f"{i:05d}" + "k" * 95: i for i in range(20_000)}  # the red team's 20,000 keys of 100 characters
# Text that grows most when escaped (HTML, JSON, XML) or is cut badly: markup, control and astral characters.
NASTY = ('<script>&"\x00\x1b[31m\U0001f600' * 40_000)[: 2 * MB]


def test_clip_marks_what_it_cut() -> None:
    assert clip("short", 10) == "short"
    text = clip("x" * 50_000, 100)
    assert text.startswith("x" * 100) and "49,900 more characters cut by the grader" in text and len(text) < 160


def test_a_mismatch_keeps_each_part_bounded() -> None:
    exc = Mismatch(NASTY, expected=NASTY, got=BIG_DICT, hint=NASTY, details=NASTY)
    assert len(exc.render()) < 13_000 and exc.render().count("cut by the grader") == 5
    assert len(_failure_text(exc)) <= OUTPUT_LIMIT + 100 and "cut by the grader" in _failure_text(exc)


def test_a_check_crash_with_a_huge_message_is_bounded() -> None:
    try:
        raise RuntimeError(NASTY)
    except RuntimeError as exc:
        text = _fault_text(exc)
    assert text.startswith("The grader itself failed") and len(text) <= OUTPUT_LIMIT + 100


def test_describing_a_huge_dict_is_short() -> None:
    text = describe_value(BIG_DICT)
    assert text.startswith("a dict with 20,000 keys, the first 12:") and len(text) < 1_000
    assert describe_value({"a": 1, "b": 2}) == "a dict with keys ['a', 'b']"


def test_an_opaque_value_is_short_whatever_the_frame_says() -> None:
    value = decode_value({"__t__": "opaque", "type_name": "T" * 1_000_000, "repr": "r" * 1_000_000})
    assert isinstance(value, Opaque) and len(value.type_name) <= 300 and len(value.repr) <= 300
    assert len(describe_value(value)) < 500


def test_budgets_and_data_caps() -> None:
    budget = Budget(1_000, 400)
    texts = [budget.take("q" * 10_000) for _ in range(5)]
    assert [t.count("q") for t in texts] == [400, 400, 200, 0, 0]
    assert clip_data({"a": 1}) == {"a": 1}
    assert "left_out" in clip_data(BIG_DICT)


def _result(name: str, output: str, messages: list[str], extra: dict[str, object]) -> SubmissionResult:
    checks = [
        CheckResult(id=f"models::check_{i}", name=f"check {i}", exercise="models", number=f"2.{i}", max_score=1,
                    score=0, status="failed", hidden=i % 3 == 0, output=output, expected=output[:2000],
                    got=output[:2000], extra=extra)
        for i in range(65)
    ]
    return SubmissionResult(submission=name, checks=checks, messages=messages, extra=extra)


def _hostile() -> SubmissionResult:
    return _result("hostile", NASTY, [NASTY] * 1_000, {"returned": BIG_DICT, "note": NASTY})


def test_every_report_file_stays_under_its_cap(tmp_path: Path) -> None:
    paths = write_submission_reports(_hostile(), tmp_path, show_hidden=True)
    assert paths["results.json"].stat().st_size < 1 * MB  # "well under 2 MB"
    assert paths["report.html"].stat().st_size < 1 * MB
    for path in paths.values():
        assert "cut by the grader" in path.read_text(encoding="utf-8")
    json.loads(paths["results.json"].read_text(encoding="utf-8"))  # still valid JSON
    student_view = write_submission_reports(_hostile(), tmp_path / "student", show_hidden=False)
    assert student_view["report.html"].stat().st_size < 1 * MB
    assert len(to_markdown_summary(_hostile()).encode()) < 1 * MB
    for verbose in (False, True):
        text = render_terminal(_hostile(), color=False, verbose=verbose, quiet=False, show_hidden=True)
        assert len(text.encode()) < 1 * MB


def test_junit_grows_by_a_few_kb_per_submission() -> None:
    """The hostile submission's suite is at most 4 KB larger than that of one with the same checks and no text."""
    quiet = to_junit_xml([_result("hostile", "", [], {})]).encode()
    loud = to_junit_xml([_hostile()]).encode()
    assert len(loud) - len(quiet) <= 4 * 1024
    assert b"cut by the grader" in loud or b'message="failed' in loud


def test_grader_result_json_of_capped_checks_is_bounded(tmp_path: Path) -> None:
    """The instructor's full record holds what the checks produced: capped where it was produced."""
    exc = Mismatch(NASTY, expected=NASTY, got=describe_value(BIG_DICT), hint=NASTY)
    result = _result("hostile", _failure_text(exc), [], {})
    for check in result.checks:
        check.expected, check.got, check.hint = exc.expected, exc.got, exc.hint
    save_result(result, tmp_path / "grader-result.json")
    assert (tmp_path / "grader-result.json").stat().st_size < 2 * MB


def test_the_record_itself_is_bounded_whatever_its_fields_hold(tmp_path: Path) -> None:
    """grader-result.json of a result whose every field holds 2 MB of text (65 checks, 1,000 messages, 20,000
    keys): bounded when it is written, not only in the reports made from it, and still read back."""
    save_result(_hostile(), tmp_path / "grader-result.json")
    size = (tmp_path / "grader-result.json").stat().st_size
    assert size < 3 * MB, size  # unbounded, it is ~0.8 GB (65 checks x 4 fields x 2 MB, the extras, messages)
    again = load_result(tmp_path / "grader-result.json")
    assert len(again.messages) == MESSAGES_KEPT + 1 and "more messages cut by the grader" in again.messages[-1]
    assert all("cut by the grader" in check.output and "left_out" in check.extra for check in again.checks)
    assert set(again.extra) == {"returned", "note"} and all("left_out" in v for v in again.extra.values())
