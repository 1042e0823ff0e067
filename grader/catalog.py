"""What an assignment grades: its checks, points and visibility, read from the suites without running them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from grader.checks import CheckSpec
from grader.results import EXERCISES

SUITE_MODULES = {name: f"test_{name}" for name in EXERCISES}


@dataclass(frozen=True)
class CatalogEntry:
    spec: CheckSpec
    cases: int  # parametrised sub-checks, each worth spec.points

    @property
    def points(self) -> float:
        return self.spec.points * self.cases


def entries(assignment: str = "convolutions") -> list[CatalogEntry]:
    found = []
    for exercise, module_name in SUITE_MODULES.items():
        try:
            module = importlib.import_module(f"grader.suites.{assignment}.{module_name}")
        except ModuleNotFoundError:
            continue
        for value in vars(module).values():
            spec = getattr(value, "__grader_check__", None)
            if isinstance(spec, CheckSpec) and spec.exercise == exercise:
                found.append(CatalogEntry(spec, _cases(value)))
    return found


def list_checks(include_hidden: bool = True, assignment: str = "convolutions") -> list[str]:
    lines = [f"assignment: {assignment}"]
    by_exercise: dict[str, list[CatalogEntry]] = {}
    for entry in entries(assignment):
        if entry.spec.hidden and not include_hidden:
            continue
        by_exercise.setdefault(entry.spec.exercise, []).append(entry)
    total = 0.0
    for exercise in EXERCISES:
        group = by_exercise.get(exercise, [])
        points = sum(e.points for e in group)
        total += points
        lines.append(f"\n{exercise}.py  ({points:g} points)")
        for entry in group:
            flags = [t for t in entry.spec.tags if t != exercise]
            if entry.spec.hidden:
                flags.insert(0, "hidden")
            cases = f" x{entry.cases}" if entry.cases > 1 else ""
            tag = f"  [{', '.join(flags)}]" if flags else ""
            lines.append(f"  {entry.spec.points:>4g}{cases:<4} {entry.spec.title}{tag}")
    lines.append(f"\ntotal: {total:g} points" + ("" if include_hidden else " (public checks)"))
    return lines


def _cases(function: object) -> int:
    count = 1
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "parametrize" and len(mark.args) >= 2:
            count *= max(1, len(mark.args[1]))
    return count
