"""Notebook -> modules: definitions kept, everything that runs dropped, problems reported."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.intake.notebook import NOTEBOOK_MODULE, extract_notebook, write_notebook_modules

LOADING = Path(__file__).resolve().parent / "fixtures" / "loading"
EXPECTED = ("data", "models", "callbacks", "convolution")


def _notebook(*sources: str, nbformat: int = 4) -> bytes:
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "source": s} for s in sources]
    return json.dumps({"nbformat": nbformat, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()


def _top_level_names(source: str) -> list[str]:
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [n.id for t in node.targets for n in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return names


@pytest.fixture(scope="module")
def lab() -> str:
    result = extract_notebook((LOADING / "lab_v4.ipynb").read_bytes(), EXPECTED)
    assert result.cells == 11
    return result.source


def test_definitions_and_constants_are_kept(lab: str) -> None:
    assert _top_level_names(lab) == [
        "_skipped_import", "prepare_images", "EDGE_KERNEL", "ROWS", "COLS", "convolve2d", "max_pool2d",
        "StopOnThreshold",
    ]
    assert "# 数据准备 / Datenaufbereitung" not in lab  # a comment above a def is not part of it
    assert '"""Scale uint8 images to float32 in [0, 1] with a channel axis."""' in lab


def test_running_code_is_dropped(lab: str) -> None:
    for dropped in ("load_data", "print(", "fit(", "evaluate(", "model.summary", "threshold = 0.5",
                    "not_code", "nvidia-smi", "model = keras"):
        assert dropped not in lab.replace('print(f"note:', ""), dropped


def test_magics_and_shell_escapes_are_removed(lab: str) -> None:
    cells = lab.split("# --- cell 3 ---")[1]
    for magic in ("!pip", "%matplotlib", "%load_ext", "%%time", "!echo", "!ls", "summary?"):
        assert magic not in cells
    assert "        if True:\n            pass\n" in lab  # an escape inside a block keeps the block valid
    assert "def max_pool2d(image, size=2):" in lab  # the body of a %%time cell counts


def test_imports_are_wrapped_and_unavailable_ones_reported() -> None:
    result = extract_notebook((LOADING / "lab_v4.ipynb").read_bytes(), EXPECTED)
    assert "cell 3 imports google.colab, which the grader does not have; that import is skipped" in result.messages
    assert not any("tensorflow" in m or "numpy" in m for m in result.messages)
    for statement in ("import numpy as np", "from tensorflow import keras", "from google.colab import drive"):
        assert f"try:\n    {statement}\nexcept Exception as _error:" in result.source


def test_bad_cell_is_reported_and_the_others_count() -> None:
    result = extract_notebook((LOADING / "lab_v4.ipynb").read_bytes(), EXPECTED)
    assert "cell 10 of the notebook is not valid Python: invalid syntax (line 1)" in result.messages
    bad = extract_notebook(_notebook("def ok():\n    return 1\n", "x = (\n\n", "def later():\n    return 2\n"))
    assert bad.messages == ["cell 2 of the notebook is not valid Python: '(' was never closed (line 1)"]
    assert _top_level_names(bad.source) == ["_skipped_import", "ok", "later"]


def test_old_nbformat_is_read() -> None:
    result = extract_notebook((LOADING / "lab_v3.ipynb").read_bytes(), EXPECTED)
    assert result.messages == [] and result.cells == 3
    assert _top_level_names(result.source) == ["_skipped_import", "prepare_images", "EDGE_KERNEL"]
    assert "%pylab" not in result.source and "prepare_images(np.zeros" not in result.source


def test_invalid_json_gives_an_empty_submission_with_a_reason() -> None:
    result = extract_notebook((LOADING / "not_json.ipynb").read_bytes(), EXPECTED)
    assert result.source == "" and len(result.messages) == 1
    assert result.messages[0].startswith("the notebook is not valid JSON: Expecting")
    assert extract_notebook(b'{"nbformat": 4}').messages == [
        "the file is JSON but not a Jupyter notebook (it has no cells)"
    ]


def test_non_utf8_bytes_are_replaced_and_reported() -> None:
    result = extract_notebook((LOADING / "latin1.ipynb").read_bytes(), EXPECTED)
    assert result.messages == ["the notebook is not valid UTF-8 (byte 157); undecodable bytes were replaced"]
    assert _top_level_names(result.source) == ["_skipped_import", "prepare_images"]


def test_missing_cell_ids_and_list_or_string_sources() -> None:
    data = _notebook(["def a():\n", "    return 1\n"], "B = 2")
    assert _top_level_names(extract_notebook(data).source) == ["_skipped_import", "a", "B"]


@pytest.mark.parametrize("magic, kept", [
    ("%%time\ndef f():\n    return 1\nf()", True),
    ("%%capture out\ndef f():\n    return 1", True),
    ("%%writefile models.py\ndef f():\n    return 1", False),
    ("%%bash\ndef f():", False),
    ("x = %timeit -o 1\ndef f():\n    return 1", True),
    ("f?\ndef f():\n    return 1", True),
    ("??f\ndef f():\n    return 1", True),
])
def test_cell_magics(magic: str, kept: bool) -> None:
    result = extract_notebook(_notebook(magic))
    assert result.messages == []
    assert ("f" in _top_level_names(result.source)) is kept


def test_shims_expose_the_notebook_namespace(tmp_path: Path) -> None:
    code = extract_notebook(_notebook(
        "import math\nfrom models import helper  # its own module: dropped\n",
        "def helper():\n    return math.pi\n",
        "class StopOnThreshold:\n    pass\n",
        "EDGE_KERNEL = [[8]]\n",
    ), EXPECTED)
    write_notebook_modules(code, tmp_path, EXPECTED)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{NOTEBOOK_MODULE}.py"] + [f"{m}.py" for m in EXPECTED]
    )
    script = (
        "import importlib, models, callbacks\n"
        "from convolution import EDGE_KERNEL\n"
        "from models import helper\n"
        "assert callbacks.StopOnThreshold is importlib.import_module('data').StopOnThreshold\n"
        "assert not hasattr(models, 'build_cnn')\n"
        "try:\n    models.build_cnn\nexcept AttributeError as e:\n    print(e)\n"
        "print(helper(), EDGE_KERNEL, dir(models))\n"
    )
    run = subprocess.run([sys.executable, "-B", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "module 'models' has no attribute 'build_cnn' (the notebook does not define it)",
        "3.141592653589793 [[8]] ['EDGE_KERNEL', 'StopOnThreshold', 'helper', 'math']",
    ]


def test_a_failing_import_is_skipped_with_a_note(tmp_path: Path) -> None:
    code = extract_notebook(_notebook("import no_such_module_here\nimport json\n", "VALUE = json.dumps(1)"),
                            EXPECTED)
    assert code.messages == ["cell 1 imports no_such_module_here, which the grader does not have; "
                             "that import is skipped"]
    write_notebook_modules(code, tmp_path, EXPECTED)
    run = subprocess.run([sys.executable, "-B", "-c", "import data; print(data.VALUE)"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.stdout == "1\n"
    assert "note: cell 1 of the notebook: `import no_such_module_here` failed (ModuleNotFoundError" in run.stderr


@pytest.mark.parametrize(("cells", "kept", "message"), [
    (["class A:\n    return x", "def f():\n    return 1"], "def f():",
     "cell 1 of the notebook: A is not valid Python and is left out: 'return' outside function (line 2)"),
    (["def g():\n    nonlocal y\n", "X = 1"], "X = 1",
     "cell 1 of the notebook: g is not valid Python and is left out: no binding for nonlocal 'y' found (line 2)"),
    (["from __future__ import braces", "X = 1"], "X = 1",
     "cell 1 of the notebook: `from __future__ import braces` is not a feature of this Python; it is left out"),
])
def test_definitions_python_refuses_to_compile_are_left_out(cells: list[str], kept: str, message: str) -> None:
    code = extract_notebook(_notebook(*cells), EXPECTED)
    compile(code.source, "_notebook.py", "exec")
    assert kept in code.source
    assert code.messages == [message]


def test_future_imports_open_the_module(tmp_path: Path) -> None:
    code = extract_notebook(_notebook("import math\nfrom __future__ import annotations\n"
                                      "def f(x: Undefined) -> int:\n    return 1",
                                      "try:\n    from __future__ import division\nexcept ImportError:\n    pass"),
                            EXPECTED)
    assert code.messages == []
    assert "\nfrom __future__ import annotations, division\n" in code.source
    write_notebook_modules(code, tmp_path, EXPECTED)
    run = subprocess.run([sys.executable, "-B", "-c", "import models; print(models.f(0))"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.stdout == "1\n", run.stderr


_lines = st.sampled_from([
    "!pip install x", "%matplotlib inline", "%%time", "def f(x):", "    return x", "class A:", "    pass",
    "X = 1", "y = 2", "print(y)", "model.fit(x)", "for i in range(3):", "    !ls", "if True:", "import os",
    "files = !ls", "f?", "    '''", "'''", "x = (", ")", "@decorator", "async def g():", "    await h()",
    "from . import z", "from __future__ import annotations", "nonlocal q",
    "try:", "    import os", "except ImportError:", "    pass", "CONST: int = 3",
])


@given(st.lists(st.lists(_lines, max_size=8).map("\n".join) | st.text(max_size=40), max_size=6))
def test_any_notebook_gives_valid_python_or_messages(cells: list[str]) -> None:
    result = extract_notebook(_notebook(*cells), EXPECTED)
    compile(result.source or "", "_notebook.py", "exec")  # the kept code always compiles
    assert len(result.messages) <= len(cells)
    assert all(m.startswith(("cell ", "the notebook")) for m in result.messages)
