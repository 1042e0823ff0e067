"""The pytest plugin that turns suite runs into CheckResults.

The judge runs pytest in-process on a suite folder with one `GraderPlugin` instance. The plugin
selects the checks for the run (hidden ones only when grading, accuracy gates only when training),
skips a check whose dependency did not pass, numbers the checks, and records each outcome as data.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from grader.checks import CheckSpec, Mismatch, register_marker, spec_of
from grader.faults import DOCTOR, GraderFault, describe_fault
from grader.results import CheckResult


@dataclass
class GradingContext:
    """What the suites' fixtures hand to checks, and what the checks leave behind."""

    student: Any  # grader.judge.student.Student
    assignment: Any = None  # grader.assignment.Assignment: its modules order the checks
    skip_training: bool = False
    run_hidden: bool = False
    cache: Any = None  # grader.training.cache.TrainingCache | None
    seed: int = 0
    progress: Any = None  # callable(epoch, epochs, logs) for training progress
    artifacts: dict[str, Any] = field(default_factory=dict)  # e.g. activation maps for reports
    on_record: Any = None  # callable(list[CheckResult]) after each check: partial results survive a cut-off
    cut_off: Any = None  # callable() -> str: why the submission's time budget stopped the grading ("" while not)


CONTEXT = pytest.StashKey[GradingContext]()
_GRADER_FAULT = pytest.StashKey[bool]()  # on an item skipped because a check it needs hit a grader error


class GraderPlugin:
    """Registered with pytest.main(plugins=[...]); collects one CheckResult per check."""

    def __init__(self, context: GradingContext) -> None:
        self.context = context
        self.results: dict[str, CheckResult] = {}
        self._item_keys: dict[str, str] = {}
        self._started: dict[str, float] = {}
        self._failed_names: set[str] = set()
        self._passed_names: set[str] = set()
        self._errored_names: set[str] = set()  # checks the grader itself failed in
        self._fault = ""  # a GraderFault met by one check: the environment is broken for all

    def pytest_configure(self, config: pytest.Config) -> None:
        register_marker(config)
        config.stash[CONTEXT] = self.context

    # --- selection and numbering -------------------------------------------------------------
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        validate_declarations(items)
        keep, drop = [], []
        for item in items:
            spec = spec_of(item)
            if spec is None or (spec.hidden and not self.context.run_hidden):
                drop.append(item)
            elif "accuracy" in spec.tags and self.context.skip_training:
                drop.append(item)
            else:
                keep.append(item)
        modules = list(getattr(self.context.assignment, "modules", ()))
        modules += [e for e in dict.fromkeys(_spec(it).exercise for it in keep) if e not in modules]
        order = {name: i for i, name in enumerate(modules)}
        keep.sort(key=lambda it: order.get(_spec(it).exercise, len(order)))  # stable: file order within
        counters: dict[str, int] = {}
        for item in keep:
            spec = _spec(item)
            counters[spec.exercise] = counters.get(spec.exercise, 0) + 1
            number = f"{order.get(spec.exercise, len(order)) + 1}.{counters[spec.exercise]}"
            key = _check_id(spec, item)
            self._item_keys[item.nodeid] = key
            title = spec.title + (f" [{_param_label(item)}]" if _param_label(item) else "")
            self.results[key] = CheckResult(
                id=key, name=title, exercise=spec.exercise, number=number, max_score=spec.points, score=0.0,
                status="failed", hidden=spec.hidden, tags=_tags(spec), output="not run",
            )
        if drop:
            config.hook.pytest_deselected(items=drop)
        # The accuracy gates run last, numbered where they belong: what they train starts training in the
        # background when the session starts (grader.training.background) and is ready by then.
        items[:] = sorted(keep, key=lambda it: "accuracy" in _spec(it).tags)  # stable: the others keep their order

    # --- dependencies ----------------------------------------------------------------------------
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        spec = spec_of(item)
        if spec is None:
            return
        self._started[item.nodeid] = time.perf_counter()
        if self._cut_off():
            pytest.skip(f"not graded: {self._cut_off()}")
        if self._fault:  # the grader's environment failed (GraderFault): no other check can be graded either
            self._errored_names.add(spec.name)
            item.stash[_GRADER_FAULT] = True
            pytest.skip(f"not graded: the grader failed earlier ({self._fault})")
        for dependency in spec.depends:
            if dependency in self._errored_names:  # the grader failed there: this one is not graded either
                self._errored_names.add(spec.name)
                item.stash[_GRADER_FAULT] = True
                pytest.skip(self._dependency_message(dependency).replace("to pass first", "and the grader "
                                                                                       "could not run that one"))
            if dependency in self._failed_names or dependency not in self._passed_names:
                pytest.skip(self._dependency_message(dependency))

    def _cut_off(self) -> str:
        return str(self.context.cut_off()) if self.context.cut_off is not None else ""

    def _dependency_message(self, dependency: str) -> str:
        titles = [r.name for k, r in self.results.items() if k.split("::")[-1].split("[")[0] == dependency]
        title = titles[0] if titles else dependency
        return f"not graded: this check needs '{title}' to pass first."

    # --- outcomes --------------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]):  # type: ignore[no-untyped-def]
        outcome = yield
        report = outcome.get_result()
        key = self._item_keys.get(item.nodeid)
        spec = spec_of(item)
        if key is None or spec is None:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self._record(item, spec, key, report, call)
            if self.context.on_record is not None:
                done = [r for r in self.results.values() if r.output != "not run"]
                self.context.on_record(done)

    def _record(self, item: pytest.Item, spec: CheckSpec, key: str, report: Any, call: Any) -> None:
        result = self.results[key]
        result.duration = round(time.perf_counter() - self._started.get(item.nodeid, time.perf_counter()), 3)
        result.extra.update(getattr(item, "grader_extra", {}))
        if report.passed:
            result.status, result.score, result.output = "passed", spec.points, "passed"
            self._passed_names.add(spec.name)
            return
        self._failed_names.add(spec.name)
        self._passed_names.discard(spec.name)
        result.status, result.score = "failed", 0.0
        if report.skipped:
            result.output = _skip_reason(report)
            if item.stash.get(_GRADER_FAULT, False):
                result.status = "error"
                result.extra["grader_fault"] = "not run: a check it needs hit a grader error"
            return
        excinfo = call.excinfo
        exc = excinfo.value if excinfo is not None else None
        if self._cut_off():  # it failed because the budget ran out mid-check (its sandbox was cut off)
            result.output = f"not graded: {self._cut_off()}"
            return
        if exc is not None and not isinstance(exc, AssertionError):
            # The grader failed (its sandbox, Keras, the data, or the check itself), not the student.
            result.status = "error"
            self._errored_names.add(spec.name)
            if isinstance(exc, GraderFault):
                self._fault = describe_fault(exc)
            result.output = _fault_text(exc)
            frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6)
            result.extra["grader_traceback"] = "".join(frames)[-6000:]
            result.extra["grader_fault"] = describe_fault(exc)
            return
        result.output = _failure_text(exc)
        if isinstance(exc, Mismatch):
            result.expected, result.got, result.hint = exc.expected, exc.got, exc.hint


