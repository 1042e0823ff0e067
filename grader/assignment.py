"""An assignment, declared once, by its own package: everything the core knows of a lab comes from here.

An assignment is a package under `grader.suites` (one folder per lab) whose
`__init__.py` defines `ASSIGNMENT = Assignment(...)`: its exercise modules in order, what each must define,
its suites (the package's `test_*.py`), the data set the judge trains on, the input shape of its Keras
models and the student notebook's narrative. The judge, intake, training, reports and authoring take an
`Assignment` and name no lab; `load()` finds one by name (or the only one installed).

Assignments outside the grader's own package (an instructor's own lab) are found in the folders that
`$GRADER_ASSIGNMENTS` lists (os.pathsep-separated), each holding assignment packages: see
docs/changing-the-lab.md.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ENV_VAR = "GRADER_ASSIGNMENTS"
SUITES_PACKAGE = "grader.suites"

# A notebook cell: ("markdown", text), ("code", text), ("exercise", module) or ("check", module; "" for all).
Cell = tuple[str, str]


class UnknownAssignment(ValueError):
    """No installed assignment has this name (or none, or several, when no name was given)."""


@dataclass(frozen=True)
class Assignment:
    """One lab: what a submission holds, how the judge grades it, what a student is given."""

    name: str  # the package's name under grader.suites, and the folder name under solutions/ and assignments/
    title: str
    modules: tuple[str, ...]  # the exercise modules, in the order a student meets them (and reports list them)
    names: Mapping[str, tuple[str, ...]]  # module -> the public names it must define (stubs, notebook cells)
    package: str = ""  # the suite package (default grader.suites.<name>)
    input_shape: tuple[int, ...] | None = None  # the input of the students' Keras models; None: no models
    dataset: str | None = None  # a module of grader.datasets (load(), prepare()); None: no training data
    drivers: bool = False  # the package has a `drivers` module that the sandbox imports
    notebook: Sequence[Cell] = field(default=(), repr=False)  # the student notebook; () for modules only

    def __post_init__(self) -> None:
        if not self.package:
            object.__setattr__(self, "package", f"{SUITES_PACKAGE}.{self.name}")
        missing = [m for m in self.modules if m not in self.names]
        if missing or set(self.names) - set(self.modules):
            raise ValueError(f"assignment {self.name!r}: `names` must have one entry per module; "
                             f"Received: modules {list(self.modules)}, names for {sorted(self.names)}")

    @property
    def folder(self) -> Path:
        """The suite package's folder: the judge runs pytest over its test_*.py."""
        return Path(importlib.import_module(self.package).__file__ or "").parent

    @property
    def drivers_module(self) -> str | None:
        return f"{self.package}.drivers" if self.drivers else None

    def dataset_module(self) -> ModuleType:
        if self.dataset is None:
            raise UnknownAssignment(f"assignment {self.name!r} declares no data set")
        return importlib.import_module(f"grader.datasets.{self.dataset}")

    def load_dataset(self) -> Any:
        """The data set, read and verified (a DatasetError, a grader fault, where it cannot be)."""
        return self.dataset_module().load()


def installed() -> list[str]:
    """The names of the assignments installed: the grader's own and those in $GRADER_ASSIGNMENTS."""
    package = importlib.import_module(SUITES_PACKAGE)
    extra = extra_folders()  # $GRADER_ASSIGNMENTS as it is now (grader.suites read it when first imported)
    for folder in extra:
        if folder not in package.__path__:
            package.__path__.append(folder)
    own = str(Path(package.__file__ or "").parent)
    names = set()
    for info in pkgutil.iter_modules([own, *extra]):
        if info.ispkg and not info.name.startswith("_"):
            names.add(info.name)
    return sorted(names)


def load(name: str | None = None) -> Assignment:
    """The assignment called `name`; without a name, the only one installed."""
    names = installed()
    if not name:
        if len(names) != 1:
            raise UnknownAssignment(f"{len(names)} assignments are installed ({', '.join(names) or 'none'}): "
                                    "name one with --assignment NAME")
        name = names[0]
    if name not in names:
        raise UnknownAssignment(f"no assignment called {name!r}; Received: {name!r}, expected one of "
                                f"{', '.join(names) or '(none installed)'}. Assignments outside the grader "
                                f"are found in the folders ${ENV_VAR} lists.")
    module = importlib.import_module(f"{SUITES_PACKAGE}.{name}")
    assignment = getattr(module, "ASSIGNMENT", None)
    if not isinstance(assignment, Assignment):
        raise UnknownAssignment(f"{module.__name__} defines no ASSIGNMENT = Assignment(...)")
    return assignment


def extra_folders() -> list[str]:
    """The folders $GRADER_ASSIGNMENTS lists that exist."""
    return [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p and os.path.isdir(p)]


def default_data() -> Any:
    """The data set of the only assignment installed (a caller with an assignment of its own loads its own)."""
    return load().load_dataset()
