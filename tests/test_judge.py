"""The judge end to end on the quick profile: the reference, the stubs, a notebook, and buggy variants."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from grader.judge.grading import GradeOptions, grade
from grader.results import SubmissionResult
from grader.sandbox.client import discard_spares, keep_spare_sandbox
from grader.suites.convolutions import ASSIGNMENT as CONVOLUTIONS

EXERCISES = CONVOLUTIONS.modules

BUGGY = Path(__file__).parent / "fixtures" / "buggy"
QUICK = GradeOptions(skip_training=True, run_hidden=True)


def _summary(result: SubmissionResult) -> dict[str, tuple[float, float]]:
    return result.by_exercise(include_hidden=True)


@pytest.fixture(scope="module")
def reference_result(solutions_dir: Path) -> SubmissionResult:
    return grade(solutions_dir, QUICK)


def test_reference_scores_full_marks(reference_result: SubmissionResult) -> None:
    failed = [f"{c.id}: {c.output}" for c in reference_result.checks if c.status != "passed"]
    assert not failed, "\n".join(failed)
    assert reference_result.score == reference_result.max_score > 0
    assert set(_summary(reference_result)) == set(EXERCISES)
    assert any(c.hidden for c in reference_result.checks)
    assert not any("accuracy" in c.tags for c in reference_result.checks)  # --skip-training leaves the gates out


def test_student_mode_leaves_hidden_checks_out(solutions_dir: Path, reference_result: SubmissionResult) -> None:
    public = grade(solutions_dir, GradeOptions(skip_training=True))
    assert public.checks and not any(c.hidden for c in public.checks)
    assert {c.id for c in public.checks} == {c.id for c in reference_result.checks if not c.hidden}


def test_stubs_score_zero_with_a_message_on_every_check(stubs_dir: Path) -> None:
    result = grade(stubs_dir, QUICK)
    assert result.checks
    assert result.score == 0
    for check in result.checks:
        assert check.status == "failed"
        assert check.output and check.output != "not run", check.id
        assert "internal error" not in check.output, check.output


def _notebook_from(solutions: Path, target: Path) -> Path:
    """The reference solution as a student's lab notebook: noise cells around one cell per module."""
    cells = [
        nbformat.v4.new_markdown_cell("# Improving Computer Vision Accuracy using Convolutions"),
        nbformat.v4.new_code_cell("!pip install -q tensorflow\n%matplotlib inline"),
        nbformat.v4.new_code_cell(
            "import tensorflow as tf\n# Daten laden / charger les données\n"
            "fmnist = tf.keras.datasets.fashion_mnist\n"
            "(training_images, training_labels), (test_images, test_labels) = fmnist.load_data()"
        ),
    ]
    for module in ("data", "models", "callbacks", "training", "convolution", "visualize", "experiments"):
        source = (solutions / f"{module}.py").read_text(encoding="utf-8")
        cells.append(nbformat.v4.new_code_cell(source))
        if module == "models":
            cells.append(nbformat.v4.new_code_cell(
                "model = compile_model(build_cnn())\nmodel.summary()\n"
                "model.fit(training_images, training_labels, epochs=5)"
            ))
    cells.append(nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\nplt.imshow(test_images[0])\nprint('done')"
    ))
    notebook = nbformat.v4.new_notebook(cells=cells)
    path = target / "lab.ipynb"
    nbformat.write(notebook, str(path))
    return path


def test_notebook_scores_like_the_folder(tmp_path: Path, solutions_dir: Path,
                                         reference_result: SubmissionResult) -> None:
    result = grade(_notebook_from(solutions_dir, tmp_path), QUICK)
    assert result.extra["kind"] == "notebook"
    assert [(c.id, c.status, c.score) for c in result.checks] == [
        (c.id, c.status, c.score) for c in reference_result.checks
    ]


def _variants() -> list[str]:
    return sorted(p.stem for p in BUGGY.glob("*.json"))


def _imports(source: str) -> set[str]:
    tree = ast.parse(source)
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    return names | {node.module.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level}


def exercises_that_see(module: str, solutions: Path) -> set[str]:
    """The exercise of `module` and of every module of the submission that imports it, directly or not: where a
    bug in it can show (each exercise of this lab is graded on its own module, with the judge's own inputs)."""
    imports = {name: _imports((solutions / f"{name}.py").read_text(encoding="utf-8")) for name in EXERCISES}
    seen = {module}
    while True:
        more = {name for name, used in imports.items() if used & seen} - seen
        if not more:
            return seen
        seen |= more


@pytest.fixture(scope="module", autouse=True)
def spare_sandboxes() -> Iterator[None]:
    """As a batch worker does: each next sandbox of this file's gradings is forked ready from a zygote."""
    keep_spare_sandbox(True)
    yield
    keep_spare_sandbox(False)
    discard_spares()


