"""`grader doctor`: is this machine ready to grade? Each finding says OK, or what is wrong and the fix.

The last finding is a real quick grading of the reference solution in the sandbox (where the checkout has
one), so "ready" means what it says: the same path a student's or a TA's grading takes.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from grader.assignment import Assignment
from grader.assignment import load as load_assignment
from grader.faults import GraderFault, describe_fault

MODE_MEANING = {
    "root": "namespaces + a fresh uid: the submission sees only the system, Python and its own files, "
            "has no network, cannot signal other processes, runs as an unused uid",
    "userns": "an unprivileged user namespace: the same filesystem allow-list and no network, but no uid "
              "change (threads started before the lock-down keep their capabilities)",
    "none": "a plain subprocess with time and memory limits: the submission can read what your user can "
            "read (other files, other submissions); fine for checking your own work",
}
_PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "click", "pytest")


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def examine(isolation: str | None = None, reference: Path | None = None,
            assignment: Assignment | None = None) -> Iterator[Finding]:
    """The findings, in order; the reference grading (slow: TensorFlow twice) comes last."""
    assignment = assignment or load_assignment()
    yield _python()
    yield _packages()
    yield _dataset(assignment)
    mode_finding, mode = _isolation(isolation)
    yield mode_finding
    yield _browser()
    yield _keras()
    if mode_finding.ok:
        yield _reference(mode, reference, assignment)


def default_reference(assignment: str) -> Path | None:
    """The reference solution beside the installed package (a checkout), or $GRADER_REFERENCE."""
    override = os.environ.get("GRADER_REFERENCE")
    if override:
        return Path(override)
    candidate = Path(__file__).resolve().parent.parent / "solutions" / assignment
    return candidate if candidate.is_dir() else None


def _python() -> Finding:
    kind = "a virtual environment" if sys.prefix != sys.base_prefix else "the interpreter's own prefix"
    return Finding("python", True, f"Python {sys.version.split()[0]} ({sys.executable}); environment: "
                                   f"{sys.prefix} ({kind})")


def _packages() -> Finding:
    found, missing = [], []
    for name in _PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    ok = any(n.startswith("tensorflow") for n in found) and any(n.startswith("keras") for n in found)
    fix = "install the grader with its dependencies: pip install -e . (or pip install convgrader)"
    return Finding("packages", ok, ", ".join(found), "" if ok else fix)


def _dataset(assignment: Assignment) -> Finding:
    if assignment.dataset is None:
        return Finding("dataset", True, f"{assignment.name} needs no data set")
    dataset = assignment.dataset_module()
    try:
        data = dataset.load()
    except GraderFault as exc:  # a DatasetError
        return Finding("dataset", False, describe_fault(exc), getattr(dataset, "INSTALL_HINT", exc.fix))
    return Finding("dataset", True, f"{assignment.dataset} in {data.directory}, SHA-256 verified")


def _isolation(asked: str | None) -> tuple[Finding, str]:
    from grader.sandbox.process import choose_mode, mode_problem

    problems = {mode: mode_problem(mode) for mode in ("root", "userns")}
    if asked is not None and problems.get(asked):
        return Finding("isolation", False, f"{asked} was asked for: {problems[asked]}",
                       "choose another --isolation"), asked
    mode = asked or choose_mode()
    others = "; ".join(f"{m} unavailable: {p}" for m, p in problems.items() if p)
    detail = f"{mode}: {MODE_MEANING[mode]}" + (f" ({others})" if others and mode != "root" else "")
    return Finding("isolation", True, detail), mode


def _browser() -> Finding:
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    if browser:
        return Finding("chromium", True, f"{browser} (the HTML report's browser test)", required=False)
    return Finding("chromium", False, "not found: only the grader's own HTML browser test needs it",
                   "scripts/setup --browser (Debian: apt-get install chromium)", required=False)


def _keras() -> Finding:
    from grader.judge.canary import keras_rebuild_fault
    from grader.judge.grading import import_tensorflow_quietly

    import_tensorflow_quietly()
    fault = keras_rebuild_fault()
    if fault:
        return Finding("keras", False, f"the judge cannot rebuild a known-good model: {fault}",
                       "install the keras/tensorflow versions pyproject.toml allows")
    return Finding("keras", True, "the judge rebuilds models from their JSON config")


def _reference(mode: str, reference: Path | None, assignment: Assignment) -> Finding:
    from grader.judge.grading import GradeOptions, grade, preflight

    options = GradeOptions(skip_training=True, isolation=mode, assignment=assignment.name)
    started = time.perf_counter()
    try:
        if reference is None:
            preflight(options)
            return Finding("grading", True, "no reference solution here (a student bundle): the sandbox started "
                                            f"and passed its canary in {time.perf_counter() - started:.0f} s")
        result = grade(reference, options)
    except GraderFault as exc:
        return Finding("grading", False, describe_fault(exc), exc.fix)
    except Exception as exc:  # noqa: BLE001 - the doctor reports whatever stops a grading
        return Finding("grading", False, f"{type(exc).__name__}: {describe_fault(exc)}",
                       "report this with the output of `grader doctor`")
    seconds = time.perf_counter() - started
    score = f"{result.score:g}/{result.max_score:g}"
    if result.extra.get("grader_fault"):
        return Finding("grading", False, f"reference {score}: {result.extra['grader_fault']}",
                       "see the finding above that failed, or run with --isolation none")
    ok = result.max_score > 0 and result.score == result.max_score
    return Finding("grading", ok, f"{'ready: ' if ok else ''}reference {score} in {seconds:.0f} s "
                                  f"(quick profile, isolation {result.extra.get('sandbox_isolation')})",
                   "" if ok else "the reference should get full marks: report this with `grader doctor`'s output")
