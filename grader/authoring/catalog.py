"""What an assignment grades: its checks, points and visibility, as pytest itself collects its suites
(nothing is run): the same items, parametrised cases and declarations that grading sees."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

from grader.assignment import Assignment
from grader.checks import CheckSpec, register_marker, spec_of
from grader.faults import GraderFault
from grader.judge.plugin import plugin_autoload_disabled, suite_arguments, validate_declarations


@dataclass(frozen=True)
class CatalogEntry:
    spec: CheckSpec
    cases: int  # parametrised sub-checks, each worth spec.points

    @property
    def points(self) -> float:
        return self.spec.points * self.cases


class _Collector:
    """A pytest plugin that keeps the collected checks (and validates their declarations, as grading does)."""

    def __init__(self) -> None:
        self.specs: list[CheckSpec] = []

    def pytest_configure(self, config: Any) -> None:
        register_marker(config)

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        validate_declarations(items)
        self.specs = [spec for item in items if (spec := spec_of(item)) is not None]


def entries(assignment: Assignment) -> list[CatalogEntry]:
    """One entry per declared check, in the assignment's exercise order and the suites' own order within;
    raises GraderFault (with pytest's words) when the suites do not collect."""
    import pytest

    collector = _Collector()
    sink = io.StringIO()
    with plugin_autoload_disabled(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        code = pytest.main([*suite_arguments(assignment.folder), "--collect-only"], plugins=[collector])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise GraderFault(f"the suites of {assignment.name} do not collect (pytest exit {code}):\n"
                          f"{sink.getvalue()[-4000:]}", fix="fix the suite files that pytest names above")
    counts: dict[str, int] = {}
    specs: dict[str, CheckSpec] = {}
    for spec in collector.specs:
        counts[spec.name] = counts.get(spec.name, 0) + 1
        specs.setdefault(spec.name, spec)
    order = {name: i for i, name in enumerate(assignment.modules)}
    ordered = sorted(specs.values(), key=lambda spec: order.get(spec.exercise, len(order)))  # stable within
    return [CatalogEntry(spec, counts[spec.name]) for spec in ordered]


def list_checks(assignment: Assignment, include_hidden: bool = True) -> list[str]:
    lines = [f"assignment: {assignment.name}"]
    by_exercise: dict[str, list[CatalogEntry]] = {}
    for entry in entries(assignment):
        if entry.spec.hidden and not include_hidden:
            continue
        by_exercise.setdefault(entry.spec.exercise, []).append(entry)
    total = 0.0
    for exercise in [*assignment.modules, *(e for e in by_exercise if e not in assignment.modules)]:
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
