"""Turn what a student handed in (a folder, a notebook or a zip) into a folder of plain modules.

Nothing here runs student code: files are copied, notebooks are parsed, zips are extracted under
strict limits. Problems that leave something to grade become messages for the feedback; only input
with nothing usable at all raises SubmissionError (the CLI turns it into exit code 2).
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.intake.notebook import defined_names, extract_notebook, write_notebook_modules

MAX_MODULE_SIZE = 1024 * 1024
MAX_NOTEBOOK_SIZE = 50 * 1024 * 1024
ZIP_MAX_ENTRIES = 2000
ZIP_MAX_TOTAL = 50 * 1000 * 1000
ZIP_MAX_RATIO = 100
_ZIP_RATIO_FROM = 1024 * 1024  # below this much data, a high ratio cannot hurt
_IGNORED = {"__pycache__", "__MACOSX", ".ipynb_checkpoints", ".git", ".DS_Store"}
_MAX_DESCENT = 3


class SubmissionError(Exception):
    """Unusable input: nothing in it can be graded."""


@dataclass(frozen=True)
class Origin:
    """Where the graded code came from, so that feedback speaks of what the student sees: the modules of a
    folder, the exercise cells of a notebook, or the cells a notebook's kernel ran (grader.check)."""

    kind: str = "folder"  # "folder" | "notebook" | "kernel"
    notebook: str = ""  # the notebook's file name (kind "notebook")

    def undefined(self, module: str, name: str) -> str:
        """The feedback for a name the submission does not define."""
        if self.kind == "kernel":
            return f"{name} is not defined in this notebook's kernel yet: run the cell of exercise `{module}` first."
        if self.kind == "notebook":
            return (f"the notebook {self.notebook} does not define {name}: define it, with exactly this name, in "
                    f"the exercise cell tagged exercise:{module}.")
        return f"{module}.py does not define {name}. Define it with exactly this name."

    def defines_none(self, names: Mapping[str, Sequence[str]], assignment: str) -> str:
        """The one account, above the checks, for a submission that defines none of the assignment's names."""
        listed = ", ".join(name for group in names.values() for name in group)
        if self.kind == "kernel":
            return (f"this notebook's kernel defines none of the functions the lab asks for: {listed}; run the "
                    "lab's exercise cells (tagged exercise:<module>) first, then check again.")
        if self.kind == "notebook":
            return (f"this notebook ({self.notebook}) defines none of the functions the lab asks for: {listed}; "
                    f"start from the assignment's {f'{assignment}.ipynb' if assignment else 'notebook'}, whose "
                    "exercise cells are tagged "
                    "exercise:<module>.")
        modules = ", ".join(f"{module}.py" for module in names)
        return (f"this folder defines none of the functions the lab asks for: {listed}; start from the "
                f"assignment's stubs ({modules}), which name each of them.")


@dataclass
class PreparedSubmission:
    name: str  # the submission's id: its file or folder name ("alice.ipynb" -> "alice")
    source: Path  # what the user passed
    directory: Path  # a fresh temp folder of plain .py modules for the sandbox (call cleanup())
    kind: str  # "folder" | "notebook" | "zip"
    messages: list[str] = field(default_factory=list)
    workspace: Path | None = None  # the temp folder that holds `directory` (and a zip's extraction)
    origin: Origin = field(default_factory=Origin)

    def cleanup(self) -> None:
        shutil.rmtree(self.workspace or self.directory, ignore_errors=True)


