"""grader.check() in a real notebook kernel (nbclient + ipykernel): the generated notebook, solved, reports
full marks in every check cell; a cell redefined with a bug, or edited and re-run without saving, is graded as
the kernel has it; and the scores are those of `grader check` of the same code as a folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from grader.authoring.release import _without_local_imports
from grader.judge.grading import GradeOptions, grade
from grader.results import SubmissionResult
from grader.suites.convolutions import ASSIGNMENT as CONVOLUTIONS

EXERCISES = CONVOLUTIONS.modules

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions" / "convolutions"
NOTEBOOK = ROOT / "assignments" / "convolutions" / "convolutions.ipynb"
BUGGY = Path(__file__).resolve().parent / "fixtures" / "buggy"
TOTAL = re.compile(r"^Total: ([\d.]+) / ([\d.]+)", re.MULTILINE)
UNDEFINED = "build_cnn is not defined in this notebook's kernel yet: run the cell of exercise `models` first."


def _cell_code(module: str, source: str | None = None) -> str:
    """A module's code as its exercise cell holds it (no imports of sibling modules: one namespace)."""
    solutions = {path.stem: path.read_text(encoding="utf-8") for path in SOLUTIONS.glob("*.py")}
    return _without_local_imports(source or solutions[module], set(solutions)).strip("\n")


def _variant_code(name: str) -> tuple[str, str]:
    """(module, its exercise cell's code) of the buggy variant tests/fixtures/buggy/<name>.json."""
    bug = json.loads((BUGGY / f"{name}.json").read_text(encoding="utf-8"))
    module = str(bug["module"]).removesuffix(".py")
    source = (SOLUTIONS / f"{module}.py").read_text(encoding="utf-8")
    for old, new in bug["replace"]:
        assert source.count(old) == 1, name
        source = source.replace(old, new)
    return module, _cell_code(module, source)


