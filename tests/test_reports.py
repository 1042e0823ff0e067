"""The report renderers: each is a view of the same SubmissionResult and must agree with its score."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image

from grader.reports import (
    render_batch_summary,
    render_terminal,
    to_gradescope,
    to_html,
    to_junit_xml,
    to_markdown_summary,
    validate_gradescope,
    write_batch_reports,
    write_results_json,
    write_submission_reports,
)
from grader.reports._common import fmt_number
from grader.reports.classroom import encode_classroom_runner, load_any_result
from grader.reports.classroom import main as classroom_main
from grader.reports.gradebook import safe_cell, to_gradebook_csv, write_gradebook
from grader.reports.gradescope import from_gradescope
from grader.reports.images import activation_grid_png, learning_curve_png
from grader.reports.junit import xml_text
from grader.results import CheckResult, SubmissionResult, load_result
from grader.suites.convolutions import ASSIGNMENT as CONVOLUTIONS

EXERCISES = CONVOLUTIONS.modules

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "results"
WORKFLOW = ROOT / "classroom" / "github-classroom.yml"
FIXTURE_NAMES = ("full_marks", "failures", "hidden", "error")
HIDDEN_MARK = "SECRET-HIDDEN"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HTML_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "span", "section",
    "table", "thead", "tbody", "tr", "th", "td", "div", "pre", "details", "summary", "figure",
    "figcaption", "img", "ul", "li", "b", "footer",
}  # fmt: skip
TOTAL_MD = re.compile(r"^\*\*Total \((all checks|visible checks only)\): (\S+) / (\S+)\*\*$", re.M)

HYPOTHESIS = settings(
    database=None,
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module", autouse=True)
def _hypothesis_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis caches (character maps, constants) go to a temporary folder, not ./.hypothesis."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


def load(name: str) -> SubmissionResult:
    return load_result(FIXTURES / f"{name}.json")


def visible_total(result: SubmissionResult) -> tuple[float, float]:
    """The model's own totals over the visible checks (what a student-facing report must show)."""
    visible = SubmissionResult(submission=result.submission, checks=result.visible_checks())
    return visible.score, visible.max_score


