"""Generate the student assignment from the reference solutions.

``solutions/<assignment>/*.py`` hold the reference code; every piece a student must
write sits between solution markers::

    def prepare_images(images):
        \"\"\"...\"\"\"
        # BEGIN SOLUTION hint: convert to float32 and divide by 255
        # hint: (more hint lines may follow, each starting with "# hint:")
        ...
        # END SOLUTION

``release()`` writes ``assignments/<assignment>/``: the same modules with each marked
block replaced by ``raise NotImplementedError("<hint>")`` (or, at module level, by
``NAME = None  # TODO: <hint>``), plus the assignment notebook. The output depends only
on the solutions, so ``release(check=True)`` can tell whether the committed copy is stale.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.assignment import Assignment
from grader.authoring.notebook import build_notebook

SOLUTION_MARKERS = ("# BEGIN SOLUTION", "# END SOLUTION")
_HINT_PREFIX = "hint:"
_DEFAULT_HINT = "write your solution here"
_GENERATED_SUFFIXES = (".py", ".ipynb")


@dataclass
class _Block:
    """One marked block: where it starts, its indentation, its hint and its code lines."""

    line: int  # 1-based line number of the BEGIN marker
    indent: str
    hint_lines: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)

    @property
    def hint(self) -> str:
        return " ".join(self.hint_lines) or _DEFAULT_HINT


def _split(source: str) -> list[str | _Block]:
    """The source as a sequence of plain lines and marked blocks (markers removed)."""
    begin, end = SOLUTION_MARKERS
    parts: list[str | _Block] = []
    block: _Block | None = None
    in_hint = False
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped.startswith(begin):
            if block is not None:
                raise ValueError(f"line {number}: {begin} inside the block opened on line {block.line}")
            block = _Block(line=number, indent=line[: len(line) - len(line.lstrip())])
            rest = stripped[len(begin) :].strip()
            if rest.startswith(_HINT_PREFIX):
                block.hint_lines.append(rest[len(_HINT_PREFIX) :].strip())
            elif rest:
                raise ValueError(f"line {number}: expected '{_HINT_PREFIX}' after {begin}, got {rest!r}")
            in_hint = True
        elif stripped.startswith(end):
            if block is None:
                raise ValueError(f"line {number}: {end} without {begin}")
            parts.append(block)
            block, in_hint = None, False
        elif block is not None:
            if in_hint and stripped.startswith("# " + _HINT_PREFIX):
                block.hint_lines.append(stripped[len("# " + _HINT_PREFIX) :].strip())
                continue
            in_hint = False
            block.body.append(line)
        else:
            parts.append(line)
    if block is not None:
        raise ValueError(f"line {block.line}: {begin} is never closed by {end}")
    return parts


def _quote(text: str) -> str:
    """A Python string literal for ``text``, double-quoted when that needs no escapes."""
    if '"' not in text and "\\" not in text and text.isprintable():
        return f'"{text}"'
    return repr(text)


def _function_stub(block: _Block) -> str:
    indent = block.indent
    if len(block.hint_lines) <= 1:
        return f"{indent}raise NotImplementedError({_quote(block.hint)})\n"
    pieces = [line + " " for line in block.hint_lines[:-1]] + [block.hint_lines[-1]]
    body = "".join(f"{indent}    {_quote(piece)}\n" for piece in pieces)
    return f"{indent}raise NotImplementedError(\n{body}{indent})\n"


def _module_stub(block: _Block) -> str:
    """``NAME = None  # TODO: hint`` for each name a module-level block assigns."""
    try:
        tree = ast.parse("".join(block.body))
    except SyntaxError as error:
        raise ValueError(f"line {block.line}: module-level solution block does not parse: {error}") from error
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            targets = []
        if not targets or not all(isinstance(target, ast.Name) for target in targets):
            raise ValueError(f"line {block.line}: a module-level solution block may only assign names")
        names.extend(target.id for target in targets if isinstance(target, ast.Name))
    if len(block.hint_lines) <= 1:
        return "".join(f"{name} = None  # TODO: {block.hint}\n" for name in names)
    comments = "".join(f"# {'TODO: ' if i == 0 else '  '}{line}\n" for i, line in enumerate(block.hint_lines))
    return comments + "".join(f"{name} = None  # TODO\n" for name in names)


