"""A submitted notebook, as plain Python modules: its definitions only, never its training runs.

From the code cells we keep, with ``ast`` and in notebook order: imports (each wrapped so that a
failing one, e.g. ``google.colab``, is skipped with a note), function and class definitions, and
module-level assignments to ALL_CAPS names (``EDGE_KERNEL = ...``). Everything else (training, fit,
evaluate, data loading, plots, prints) is dropped. IPython magics, shell escapes and help syntax are
removed before parsing; cells whose body is not Python (``%%bash``, ``%%writefile``...) are dropped; a
cell that still does not parse is reported and the others count.

The kept code goes to ``_notebook.py``; each expected module gets a small shim that exposes the
notebook's namespace, so ``from models import build_model`` and ``load("models").build_model`` both work.

Decision: a notebook that is not valid JSON is not an error of the grader: it becomes an empty
submission with the message "the notebook is not valid JSON: ...", so every check fails with that
explanation and the batch goes on.
"""

from __future__ import annotations
import __future__

import ast
import importlib.util
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOTEBOOK_MODULE = "_notebook"
_CONSTANT = re.compile(r"[A-Z][A-Z0-9_]*")
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "python", "python3"}
# Lines IPython would rewrite: `!cmd`, `%magic`, `?name`, `name?`, `x = !cmd`, `x = %magic`. None of
# them can start a valid Python statement, so replacing them by `pass` keeps valid code intact.
_MAGIC_LINE = re.compile(r"^(\s*)(?:[!%?]|[\w.]+\?{1,2}\s*$|[\w.,\s\[\]()*]+=\s*[!%])")


@dataclass
class NotebookCode:
    source: str = ""  # the content of _notebook.py
    messages: list[str] = field(default_factory=list)
    cells: int = 0  # code cells read


def extract_notebook(data: bytes, expected_modules: Sequence[str] = ()) -> NotebookCode:
    """The kept code of a notebook's bytes, with notes for the student."""
    result = NotebookCode()
    text = _decode(data, result.messages)
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as exc:
        result.messages.append(f"the notebook is not valid JSON: {str(exc)[:200]}")
        return result
    cells = _code_cells(notebook)
    if cells is None:
        result.messages.append("the file is JSON but not a Jupyter notebook (it has no cells)")
        return result
    chunks = [_HEADER]
    futures: list[str] = []  # `from __future__ import ...` must open the module: gathered, put there
    for number, source in cells:
        result.cells += 1
        kept = _keep_definitions(number, source, expected_modules, result.messages, futures)
        if kept:
            chunks.append(f"# --- cell {number} ---\n{kept}\n")
    if futures:  # right after the header's docstring
        future = f"from __future__ import {', '.join(dict.fromkeys(futures))}"
        chunks[0] = _HEADER.replace('"""\n', f'"""\n\n{future}\n', 1)
    result.source = "\n".join(chunks)
    return result


def defined_names(source: str) -> set[str] | None:
    """The names a module's top level defines (functions, classes, assigned names); None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in (t.elts if isinstance(t, ast.Tuple) else [t])
                         if isinstance(n, ast.Name))
    return names


def write_notebook_modules(code: NotebookCode, folder: Path, expected_modules: Sequence[str]) -> None:
    """_notebook.py plus one shim per expected module."""
    (folder / f"{NOTEBOOK_MODULE}.py").write_text(code.source, encoding="utf-8")
    for module in expected_modules:
        (folder / f"{module}.py").write_text(_SHIM.format(module=module), encoding="utf-8")


# ----------------------------------------------------------------------------------- reading


def _decode(data: bytes, messages: list[str]) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        messages.append(
            f"the notebook is not valid UTF-8 (byte {exc.start}); undecodable bytes were replaced"
        )
        return data.decode("utf-8-sig", errors="replace")


def _code_cells(notebook: Any) -> list[tuple[int, str]] | None:
    """(cell number counted over all cells from 1, source) of every code cell; nbformat 4, or 3 and
    older (worksheets, ``input``) converted on the way. None when this is not a notebook."""
    if not isinstance(notebook, dict):
        return None
    if isinstance(notebook.get("cells"), list):
        cells, key = notebook["cells"], "source"
    elif isinstance(notebook.get("worksheets"), list):
        cells, key = [], "input"
        for sheet in notebook["worksheets"]:
            if isinstance(sheet, dict) and isinstance(sheet.get("cells"), list):
                cells.extend(sheet["cells"])
    else:
        return None
    found = []
    for number, cell in enumerate(cells, start=1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get(key, cell.get("source", ""))
            found.append((number, "".join(source) if isinstance(source, list) else str(source)))
    return found


# ------------------------------------------------------------------------------------ cleaning


def _strip_magics(source: str) -> str | None:
    """The cell as plain Python, line numbers unchanged; None for a cell that is not Python at all."""
    lines = source.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].lstrip()[2:].split(maxsplit=1)[0] if lines[first].strip() != "%%" else ""
        if magic not in _PYTHON_CELL_MAGICS:
            return None
        lines[first] = ""
    for i, line in enumerate(lines):
        match = _MAGIC_LINE.match(line)
        if match:
            lines[i] = f"{match.group(1)}pass"
    return "\n".join(lines)


def _parse(number: int, source: str, messages: list[str]) -> tuple[ast.Module, str] | None:
    """The cell's syntax tree and the text it was parsed from (magics removed only where needed)."""
    try:
        return ast.parse(source), source
    except (SyntaxError, ValueError):
        pass
    stripped = _strip_magics(source)
    if stripped is None:
        return None
    try:
        return ast.parse(stripped), stripped
    except SyntaxError as exc:
        messages.append(f"cell {number} of the notebook is not valid Python: {exc.msg} (line {exc.lineno})")
    except ValueError as exc:  # e.g. null bytes
        messages.append(f"cell {number} of the notebook is not valid Python: {exc}")
    return None


