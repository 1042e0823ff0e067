"""`grader pack`: what a student hands in, checked and made small.

It looks for the assignment's modules (or one notebook), refuses files that are not valid Python
with the line to fix, strips notebook outputs, and writes a zip that `grader grade` takes as it is.
Nothing of the student's code is run.
"""

from __future__ import annotations

import ast
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grader.intake.notebook import extract_notebook

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same content gives the same zip, byte for byte


class PackError(Exception):
    """The submission cannot be packed; the message says what to fix."""


@dataclass
class PackReport:
    archive: Path
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    size: int = 0


def pack(path: Path, archive: Path, expected_modules: Sequence[str]) -> PackReport:
    path = Path(path)
    if path.is_file() and path.suffix == ".ipynb":
        contents, warnings = _notebook(path)
    elif path.is_dir():
        notebooks = sorted(path.glob("*.ipynb"))
        if any((path / f"{m}.py").is_file() for m in expected_modules):
            contents, warnings = _modules(path, expected_modules)
        elif len(notebooks) == 1:
            contents, warnings = _notebook(notebooks[0])
        else:
            found = ", ".join(p.name for p in notebooks) or "none"
            raise PackError(f"{path} holds none of the modules {', '.join(f'{m}.py' for m in expected_modules)} "
                            f"and not exactly one notebook (found: {found}). Pass the folder with your modules "
                            "or the notebook itself.")
    else:
        raise PackError(f"Received: {path}. Pass the folder holding your modules, or your .ipynb notebook.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for name, data in sorted(contents.items()):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zipped.writestr(info, data)
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(buffer.getvalue())
    return PackReport(archive, sorted(contents), warnings, len(buffer.getvalue()))


def _modules(folder: Path, expected: Sequence[str]) -> tuple[dict[str, bytes], list[str]]:
    contents: dict[str, bytes] = {}
    warnings = []
    errors = []
    for module in expected:
        file = folder / f"{module}.py"
        if not file.is_file():
            warnings.append(f"{module}.py is missing: its checks will fail.")
            continue
        data = file.read_bytes()
        try:
            ast.parse(data.decode("utf-8"), filename=file.name)
        except UnicodeDecodeError:
            errors.append(f"{file.name} is not UTF-8 text: save it as UTF-8.")
            continue
        except SyntaxError as exc:
            errors.append(f"{file.name}, line {exc.lineno}: {exc.msg}. Fix it, then pack again.")
            continue
        contents[file.name] = data
    if errors:
        raise PackError("\n".join(errors))
    return contents, warnings


def _notebook(path: Path) -> tuple[dict[str, bytes], list[str]]:
    data = path.read_bytes()
    code = extract_notebook(data)
    problems = [m for m in code.messages if "not valid" in m or "not a Jupyter notebook" in m]
    if problems:
        raise PackError("\n".join(problems))
    notebook = json.loads(data.decode("utf-8-sig"))
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    stripped = json.dumps(notebook, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
    return {path.name: stripped}, [m for m in code.messages if m not in problems]
