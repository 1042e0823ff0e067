"""--submission-timeout: a correct but slow submission is cut off at its budget, keeps what was graded
(status partial, the reason named), and the batch goes on to the next submission."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from grader.batch.common import RECORD
from grader.results import load_result

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions" / "convolutions"
BUDGET = 45


def slow_copy(target: Path) -> Path:
    """The reference, correct, but each call of prepare_images and of the model builders sleeps 4 s."""
    shutil.copytree(SOLUTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    slow_lines = (("data.py", "    scaled = np.asarray(images)"), ("models.py", "    model = keras.Sequential("))
    for module, line in slow_lines:
        path = target / module
        source = path.read_text(encoding="utf-8")
        assert source.count(line) >= 1, f"the solution changed: update this test ({module}: {line!r})"
        path.write_text(source.replace(line, "    __import__('time').sleep(4)\n" + line), encoding="utf-8")
    return target


def test_a_slow_submission_is_cut_off_and_the_batch_goes_on(tmp_path: Path) -> None:
    slow = slow_copy(tmp_path / "class" / "slow")
    reference = tmp_path / "class" / "reference"
    shutil.copytree(SOLUTIONS, reference, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "grader.cli", "grade", str(slow), str(reference), "--out", str(out),
         "--skip-training", "--submission-timeout", str(BUDGET), "-q"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cut = load_result(out / "slow" / RECORD)
    assert cut.status == "partial" and "time budget of 45 s" in cut.messages[0]
    assert cut.execution_time <= BUDGET + 60, cut.execution_time  # done within a minute of the budget
    graded = [c for c in cut.checks if c.status == "passed"]
    skipped = [c for c in cut.checks if c.output.startswith("not graded: the submission used up its time budget")]
    assert graded and skipped and len(graded) + len(skipped) == len(cut.checks)  # kept what was graded
    assert (out / "slow" / "results.json").is_file()  # a partial grade is still a grade
    full = load_result(out / "reference" / RECORD)
    assert full.status == "graded" and full.score == full.max_score > 0
