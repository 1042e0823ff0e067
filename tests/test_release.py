"""grader.authoring.release: the student assignment generated from the reference solutions."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from grader.authoring.notebook import CHECK_TAG, EXERCISE_TAG
from grader.authoring.release import SOLUTION_MARKERS, release, render_assignment, solution_block_texts, stub_source
from grader.suites.convolutions import ASSIGNMENT as CONVOLUTIONS

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = REPO / "assignments" / "convolutions"
EXERCISES = CONVOLUTIONS.modules
NOTEBOOK = ASSIGNMENT / "convolutions.ipynb"
BEGIN, END = SOLUTION_MARKERS


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """A throwaway repository root holding the solutions and the committed assignment."""
    for part in ("solutions", "assignments"):
        shutil.copytree(REPO / part / "convolutions", tmp_path / part / "convolutions")
    return tmp_path


@pytest.fixture
def stub_modules(tmp_path, monkeypatch):
    """The generated stub modules, imported from a tmp copy (no bytecode written)."""
    folder = shutil.copytree(ASSIGNMENT, tmp_path / "student")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(folder))
    for name in EXERCISES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    modules = {name: importlib.import_module(name) for name in EXERCISES}
    yield modules
    for name in EXERCISES:
        sys.modules.pop(name, None)


def test_committed_assignment_is_current():
    assert release(REPO, CONVOLUTIONS, check=True) == []


def test_generated_files():
    files = render_assignment(REPO, CONVOLUTIONS)
    expected = {f"assignments/convolutions/{name}.py" for name in EXERCISES}
    assert set(files) == expected | {"assignments/convolutions/convolutions.ipynb"}


def test_modified_stub_is_stale_and_regenerated(repo_copy):
    stub = repo_copy / "assignments" / "convolutions" / "models.py"
    stub.write_text(stub.read_text() + "\n# edited by hand\n")
    assert release(repo_copy, CONVOLUTIONS, check=True) == ["assignments/convolutions/models.py"]
    assert stub.read_text().endswith("# edited by hand\n")  # check=True writes nothing
    assert release(repo_copy, CONVOLUTIONS) == ["assignments/convolutions/models.py"]
    assert release(repo_copy, CONVOLUTIONS, check=True) == []


def test_changed_solution_makes_stub_stale(repo_copy):
    solution = repo_copy / "solutions" / "convolutions" / "data.py"
    solution.write_text(solution.read_text().replace("add a channel axis", "append a channel axis"))
    stale = release(repo_copy, CONVOLUTIONS, check=True)
    assert "assignments/convolutions/data.py" in stale
    assert "assignments/convolutions/convolutions.ipynb" in stale


def test_missing_and_extra_files_are_stale(repo_copy):
    folder = repo_copy / "assignments" / "convolutions"
    (folder / "convolutions.ipynb").unlink()
    (folder / "leftover.py").write_text("x = 1\n")
    (folder / "notes.txt").write_text("kept\n")
    stale = ["assignments/convolutions/convolutions.ipynb", "assignments/convolutions/leftover.py"]
    assert release(repo_copy, CONVOLUTIONS, check=True) == stale
    assert release(repo_copy, CONVOLUTIONS) == stale
    assert not (folder / "leftover.py").exists()
    assert (folder / "notes.txt").exists()
    assert release(repo_copy, CONVOLUTIONS, check=True) == []


def test_release_is_byte_stable(repo_copy):
    shutil.rmtree(repo_copy / "assignments")
    release(repo_copy, CONVOLUTIONS)
    for path in ASSIGNMENT.iterdir():
        assert (repo_copy / "assignments" / "convolutions" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            f"def f(x):\n    '''Doc.'''\n    {BEGIN} hint: add one\n    return x + 1\n    {END}\n",
            "def f(x):\n    '''Doc.'''\n    raise NotImplementedError(\"add one\")\n",
        ),
        (
            f"def f():\n    {BEGIN}\n    return 1\n    {END}\n",
            'def f():\n    raise NotImplementedError("write your solution here")\n',
        ),
        (
            f"def f():\n    {BEGIN} hint: first\n    # hint: second\n    return 1\n    {END}\n",
            'def f():\n    raise NotImplementedError(\n        "first "\n        "second"\n    )\n',
        ),
        (
            f'class C:\n    def m(self):\n        {BEGIN} hint: say "hi"\n        pass\n        {END}\n',
            "class C:\n    def m(self):\n        raise NotImplementedError('say \"hi\"')\n",
        ),
        (
            f"import numpy as np\n{BEGIN} hint: a 3x3 kernel\nK = np.ones(\n    (3, 3)\n)\n{END}\n",
            "import numpy as np\nK = None  # TODO: a 3x3 kernel\n",
        ),
        (
            f"{BEGIN} hint: two\n# hint: lines\nA: int = 1\nB = C = 2\n{END}\n",
            "# TODO: two\n#   lines\nA = None  # TODO\nB = None  # TODO\nC = None  # TODO\n",
        ),
        ("def untouched():\n    return 1\n", "def untouched():\n    return 1\n"),
    ],
    ids=["function", "default-hint", "multi-line-hint", "quotes", "module-level", "module-multi", "no-markers"],
)
def test_stub_source(source, expected):
    assert stub_source(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (f"def f():\n    {BEGIN}\n    return 1\n", "never closed"),
        (f"def f():\n    {BEGIN}\n    {BEGIN}\n    {END}\n", "inside the block opened on line 2"),
        (f"def f():\n    return 1\n    {END}\n", "without"),
        (f"{BEGIN}\nprint('x')\n{END}\n", "may only assign names"),
        (f"{BEGIN}\nK[0] = 1\n{END}\n", "may only assign names"),
        (f"def f():\n    {BEGIN} note: x\n    {END}\n", "expected 'hint:'"),
        (f"if True:\n{BEGIN}\nx = 1\n{END}\n", "does not parse"),
    ],
    ids=["unclosed", "nested", "stray-end", "module-call", "module-subscript", "bad-hint", "broken-result"],
)
def test_stub_source_rejects_bad_markers(source, message):
    with pytest.raises(ValueError, match=message):
        stub_source(source)


def test_stub_modules_import_and_every_function_raises(stub_modules):
    checked = []
    for name, module in stub_modules.items():
        for function_name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != name:
                continue
            arguments = [None] * sum(p.default is p.empty for p in inspect.signature(function).parameters.values())
            with pytest.raises(NotImplementedError):
                function(*arguments)
            checked.append(function_name)
    expected = {
        "prepare_images", "build_dnn", "build_cnn", "compile_model", "train_and_evaluate",
        "convolve2d", "max_pool2d", "layer_activations", "plot_activations", "filter_experiment",
    }  # fmt: skip
    assert set(checked) == expected
    assert stub_modules["convolution"].EDGE_KERNEL is None


@pytest.mark.parametrize("method", ["__init__", "on_epoch_end"])
def test_stub_callback_methods_raise(stub_modules, method):
    cls = stub_modules["callbacks"].StopOnThreshold
    assert method in vars(cls)
    instance = object.__new__(cls)
    arguments = {"__init__": (), "on_epoch_end": (0, {"loss": 0.0})}[method]
    with pytest.raises(NotImplementedError):
        getattr(cls, method)(instance, *arguments)


def test_stubs_keep_signatures_and_docstrings(stub_modules):
    solutions = REPO / "solutions" / "convolutions"
    for name in EXERCISES:
        solution = ast.parse((solutions / f"{name}.py").read_text())
        stub = ast.parse((ASSIGNMENT / f"{name}.py").read_text())
        assert ast.get_docstring(stub) == ast.get_docstring(solution)
        solution_defs = {n.name: n for n in ast.walk(solution) if isinstance(n, ast.FunctionDef)}
        stub_defs = {n.name: n for n in ast.walk(stub) if isinstance(n, ast.FunctionDef)}
        assert solution_defs.keys() == stub_defs.keys()
        for def_name, node in solution_defs.items():
            assert ast.dump(node.args) == ast.dump(stub_defs[def_name].args), (name, def_name)
            assert ast.get_docstring(node) == ast.get_docstring(stub_defs[def_name]), (name, def_name)


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_validates_with_stable_ids(notebook):
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    ids = [cell.id for cell in notebook.cells]
    assert ids == [f"cell-{index:02d}" for index in range(len(ids))]


def _exercise_cells(notebook) -> dict[str, list]:
    cells: dict[str, list] = {}
    for cell in notebook.cells:
        for tag in cell.metadata.get("tags", []):
            cells.setdefault(tag, []).append(cell)
    return cells


def test_notebook_has_one_tagged_cell_per_exercise(notebook):
    cells = _exercise_cells(notebook)
    assert set(cells) == {EXERCISE_TAG.format(name) for name in EXERCISES} | {CHECK_TAG}
    for name in EXERCISES:
        (cell,) = cells[EXERCISE_TAG.format(name)]
        assert cell.cell_type == "code"
        stub = (ASSIGNMENT / f"{name}.py").read_text()
        kept = "\n".join(line for line in stub.splitlines() if not line.startswith(("from models ", "from training ")))
        assert cell.source == re.sub(r"\n{4,}", "\n\n\n", kept).strip("\n"), name


def test_each_exercise_cell_is_followed_by_its_check_and_the_notebook_ends_with_checking_all(notebook):
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    checks = [cell.source for cell in code if CHECK_TAG in cell.metadata.get("tags", [])]
    for cell, after in zip(code[:-1], code[1:], strict=True):
        exercise = [t.split(":", 1)[1] for t in cell.metadata.get("tags", []) if t.startswith("exercise:")]
        if exercise:
            assert after.source == f'grader.check("{exercise[0]}")'
            assert after.metadata["tags"] == [CHECK_TAG]
    assert len(checks) == len(EXERCISES) + 1
    assert code[-1].source == "grader.check()" and checks[-1] == "grader.check()"
    setup = next(cell for cell in code if "load_fashion_mnist" in cell.source)
    assert any(line.startswith("import grader ") for line in setup.source.splitlines())  # before the first check


def test_notebook_exercise_cells_share_one_namespace(notebook):
    namespace: dict = {}
    for cell in notebook.cells:
        if any(tag.startswith("exercise:") for tag in cell.metadata.get("tags", [])):
            exec(compile(cell.source, cell.id, "exec"), namespace)
    defined = {"prepare_images", "build_dnn", "build_cnn", "compile_model", "StopOnThreshold",
               "train_and_evaluate", "EDGE_KERNEL", "convolve2d", "max_pool2d", "layer_activations",
               "plot_activations", "filter_experiment"}  # fmt: skip
    assert defined <= namespace.keys()
    with pytest.raises(NotImplementedError):
        namespace["filter_experiment"]((16,), None, None)


def test_notebook_code_cells_compile_and_load_the_data(notebook):
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        compile(cell.source, cell.id, "exec")
    assert any("from grader.datasets.fashion_mnist import load_fashion_mnist" in cell.source for cell in code)
    text = "\n".join(cell.source for cell in notebook.cells)
    for topic in ("(16, 32, 64)", "(32, 32, 64)", "[0, 23, 28]", "overfitting", "EDGE_KERNEL", "StopOnThreshold"):
        assert topic in text


def test_secret_lines_are_found():
    secrets = solution_block_texts(REPO, CONVOLUTIONS)
    assert len(secrets) > 40
    assert any("np.expand_dims" in line for line in secrets)
    assert "self.model.stop_training = True" not in secrets  # quoted in a docstring: not secret


@pytest.mark.parametrize("name", [f"{name}.py" for name in EXERCISES] + ["convolutions.ipynb"])
def test_no_solution_code_reaches_students(name):
    text = (ASSIGNMENT / name).read_text()
    if name.endswith(".ipynb"):
        text = "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells)
    leaked = [line for line in solution_block_texts(REPO, CONVOLUTIONS) if line in text]
    assert leaked == []
    assert BEGIN not in text and END not in text
