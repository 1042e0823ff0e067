"""A second assignment, declared outside the grader (tests/fixtures/assignments/greetings: two modules, four
checks, no model, no data set), goes through the same core as the lab: `grader list`, `release` and
`release --check`, `check` and `grade`. The core names no lab, so nothing here is special-cased."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.assignment import UnknownAssignment, installed, load
from grader.authoring.bundle import strip_hidden_checks
from grader.authoring.catalog import entries
from grader.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ASSIGNMENTS = FIXTURES / "assignments"
SOLUTION_TEXT = {p.name: p.read_text() for p in (FIXTURES / "toy_repo" / "solutions" / "greetings").glob("*.py")}

pytestmark = pytest.mark.xdist_group("toy")


@pytest.fixture(autouse=True)
def toy_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_ASSIGNMENTS", str(ASSIGNMENTS))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the toy's checkout: solutions/greetings only (release writes assignments/greetings)."""
    return Path(shutil.copytree(FIXTURES / "toy_repo", tmp_path / "repo"))


def test_the_toy_is_installed_beside_the_lab_and_must_then_be_named() -> None:
    assert {"convolutions", "greetings"} <= set(installed())
    toy = load("greetings")
    assert toy.modules == ("hello", "arith") and toy.dataset is None and toy.input_shape is None
    with pytest.raises(UnknownAssignment, match="name one with --assignment NAME"):
        load()
    with pytest.raises(UnknownAssignment, match=r"Received: 'greeting', expected one of .*greetings"):
        load("greeting")


def test_the_toy_is_gone_once_the_variable_no_longer_lists_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """grader.suites keeps the folder on its path once it was listed; what is installed follows the variable."""
    assert "greetings" in installed()
    monkeypatch.delenv("GRADER_ASSIGNMENTS")
    assert "greetings" not in installed() and load().name == "convolutions"


def test_without_a_name_the_cli_says_which_assignments_there_are() -> None:
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 2 and "name one with --assignment NAME" in result.output, result.output
    assert "convolutions" in result.output and "greetings" in result.output


def test_list_comes_from_pytest_collection() -> None:
    result = CliRunner().invoke(main, ["list", "--assignment", "greetings"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "assignment: greetings"
    assert "hello.py  (3 points)" in lines and "arith.py  (5 points)" in lines  # 1 x2 cases + 3 hidden
    assert any("x2" in line and "add(a, b) returns a + b" in line for line in lines)
    assert any("[hidden]" in line and "beyond 64 bits" in line for line in lines)
    assert lines[-1] == "total: 8 points"
    public = CliRunner().invoke(main, ["list", "--assignment", "greetings", "--no-hidden"])
    assert public.output.splitlines()[-1] == "total: 5 points (public checks)"


def test_the_bundle_strips_a_hidden_check_however_it_was_declared() -> None:
    hidden = {e.spec.name for e in entries(load("greetings")) if e.spec.hidden}
    assert hidden == {"check_adds_large_numbers"}  # declared as **SECRET, never `hidden=True` literally
    source = (ASSIGNMENTS / "greetings" / "test_arith.py").read_text()
    stripped = strip_hidden_checks(source, hidden)
    assert "check_adds_large_numbers" not in stripped and "def check_adds(" in stripped


def test_release_writes_the_stubs_and_notebook_and_then_checks_clean(repo: Path) -> None:
    runner = CliRunner()
    stale = runner.invoke(main, ["release", "--check", "--root", str(repo), "--assignment", "greetings"])
    assert stale.exit_code == 1 and "assignments/greetings/hello.py" in stale.output
    written = runner.invoke(main, ["release", "--root", str(repo), "--assignment", "greetings"])
    assert written.exit_code == 0, written.output
    folder = repo / "assignments" / "greetings"
    assert sorted(p.name for p in folder.iterdir()) == ["arith.py", "greetings.ipynb", "hello.py"]
    stub = (folder / "hello.py").read_text()
    assert "raise NotImplementedError" in stub and "Hello, <name>!" in stub  # the hint, not the solution
    assert 'return f"Hello, {name}!"' not in stub
    cells = json.loads((folder / "greetings.ipynb").read_text())["cells"]
    checks = ["".join(c["source"]) for c in cells if "check" in c["metadata"].get("tags", [])]
    assert checks == ['grader.check("hello")', 'grader.check("arith")', "grader.check()"]
    clean = runner.invoke(main, ["release", "--check", "--root", str(repo), "--assignment", "greetings"])
    assert clean.exit_code == 0 and "up to date" in clean.output


def test_check_gives_the_solution_every_public_point(repo: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(repo / "solutions" / "greetings"), "--assignment", "greetings",
                                       "--isolation", "none"])
    assert result.exit_code == 0, result.output
    assert "Total: 5 / 5" in result.output and "beyond 64 bits" not in result.output  # hidden: not run


def test_check_shows_a_buggy_submission_what_it_got_wrong() -> None:
    result = CliRunner().invoke(main, ["check", str(FIXTURES / "toy_buggy"), "--assignment", "greetings",
                                       "--isolation", "none"])
    assert result.exit_code == 0, result.output
    assert "Total: 2 / 5" in result.output, result.output  # greet fails, and greet-anyone is skipped after it
    assert "Hello, Ada!" in result.output and "'Hello, Ada'" in result.output


def test_grade_runs_the_hidden_checks_and_writes_the_toys_gradebook(repo: Path, tmp_path: Path) -> None:
    """The real command, as a TA runs it, in a subprocess (its worker processes find the toy through the
    environment too)."""
    out = tmp_path / "out"
    buggy = Path(shutil.copytree(FIXTURES / "toy_buggy", tmp_path / "buggy"))
    done = subprocess.run(
        [sys.executable, "-m", "grader.cli", "grade", str(repo / "solutions" / "greetings"), str(buggy),
         "--out", str(out), "--assignment", "greetings", "--isolation", "none", "-q"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert list(rows["greetings"]) == ["id", "status", "total", "max", "hello", "arith", "seconds"]
    assert (rows["greetings"]["total"], rows["greetings"]["max"]) == ("8", "8")
    assert (rows["buggy"]["total"], rows["buggy"]["hello"], rows["buggy"]["arith"]) == ("2", "0", "2")
    record = json.loads((out / "buggy" / "grader-result.json").read_text())
    assert record["assignment"] == "greetings" and record["status"] == "graded"
    large = next(c for c in record["checks"] if c["id"] == "arith::check_adds_large_numbers")
    assert large["status"] == "failed" and "OverflowError" in large["output"]
