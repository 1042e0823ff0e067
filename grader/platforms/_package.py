"""What every platform package holds: the grader's wheel (all suites, hidden checks included), the pinned
requirements of the versions installed here (those the release was tested with), and the assignment's data
set with its SHA-256 sums, so that no package depends on a platform's apt offering the data."""

from __future__ import annotations

import email
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from grader.assignment import Assignment

SUMS = "SHA256SUMS"


def build_wheel(root: Path, target: Path) -> Path:
    """Build the grader's wheel from the checkout at `root` into `target`; returns the wheel's path.

    The build runs on a copy of the package's sources, so the checkout gets no build/ or egg-info folder.
    """
    root = Path(root).resolve()
    if not (root / "pyproject.toml").is_file() or not (root / "grader" / "__init__.py").is_file():
        raise ValueError(f"Received: --root {root}, expected the grader's checkout (with pyproject.toml and grader/)")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="convgrader-wheel-") as scratch:
        source = Path(scratch) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            if (root / name).is_file():
                shutil.copy2(root / name, source / name)
        shutil.copytree(root / "grader", source / "grader",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache"))
        out = Path(scratch) / "dist"
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                   "--disable-pip-version-check", "-q", "-w", str(out), str(source)]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(out.glob("convgrader-*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise RuntimeError(f"building the grader's wheel failed (pip exit {done.returncode}):\n"
                               f"{done.stderr[-3000:]}")
        built = target / wheels[0].name
        shutil.copy2(wheels[0], built)
    _check_wheel(built)
    return built


def _check_wheel(wheel: Path) -> None:
    """The wheel must hold every suite file, hidden checks included (the bundle's stripping is not for here)."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    suites = Path(__file__).resolve().parent.parent / "suites"
    missing = [str(p.relative_to(suites.parent.parent)) for p in suites.rglob("*.py")
               if "__pycache__" not in p.parts and str(p.relative_to(suites.parent.parent)) not in names]
    if missing:
        raise RuntimeError(f"the grader's wheel lacks suite files: {', '.join(sorted(missing))}")


def pinned_requirements(wheel: Path) -> list[str]:
    """`name==version` for every distribution the wheel needs here, transitively, as installed now."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(meta_name))
    pending = [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]
    pinned: dict[str, str] = {}
    while pending:
        requirement = pending.pop()
        extras = requirement.extras
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in pinned:
            continue
        try:
            distribution = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(f"{requirement.name} (needed by the grader) is not installed here; install it and "
                               "test the release with it before packaging") from None
        pinned[name] = f"{distribution.metadata['Name']}=={distribution.version}"
        for text in distribution.requires or []:
            dependency = Requirement(text)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in (extras or {""})):
                dependency.marker = None
                pending.append(dependency)
    return [pinned[name] for name in sorted(pinned)]


def copy_dataset(target: Path, assignment: Assignment) -> dict[str, str]:
    """The assignment's data files (verified here) and a SHA256SUMS file for `sha256sum -c` into a folder of
    target named after the data set; returns the scripts' fields: `data` (that folder) and `data_env` (the
    variable the data set's loader reads). Raises ValueError for an assignment without a data set."""
    if assignment.dataset is None:
        raise ValueError(f"assignment {assignment.name!r} declares no data set; the platform packages carry "
                         "one (see docs/changing-the-lab.md)")
    dataset = assignment.dataset_module()
    source = dataset.find_dataset_dir()
    dataset.load(source)  # verifies every hash; raises DatasetError otherwise
    folder = target / dataset.NAME
    folder.mkdir(parents=True, exist_ok=True)
    for name in dataset.FILES:
        shutil.copyfile(source / name, folder / name)
    (folder / SUMS).write_text("".join(f"{dataset.SHA256[name]}  {name}\n" for name in dataset.FILES),
                               encoding="utf-8")
    return {"data": dataset.NAME, "data_env": dataset.ENV_VAR}


def python_version() -> str:
    """The Python the pinned requirements were resolved for (major.minor)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"