class _PageParser(HTMLParser):
    """Collects the tags and attributes of a page, the total and the per-exercise rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.total: dict[str, str | None] = {}
        self.exercises: dict[str, float] = {}
        self.img_src: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        values = dict(attrs)
        if values.get("id") == "total":
            self.total = values
        if tag == "tr" and "data-exercise" in values:
            self.exercises[str(values["data-exercise"])] = float(str(values["data-score"]))
        if tag == "img":
            self.img_src.append(str(values.get("src")))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_page(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    return parser


def read_gradebook(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def junit_properties(suite: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}


def require_junitparser() -> Any:
    try:
        import junitparser
    except ImportError:  # pragma: no cover - a missing dev dependency
        pytest.fail("junitparser is not installed: `pip install junitparser` (it belongs to the dev extra)")
    return junitparser


# ---------------------------------------------------------------- strategies

_SPECIAL = st.sampled_from(
    ["<", ">", "&", '"', "'", "|", "`", "```", "*", "_", "#", "\n", "\r", "\t", "]]>", "<script>", "&amp;",
     "\x00", "\x1b[2J", "é", "漢", "🙂", "\u200b", "=", "-", "\\"]
)  # fmt: skip
TEXT = st.lists(st.one_of(st.text(max_size=6), _SPECIAL), max_size=6).map("".join)
SCORE_MAX = st.one_of(st.integers(0, 20).map(float), st.floats(0, 100, allow_nan=False, allow_infinity=False))
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), TEXT,
                        st.floats(allow_nan=False, allow_infinity=False))  # fmt: skip


@st.composite
def check_results(draw: st.DrawFn, index: int) -> CheckResult:
    max_score = draw(SCORE_MAX)
    score = draw(st.sampled_from([0.0, max_score]) | st.floats(0, max_score))
    hidden = draw(st.booleans())
    name, output = draw(TEXT), draw(TEXT)
    if hidden:  # a marker the student's views must never show
        name, output = f"{HIDDEN_MARK}-name-{index} {name}", f"{HIDDEN_MARK}-output-{index} {output}"
    exercise = draw(st.sampled_from([*EXERCISES, "bonus"]))
    tags = [exercise, *draw(st.lists(st.sampled_from(["accuracy", "numerics", "slow"]), max_size=2, unique=True))]
    return CheckResult(
        id=f"{exercise}::check_{index}",
        name=name,
        exercise=exercise,
        number=f"{index // 3 + 1}.{index % 3 + 1}",
        max_score=max_score,
        score=score,
        status="passed" if score >= max_score else "failed",
        hidden=hidden,
        tags=tags,
        output=output,
        expected=draw(st.none() | TEXT),
        got=draw(st.none() | TEXT),
        hint=draw(st.none() | TEXT),
        duration=draw(st.floats(0, 1000, allow_nan=False)),
        extra=draw(st.dictionaries(st.text(max_size=5), JSON_SCALAR, max_size=3)),
    )


@st.composite
def submission_results(draw: st.DrawFn) -> SubmissionResult:
    count = draw(st.integers(0, 12))
    checks = [draw(check_results(i)) for i in range(count)]
    return SubmissionResult(
        submission=draw(st.one_of(TEXT.filter(str.strip), st.sampled_from(["=SUM(A1)", "<b>x</b>", "alice"]))),
        status=draw(st.sampled_from(["graded", "partial", "error"])),
        checks=checks,
        messages=draw(st.lists(TEXT, max_size=3)),
        execution_time=draw(st.floats(0, 10_000, allow_nan=False)),
        extra=draw(st.dictionaries(st.text(max_size=8), JSON_SCALAR, max_size=4)),
    )


# ---------------------------------------------------------------- properties over generated results


@HYPOTHESIS
@given(result=submission_results())
def test_every_view_reports_the_models_total(result: SubmissionResult, tmp_path_factory: Any) -> None:
    folder = tmp_path_factory.mktemp("views")
    score, max_score = result.score, result.max_score
    seen_score, seen_max = visible_total(result)

    paths = write_submission_reports(result, folder, show_hidden=True)
    document = json.loads(paths["results.json"].read_text(encoding="utf-8"))
    assert validate_gradescope(document) == []
    assert document["score"] == score
    assert len(document["tests"]) == len(result.checks)
    assert sum(t["visibility"] == "hidden" for t in document["tests"]) == sum(c.hidden for c in result.checks)

    batch = write_batch_reports([result], folder)
    (row,) = read_gradebook(batch["gradebook.csv"])
    assert (float(row["total"]), float(row["max"])) == (score, max_score)
    for exercise, (exercise_score, _) in result.by_exercise(include_hidden=True).items():
        assert float(row[exercise]) == exercise_score
    assert row["id"] == safe_cell(result.submission)

    suite = ET.parse(batch["junit.xml"]).getroot().find("testsuite")
    assert suite is not None
    properties = junit_properties(suite)
    assert (float(properties["score"]), float(properties["max_score"])) == (score, max_score)
    assert len(suite.findall("testcase")) == len(result.checks) + (result.status == "error")

    for show_hidden, expected in ((True, (score, max_score)), (False, (seen_score, seen_max))):
        summary = to_markdown_summary(result, show_hidden=show_hidden)
        (match,) = TOTAL_MD.findall(summary)
        assert (float(match[1]), float(match[2])) == expected
        page = parse_page(to_html(result, show_hidden=show_hidden))
        assert (float(str(page.total["data-score"])), float(str(page.total["data-max"]))) == expected
        assert set(page.tags) <= HTML_TAGS
        assert not [name for name, _ in page.attrs if name.startswith("on")]
        assert all(src.startswith("data:image/png;base64,") for src in page.img_src)
        if not show_hidden:
            assert HIDDEN_MARK not in summary
            assert HIDDEN_MARK not in "".join(page.text) + str(page.attrs)
            expected_rows = result.by_exercise(include_hidden=False)
            assert page.exercises == {name: s for name, (s, _) in expected_rows.items()}


@HYPOTHESIS
@given(result=submission_results())
def test_to_dict_from_dict_round_trip(result: SubmissionResult) -> None:
    data = json.loads(json.dumps(result.to_dict()))
    assert SubmissionResult.from_dict(data) == result
    assert (data["score"], data["max_score"]) == (result.score, result.max_score)


@HYPOTHESIS
@given(results=st.lists(submission_results(), max_size=4))
def test_junit_is_read_by_a_junit_reader(results: list[SubmissionResult], tmp_path_factory: Any) -> None:
    junitparser = require_junitparser()
    path = tmp_path_factory.mktemp("junit") / "junit.xml"
    path.write_text(to_junit_xml(results), encoding="utf-8")
    suites = list(junitparser.JUnitXml.fromfile(str(path)))
    assert len(suites) == len(results)
    for suite, result in zip(suites, results, strict=True):
        cases = list(suite)
        assert len(cases) == len(result.checks) + (result.status == "error")
        failed = [c for c in cases if any(isinstance(r, junitparser.Failure) for r in c.result)]
        assert len(failed) == sum(c.status == "failed" for c in result.checks)
        assert suite.name == xml_text(result.submission)


@HYPOTHESIS
@given(result=submission_results())
def test_terminal_hides_hidden_checks_and_never_emits_control_characters(result: SubmissionResult) -> None:
    text = render_terminal(result, color=False, verbose=True, quiet=False, show_hidden=False)
    assert HIDDEN_MARK not in text
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", text)
    score, maximum = visible_total(result)
    assert f"Total: {fmt_number(score)} / {fmt_number(maximum)}" in text


@HYPOTHESIS
@given(result=submission_results())
def test_gradescope_file_reads_back_into_the_same_checks(result: SubmissionResult) -> None:
    back = from_gradescope(json.loads(json.dumps(to_gradescope(result))))
    core = ("id", "name", "exercise", "number", "max_score", "score", "status", "hidden", "tags", "output")
    assert [[getattr(c, f) for f in core] for c in back.checks] == [
        [getattr(c, f) for f in core] for c in result.checks
    ]
    assert (back.submission, back.status, back.messages) == (result.submission, result.status, result.messages)
    assert (back.score, back.max_score) == (result.score, result.max_score)


@HYPOTHESIS
@given(result=submission_results())
def test_classroom_runner_carries_the_score_without_hidden_details(result: SubmissionResult) -> None:
    runner = json.loads(base64.b64decode(encode_classroom_runner(result)).decode("utf-8"))
    assert runner["max_score"] == result.max_score
    # the reporter adds the raw check scores; result.score is their sum rounded to 4 decimals
    assert sum(t["score"] for t in runner["tests"]) == pytest.approx(result.score, abs=1e-4)
    assert HIDDEN_MARK not in json.dumps(runner, ensure_ascii=False)
    assert len(runner["tests"]) == len(result.visible_checks()) + any(c.hidden for c in result.checks)
    expected = (
        "error"
        if result.status == "error"
        else "fail"
        if result.checks and any(c.status == "failed" for c in result.checks)
        else "pass"
    )
    assert runner["status"] == expected


# ---------------------------------------------------------------- fixtures: every view


@pytest.fixture(params=FIXTURE_NAMES)
def fixture_result(request: pytest.FixtureRequest) -> SubmissionResult:
    return load(request.param)


def test_fixture_files_are_complete_results(fixture_result: SubmissionResult) -> None:
    data = fixture_result.to_dict()
    assert SubmissionResult.from_dict(data) == fixture_result
    for check in fixture_result.checks:
        assert check.exercise in EXERCISES and check.exercise in check.tags
        assert 0 <= check.score <= check.max_score
        assert check.status == ("passed" if check.score == check.max_score else "failed")


def test_gradescope_document(fixture_result: SubmissionResult, tmp_path: Path) -> None:
    document = to_gradescope(fixture_result)
    assert validate_gradescope(document) == []
    assert document["score"] == fixture_result.score
    assert document["output_format"] in {"md", "text"}
    assert document["extra_data"]["status"] == fixture_result.status
    assert document["extra_data"]["messages"] == fixture_result.messages
    for test, check in zip(document["tests"], fixture_result.checks, strict=True):
        assert (test["name"], test["number"], test["score"], test["max_score"]) == (
            check.name, check.number, check.score, check.max_score,
        )  # fmt: skip
        assert test["status"] == check.status and test["output"] == check.output
        assert test["visibility"] == ("hidden" if check.hidden else "visible")
        assert test["tags"] == check.tags
        assert test["extra_data"] == {"id": check.id, "exercise": check.exercise}
    assert HIDDEN_MARK not in document["output"]
    path = tmp_path / "results" / "results.json"
    write_results_json(fixture_result, path)
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(document))
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left


def test_gradescope_accuracy_gates_are_tagged() -> None:
    tests = to_gradescope(load("failures"))["tests"]
    gates = [t for t in tests if "accuracy" in t["tags"]]
    assert [t["extra_data"]["id"] for t in gates] == ["training::test_dnn_accuracy", "training::test_cnn_accuracy"]
    assert all("training" in t["tags"] for t in gates)


def test_gradescope_extra_data_leaves_out_images() -> None:
    result = load("full_marks")
    png = base64.b64encode(learning_curve_png({"loss": [1.0, 0.5]}, None, None)).decode()
    result.extra["activation_maps"] = {
        "images": [0, 23, 28],
        "student": {"layers": ["conv2d", "max_pooling2d"], "png": png},
        "reference": {"layers": ["conv2d", "max_pooling2d"], "png": png},
    }
    result.extra["blob"] = b"\x00" * 10
    result.extra["array"] = np.arange(3)
    extra = to_gradescope(result)["extra_data"]
    assert extra["activation_maps"] == {
        "images": [0, 23, 28],
        "student": {"layers": ["conv2d", "max_pooling2d"]},
        "reference": {"layers": ["conv2d", "max_pooling2d"]},
    }
    assert "blob" not in extra and extra["array"] == [0, 1, 2]
    assert extra["seed"] == 1234
    assert "png" in result.extra["activation_maps"]["student"]  # the result itself is untouched
    json.dumps(extra, allow_nan=False)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("score"), "'score' is a required property"),
        (lambda d: d.update(score="12"), "is not of type 'number'"),
        (lambda d: d["tests"][0].update(status="ok"), "tests/0/status"),
        (lambda d: d["tests"][0].update(visibility="secret"), "tests/0/visibility"),
        (lambda d: d["tests"][0].update(score=d["tests"][0]["max_score"] + 1), "exceeds max_score"),
        (lambda d: d["tests"][1].update(score=float("nan")), "not a finite number"),
        (lambda d: d.update(score=d["score"] + 5), "differs from the sum"),
        (lambda d: d.update(output_format="latex"), "output_format"),
        (lambda d: d["tests"][0].update(tags="data"), "tests/0/tags"),
    ],
)
def test_validate_gradescope_reports_problems(change: Any, problem: str) -> None:
    document = to_gradescope(load("failures"))
    change(document)
    problems = validate_gradescope(document)
    assert any(problem in p for p in problems), problems


def test_gradebook(tmp_path: Path) -> None:
    results = [load(name) for name in FIXTURE_NAMES]
    path = tmp_path / "gradebook.csv"
    write_gradebook(results, path)
    rows = read_gradebook(path)
    assert list(rows[0]) == ["id", "status", "total", "max", *EXERCISES, "seconds"]
    assert [r["id"] for r in rows] == [r.submission for r in results]
    assert [r["status"] for r in rows] == ["graded", "graded", "partial", "error"]
    assert [r["total"] for r in rows] == ["95", "58.75", "26.75", "0"]
    assert rows[1]["convolution"] == "6.25" and rows[2]["data"] == "5"  # hidden check of carol included
    assert rows[2]["visualize"] == "" and all(rows[3][e] == "" for e in EXERCISES)
    assert rows[0]["seconds"] == "118.4"
    assert path.read_bytes().startswith(b"id,status,total,max,data,")


def test_gradebook_numbers_have_no_float_noise() -> None:
    checks = [
        CheckResult(id=f"data::c{i}", name="c", exercise="data", number="1", max_score=0.1, score=0.1,
                    status="passed")
        for i in range(3)
    ]  # fmt: skip
    result = SubmissionResult(submission="x", checks=checks, execution_time=2.0000000001)
    row = next(csv.DictReader(io.StringIO(to_gradebook_csv([result]))))
    assert (row["total"], row["max"], row["data"], row["seconds"]) == ("0.3", "0.3", "0.3", "2")


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1", "@cmd", "-2"])
def test_gradebook_ids_are_not_spreadsheet_formulas(name: str) -> None:
    row = next(csv.DictReader(io.StringIO(to_gradebook_csv([SubmissionResult(submission=name)]))))
    assert row["id"] == "'" + name


@pytest.mark.parametrize(
    ("value", "text"),
    [(12.500000001, "12.5"), (0.1 + 0.2, "0.3"), (3.0, "3"), (-0.0, "0"), (1 / 3, "0.3333"), (100, "100")],
)
def test_fmt_number(value: float, text: str) -> None:
    assert fmt_number(value) == text


def test_junit(tmp_path: Path) -> None:
    results = [load(name) for name in FIXTURE_NAMES]
    root = ET.fromstring(to_junit_xml(results))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [r.submission for r in results]
    for suite, result in zip(suites, results, strict=True):
        assert float(junit_properties(suite)["score"]) == result.score
        assert int(suite.get("failures", "-1")) == sum(c.status == "failed" for c in result.checks)
    failures = suites[1]
    case = next(c for c in failures.iter("testcase") if c.get("name", "").startswith("build_cnn"))
    assert case.get("classname") == "bob <b>&co</b>.models"
    failure = case.find("failure")
    assert failure is not None and "589,952" in (failure.text or "")
    assert failure.get("message") == "build_cnn((32, 32)) does not have the lab's layers."
    error_suite = suites[3]
    assert error_suite.get("errors") == "1"
    error = error_suite.find("testcase/error")
    assert error is not None and "SyntaxError" in (error.get("message") or "")

    junitparser = require_junitparser()
    path = tmp_path / "junit.xml"
    path.write_text(to_junit_xml(results), encoding="utf-8")
    parsed = junitparser.JUnitXml.fromfile(str(path))
    assert [s.tests for s in parsed] == [14, 15, 7, 1]
    assert [s.failures for s in parsed] == [0, 6, 3, 0]


def test_junit_without_hidden_checks() -> None:
    result = load("hidden")
    suite = ET.fromstring(to_junit_xml([result], include_hidden=False)).find("testsuite")
    assert suite is not None
    assert HIDDEN_MARK not in ET.tostring(suite, encoding="unicode")
    properties = junit_properties(suite)
    assert (float(properties["score"]), float(properties["max_score"])) == visible_total(result)
    assert properties["hidden_checks"] == "3" and properties["hidden_checks_included"] == "false"


def test_markdown_summary_of_failures() -> None:
    result = load("failures")
    summary = to_markdown_summary(result)
    assert "**Total (all checks): 58.75 / 100**" in summary
    assert "| training | 5 | 20 | 1 |" in summary
    assert "```text\nbuild_cnn((32, 32)) does not have the lab's layers." in summary
    assert summary.count("\n#### ") == 6
    assert "bob \\<b\\>\\&co\\</b\\>" in summary  # a submission's name is Markdown text, not HTML


def test_markdown_summary_counts_hidden_checks_without_revealing_them() -> None:
    result = load("hidden")
    summary = to_markdown_summary(result)
    assert HIDDEN_MARK not in summary
    assert "3 hidden checks are not shown" in summary
    assert "**Total (visible checks only): 22.5 / 27.5**" in summary
    assert "| data | 5 | 5 | 0 |" in summary  # the hidden data check (0/2) is not in the table
    assert "| convolution | 7.5 | 7.5 | 0 |" in summary
    assert "All visible checks passed" not in summary and "All checks passed" not in summary
    assert HIDDEN_MARK in to_markdown_summary(result, show_hidden=True)


def test_markdown_summary_says_all_visible_when_hidden_checks_exist() -> None:
    result = load("hidden")
    result.checks = [c for c in result.checks if c.hidden or c.status == "passed"]
    summary = to_markdown_summary(result)
    assert "All visible checks passed." in summary and "All checks passed" not in summary


def test_markdown_fence_outgrows_backticks_in_feedback() -> None:
    result = load("failures")
    result.checks[1].output = "look:\n```\n# not a heading\n````"
    summary = to_markdown_summary(result)
    assert "`````text\nlook:\n```\n# not a heading\n````\n`````" in summary


def test_markdown_summary_of_an_error() -> None:
    summary = to_markdown_summary(load("error"))
    assert "No checks ran." in summary and "SyntaxError" in summary
    assert "**Total (all checks): 0 / 0**" in summary


def test_html_report_of_failures() -> None:
    result = load("failures")
    page_text = to_html(result)
    page = parse_page(page_text)
    assert page.total == {"id": "total", "data-score": "58.75", "data-max": "100"}
    assert page.exercises == {e: s for e, (s, _) in result.by_exercise().items()}
    assert "bob &lt;b&gt;&amp;co&lt;/b&gt;" in page_text and "<b>&co" not in page_text
    assert "  2  MaxPooling2D   (13, 13, 32)        0   Conv2D         (24, 24, 32)    9,248" in page_text
    assert len(page.img_src) == 2  # the learning curves of the two accuracy gates
    for src in page.img_src:
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG" and image.width > 300 and image.height > 100
    assert "threshold 0.8800" in page_text and "95% CI [0.8365, 0.8506]" in page_text
    assert "No activation maps" in page_text
    assert "http://" not in page_text and "https://" not in page_text and "<script" not in page_text


def test_html_report_shows_activation_maps_side_by_side() -> None:
    result = load("full_marks")
    grids = {}
    for role, seed in (("student", 1), ("reference", 2)):
        rng = np.random.default_rng(seed)
        acts = [rng.random((3, 26, 26, 4)), rng.random((3, 13, 13, 4))]
        grids[role] = base64.b64encode(activation_grid_png(acts, ["conv2d", "max_pooling2d"], ["0", "23", "28"]))
    result.extra["activation_maps"] = {
        "images": [0, 23, 28],
        "student": {"layers": ["conv2d", "max_pooling2d"], "png": grids["student"].decode()},
        "reference": {"layers": ["conv2d", "max_pooling2d"], "png": "not base64 <script>"},
    }
    page_text = to_html(result)
    page = parse_page(page_text)
    maps = page_text[page_text.index('<section id="activation-maps">') :]
    assert "Test images 0, 23, 28" in maps
    assert maps.count("<figure>") == 2 and "Your model: conv2d, max_pooling2d" in maps
    assert "The image is not a PNG." in maps and "<script" not in page_text
    assert f"data:image/png;base64,{grids['student'].decode()}" in page.img_src


@pytest.mark.parametrize(("name", "why"), [("error", "grading stopped"), ("hidden", "could not compute them")])
def test_html_says_why_activation_maps_are_missing(name: str, why: str) -> None:
    assert why in to_html(load(name))


def test_html_hidden_checks(tmp_path: Path) -> None:
    result = load("hidden")
    student = to_html(result, show_hidden=False)
    assert HIDDEN_MARK not in student
    assert "3 hidden checks are not shown." in student
    assert parse_page(student).total["data-score"] == "22.5"
    instructor = to_html(result, show_hidden=True)
    assert instructor.count(f"{HIDDEN_MARK}-") == 6 and 'class="badge hidden"' in instructor
    paths = write_submission_reports(result, tmp_path)
    assert paths["report.html"].read_text(encoding="utf-8") == instructor
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "results.json"]


def test_terminal_report() -> None:
    result = load("failures")
    plain = render_terminal(result, color=False, verbose=False, quiet=False, show_hidden=False)
    assert "\x1b[" not in plain
    assert "Total: 58.75 / 100" in plain.splitlines()[-1]
    assert "Failures (6)" in plain and "PASS" not in plain
    assert "      2  MaxPooling2D   (13, 13, 32)" in plain  # feedback indented, layer table intact
    coloured = render_terminal(result, color=True, verbose=False, quiet=False, show_hidden=False)
    assert "\x1b[31mFAIL\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    verbose = render_terminal(result, color=False, verbose=True, quiet=False, show_hidden=False)
    assert verbose.count("PASS ") == 9 and verbose.count("FAIL ") == 12  # failures listed twice
    quiet = render_terminal(result, color=False, verbose=True, quiet=True, show_hidden=False)
    assert quiet == "Total: 58.75 / 100\n"


def test_terminal_hidden_checks() -> None:
    result = load("hidden")
    student = render_terminal(result, color=False, verbose=True, quiet=False, show_hidden=False)
    assert HIDDEN_MARK not in student
    assert "Total: 22.5 / 27.5 (visible checks only; 3 hidden checks not shown)" in student
    instructor = render_terminal(result, color=False, verbose=True, quiet=False, show_hidden=True)
    assert "Total: 26.75 / 35\n" in instructor and instructor.count("[hidden]") == 3 + 2  # two hidden failures twice


def test_terminal_strips_control_characters() -> None:
    result = load("failures")
    result.checks[1].output = "red\x1b[31m alert\x07 \x1b]0;title\x07"
    text = render_terminal(result, color=False, verbose=False, quiet=False, show_hidden=False)
    assert "\x1b" not in text and "\x07" not in text and "red?[31m alert?" in text


def test_batch_summary() -> None:
    results = [load(name) for name in FIXTURE_NAMES]
    lines = render_batch_summary(results).splitlines()
    assert lines[0].split() == ["Submission", "Status", "Total", "Why"]
    assert lines[1].split()[:4] == ["alice", "graded", "95", "/"]
    assert "partial" in lines[3] and "visualize.py timed out" in lines[3]
    assert "error" in lines[4] and "SyntaxError" in lines[4] and "(+1 more)" in lines[4]
    assert lines[-1] == "4 submissions: 2 graded, 1 partial, 1 error"
    assert "\x1b[32mgraded" in render_batch_summary(results, color=True)


def test_batch_reports(tmp_path: Path) -> None:
    results = [load(name) for name in FIXTURE_NAMES]
    paths = write_batch_reports(results, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gradebook.csv", "junit.xml"]
    assert len(read_gradebook(paths["gradebook.csv"])) == 4
    assert len(ET.parse(paths["junit.xml"]).getroot().findall("testsuite")) == 4


# ---------------------------------------------------------------- images


def test_activation_grid_png_has_a_cell_per_image_and_layer() -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    rc_before, figures_before = dict(matplotlib.rcParams), plt.get_fignums()
    layers = [np.random.default_rng(0).random((3, s, s, 2)) for s in (26, 13, 11, 5)]
    wide = Image.open(io.BytesIO(activation_grid_png(layers, ["c1", "p1", "c2", "p2"], ["0", "23", "28"])))
    tall = Image.open(io.BytesIO(activation_grid_png(layers[:1], ["c1"], ["0", "23", "28"], channel=0)))
    assert wide.width > wide.height and tall.height > tall.width
    assert len(np.unique(np.asarray(wide.convert("RGB")).reshape(-1, 3), axis=0)) > 100
    assert dict(matplotlib.rcParams) == rc_before and plt.get_fignums() == figures_before


@pytest.mark.parametrize(
    ("layers", "names", "labels", "channel", "message"),
    [
        ([], [], ["0"], 1, "at least one layer"),
        ([np.zeros((1, 4, 4, 2))], ["a", "b"], ["0"], 1, "layer names"),
        ([np.zeros((2, 4, 4, 2))], ["a"], ["0"], 1, "row labels"),
        ([np.zeros((1, 4, 4, 2))], ["a"], ["0"], 2, "out of range"),
        ([np.zeros((1, 4, 4))], ["a"], ["0"], 1, "(n, h, w, c)"),
    ],
)
def test_activation_grid_png_rejects_bad_input(
    layers: list[np.ndarray], names: list[str], labels: list[str], channel: int, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        activation_grid_png(layers, names, labels, channel=channel)


@pytest.mark.parametrize(
    "history",
    [{"accuracy": [0.8, 0.85, 0.9], "loss": [0.5, 0.4, 0.3], "val_accuracy": [0.8, 0.82, 0.84]}, {}, {"loss": []}],
)
def test_learning_curve_png(history: dict[str, list[float]]) -> None:
    png = learning_curve_png(history, 0.898, (0.892, 0.904), threshold=0.88)
    assert png.startswith(PNG_SIGNATURE)
    assert Image.open(io.BytesIO(png)).size == (800, 320)


_curve = st.lists(st.floats(0, 1, allow_nan=False, allow_subnormal=False), min_size=1, max_size=4)


@settings(HYPOTHESIS, max_examples=10)
@given(history=st.dictionaries(st.sampled_from(["accuracy", "loss", "val_loss"]), _curve, max_size=2),
       threshold=st.sampled_from([None, 0.85, 0.88]))
def test_a_remembered_learning_curve_is_the_figure_its_inputs_draw(history: dict[str, list[float]],
                                                                    threshold: float | None) -> None:
    from grader.reports import images

    png = learning_curve_png(history, 0.9, (0.89, 0.91), threshold=threshold)
    assert learning_curve_png(dict(history), 0.9, (0.89, 0.91), threshold=threshold) is png  # drawn once
    assert png == images._learning_curve(history, 0.9, (0.89, 0.91), threshold)  # and it is that figure
    assert len(images._curves) <= images._CURVES_KEPT


def test_learning_curves_with_other_inputs_are_drawn_anew() -> None:
    history = {"accuracy": [0.8, 0.9], "loss": [0.5, 0.3]}
    first = learning_curve_png(history, 0.9, (0.89, 0.91), threshold=0.88)
    changed = [
        learning_curve_png({**history, "accuracy": [0.8, 0.91]}, 0.9, (0.89, 0.91), threshold=0.88),
        learning_curve_png(history, 0.91, (0.89, 0.91), threshold=0.88),
        learning_curve_png(history, 0.9, (0.88, 0.91), threshold=0.88),
        learning_curve_png(history, 0.9, (0.89, 0.91), threshold=0.85),
        learning_curve_png(history, 0.9, (0.89, 0.91)),
    ]
    assert all(png != first for png in changed) and len(set(changed)) == len(changed)


# ---------------------------------------------------------------- GitHub Classroom


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_classroom_command_reads_both_result_files(name: str, tmp_path: Path) -> None:
    result = load(name)
    gradescope_file = tmp_path / "results.json"
    write_results_json(result, gradescope_file)
    assert load_any_result(gradescope_file).score == load_any_result(FIXTURES / f"{name}.json").score
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "grader.reports.classroom", str(gradescope_file)],
        capture_output=True, text=True, env=env, check=True, cwd=tmp_path,
    )  # fmt: skip
    runner = json.loads(base64.b64decode(done.stdout))
    direct = json.loads(base64.b64decode(encode_classroom_runner(result)))
    for entry in (*runner["tests"], *direct["tests"]):
        entry.pop("execution_time")  # results.json does not carry check durations
    assert runner == direct
    assert sum(t["score"] for t in runner["tests"]) == pytest.approx(result.score)
    assert classroom_main([]) == 2


def test_classroom_workflow_feeds_the_reporter() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert set(workflow["on"]) >= {"push", "workflow_dispatch"}
    assert workflow["permissions"]["checks"] == "write"
    (job,) = workflow["jobs"].values()
    steps = {step.get("id") or step.get("name"): step for step in job["steps"]}
    grade = steps["grade"]["run"]
    for flag in ("--json results.json", "--junit junit.xml", '--summary "$GITHUB_STEP_SUMMARY"', "--html report.html"):
        assert flag in grade
    assert "python -m grader.reports.classroom results.json" in steps["points"]["run"]
    reporter = steps["Autograding Reporter"]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter@")
    runner = reporter["with"]["runners"]
    assert reporter["env"][f"{runner.upper()}_RESULTS"] == "${{ steps.points.outputs.result }}"
    assert set(steps["Upload the report"]["with"]["path"].split()) == {"report.html", "results.json", "junit.xml"}
