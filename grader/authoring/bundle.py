"""The student bundle: the stubs, the notebook, and the grader with public checks only.

`grader release --bundle DIR` writes an installable copy of the grader whose suites have every
hidden check (as the decorators declare them, collected by pytest) cut out of their source, next to the
assignment. No solution file and no hidden
check is copied: students can run `grader check` on their work at home, and nothing more.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Collection
from pathlib import Path

from grader.assignment import Assignment

_PACKAGE = Path(__file__).resolve().parents[1]  # the grader package
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".ruff_cache"}


def hidden_check_ranges(source: str, hidden: Collection[str]) -> list[tuple[int, int]]:
    """1-based line ranges (decorators included) of the module-level functions named in `hidden`: the checks
    whose declaration says hidden, as pytest collected them (however the decorator was written)."""
    ranges = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in hidden:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            ranges.append((start, node.end_lineno or node.lineno))
    return sorted(ranges)


def strip_hidden_checks(source: str, hidden: Collection[str]) -> str:
    lines = source.splitlines(keepends=True)
    for start, end in reversed(hidden_check_ranges(source, hidden)):
        del lines[start - 1 : end]
    stripped = "".join(lines)
    ast.parse(stripped)  # still a valid module
    return stripped


def write_bundle(root: Path, target: Path, assignment: Assignment) -> Path:
    """Write the bundle into `target` (replaced if it exists) and return it."""
    from grader.authoring.catalog import entries

    hidden = {entry.spec.name for entry in entries(assignment) if entry.spec.hidden}
    root, target = Path(root).resolve(), Path(target).resolve()
    protected = [root / name for name in ("grader", "solutions", "assignments", "tests")]
    if root.is_relative_to(target) or any(target.is_relative_to(p) for p in protected):
        raise ValueError(f"the bundle would overwrite the repository; choose another folder (received {target})")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(root / "assignments" / assignment.name, target / "assignment",
                    ignore=shutil.ignore_patterns(*_SKIP_DIRS))
    package = target / "grader"
    shutil.copytree(_PACKAGE, package, ignore=shutil.ignore_patterns(*_SKIP_DIRS, "*.pyc"))
    suites = package / assignment.folder.relative_to(_PACKAGE) if assignment.folder.is_relative_to(_PACKAGE) else None
    if suites is None:  # an assignment from $GRADER_ASSIGNMENTS: its suites go in beside the grader's
        suites = package / "suites" / assignment.name
        shutil.copytree(assignment.folder, suites, ignore=shutil.ignore_patterns(*_SKIP_DIRS, "*.pyc"))
    for other in (package / "suites").iterdir():  # other assignments' suites are not this bundle's
        if other.is_dir() and other != suites and other.name not in _SKIP_DIRS:
            shutil.rmtree(other)
    for suite in suites.rglob("test_*.py"):
        suite.write_text(strip_hidden_checks(suite.read_text(encoding="utf-8"), hidden), encoding="utf-8")
    shutil.copy2(root / "pyproject.toml", target / "pyproject.toml")
    data = assignment.dataset_module().INSTALL_HINT if assignment.dataset else "This lab needs no data set."
    (target / "README.md").write_text(_README.format(assignment=assignment.name, data=data), encoding="utf-8")
    return target


_README = """\
# The {assignment} lab: your assignment and its checker

- `assignment/`: the stubs to complete (one module per exercise) and the lab notebook.
- `grader/`: the checker with the public checks (your teacher's grader also runs hidden ones).

Install once (TensorFlow comes with it), then check your work whenever you like:

```sh
python3 -m pip install .
grader check assignment --skip-training   # seconds: everything but the accuracy gates
grader check assignment                   # also trains your two models (a few minutes)
```

Or work in the notebook and check each exercise right under its cell: `grader.check("models")` grades the
exercise as your notebook's kernel has it now (no need to save), `grader.check()` grades them all.

```sh
python3 -m pip install ".[notebook]"      # the grader, plus Jupyter to open the notebook
jupyter lab assignment/{assignment}.ipynb
```

The data: {data}
"""
