"""The command line: through click's CliRunner, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main

QUICK = ["--skip-training"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_check_reference_quick_writes_reports(runner: CliRunner, solutions_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    junit, summary, html = tmp_path / "junit.xml", tmp_path / "summary.md", tmp_path / "report.html"
    result = runner.invoke(main, ["check", str(solutions_dir), *QUICK, "--json", str(out), "--junit", str(junit),
                                  "--summary", str(summary), "--html", str(html), "--min-score", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["score"] == sum(t["max_score"] for t in data["tests"]) > 0
    assert all(t["visibility"] == "visible" for t in data["tests"])  # students never run hidden checks
    assert junit.read_text().startswith("<?xml") and "<testsuite" in junit.read_text()
    assert "models" in summary.read_text() and "<html" in html.read_text().lower()


def test_check_below_min_score_exits_1(runner: CliRunner, stubs_dir: Path) -> None:
    result = runner.invoke(main, ["check", str(stubs_dir), *QUICK, "--min-score", "1", "-q"])
    assert result.exit_code == 1, result.output
    assert "below the minimum" in result.output


@pytest.mark.parametrize("make", ["text_file", "empty_zip", "empty_folder"])
def test_unusable_input_exits_2_with_a_message(runner: CliRunner, tmp_path: Path, make: str) -> None:
    if make == "text_file":
        path = tmp_path / "notes.txt"
        path.write_text("hello")
    elif make == "empty_zip":
        path = tmp_path / "empty.zip"
        with zipfile.ZipFile(path, "w"):
            pass
    else:
        path = tmp_path / "nothing"
        path.mkdir()
    result = runner.invoke(main, ["check", str(path), *QUICK])
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and len(result.output.strip()) > 20


@pytest.mark.parametrize("args, message", [
    (["--timeout", "0"], "timeout"),
    (["--memory", "lots"], "Received: 'lots'"),
    (["--memory", "100M"], "at least 512M"),
])
def test_bad_limits_are_explained(runner: CliRunner, solutions_dir: Path, args: list[str], message: str) -> None:
    result = runner.invoke(main, ["check", str(solutions_dir), *QUICK, *args])
    assert result.exit_code == 2
    assert message in result.output


def test_list_shows_points_and_hidden_checks(runner: CliRunner) -> None:
    everything = runner.invoke(main, ["list"])
    public = runner.invoke(main, ["list", "--no-hidden"])
    assert everything.exit_code == public.exit_code == 0
    assert "hidden" in everything.output and "hidden" not in public.output
    for module in ("data", "models", "callbacks", "training", "convolution", "visualize", "experiments"):
        assert f"{module}.py" in everything.output


def test_release_check_passes_on_the_repository(runner: CliRunner) -> None:
    root = Path(__file__).resolve().parent.parent
    result = runner.invoke(main, ["release", "--check", "--root", str(root)])
    assert result.exit_code == 0, result.output


def test_real_subprocess_grades_a_batch(tmp_path: Path, solutions_dir: Path, stubs_dir: Path) -> None:
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run(
        [sys.executable, "-m", "grader.cli", "grade", str(solutions_dir), str(stubs_dir), "--out", str(out),
         "--skip-training", "-q"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    reference = json.loads((out / "convolutions" / "results.json").read_text())
    assert reference["score"] == sum(t["max_score"] for t in reference["tests"]) > 0
    assert any(t["visibility"] == "hidden" for t in reference["tests"])
    assert (out / "gradebook.csv").is_file() and (out / "junit.xml").is_file()
    assert "convolutions" in completed.stdout
