"""A suite's check declarations are validated when the suite is collected: a misspelt `depends` used to
skip its check forever, silently; now the suite does not run and the message names the file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.checks import check
from grader.judge.plugin import GraderPlugin, GradingContext

HEADER = "from grader.checks import check\n\n"
SUITE_INI = Path(__file__).resolve().parents[1] / "grader" / "suites" / "convolutions" / "pytest.ini"


def run_suite(folder: Path, body: str) -> tuple[int, str, GraderPlugin]:
    # a module name of its own: pytest's importlib mode keeps the first "test_toy" it imported
    (folder / f"test_toy_{folder.name}.py").write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    (folder / "pytest.ini").write_text(SUITE_INI.read_text(encoding="utf-8"), encoding="utf-8")
    plugin = GraderPlugin(GradingContext(student=None, run_hidden=False))
    code = pytest.main([str(folder), "-c", str(folder / "pytest.ini"), "-q", "-p", "no:cacheprovider",
                        "-p", "no:xdist", "-s", "--rootdir", str(folder), "--import-mode=importlib"], plugins=[plugin])
    return int(code), "", plugin


@pytest.mark.parametrize(("body", "problem"), [
    ('''
     @check(points=1, exercise="toy")
     def check_first():
         """the first check"""

     @check(points=1, exercise="toy", depends=("check_frist",))
     def check_second():
         """the second check"""
     ''', "depends on 'check_frist', which is no check of this suite"),
    ('''
     @check(points=1, exercise="toy", hidden=True)
     def check_secret():
         """a hidden check"""

     @check(points=1, exercise="toy", depends=("check_secret",))
     def check_public():
         """a public check"""
     ''', "public check check_public depends on hidden check 'check_secret'"),
], ids=["misspelt", "public-on-hidden"])
def test_inconsistent_declarations_stop_the_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str,
                                                  problem: str) -> None:
    code, _, plugin = run_suite(tmp_path, body)
    err = capsys.readouterr().err
    assert code == pytest.ExitCode.USAGE_ERROR
    assert problem in err and f"{tmp_path / ('test_toy_' + tmp_path.name + '.py')}:" in err, err
    assert not [r for r in plugin.results.values() if r.status == "passed"]  # nothing graded


def test_consistent_declarations_run(tmp_path: Path) -> None:
    code, _, plugin = run_suite(tmp_path, '''
     @check(points=1, exercise="toy")
     def check_first():
         """the first check"""

     @check(points=2, exercise="toy", depends=("check_first",))
     def check_second():
         """the second check"""
     ''')
    assert code == pytest.ExitCode.OK
    assert sorted((r.name, r.status) for r in plugin.results.values()) == [
        ("the first check", "passed"), ("the second check", "passed")]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"points": 0}, "is worth 0 points; give a positive number"),
    ({"points": 1, "depends": "check_first"}, "give a tuple of check names"),
])
def test_bad_declarations_fail_at_import(kwargs: dict[str, object], message: str) -> None:
    def check_thing() -> None:
        """a check"""

    with pytest.raises((TypeError, ValueError), match=message) as raised:
        check(exercise="toy", **kwargs)(check_thing)  # type: ignore[arg-type]
    assert "test_check_declarations.py:" in str(raised.value)