def _solved_notebook() -> nbformat.NotebookNode:
    """The generated notebook with the solutions in its exercise cells, its check cells and its setup cell;
    every cell that trains, plots or prepares data left out. After the setup cell, one check of `models` runs
    before any exercise cell has: build_cnn is not defined yet."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    kept = []
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        exercise = [t.split(":", 1)[1] for t in tags if t.startswith("exercise:")]
        if exercise:
            cell.source = _cell_code(exercise[0])
            kept.append(cell)
        elif "check" in tags or (cell.cell_type == "code" and "load_fashion_mnist()" in cell.source):
            kept.append(cell)
            if "load_fashion_mnist()" in cell.source:
                kept.append(nbformat.v4.new_code_cell('grader.check("models")', metadata={"tags": ["early"]}))
    notebook.cells = kept
    return notebook


class Kernel:
    """A running notebook kernel that executes cells one at a time, as a student does."""

    def __init__(self, client: NotebookClient) -> None:
        self.client = client

    def run(self, cell: nbformat.NotebookNode | str) -> nbformat.NotebookNode:
        if isinstance(cell, str):
            cell = nbformat.v4.new_code_cell(cell)
        if cell not in self.client.nb.cells:
            self.client.nb.cells.append(cell)
        self.client.execute_cell(cell, self.client.nb.cells.index(cell))
        return cell

    def check(self, call: str) -> dict[str, Any]:
        """Run `report = <call>` as a student's cell, then read the report's fields back."""
        shown = self.run(f"report = {call}\nreport")
        data = self.run("import json\nprint(json.dumps({'score': report.score, 'max': report.max_score, "
                        "'checks': {c.id: c.score for c in report.checks}, 'messages': report.messages}))")
        return {**json.loads(_stdout(data)), "text": _result(shown, "text/plain"), "html": _result(shown, "text/html")}


def _result(cell: nbformat.NotebookNode, mime: str) -> str:
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert len(results) == 1, cell.outputs
    return str(results[0].data[mime])


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.fixture(scope="module")
def solved() -> Iterator[tuple[Kernel, nbformat.NotebookNode]]:
    """A kernel that ran the solved notebook top to bottom; it stays up for the tests that follow."""
    notebook = _solved_notebook()
    client = NotebookClient(notebook, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(ROOT / "assignments" / "convolutions")}})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with client.setup_kernel(env=env):
        kernel = Kernel(client)
        for cell in list(notebook.cells):
            kernel.run(cell)
        yield kernel, notebook


_folder_results: dict[str, SubmissionResult] = {}


@pytest.fixture(scope="module")
def folder_grade(tmp_path_factory: pytest.TempPathFactory,
                 apply_variant: Callable[[str, Path], Any]) -> Callable[[str], SubmissionResult]:
    """`grader check --skip-training` of the reference ("reference") or of a buggy variant, as a folder."""
    import shutil

    def graded(variant: str) -> SubmissionResult:
        if variant not in _folder_results:
            folder = tmp_path_factory.mktemp(variant) / "submission"
            shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
            if variant != "reference":
                apply_variant(variant, folder)
            _folder_results[variant] = grade(folder, GradeOptions(skip_training=True))
        return _folder_results[variant]

    return graded


def _scores(result: SubmissionResult, exercise: str | None = None) -> dict[str, float]:
    return {c.id: c.score for c in result.checks if exercise is None or c.exercise == exercise}


def test_every_check_cell_of_the_solved_notebook_reports_full_marks(
        solved: tuple[Kernel, Any], folder_grade: Callable[[str], SubmissionResult]) -> None:
    _, notebook = solved
    points = {exercise: maximum for exercise, (_, maximum) in folder_grade("reference").by_exercise().items()}
    assert set(points) == set(EXERCISES)
    totals = {}
    for cell in notebook.cells:
        if "check" not in cell.metadata.get("tags", []):
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
        text = _result(cell, "text/plain")
        score, maximum = map(float, TOTAL.search(text).groups())  # type: ignore[union-attr]
        totals[cell.source] = (score, maximum)
        assert 'data-score="' in _result(cell, "text/html")
    for exercise in EXERCISES:
        assert totals[f'grader.check("{exercise}")'] == (points[exercise], points[exercise]), exercise
    assert totals["grader.check()"] == (sum(points.values()), sum(points.values()))


def test_a_check_before_the_exercise_cell_ran_says_to_run_it(solved: tuple[Kernel, Any]) -> None:
    _, notebook = solved
    (early,) = [c for c in notebook.cells if "early" in c.metadata.get("tags", [])]
    assert not [o for o in early.outputs if o.output_type == "error"]  # a message, not a traceback
    text = _result(early, "text/plain")
    assert UNDEFINED in text
    assert TOTAL.search(text).group(1) == "0"  # type: ignore[union-attr]
    assert "build_cnn is not defined in this notebook&#x27;s kernel yet" in _result(early, "text/html")


def test_the_solved_kernel_scores_what_grader_check_of_the_folder_scores(
        solved: tuple[Kernel, Any], folder_grade: Callable[[str], SubmissionResult]) -> None:
    kernel, _ = solved
    live = kernel.check("grader.check()")
    assert live["checks"] == _scores(folder_grade("reference"))
    assert live["score"] == live["max"]


# A model bug and a data bug (the convolution exercise's cell works alike: tests/test_judge.py grades its bugs)
@pytest.mark.parametrize("variant", ["dense_64_units", "wrong_scaling"])
def test_a_cell_redefined_with_a_bug_loses_what_grader_check_loses(
        solved: tuple[Kernel, Any], folder_grade: Callable[[str], SubmissionResult], variant: str) -> None:
    kernel, _ = solved
    module, buggy = _variant_code(variant)
    kernel.run(buggy)  # a new cell that redefines the exercise after its cell ran once
    try:
        one = kernel.check(f'grader.check("{module}")')
        every = kernel.check("grader.check()")
    finally:
        kernel.run(_cell_code(module))  # the reference again, for the next test
    folder = folder_grade(variant)
    assert one["checks"] == _scores(folder, module)
    assert one["score"] < one["max"]  # the bug costs points, in its exercise only
    assert every["checks"] == _scores(folder)
    assert every["score"] == folder.score


def test_an_edited_cell_run_again_but_never_saved_is_graded_as_run(
        solved: tuple[Kernel, Any], tmp_path: Path, folder_grade: Callable[[str], SubmissionResult]) -> None:
    kernel, notebook = solved
    saved = tmp_path / "convolutions.ipynb"
    nbformat.write(notebook, saved)  # what is on disk: the reference in every exercise cell
    (cell,) = [c for c in notebook.cells if "exercise:models" in c.metadata.get("tags", [])]
    original = cell.source
    module, cell.source = _variant_code("dense_64_units")
    try:
        kernel.run(cell)  # edited in place and run again; the file is not saved
        live = kernel.check('grader.check("models")')
    finally:
        cell.source = original
        kernel.run(cell)
    assert live["checks"] == _scores(folder_grade("dense_64_units"), "models")
    on_disk = grade(saved, GradeOptions(skip_training=True, exercises=("models",)))
    assert on_disk.score == on_disk.max_score > live["score"]


def test_outside_a_notebook_grader_check_points_to_the_command_line() -> None:
    import grader
    from grader.notebook_check import NotInNotebook

    with pytest.raises(NotInNotebook, match=r"`grader check PATH`"):
        grader.check("models")
    done = subprocess.run([sys.executable, "-c", "import grader; grader.check()"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 1
    assert "NotInNotebook: grader.check() runs inside a notebook" in done.stderr


def test_importing_grader_imports_neither_tensorflow_nor_ipython() -> None:
    code = "import sys, grader; print(sorted({'tensorflow', 'keras', 'IPython', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "[]"
