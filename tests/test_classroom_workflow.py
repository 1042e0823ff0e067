"""classroom/github-classroom.yml, run: its `run:` steps in order, as GitHub's runner would (bash -e, the
workflow's env, $GITHUB_STEP_SUMMARY and $GITHUB_OUTPUT, `if:` and `continue-on-error`), in a fresh venv,
over a student repository made from the stubs with the reference solution filled in. The grader comes from
a wheel of this checkout instead of the pinned URL; `uses:` steps are the runner's own (checkout: the
repository is the working folder; setup-python: the venv) and are not run. actionlint checks the file in CI
(scripts/actionlint); a test here sees it fail on a broken copy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from junitparser import JUnitXml

from grader.platforms._package import build_wheel

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "classroom" / "github-classroom.yml"
_EXPRESSION = re.compile(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}")


class Run:
    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.outputs: dict[str, dict[str, str]] = {}
        self.logs: dict[str, str] = {}
        self.skipped: list[str] = []


def _condition(expression: str | None, run: Run, failed: bool) -> bool:
    """The `if:` forms this workflow uses: none (success()), always(), and a step's outcome."""
    if expression is None:
        return not failed
    text = expression.strip()
    if text == "always()":
        return True
    match = re.fullmatch(r"always\(\) && steps\.([\w-]+)\.outcome == '(\w+)'", text)
    if match:
        return run.outcomes.get(match.group(1)) == match.group(2)
    raise AssertionError(f"the emulation does not know this condition: {text!r}")


def run_workflow(repo: Path, env: dict[str, str], tmp: Path) -> Run:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    summary = tmp / "step_summary.md"
    summary.touch()
    base = {**env, **{k: str(v) for k, v in workflow.get("env", {}).items()}, "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_WORKSPACE": str(repo), "CI": "true"}
    run, failed = Run(), False
    for index, step in enumerate(job["steps"]):
        key = step.get("id") or step.get("name") or f"step{index}"
        if not _condition(step.get("if"), run, failed):
            run.skipped.append(key)
            continue
        if "uses" in step:
            run.skipped.append(key)
            continue
        output = tmp / f"output-{index}"
        output.touch()
        step_env = {k: _EXPRESSION.sub(lambda m: run.outputs.get(m.group(1), {}).get(m.group(2), ""), str(v))
                    for k, v in step.get("env", {}).items()}
        script = tmp / f"step-{index}.sh"
        assert "${{" not in step["run"], "expressions in run: scripts are not emulated"
        script.write_text(step["run"], encoding="utf-8")
        overrides = {k: v for k, v in env.items() if k.startswith("CONVGRADER")}  # the test's own choices
        done = subprocess.run(["bash", "-e", str(script)], cwd=repo, capture_output=True, text=True, timeout=900,
                              env={**base, **step_env, **overrides, "GITHUB_OUTPUT": str(output)})
        run.logs[key] = done.stdout + done.stderr
        run.outcomes[key] = "success" if done.returncode == 0 else "failure"
        run.outputs[key] = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        if done.returncode != 0 and not step.get("continue-on-error", False):
            failed = True
    run.logs["summary"] = summary.read_text(encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def runner_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh venv (reusing what is installed here, as the runner's pip cache would) and the checkout's wheel."""
    base = tmp_path_factory.mktemp("runner")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    wheel = build_wheel(ROOT, base / "dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["CONVGRADER"] = str(wheel)
    env["CONVGRADER_OPTIONS"] = "--skip-training"
    return env


def _student_repo(target: Path, stubs: Path, solutions: Path) -> Path:
    shutil.copytree(stubs, target, ignore=shutil.ignore_patterns("__pycache__"))
    for module in solutions.glob("*.py"):
        shutil.copy2(module, target / module.name)
    (target / ".github" / "workflows").mkdir(parents=True)
    shutil.copy2(WORKFLOW, target / ".github" / "workflows" / "classroom.yml")
    return target


def test_the_workflow_grades_a_student_repository(runner_env: dict[str, str], tmp_path: Path, stubs_dir: Path,
                                                  solutions_dir: Path) -> None:
    repo = _student_repo(tmp_path / "repo", stubs_dir, solutions_dir)
    run = run_workflow(repo, {**runner_env, "CONVGRADER_MIN_SCORE": "100"}, tmp_path)
    assert run.outcomes == {"Install the grader": "success", "grade": "success", "points": "success"}, run.logs
    where = subprocess.run(["python", "-c", "import grader; print(grader.__file__)"], env=runner_env,
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(runner_env["PATH"].split(os.pathsep)[0].removesuffix("/bin"))  # the wheel, in the venv
    total = re.search(r"\*\*Total \([^)]*\): (\d+) / (\d+)\*\*", run.logs["summary"])
    assert total and total.group(1) == total.group(2), run.logs["summary"]
    suites = JUnitXml.fromfile(str(repo / "junit.xml"))
    assert sum(suite.tests for suite in suites) > 0 and sum(suite.failures for suite in suites) == 0
    assert (repo / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert run.outputs["points"]["result"]
    assert run.skipped == ["Check out the submission", "Set up Python", "Cache Fashion-MNIST",
                           "Upload the report", "Autograding Reporter"]


def test_the_grade_step_fails_below_the_minimum_score(runner_env: dict[str, str], tmp_path: Path, stubs_dir: Path,
                                                      solutions_dir: Path, apply_variant: Any) -> None:
    repo = _student_repo(tmp_path / "repo", stubs_dir, solutions_dir)
    apply_variant("flipped_kernel", repo)
    run = run_workflow(repo, {**runner_env, "CONVGRADER_MIN_SCORE": "1000"}, tmp_path)
    assert run.outcomes["grade"] == "failure", run.logs
    assert "is below the minimum 1000" in run.logs["grade"]
    assert run.outcomes["points"] == "success"  # the reports and the points still come out
    assert (repo / "junit.xml").is_file() and (repo / "report.html").is_file() and run.logs["summary"]


def test_actionlint_accepts_the_workflow_and_rejects_a_broken_copy(tmp_path: Path) -> None:
    lint = ROOT / "scripts" / "actionlint"
    assert subprocess.run([str(lint), str(WORKFLOW)], capture_output=True, text=True).returncode == 0
    broken = tmp_path / "classroom.yml"
    broken.write_text(WORKFLOW.read_text().replace("steps.points.outputs.result", "steps.pointz.outputs.result"))
    done = subprocess.run([str(lint), str(broken)], capture_output=True, text=True)
    assert done.returncode == 1 and 'property "pointz" is not defined' in done.stdout
