"""A grader fault is never a student's failure: environments broken on purpose.

- the sandbox cannot import numpy (its folder hidden from the sandbox with GRADER_HIDE, as a venv under
  /tmp used to be): `grader check` exits 2 naming the cause, `grader grade` stops before grading and
  writes no score;
- the judge's Keras cannot rebuild models (a Keras release that changed Conv2D's config, simulated):
  the model checks are errors, not the student's mistakes;
- `grader doctor` says ready on this machine, and not ready, with the fix, without the data set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions" / "convolutions"
NUMPY = str(Path(numpy.__file__).resolve().parent)
STUDENT_BLAME = ("raised", "does not define", "returned a model the grader cannot use", "FAIL ")


def run_grader(*args: str, env: dict[str, str] | None = None, script: str | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "grader.cli", *args]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600)


def test_check_says_the_sandbox_cannot_import_numpy(tmp_path: Path) -> None:
    report = tmp_path / "results.json"
    done = run_grader("check", str(SOLUTIONS), "--skip-training", "--json", str(report),
                      env={"GRADER_HIDE": NUMPY})
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "grader error" in done.stderr and "cannot read" in done.stderr and "numpy" in done.stderr
    assert "grader doctor" in done.stderr  # the fix
    assert "No score: the grader itself failed" in done.stdout
    assert "ERROR 1.1 data" in done.stdout
    assert not any(blame in done.stdout for blame in STUDENT_BLAME), done.stdout
    assert not report.exists()  # no score is written for what was never graded


def test_grade_stops_before_grading_a_class_of_zeros(tmp_path: Path) -> None:
    submissions = []
    for name in ("ada", "grace", "alan"):
        shutil.copytree(SOLUTIONS, tmp_path / "class" / name, ignore=shutil.ignore_patterns("__pycache__"))
        submissions.append(str(tmp_path / "class" / name))
    out = tmp_path / "out"
    done = run_grader("grade", *submissions, "--out", str(out), "--skip-training", "-q", env={"GRADER_HIDE": NUMPY})
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "nothing was graded" in done.stderr and "numpy" in done.stderr
    written = sorted(p.name for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert not any(name in ("results.json", "gradebook.csv", "grader-result.json", "report.html")
                   for name in written), written


BROKEN_KERAS = textwrap.dedent("""
    import sys

    import keras

    from grader import cli

    def changed(cls, config):
        raise TypeError("Conv2D.from_config() got an unexpected keyword argument 'kernel_size' (simulated release)")

    keras.layers.Conv2D.from_config = classmethod(changed)
    sys.argv = ["grader", *sys.argv[1:]]
    cli.main()
""")


def test_a_broken_keras_is_the_graders_fault() -> None:
    done = run_grader("check", str(SOLUTIONS), "--skip-training", "-v", script=BROKEN_KERAS)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "the judge's Keras cannot rebuild even a known-good model" in done.stderr
    assert "ERROR 2.3 models" in done.stdout  # build_cnn() returns a Keras model: not graded
    assert "PASS 1.1 data" in done.stdout  # what ran before the fault still counts as run
    assert not any(blame in done.stdout for blame in STUDENT_BLAME), done.stdout


@pytest.mark.parametrize("broken", [False, True], ids=["ready", "no-dataset"])
def test_doctor(tmp_path: Path, broken: bool) -> None:
    env = {"FASHION_MNIST_DIR": str(tmp_path)} if broken else {}
    done = run_grader("doctor", env=env)
    if broken:
        assert done.returncode == 2, done.stdout
        assert "FAIL  dataset" in done.stdout and "dataset-fashion-mnist" in done.stdout
        assert "not ready" in done.stdout
    else:
        assert done.returncode == 0, done.stdout + done.stderr[-2000:]
        assert "OK    isolation" in done.stdout
        assert "ready: reference 102/102" in done.stdout and done.stdout.rstrip().endswith("ready")
