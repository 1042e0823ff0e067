"""The student bundle: public checks only, no solutions, and it installs and runs on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.authoring.bundle import strip_hidden_checks, write_bundle
from grader.authoring.catalog import entries
from grader.authoring.release import solution_block_texts
from grader.suites.convolutions import ASSIGNMENT as CONVOLUTIONS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(ROOT, tmp_path_factory.mktemp("bundle") / "student", CONVOLUTIONS)


def _texts(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())


def _solution_runs(length: int = 3) -> list[str]:
    """Every run of `length` consecutive code lines inside the solutions' marked blocks."""
    runs = []
    for module in sorted((ROOT / "solutions" / "convolutions").glob("*.py")):
        inside, lines = False, []
        for raw in module.read_text(encoding="utf-8").splitlines():
            text = raw.strip()
            if text.startswith("# BEGIN SOLUTION"):
                inside, lines = True, []
            elif text.startswith("# END SOLUTION"):
                runs += ["\n".join(lines[i : i + length]) for i in range(len(lines) - length + 1)]
                inside = False
            elif inside and text and not text.startswith("#"):
                lines.append(text)
    return runs


def _stripped_lines(folder: Path) -> str:
    return "\n".join(line.strip() for line in _texts(folder).splitlines() if line.strip())


def test_bundle_has_no_solution_code(bundle: Path) -> None:
    assert not list(bundle.rglob("solutions"))
    # What students edit holds no line of a solution block (as the release tests check for the stubs) ...
    assignment = _texts(bundle / "assignment")
    lines = solution_block_texts(ROOT, CONVOLUTIONS)
    assert lines and not [line for line in lines if line in assignment]
    # ... and nothing in the bundle holds three solution lines in a row (generic single lines such as
    # optimizer="adam", also appear in the grader's own code and hints).
    runs = _solution_runs()
    everything = _stripped_lines(bundle)
    assert runs and not [run for run in runs if run in everything]


def test_bundle_has_no_hidden_checks(bundle: Path) -> None:
    hidden = [e.spec for e in entries(CONVOLUTIONS) if e.spec.hidden]
    assert hidden, "the suites should have hidden checks"
    everything = _texts(bundle)
    for spec in hidden:
        assert spec.name not in everything and spec.title not in everything
    public = [e.spec for e in entries(CONVOLUTIONS) if not e.spec.hidden]
    assert all(spec.name in everything for spec in public)


source_lines = st.sampled_from(["x = 1", "def f():\n    return 2", "@check(points=1, exercise='data')\n"
                                "def check_a(student):\n    '''a'''\n    pass",
                                "@check(points=1, exercise='data', hidden=True)\ndef check_b(student):\n"
                                "    '''b'''\n    return 3"])


@given(st.lists(source_lines, max_size=8))
def test_stripping_removes_exactly_the_hidden_functions(parts: list[str]) -> None:
    source = "\n\n".join(parts) + "\n"
    stripped = strip_hidden_checks(source, {"check_b"})  # the names pytest collected as hidden
    assert "check_b" not in stripped
    assert stripped.count("check_a") == source.count("check_a")
    assert stripped.count("x = 1") == source.count("x = 1")


@pytest.fixture(scope="module")
def installed(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The bundle pip-installed into a fresh virtual environment: (its folder, the environment to run it in)."""
    env_dir = tmp_path_factory.mktemp("venv") / "venv"
    # System site packages give the venv TensorFlow without a download; the bundle's grader shadows ours.
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              str(bundle)], capture_output=True, text=True, env=env, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    return env_dir, env


def test_bundle_installs_in_a_fresh_venv_and_checks_the_stubs(bundle: Path, installed: tuple[Path, dict[str, str]],
                                                              tmp_path: Path) -> None:
    env_dir, env = installed
    python = env_dir / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import grader; print(grader.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=env)
    assert str(env_dir) in where.stdout, where.stdout + where.stderr
    out = tmp_path / "results.json"
    check = subprocess.run([str(env_dir / "bin" / "grader"), "check", str(bundle / "assignment"), "--skip-training",
                            "--json", str(out)], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["score"] == 0 and data["tests"]
    assert all(t["visibility"] == "visible" for t in data["tests"])
    listing = subprocess.run([str(env_dir / "bin" / "grader"), "list"], capture_output=True, text=True, env=env)
    assert "hidden" not in listing.stdout and "models.py" in listing.stdout
    assert sys.executable != str(python)


# The bundle's notebook as a student runs it: its `data` exercise cell (the stub), then its check cell.
_IN_IPYTHON = """
import json, sys
import nbformat
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
cells = nbformat.read(sys.argv[1], as_version=4).cells
for cell in cells:
    tags = cell.metadata.get("tags", [])
    if "exercise:data" in tags or (cell.source.startswith("grader.check(\\"data") and "check" in tags):
        source = ("import grader\\n" if "check" in tags else "") + cell.source
        assert shell.run_cell(source, store_history=True).success
report = shell.user_ns["_"]
print(json.dumps({"score": report.score, "max": report.max_score, "grader": sys.modules["grader"].__file__,
                  "feedback": report.checks[0].output}))
"""


def test_the_bundles_notebook_checks_its_exercise_with_the_installed_grader(
        bundle: Path, installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    env_dir, env = installed
    env = {**env, "IPYTHONDIR": str(tmp_path / "ipython")}
    done = subprocess.run([str(env_dir / "bin" / "python"), "-c", _IN_IPYTHON,
                           str(bundle / "assignment" / "convolutions.ipynb")],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert str(env_dir) in answer["grader"]
    assert answer["score"] == 0 and answer["max"] > 0
    assert "NotImplementedError" in answer["feedback"]  # the stub's own hint reaches the student
