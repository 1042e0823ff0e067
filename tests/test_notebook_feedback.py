"""Feedback that speaks of what the student handed in: a notebook's exercise cells, not modules it never had,
and one account at the top for a submission that defines none of the lab's names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from grader.intake.submission import Origin, prepare_submission
from grader.judge.grading import GradeOptions, grade
from grader.judge.student import Student, StudentFailure
from grader.sandbox import StudentError
from grader.suites.convolutions import ASSIGNMENT, NAMES

# The course's own lab notebook (DeepLearning.AI, C1_W3_Lab_1), in short: top-level cells, no exercise functions.
ORIGINAL_LAB = [
    "import tensorflow as tf\nimport matplotlib.pyplot as plt",
    "fmnist = tf.keras.datasets.fashion_mnist\n"
    "(training_images, training_labels), (test_images, test_labels) = fmnist.load_data()",
    "training_images = training_images / 255.0\ntest_images = test_images / 255.0",
    "model = tf.keras.models.Sequential([\n  tf.keras.layers.Conv2D(32, (3,3), activation='relu', "
    "input_shape=(28, 28, 1)),\n  tf.keras.layers.MaxPooling2D(2, 2),\n  tf.keras.layers.Flatten(),\n"
    "  tf.keras.layers.Dense(128, activation='relu'),\n  tf.keras.layers.Dense(10, activation='softmax')\n])\n"
    "model.summary()",
    "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n"
    "model.fit(training_images, training_labels, epochs=5)",
    "FIRST_IMAGE=0\nSECOND_IMAGE=23\nTHIRD_IMAGE=28\nCONVOLUTION_NUMBER = 1",
]
ALL_NAMES = ", ".join(name for names in NAMES.values() for name in names)


def _notebook(path: Path, cells: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, path)
    return path


def test_names_are_what_the_reference_solutions_define(solutions_dir: Path) -> None:
    from grader.intake.notebook import defined_names

    for module, names in NAMES.items():
        public = {n for n in defined_names((solutions_dir / f"{module}.py").read_text()) or () if not n.startswith("_")}
        assert public == set(names), module
    assert tuple(NAMES) == ASSIGNMENT.modules


def test_a_notebook_that_defines_none_of_the_names_gets_one_account_first(tmp_path: Path) -> None:
    prepared = prepare_submission(_notebook(tmp_path / "C1_W3_Lab_1.ipynb", ORIGINAL_LAB), ASSIGNMENT.modules, NAMES,
                                  assignment=ASSIGNMENT.name)
    try:
        assert prepared.origin == Origin("notebook", "C1_W3_Lab_1.ipynb")
        assert prepared.messages[0] == (
            f"this notebook (C1_W3_Lab_1.ipynb) defines none of the functions the lab asks for: {ALL_NAMES}; "
            "start from the assignment's convolutions.ipynb, whose exercise cells are tagged exercise:<module>."
        )
        assert sum("defines none" in m for m in prepared.messages) == 1
    finally:
        prepared.cleanup()


def test_a_notebook_that_defines_one_name_gets_no_such_account(tmp_path: Path) -> None:
    cells = [*ORIGINAL_LAB, "def prepare_images(images):\n    return images[..., None] / 255.0"]
    prepared = prepare_submission(_notebook(tmp_path / "lab.ipynb", cells), ASSIGNMENT.modules, NAMES,
                                  assignment=ASSIGNMENT.name)
    try:
        assert not any("defines none" in m for m in prepared.messages)
    finally:
        prepared.cleanup()


def test_a_folder_whose_modules_define_none_of_the_names_gets_the_folders_account(tmp_path: Path,
                                                                                  solutions_dir: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "models.py").write_text("import keras\n\ndef make_model():\n    return keras.Sequential()\n")
    (folder / "data.py").write_text("SCALE = 255.0\n")
    prepared = prepare_submission(folder, ASSIGNMENT.modules, NAMES,
                                  assignment=ASSIGNMENT.name)
    try:
        assert prepared.origin == Origin()
        assert prepared.messages[0].startswith(f"this folder defines none of the functions the lab asks for: "
                                               f"{ALL_NAMES}; start from the assignment's stubs (data.py, models.py")
    finally:
        prepared.cleanup()
    reference = prepare_submission(solutions_dir, ASSIGNMENT.modules, NAMES,
                                  assignment=ASSIGNMENT.name)
    try:
        assert reference.messages == []
    finally:
        reference.cleanup()


def test_a_folder_holding_one_notebook_is_named_after_that_notebook(tmp_path: Path) -> None:
    folder = tmp_path / "handed-in"
    folder.mkdir()
    _notebook(folder / "mine.ipynb", ["def prepare_images(images):\n    return images"])
    prepared = prepare_submission(folder, ASSIGNMENT.modules, NAMES,
                                  assignment=ASSIGNMENT.name)
    try:
        assert prepared.origin == Origin("notebook", "mine.ipynb")
    finally:
        prepared.cleanup()


class _Sandbox:
    """Answers every call with an AttributeError, and has() with False: a name the submission lacks."""

    def call(self, module: str, function: str, *args: Any, **kwargs: Any) -> Any:
        raise StudentError("AttributeError: no such name", exc_type="AttributeError", exc_message="no such name",
                           traceback="", phase="call", module=module, function=function)

    def has(self, module: str, name: str) -> bool:
        return False


@pytest.mark.parametrize(("origin", "message"), [
    (Origin(), "models.py does not define build_cnn. Define it with exactly this name."),
    (Origin("notebook", "lab.ipynb"), "the notebook lab.ipynb does not define build_cnn: define it, with exactly "
                                      "this name, in the exercise cell tagged exercise:models."),
    (Origin("kernel"), "build_cnn is not defined in this notebook's kernel yet: run the cell of exercise `models` "
                       "first."),
])
def test_a_missing_name_is_explained_in_the_terms_of_what_was_handed_in(origin: Origin, message: str) -> None:
    student = Student(_Sandbox(), origin=origin)
    with pytest.raises(StudentFailure) as failure:
        student.call("models", "build_cnn")
    assert str(failure.value) == message


def test_grading_the_original_lab_notebook_speaks_of_the_notebook(tmp_path: Path) -> None:
    """One exercise only (GradeOptions.exercises): the data checks, each naming the notebook and its cell."""
    path = _notebook(tmp_path / "C1_W3_Lab_1.ipynb", ORIGINAL_LAB)
    result = grade(path, GradeOptions(skip_training=True, exercises=("data",)))
    assert result.messages[0].startswith("this notebook (C1_W3_Lab_1.ipynb) defines none of the functions")
    assert result.checks and {c.exercise for c in result.checks} == {"data"}
    assert result.score == 0
    graded = [c for c in result.checks if not c.output.startswith("not graded")]
    assert graded
    for check in graded:
        assert "data.py" not in check.output
        assert "the notebook C1_W3_Lab_1.ipynb does not define prepare_images" in check.output, check.output
        assert "exercise:data" in check.output


def test_the_live_check_feedback_is_kernel_terms(tmp_path: Path) -> None:
    """The judge, told the notebook is a kernel's history (GradeOptions.kernel), says to run the cell."""
    path = _notebook(tmp_path / "notebook.ipynb", ["import numpy as np", "x = np.zeros(3)"])
    result = grade(path, GradeOptions(skip_training=True, exercises=("models",), kernel=True))
    assert result.messages[0].startswith("this notebook's kernel defines none of the functions the lab asks for")
    first = min(result.checks, key=lambda c: c.number)
    assert first.output == ("build_dnn is not defined in this notebook's kernel yet: run the cell of exercise "
                            "`models` first.")


def test_a_notebook_that_cannot_be_read_gets_only_that_message(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json", encoding="utf-8")
    prepared = prepare_submission(path, ASSIGNMENT.modules, NAMES,
                                  assignment=ASSIGNMENT.name)
    try:
        assert len(prepared.messages) == 1 and prepared.messages[0].startswith("the notebook is not valid JSON")
    finally:
        prepared.cleanup()