@contextlib.contextmanager
def plugin_autoload_disabled() -> Iterator[None]:
    """Only our plugin and pytest's own: third-party plugins installed beside the grader stay out."""
    old = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = old


def suite_arguments(folder: Path, targets: Sequence[str] = ()) -> list[str]:
    """pytest's arguments for a run over an assignment's suites (its own pytest.ini, nothing cached)."""
    return [
        *(targets or [str(folder)]),
        "-c", str(folder / "pytest.ini"),
        "--rootdir", str(folder),
        "-p", "no:cacheprovider",
        "-q",
        "--import-mode=importlib",
        # pytest's unraisable-exception plugin ends each session with five full garbage collections (~3 s in
        # a process that holds TensorFlow); what it would report is never graded.
        "-p", "no:unraisableexception",
    ]


def validate_declarations(items: list[pytest.Item]) -> None:
    """A suite's check declarations hold together, or the suite does not run (pytest.UsageError naming the
    file and line): every `depends` names a check of the suite, a public check depends on no hidden one
    (students would never get it graded), and no two checks share a name."""
    specs: dict[str, tuple[CheckSpec, str]] = {}
    problems = []
    for item in items:
        spec = spec_of(item)
        if spec is None:
            continue
        function = getattr(item, "function", None)
        code = getattr(function, "__code__", None)
        where = f"{code.co_filename}:{code.co_firstlineno}" if code else item.nodeid
        seen = specs.get(spec.name)
        if seen is not None and seen[1] != where:
            problems.append(f"{where}: a second check named {spec.name} (the first is at {seen[1]})")
        specs.setdefault(spec.name, (spec, where))
    for spec, where in specs.values():
        for dependency in spec.depends:
            if dependency not in specs:
                problems.append(f"{where}: check {spec.name} depends on {dependency!r}, which is no check of "
                                f"this suite; it would never be graded (spelling?)")
            elif specs[dependency][0].hidden and not spec.hidden:
                problems.append(f"{where}: public check {spec.name} depends on hidden check {dependency!r}: "
                                "students would never get it graded")
    if problems:
        raise pytest.UsageError("the suite's check declarations are inconsistent:\n" + "\n".join(problems))


def _spec(item: pytest.Item) -> CheckSpec:
    spec = spec_of(item)
    assert spec is not None
    return spec


def _check_id(spec: CheckSpec, item: pytest.Item) -> str:
    label = _param_label(item)
    return f"{spec.exercise}::{spec.name}" + (f"[{label}]" if label else "")


def _param_label(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else ""


def _tags(spec: CheckSpec) -> list[str]:
    return [spec.exercise] + [t for t in spec.tags if t != spec.exercise]


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fault_text(exc: BaseException) -> str:
    """What a student sees of a grader fault: that it is not theirs, and the cause for their TA."""
    fix = getattr(exc, "fix", "") or DOCTOR
    return (f"The grader itself failed while running this check; this says nothing about your code, and no "
            f"points are counted for it.\nCause (for your teaching assistant): {describe_fault(exc)}\nFix: {fix}")


def _failure_text(exc: BaseException | None) -> str:
    if exc is None:
        return "failed"
    text = str(exc) or "the check's assertion failed"
    notes = [n for n in getattr(exc, "__notes__", []) if n.strip()]
    if notes:
        text += "\n" + "\n".join(notes)
    from grader.textcap import OUTPUT_LIMIT, clip

    return clip(text, OUTPUT_LIMIT)  # what a submission returned may be in it: every report keeps it bounded