def _keep_definitions(number: int, source: str, expected_modules: Sequence[str], messages: list[str],
                      futures: list[str]) -> str:
    parsed = _parse(number, source, messages)
    if parsed is None:
        return ""
    tree, text = parsed
    lines = text.split("\n")
    kept: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Try)):  # imports, alone or in a try
            body = node.body if isinstance(node, ast.Try) else [node]
            imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
            for future in [n for n in imports if isinstance(n, ast.ImportFrom) and n.module == "__future__"]:
                futures.extend(_future_features(future, number, messages))
                imports.remove(future)
            kept.extend(_wrapped_imports(imports, number, expected_modules, messages))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or _is_constant(node):
            if _compiles(node, number, messages):
                start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                kept.append("\n".join(lines[start - 1 : node.end_lineno]))
    return "\n".join(kept)


def _future_features(node: ast.ImportFrom, number: int, messages: list[str]) -> list[str]:
    known = [a.name for a in node.names if a.name in __future__.all_feature_names]
    for alias in node.names:
        if alias.name not in known:
            messages.append(f"cell {number} of the notebook: `from __future__ import {alias.name}` is not a "
                            "feature of this Python; it is left out")
    return known


def _compiles(node: ast.stmt, number: int, messages: list[str]) -> bool:
    """Whether a definition compiles: the parser accepts some code that Python refuses to compile
    (`return` in a class body, `nonlocal` at module level); such a definition is left out, with a note."""
    try:
        compile(ast.Module(body=[node], type_ignores=[]), "<cell>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        name = getattr(node, "name", None) or "a constant"
        messages.append(f"cell {number} of the notebook: {name} is not valid Python and is left out: "
                        f"{exc.msg} (line {node.lineno + (exc.lineno or 1) - 1})")
        return False
    return True


def _is_constant(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    else:
        return False
    names = [n for t in targets for n in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return all(isinstance(n, ast.Name) and _CONSTANT.fullmatch(n.id) for n in names)


def _wrapped_imports(nodes: Sequence[ast.Import | ast.ImportFrom], number: int, expected_modules: Sequence[str],
                     messages: list[str]) -> list[str]:
    own = {NOTEBOOK_MODULE, *expected_modules}
    wrapped = []
    for node in nodes:
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                   else [node.module or ""] if node.level == 0 else [""])
        if any(m.split(".")[0] in own for m in modules):
            continue  # the notebook's own modules: all its definitions already share one namespace
        statement = ast.unparse(node)
        missing = [m for m in modules if m and not _importable(m)]
        if missing:
            messages.append(f"cell {number} imports {missing[0]}, which the grader does not have; "
                            "that import is skipped")
        wrapped.append(f"try:\n    {statement}\nexcept Exception as _error:\n"
                       f"    _skipped_import({number}, {statement!r}, _error)")
    return wrapped


def _importable(dotted: str) -> bool:
    """Whether the grader's Python has that module, found without running any package's code. Below
    a regular package we cannot know (``tensorflow.keras`` is made at import time) and say yes; below
    a namespace package (``google``) the folders tell."""
    top, *rest = dotted.split(".")
    if top in sys.builtin_module_names or top in sys.stdlib_module_names:
        return True
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    folders = [Path(f) for f in spec.submodule_search_locations or []]
    namespace = spec.origin is None
    for part in rest:
        if not namespace:
            return True
        packages = [f / part for f in folders if (f / part).is_dir()]
        if not packages:
            return any(p.is_file() and p.name.split(".")[0] == part for f in folders if f.is_dir()
                       for p in f.iterdir())
        folders = packages
        namespace = not any((f / "__init__.py").is_file() for f in packages)
    return True


_HEADER = '''"""The definitions of the submitted notebook (imports, functions, classes, ALL_CAPS constants)."""


def _skipped_import(cell, statement, error):
    import sys

    print(f"note: cell {cell} of the notebook: `{statement}` failed ({type(error).__name__}: {error}); "
          "skipped", file=sys.stderr)
'''

_SHIM = '''"""{module}: the submitted notebook's definitions (the notebook was submitted instead of {module}.py)."""

import _notebook


def __getattr__(name):
    try:
        return getattr(_notebook, name)
    except AttributeError:
        message = f"module '{module}' has no attribute {{name!r}} (the notebook does not define it)"
        raise AttributeError(message) from None


def __dir__():
    return sorted(name for name in vars(_notebook) if not name.startswith("_"))
'''