@pytest.mark.parametrize("name", _variants())
def test_buggy_variant_loses_points_only_in_its_exercise(name: str, solution_copy: Path, solutions_dir: Path,
                                                         apply_variant) -> None:
    """Graded on the exercises that can see the buggy module (its own, and those whose modules import it): it
    loses points in its own and in no other. (That a module cannot cost other exercises points through the
    sandbox is tests/test_broken.py's and tests/test_hostile.py's, with whole gradings.)"""
    bug = apply_variant(name, solution_copy)
    graded = exercises_that_see(str(bug["module"]).removesuffix(".py"), solutions_dir)
    assert set(bug["loses"]) <= graded, (name, bug["loses"], graded)
    result = grade(solution_copy, replace(QUICK, exercises=tuple(sorted(graded))))
    summary = _summary(result)
    assert set(summary) == graded, (name, sorted(summary))
    for exercise, (score, maximum) in summary.items():
        if exercise in bug["loses"]:
            assert score < maximum, f"{name} ({bug['description']}) was not caught in {exercise}"
        else:
            assert score == maximum, f"{name} cost points in {exercise}: " + "; ".join(
                c.output for c in result.checks if c.exercise == exercise and c.status == "failed"
            )
    failures = [c for c in result.checks if c.status != "passed"]
    assert all(c.status == "failed" and c.output for c in failures), [c.output for c in failures]


def test_exercises_that_see_a_module_follow_its_imports(solutions_dir: Path) -> None:
    assert exercises_that_see("data", solutions_dir) == {"data"}
    assert exercises_that_see("models", solutions_dir) == {"models", "experiments"}
    assert exercises_that_see("training", solutions_dir) == {"training", "experiments"}


def test_there_are_at_least_twelve_variants() -> None:
    assert len(_variants()) >= 12


def test_the_judges_pytest_run_sets_off_no_full_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest's unraisable-exception plugin ends a session with five gc.collect() calls, ~3 s in a process
    that holds TensorFlow: the judge's own runs leave it out."""
    import gc

    from grader.judge import grading as judge

    (tmp_path / "pytest.ini").write_text("[pytest]\npython_functions = check_*\n", encoding="utf-8")
    (tmp_path / "test_tiny.py").write_text("def check_one():\n    assert True\n", encoding="utf-8")
    collections: list[int] = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(1) or real(*args))

    class Plugin:
        passed = 0

        def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
            Plugin.passed += report.when == "call" and report.passed

    assert judge._run_suites(Plugin(), tmp_path) == "graded"
    assert Plugin.passed == 1 and collections == []


def test_the_judge_freezes_its_imports_once() -> None:
    import gc

    from grader.judge import grading as judge

    judge._freeze_long_lived_objects()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    grading = [[index] for index in range(1000)]  # objects a later grading makes
    judge._freeze_long_lived_objects()  # once per process: later calls leave the grading's objects alone
    assert gc.get_freeze_count() == frozen, len(grading)


def test_partial_records_are_written_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch writes the results so far after a check, for a grading cut off midway; not after each of the
    ~70 checks, most of them milliseconds long."""
    from grader.judge import grading as judge

    clock = [100.0]
    monkeypatch.setattr(judge.time, "perf_counter", lambda: clock[0])
    written: list[SubmissionResult] = []
    write = judge._partial_writer(GradeOptions(on_partial=written.append), "alice", started=100.0)
    for seconds in (0.0, 0.3, 0.6, 0.99, 1.0, 1.5, 2.2):  # a check ends at each of these times
        clock[0] = 100.0 + seconds
        write([f"check done at {seconds}"])
    assert [r.checks for r in written] == [["check done at 0.0"], ["check done at 1.0"], ["check done at 2.2"]]
    assert all(r.status == "partial" and r.submission == "alice" for r in written)
    assert judge._partial_writer(GradeOptions(), "alice", started=0.0) is None


def test_driven_callbacks_share_one_model_that_starts_each_run_going() -> None:
    """The callback driver attaches every StopOnThreshold to one Keras model per sandbox process (building one
    costs ~8 ms, and the callback suite drives ~50); a callback that stopped it leaves the next run unaffected."""
    import types

    import keras

    from grader.suites.convolutions import drivers

    class StopOnThreshold(keras.callbacks.Callback):
        def __init__(self, stop: bool) -> None:
            super().__init__()
            self.stop = stop

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if self.stop:
                self.model.stop_training = True

    student = types.SimpleNamespace(StopOnThreshold=StopOnThreshold)
    epochs = [{"loss": 1.0}, {"loss": 0.5}]
    runs = [drivers.callback_logs(lambda module: student, {"stop": stop}, epochs) for stop in (True, False, True)]
    assert [run["stopped_at"] for run in runs] == [0, None, 0]
    assert drivers._tiny_model() is drivers._tiny_model()
