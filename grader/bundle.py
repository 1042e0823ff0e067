"""The student bundle: the stubs, the notebook, and the grader with public checks only.

`grader release --bundle DIR` writes an installable copy of the grader whose suites have every
hidden check cut out of their source, next to the assignment. No solution file and no hidden
check is copied: students can run `grader check` on their work at home, and nothing more.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".ruff_cache"}


def hidden_check_ranges(source: str) -> list[tuple[int, int]]:
    """1-based line ranges (decorators included) of the functions declared `@check(..., hidden=True)`."""
    ranges = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            _is_hidden_check(d) for d in node.decorator_list
        ):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            ranges.append((start, node.end_lineno or node.lineno))
    return sorted(ranges)


def strip_hidden_checks(source: str) -> str:
    lines = source.splitlines(keepends=True)
    for start, end in reversed(hidden_check_ranges(source)):
        del lines[start - 1 : end]
    stripped = "".join(lines)
    ast.parse(stripped)  # still a valid module
    return stripped


def write_bundle(root: Path, target: Path, assignment: str = "convolutions") -> Path:
    """Write the bundle into `target` (replaced if it exists) and return it."""
    root, target = Path(root).resolve(), Path(target).resolve()
    protected = [root / name for name in ("grader", "solutions", "assignments", "tests")]
    if root.is_relative_to(target) or any(target.is_relative_to(p) for p in protected):
        raise ValueError(f"the bundle would overwrite the repository; choose another folder (received {target})")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(root / "assignments" / assignment, target / "assignment",
                    ignore=shutil.ignore_patterns(*_SKIP_DIRS))
    package = target / "grader"
    shutil.copytree(_PACKAGE, package, ignore=shutil.ignore_patterns(*_SKIP_DIRS, "*.pyc"))
    for suite in (package / "suites").rglob("test_*.py"):
        suite.write_text(strip_hidden_checks(suite.read_text(encoding="utf-8")), encoding="utf-8")
    shutil.copy2(root / "pyproject.toml", target / "pyproject.toml")
    (target / "README.md").write_text(_README.format(assignment=assignment), encoding="utf-8")
    return target


def _is_hidden_check(decorator: ast.expr) -> bool:
    if not isinstance(decorator, ast.Call):
        return False
    name = decorator.func.id if isinstance(decorator.func, ast.Name) else getattr(decorator.func, "attr", "")
    return name == "check" and any(
        k.arg == "hidden" and isinstance(k.value, ast.Constant) and k.value.value is True for k in decorator.keywords
    )


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

Fashion-MNIST is read from Debian's package `dataset-fashion-mnist`
(`sudo apt-get install dataset-fashion-mnist`), from `$FASHION_MNIST_DIR`, or from the Keras cache.
"""
