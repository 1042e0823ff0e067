"""The student notebook: an assignment's narrative (its `notebook` cells) around one tagged code cell per exercise.

``build_notebook(cells, exercise_code)`` takes each exercise module's stub code (already without the
imports of sibling modules) and returns the notebook as JSON text. The text is byte-stable: cell ids come
from the cell's position, and nothing depends on the time.
"""

from __future__ import annotations

from collections.abc import Sequence

import nbformat

from grader.assignment import Cell

EXERCISE_TAG = "exercise:{}"
CHECK_TAG = "check"  # the cells that run grader.check(...)


def build_notebook(cells: Sequence[Cell], exercise_code: dict[str, str]) -> str:
    """The notebook as JSON text; ``exercise_code`` maps module name to cell code."""
    cells = _with_checks(cells)
    used = [text for kind, text in cells if kind == "exercise"]
    if sorted(used) != sorted(exercise_code):
        raise ValueError(f"notebook exercises {sorted(used)} differ from the modules {sorted(exercise_code)}")
    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
    )
    for index, (kind, text) in enumerate(cells):
        cell_id = f"cell-{index:02d}"
        if kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(text, id=cell_id))
        elif kind == "code":
            notebook.cells.append(nbformat.v4.new_code_cell(text, id=cell_id))
        elif kind == "check":
            call = f'grader.check("{text}")' if text else "grader.check()"
            notebook.cells.append(nbformat.v4.new_code_cell(call, id=cell_id, metadata={"tags": [CHECK_TAG]}))
        else:
            notebook.cells.append(
                nbformat.v4.new_code_cell(
                    exercise_code[text].strip("\n"),
                    id=cell_id,
                    metadata={"tags": [EXERCISE_TAG.format(text)]},
                )
            )
    nbformat.validate(notebook)
    return nbformat.writes(notebook, version=4) + "\n"


def _with_checks(cells: Sequence[Cell]) -> list[Cell]:
    """A check cell right after each exercise cell."""
    out: list[Cell] = []
    for kind, text in cells:
        out.append((kind, text))
        if kind == "exercise":
            out.append(("check", text))
    return out