def prepare_submission(path: Path, expected_modules: Sequence[str], names: Mapping[str, Sequence[str]] | None = None,
                       *, assignment: str = "", kernel: bool = False) -> PreparedSubmission:
    """names: what each expected module must define; a submission that defines none of them gets one message
    saying so, first. kernel: the notebook holds the cells a notebook kernel ran (grader.check)."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path} does not exist")
    workspace = Path(tempfile.mkdtemp(prefix="convgrader-submission-"))
    directory = workspace / "modules"
    directory.mkdir()
    messages: list[str] = []
    try:
        if path.is_dir():
            kind, name = "folder", path.resolve().name
            notebook = _from_tree(path, directory, expected_modules, messages)
        elif path.suffix.lower() == ".ipynb":
            kind, name, notebook = "notebook", path.stem, path.name
            _from_notebook(_read_notebook(path), directory, expected_modules, messages)
        elif path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
            kind, name = "zip", path.stem
            extracted = workspace / "extracted"
            _extract_zip(path, extracted)
            notebook = _from_tree(extracted, directory, expected_modules, messages)
        else:
            raise SubmissionError(f"{path.name} is not a folder, a notebook (.ipynb) or a zip")
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    origin = Origin("kernel") if kernel else Origin("notebook", notebook) if notebook else Origin()
    if names and _defines_none(directory, names, notebook is not None):
        messages.insert(0, origin.defines_none(names, assignment))
    return PreparedSubmission(name=name, source=path, directory=directory, kind=kind, messages=messages,
                              workspace=workspace, origin=origin)


def _defines_none(directory: Path, names: Mapping[str, Sequence[str]], notebook: bool) -> bool:
    """Whether the prepared modules define none of `names` (False when a module does not parse: we cannot know)."""
    files = [directory / "_notebook.py"] if notebook else [directory / f"{module}.py" for module in names]
    found: set[str] = set()
    for file in files:
        if not file.is_file():
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        defined = defined_names(text)
        if defined is None or (notebook and not text):  # unparsable, or a notebook that could not be read at all
            return False
        found |= defined
    return not any(name in found for group in names.values() for name in group)


# ------------------------------------------------------------------------------------- folders


def _from_tree(root: Path, target: Path, expected: Sequence[str], messages: list[str]) -> str | None:
    """A folder of modules (or one holding a single sub-folder of them), or a folder with one notebook: the
    notebook's file name when the code came from one."""
    folder = _module_folder(root)
    modules = {p.stem: p for p in _entries(folder) if p.suffix == ".py"}
    notebooks = sorted(p for p in _entries(folder) if p.suffix.lower() == ".ipynb")
    if not any(name in modules for name in expected) and notebooks:
        if len(notebooks) > 1:
            names = ", ".join(p.name for p in notebooks)
            raise SubmissionError(f"{root.name} holds several notebooks ({names}) and no modules: submit one")
        _from_notebook(_read_notebook(notebooks[0]), target, expected, messages)
        return notebooks[0].name
    if not any(name in modules for name in expected):
        wanted = ", ".join(f"{m}.py" for m in expected)
        raise SubmissionError(f"{root.name} holds none of the assignment's modules ({wanted}) and no notebook")
    for stem, path in sorted(modules.items()):
        _copy_module(path, folder, target / f"{stem}.py", messages)
    missing = [m for m in expected if not (target / f"{m}.py").exists()]
    for module in missing:
        near = [p.name for p in modules.values() if p.stem != module and _normalised(p.stem) == module]
        hint = f" ({near[0]} was found: names are case-sensitive and exact)" if near else ""
        messages.append(f"the submission has no {module}.py{hint}; the checks of {module} fail")
    return None


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name not in _IGNORED and not p.name.startswith("._"))


def _module_folder(root: Path) -> Path:
    """Go down while a folder holds no modules or notebooks and exactly one sub-folder."""
    folder = root
    for _ in range(_MAX_DESCENT):
        entries = _entries(folder)
        if any(p.suffix in (".py", ".ipynb") for p in entries if not p.is_dir()):
            return folder
        folders = [p for p in entries if p.is_dir() and not p.is_symlink()]
        if len(folders) != 1:
            return folder
        folder = folders[0]
    return folder


