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


def test_the_judges_own_training_stops_at_the_budget(tmp_path: Path) -> None:
    """Training the gates' models is the judge's work for the submission: a budget that runs out while the judge
    trains (its background job, or a fit in the grading's own process) stops that too, and the grading ends
    within seconds of the budget instead of after minutes of training. Nothing half-trained is stored."""
    import time

    from grader.judge.grading import GradeOptions, grade

    budget = 40
    started = time.perf_counter()
    result = grade(SOLUTIONS, GradeOptions(skip_training=False, exercises=("models",), cache_dir=tmp_path / "cache",
                                           submission_timeout=budget))
    elapsed = time.perf_counter() - started
    assert result.status == "partial", result.messages
    gates = [c for c in result.checks if "accuracy" in c.tags]
    assert gates and all(c.output.startswith("not graded: the submission used up its time budget") for c in gates)
    assert all(c.status == "passed" for c in result.checks if "accuracy" not in c.tags)
    assert elapsed <= budget + 25, elapsed  # the dense model alone trains for a minute or more here
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_a_stop_ends_the_judges_fit_at_its_next_batch(tmp_path: Path) -> None:
    """The fence itself, on a small subset (so it is quick): `stop` is asked after each batch; its reason ends
    the fit with TrainingStopped, and no entry is written."""
    import pytest

    from grader.suites.convolutions import reference as ref
    from grader.training.cache import Recipe, TrainingCache
    from grader.training.fit import TrainingStopped
    from grader.training.trainer import train

    model = ref.reference_cnn((4,))
    asked: list[int] = []

    def stop() -> str:
        asked.append(1)
        return "out of time" if len(asked) > 5 else ""

    compile_config = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    with pytest.raises(TrainingStopped, match="out of time"):
        train(model.to_json(), compile_config, Recipe(epochs=1, train_subset=3200, test_subset=100),
              cache=TrainingCache(tmp_path), stop=stop)
    assert len(asked) == 6  # before the fit, then after each of five batches
    assert not list(tmp_path.rglob("*.json"))