def stub_source(solution_source: str) -> str:
    """The student version of a solution module: every marked block replaced by a stub.

    Raises:
        ValueError: markers are unbalanced or nested, a module-level block does something
            other than assign names, or the result is not valid Python.
    """
    out = []
    for part in _split(solution_source):
        if isinstance(part, str):
            out.append(part)
        elif part.indent:
            out.append(_function_stub(part))
        else:
            out.append(_module_stub(part))
    stub = "".join(out)
    try:
        ast.parse(stub)
    except SyntaxError as error:
        raise ValueError(f"the generated stub does not parse: {error}") from error
    return stub


def _solution_modules(repo_root: Path, assignment: str) -> list[Path]:
    folder = repo_root / "solutions" / assignment
    modules = sorted(path for path in folder.glob("*.py") if not path.name.startswith("_"))
    if not modules:
        raise FileNotFoundError(f"no solution modules in {folder}")
    return modules


def _outside_blocks(parts: list[str | _Block]) -> str:
    """The text a student sees anyway: everything but the block bodies (hints included)."""
    return "".join(p if isinstance(p, str) else " ".join(p.hint_lines) for p in parts)


def solution_block_texts(repo_root: Path, assignment: Assignment) -> list[str]:
    """The secret lines of the solutions: a test asserts none of them reaches a student.

    These are the stripped code lines inside the marked blocks, leaving out comments,
    short lines (``return model``, brackets) and lines that the module shows anyway
    outside its blocks (e.g. an idiom quoted in a docstring or a hint).
    """
    texts: list[str] = []
    for module in _solution_modules(repo_root, assignment.name):
        parts = _split(module.read_text(encoding="utf-8"))
        shown = _outside_blocks(parts)
        for block in parts:
            if isinstance(block, str):
                continue
            for line in block.body:
                text = line.strip()
                if len(text) >= 16 and not text.startswith("#") and text not in shown and text not in texts:
                    texts.append(text)
    return texts


def _without_local_imports(stub: str, local_modules: set[str]) -> str:
    """Drop ``from <sibling module> import ...`` lines: notebook cells share one namespace."""
    lines = stub.splitlines(keepends=True)
    drop: set[int] = set()
    for node in ast.parse(stub).body:
        if isinstance(node, ast.ImportFrom) and node.module in local_modules and node.level == 0:
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
        elif isinstance(node, ast.Import) and any(alias.name in local_modules for alias in node.names):
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    kept = "".join(line for index, line in enumerate(lines) if index not in drop)
    return re.sub(r"\n{4,}", "\n\n\n", kept)


def render_assignment(repo_root: Path, assignment: Assignment) -> dict[str, str]:
    """Every file of ``assignments/<name>/`` (relative path -> text), generated in memory: the stubs, and the
    notebook where the assignment declares one."""
    target = Path("assignments") / assignment.name
    stubs = {
        path.stem: stub_source(path.read_text(encoding="utf-8"))
        for path in _solution_modules(repo_root, assignment.name)
    }
    files = {(target / f"{name}.py").as_posix(): text for name, text in stubs.items()}
    if assignment.notebook:
        cells = {name: _without_local_imports(text, set(stubs)) for name, text in stubs.items()}
        files[(target / f"{assignment.name}.ipynb").as_posix()] = build_notebook(assignment.notebook, cells)
    return files


def release(repo_root: Path, assignment: Assignment, check: bool = False) -> list[str]:
    """Generate ``assignments/<assignment>/`` from ``solutions/<assignment>/``.

    Args:
        repo_root: the repository's root folder.
        assignment: the assignment; its name is its folder's under ``solutions/`` and ``assignments/``.
        check: only compare, write nothing.

    Returns:
        The stale files (``check=True``) or the files written or removed (``check=False``),
        as paths relative to ``repo_root``, sorted. A file is stale when its content differs
        from what would be generated, when it is missing, or when it is a ``.py``/``.ipynb``
        file in the assignment folder that the generator does not produce.
    """
    repo_root = Path(repo_root)
    expected = render_assignment(repo_root, assignment)
    folder = repo_root / "assignments" / assignment.name
    changed = []
    for relative, text in expected.items():
        path = repo_root / relative
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            changed.append(relative)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(text.encode("utf-8"))
    extra = [
        path
        for path in (folder.iterdir() if folder.is_dir() else [])
        if path.is_file()
        and path.suffix in _GENERATED_SUFFIXES
        and path.relative_to(repo_root).as_posix() not in expected
    ]
    for path in extra:
        changed.append(path.relative_to(repo_root).as_posix())
        if not check:
            path.unlink()
    return sorted(changed)