def _copy_module(path: Path, folder: Path, target: Path, messages: list[str]) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", path.stem):
        return  # cannot be imported under that name anyway
    if path.is_symlink():
        real = path.resolve()
        if not real.is_relative_to(folder.resolve()):
            messages.append(f"{path.name} is a link to a file outside the submission and was left out")
            return
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        return
    if info.st_size > MAX_MODULE_SIZE:
        messages.append(f"{path.name} is larger than 1 MiB and was left out")
        return
    target.write_bytes(path.read_bytes())


def _normalised(stem: str) -> str:
    """'Models', 'models (1)', 'models-copy', 'models_2' -> 'models': near misses worth a hint."""
    stem = re.sub(r"[\s_-]*(\(\d+\)|copy|\d+)$", "", stem.strip(), flags=re.IGNORECASE)
    return stem.lower()


# ----------------------------------------------------------------------------------- notebooks


def _read_notebook(path: Path) -> bytes:
    if path.stat().st_size > MAX_NOTEBOOK_SIZE:
        raise SubmissionError(f"{path.name} is larger than {MAX_NOTEBOOK_SIZE // 1024**2} MiB")
    return path.read_bytes()


def _from_notebook(data: bytes, target: Path, expected: Sequence[str], messages: list[str]) -> None:
    code = extract_notebook(data, expected)
    messages.extend(code.messages)
    write_notebook_modules(code, target, expected)


# --------------------------------------------------------------------------------------- zips


def _extract_zip(path: Path, target: Path) -> None:
    """Extract with limits that do not trust the archive's own headers: entry count, total bytes
    actually read, and bytes read per byte of archive; unsafe names and links are refused."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SubmissionError(f"{path.name} is not a valid zip file: {exc}") from None
    budget = _ZipBudget(path.stat().st_size, path.name)
    target.mkdir()
    with archive:
        entries = archive.infolist()
        if len(entries) > ZIP_MAX_ENTRIES:
            raise SubmissionError(f"{path.name} holds more than {ZIP_MAX_ENTRIES} entries")
        for entry in entries:
            parts = _safe_parts(entry, path.name)
            if not parts or parts[0] == "__MACOSX" or parts[-1] in (".DS_Store",):
                continue
            destination = target.joinpath(*parts)
            folder = destination if entry.is_dir() else destination.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                raise SubmissionError(f"{path.name} has conflicting entries ({entry.filename})") from None
            if not entry.is_dir():
                _extract_entry(archive, entry, destination, budget)


def _safe_parts(entry: zipfile.ZipInfo, archive: str) -> tuple[str, ...]:
    name = entry.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise SubmissionError(f"{archive} has an entry with an absolute path ({entry.filename}); nothing was graded")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise SubmissionError(f"{archive} has an entry that points outside it ({entry.filename}); nothing was graded")
    if stat.S_ISLNK(entry.external_attr >> 16):
        raise SubmissionError(f"{archive} has a symbolic link ({entry.filename}); nothing was graded")
    return parts


class _ZipBudget:
    def __init__(self, archive_size: int, name: str) -> None:
        self.archive_size = max(archive_size, 1)
        self.name = name
        self.total = 0

    def spend(self, size: int) -> None:
        self.total += size
        if self.total > ZIP_MAX_TOTAL:
            raise SubmissionError(f"{self.name} unpacks to more than {ZIP_MAX_TOTAL // 1000**2} MB")
        if self.total > _ZIP_RATIO_FROM and self.total / self.archive_size > ZIP_MAX_RATIO:
            raise SubmissionError(
                f"{self.name} unpacks to more than {ZIP_MAX_RATIO} times its size (a zip bomb?)"
            )


def _extract_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, destination: Path, budget: _ZipBudget) -> None:
    try:
        with archive.open(entry) as source, open(destination, "xb") as sink:
            while chunk := source.read(64 * 1024):
                budget.spend(len(chunk))
                sink.write(chunk)
    except FileExistsError:
        raise SubmissionError(f"{budget.name} holds {entry.filename} twice") from None
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
        raise SubmissionError(f"{budget.name} could not be unpacked ({entry.filename}: {exc})") from None
