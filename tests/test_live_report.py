"""What grader.check() shows: the HTML table a notebook displays (escaped, each failure's expected / got / hint
and layer table), drawn by headless Chromium, and the plain text shown elsewhere.

The fixture is a real result: grader.check("models") of a kernel whose build_dnn has 64 hidden units."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grader.notebook_check import CheckReport
from grader.results import load_result

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "live_models_one_failure.json"
DOCS_SHOT = Path(__file__).resolve().parent.parent / "docs" / "notebook-check.png"
WINDOW = (1000, 900)


@pytest.fixture
def report() -> CheckReport:
    return CheckReport(load_result(FIXTURE), "models")


def test_the_html_has_a_row_per_check_and_the_failure_split_into_its_fields(report: CheckReport) -> None:
    page = report._repr_html_()
    rows = re.findall(r'<tr class="(passed|failed)" data-id="([^"]+)"', page)
    assert len(rows) == len(report.checks) == 11
    assert [r[1] for r in rows if r[0] == "failed"] == ["models::check_dnn_layers"]
    feedback = page.split('<tr class="feedback">', 1)[1]
    assert "<div>build_dnn() does not have the expected layers: layer 2: expected Dense(128, relu)" in feedback
    assert "<dt>hint</dt><dd><pre>keras.Sequential([keras.Input((28, 28, 1)), Flatten()" in feedback
    table = re.search(r'<pre class="details">(.*?)</pre>', feedback, re.S)
    assert table is not None and "&gt;&gt; layer 2: expected Dense(128, relu)" in table.group(1)
    assert "hint:" not in table.group(1)  # the hint is its own field, not repeated in the table
    assert feedback.index('<pre class="details">') < feedback.index("<dt>hint</dt>")
    assert 'data-score="18" data-max="21">18 / 21 points</b> · 1 of 11 checks failed' in page


def test_everything_from_the_submission_is_escaped(report: CheckReport) -> None:
    check = report.result.checks[1]
    hostile = "<script>alert(1)</script>"
    bad = replace(check, name=hostile, output=f"{hostile}\n  expected: <b>\n  got: &amp;", expected="<b>",
                  got="&amp;", hint=None)
    result = replace(report.result, checks=[bad], messages=[hostile])
    page = CheckReport(result, "models")._repr_html_()
    assert "<script>alert" not in page and "<b>\n" not in page
    assert page.count(html.escape(hostile)) == 3  # the name, the message above the table, the feedback
    assert "<dt>got</dt><dd><pre>&amp;amp;</pre></dd>" in page


def test_the_plain_text_names_the_call_the_total_and_the_failure(report: CheckReport) -> None:
    text = str(report)
    assert text.startswith('grader.check("models")\n')
    assert "Total: 18 / 21" in text
    assert "FAIL 2.2 models: build_dnn() is Flatten" in text
    assert repr(report) == text
    assert (report.score, report.max_score) == (18, 21)
    assert [c.id for c in report.failed] == ["models::check_dnn_layers"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed (Debian/Ubuntu: `apt-get install -y chromium`); it draws the check's "
                "HTML in this test")


def _chromium_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--force-device-scale-factor=1", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
               f"--window-size={WINDOW[0]},{WINDOW[1]}", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def render_page(report: CheckReport, path: Path) -> Path:
    """The check's HTML as a notebook shows it: a cell's output area, on a white page."""
    path.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:12px">'
                    f'<div style="font: 13px monospace; color: #555">In [9]: {html.escape(report.call)}</div>'
                    f"{report._repr_html_()}</body></html>", encoding="utf-8")
    return path


def test_chromium_draws_the_table_and_the_failure(report: CheckReport, tmp_path: Path) -> None:
    page = render_page(report, tmp_path / "check.html")
    dom = _chromium_run(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert dom.count('<tr class="passed"') == 10 and dom.count('<tr class="failed"') == 1
    assert "found    Dense(64, relu) -&gt; 64, 50,240 params" in dom
    shot = tmp_path / "check.png"
    _chromium_run(tmp_path, f"--screenshot={shot}", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])

    def rows_with(colour: tuple[int, int, int], tolerance: int) -> np.ndarray:
        near = (np.abs(pixels - np.array(colour)).sum(axis=2) <= tolerance).any(axis=1)
        return np.nonzero(near)[0]

    red, green = rows_with((0xC6, 0x28, 0x28), 60), rows_with((0x1A, 0x7F, 0x37), 60)
    pink = rows_with((0xFF, 0xF6, 0xF6), 3)  # the feedback row's background
    assert len(green) > 0 and len(red) > 0, "the passed and failed marks are not drawn"
    assert len(pink) > 100, "the failure's feedback row (its layer table) is not drawn"
    assert red.min() < pink.min(), "the failed check's row comes before its feedback"
    if os.environ.get("GRADER_UPDATE_DOCS_SCREENSHOT"):  # refresh docs/notebook-check.png from this drawing
        drawn = np.nonzero((pixels < 250).any(axis=2))
        bottom, right = int(drawn[0].max()) + 12, int(drawn[1].max()) + 12
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        Image.open(shot).convert("RGB").crop((0, 0, right, bottom)).save(DOCS_SHOT, optimize=True)


def test_a_judge_that_dies_is_a_grader_fault_with_its_log_not_a_score(tmp_path: Path) -> None:
    from grader.notebook_check import GraderFault, JudgeProcess

    judge = JudgeProcess()
    judge.command = (sys.executable, "-c", "import sys; sys.stdin.readline(); print('killed by OOM', file=sys.stderr)"
                     "; sys.exit(3)")
    try:
        with pytest.raises(GraderFault, match=r"(?s)stopped \(exit code 3\) before it answered\. This is not a "
                                              r"mistake in your code.*killed by OOM"):
            judge.request({"notebook": str(tmp_path / "x.ipynb")}, lambda epoch, epochs: None)
        assert not judge.running
    finally:
        judge.close()


def test_a_grader_error_in_the_answer_is_a_grader_fault_and_unusable_input_a_message() -> None:
    from grader.notebook_check import GraderFault, _report

    with pytest.raises(GraderFault, match="not a mistake in your code"):
        _report({"error": "Traceback ... RuntimeError: the grader's suites could not run"}, "models", [])
    report = _report({"unusable": "notebook.ipynb is larger than 50 MiB"}, None, [])
    assert report.result.status == "error" and report.messages == ["notebook.ipynb is larger than 50 MiB"]
    assert "notebook.ipynb is larger than 50 MiB" in report._repr_html_()
