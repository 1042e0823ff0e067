"""Grade one submission: prepare it, start its sandbox, run the suites, return the result model."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import importlib
import io
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grader
from grader.assignment import Assignment
from grader.assignment import load as load_assignment
from grader.faults import GraderFault
from grader.intake.submission import prepare_submission
from grader.judge import fixtures as suite_fixtures
from grader.judge.plugin import GraderPlugin, GradingContext, plugin_autoload_disabled, suite_arguments
from grader.judge.prefetch import Ahead, Recorder, Request
from grader.results import SubmissionResult
from grader.sandbox import Limits, Sandbox
from grader.training import background as background_training

SUBMISSION_TIMEOUT = 900.0  # a full grade of the reference takes 2-5 minutes on a slow 2-core machine


@dataclass
class GradeOptions:
    skip_training: bool = False
    run_hidden: bool = False
    limits: Limits = field(default_factory=Limits)
    cache_dir: Path | None = None
    seed: int = 0
    hide: Sequence[Path] = ()  # more paths the sandbox must not see (the output folder, other submissions)
    progress: Callable[[int, int, dict[str, float]], None] | None = None
    on_partial: Callable[[SubmissionResult], None] | None = None  # called with the result so far, after each check
    assignment: str = ""  # an installed assignment's name; "": the only one installed (grader.assignment)
    ahead: bool = False  # run recorded driver requests in a second, forked sandbox (grader.judge.prefetch)
    isolation: str | None = None  # the sandbox's mode: "root", "userns" or "none"; None: the strongest that works
    submission_timeout: float | None = SUBMISSION_TIMEOUT  # seconds for the whole grading; then cut off (partial)
    exercises: Sequence[str] = ()  # grade only these exercises' checks (grader.check("models")); () for all
    kernel: bool = False  # the notebook holds the cells a notebook kernel ran (grader.check): feedback says so


class _Budget:
    """The submission's time budget: when it runs out, its sandboxes are cut off (the call in flight fails,
    no other runs), the judge's training for it stops (its background job, and a fit in this process at its
    next batch: the gates pass `cut_off` to trainer.train as `stop`), and every check not yet graded is skipped
    (GradingContext.cut_off says why)."""

    def __init__(self, seconds: float | None, sandboxes: list[Any]) -> None:
        self.seconds = seconds
        self._sandboxes = sandboxes
        self._expired = threading.Event()
        self._timer = threading.Timer(seconds, self._expire) if seconds else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        self._expired.set()
        for sandbox in self._sandboxes:
            sandbox.cut_off()
        background_training.stop_all()  # the judge's own training for this grading stops too (trainer's `stop`)

    def reason(self) -> str:
        if not self._expired.is_set():
            return ""
        return f"the submission used up its time budget of {self.seconds:g} s (--submission-timeout)"

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def preflight(options: GradeOptions) -> str:
    """Prove the grader works on this machine before grading anyone (judge_canary.preflight); returns the
    sandbox's isolation, raises GraderFault with the cause."""
    from grader.judge.canary import preflight as run_preflight

    assignment = load_assignment(options.assignment)

    def sandbox_for(folder: Path) -> Sandbox:
        return Sandbox(folder, options.limits, hide=_paths_to_hide(folder, options),
                       drivers=assignment.drivers_module, seed=options.seed, isolation=options.isolation)

    load_data = assignment.load_dataset if assignment.dataset else None
    return run_preflight(sandbox_for, load_data=load_data, load_keras=import_tensorflow_quietly)


def grade(path: Path, options: GradeOptions | None = None) -> SubmissionResult:
    """Grade one submission; raises grader.intake.submission.SubmissionError for unusable input."""
    from grader.training.cache import TrainingCache, library_versions

    options = options or GradeOptions()
    started = time.perf_counter()
    assignment = load_assignment(options.assignment)
    options = dataclasses.replace(options, assignment=assignment.name)
    prepared = prepare_submission(Path(path), assignment.modules, assignment.names, assignment=assignment.name,
                                  kernel=options.kernel)
    try:
        hide = _paths_to_hide(Path(path), options)

        def new_sandbox() -> Sandbox:
            return Sandbox(
                prepared.directory,
                options.limits,
                hide=hide,
                drivers=assignment.drivers_module,
                seed=options.seed,
                isolation=options.isolation,
            )

        sandbox = new_sandbox()
        sandbox.start()  # TensorFlow starts in the sandbox while the judge imports it too
        plan_key = _plan_key(options)
        ahead = _start_ahead(sandbox, new_sandbox, _plans.get(plan_key)) if options.ahead else None
        recorder = Recorder(_ahead_drivers(assignment)) if options.ahead else None
        budget = _Budget(options.submission_timeout, [sandbox])  # the second sandbox's answers go unread then
        import_tensorflow_quietly()
        try:
            from grader.judge.student import Student

            context = GradingContext(
                assignment=assignment,
                student=Student(sandbox, ahead=ahead, recorder=recorder, origin=prepared.origin,
                                input_shape=assignment.input_shape),
                skip_training=options.skip_training,
                run_hidden=options.run_hidden,
                cache=None if options.skip_training else TrainingCache(options.cache_dir),
                seed=options.seed,
                progress=options.progress,
                on_record=_partial_writer(options, prepared.name, started),
                cut_off=budget.reason,
            )
            plugin = GraderPlugin(context)
            status = _run_suites(plugin, assignment.folder, options.exercises)
            isolation = getattr(sandbox, "isolation", "unknown")
        finally:
            budget.cancel()
            background_training.stop_all()  # a model no gate waited for must not train into the next grading
            if ahead is not None:
                ahead.close()
            sandbox.close()
        if recorder is not None:
            _plans[plan_key] = recorder.requests
        checks = sorted(plugin.results.values(), key=lambda c: tuple(int(p) for p in c.number.split(".")))
        messages = list(prepared.messages)
        if isolation != "namespaces+uid":
            messages.append(f"note: the sandbox ran with reduced isolation ({isolation}).")
        if budget.reason() and status == "graded":
            status = "partial"
            messages.insert(0, f"cut off: {budget.reason()}; the checks after that were not graded.")
        faults = [c for c in checks if c.status == "error"]
        fault = {}
        if faults:
            status = "error"
            cause = str(faults[0].extra.get("grader_fault", "the grader failed"))
            fault = {"grader_fault": cause}
            messages.insert(0, f"grader error in {len(faults)} check(s), not the submission's fault: {cause}")
        return SubmissionResult(
            submission=prepared.name,
            assignment=assignment.name,
            status=status,
            checks=checks,
            messages=messages,
            execution_time=round(time.perf_counter() - started, 3),
            extra={
                "seed": options.seed,
                "profile": "quick" if options.skip_training else "full",
                "hidden_checks_run": options.run_hidden,
                "versions": {"grader": grader.__version__, **library_versions()},
                "kind": prepared.kind,
                "sandbox_isolation": isolation,
                **({"cut_off": budget.reason()} if budget.reason() else {}),
                **fault,
                **context.artifacts,
            },
        )
    finally:
        prepared.cleanup()


_plans: dict[tuple[Any, ...], list[Request]] = {}  # per kind of grading: the last one's requests to run ahead


def _plan_key(options: GradeOptions) -> tuple[Any, ...]:
    """What makes gradings alike enough to run one's recorded requests ahead in the next."""
    return (load_assignment(options.assignment).name, options.seed, options.skip_training, options.run_hidden,
            options.limits, tuple(options.exercises))


def planned_requests(options: GradeOptions) -> list[str]:
    """The keys of the requests the last grading like `options` recorded, which the next one runs ahead."""
    return [request.key for request in _plans.get(_plan_key(options), [])]


def forget_plans() -> None:
    """Forget every recorded plan: the next grading of each kind runs nothing ahead."""
    _plans.clear()


def _ahead_drivers(assignment: Assignment) -> tuple[str, ...]:
    """The drivers whose requests carry only the judge's own arguments (the suite's drivers.AHEAD)."""
    if assignment.drivers_module is None:
        return ()
    module = importlib.import_module(assignment.drivers_module)
    return tuple(getattr(module, "AHEAD", ()))


def _start_ahead(sandbox: Sandbox, new_sandbox: Callable[[], Sandbox], plan: list[Request] | None) -> Ahead | None:
    """A second sandbox running the last grading's recorded requests (grader.judge.prefetch), when there are some
    and that sandbox would be forked from this process's zygote; else None."""
    if not plan or not sandbox.would_fork():
        return None
    return Ahead(new_sandbox(), plan).start()


PARTIAL_EVERY = 1.0  # seconds between two partial records of one grading


def _partial_writer(options: GradeOptions, name: str, started: float) -> Any:
    """After a check, hand the results so far to options.on_partial, at most once per PARTIAL_EVERY seconds:
    a grading cut off keeps what was recorded up to a second before. (Writing the growing record after each
    of ~70 checks, most of them milliseconds long, took ~0.6 s of an 18 s batch grading under cProfile.)"""
    if options.on_partial is None:
        return None
    callback = options.on_partial
    last = [-PARTIAL_EVERY]

    def write(done: list[Any]) -> None:
        now = time.perf_counter()
        if now - last[0] < PARTIAL_EVERY:
            return
        last[0] = now
        callback(SubmissionResult(
            submission=name, assignment=options.assignment, status="partial", checks=list(done),
            messages=["grading was cut off before every check had run"],
            execution_time=round(time.perf_counter() - started, 3),
        ))

    return write


def import_tensorflow_quietly() -> None:
    """Import TensorFlow here, with its C++ start-up lines (they ignore TF_CPP_MIN_LOG_LEVEL) kept off the
    terminal. Called once the sandbox has started, so that the two imports run side by side.

    Only the native stderr of this import is silenced: an import error still raises as usual. Then Keras
    is set to build a model's training state before tracing fit (grader.keras_compat.build).
    """
    from grader.keras_compat import build as keras_build

    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                import keras  # noqa: F401
                import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    keras_build.install()  # the judge's own fits (training, the training suite's models) trace once
    _freeze_long_lived_objects()


@functools.cache  # once per process
def _freeze_long_lived_objects() -> None:
    """Move what this process holds so far (TensorFlow, Keras, the suites' imports: ~400,000 objects) out
    of the garbage collector's sight, once per process. Each full collection otherwise walks all of them
    again: ~0.7 s a time, several times a grading. Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


def _run_suites(plugin: GraderPlugin, folder: Path, exercises: Sequence[str] = ()) -> Any:
    import pytest

    targets = [str(folder / f"test_{exercise}.py") for exercise in exercises]
    args = suite_arguments(folder, targets)
    sink = io.StringIO()
    with plugin_autoload_disabled(), _hypothesis_home_outside_cwd(), contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        code = pytest.main(args, plugins=[plugin, suite_fixtures])
    if code == pytest.ExitCode.INTERRUPTED:
        raise KeyboardInterrupt
    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise GraderFault(f"the grader's suites could not run (pytest exit {code}):\n{sink.getvalue()[-4000:]}",
                          fix="reinstall the grader; if the suites were edited, run `grader list` to see why")
    return "graded"


@contextlib.contextmanager
def _hypothesis_home_outside_cwd() -> Iterator[None]:
    """Hypothesis keeps files under ./.hypothesis even without a database: grading leaves nothing behind."""
    from hypothesis import configuration

    previous = getattr(configuration, "__hypothesis_home_directory", None)
    with tempfile.TemporaryDirectory(prefix="grader-hypothesis-") as home:
        configuration.set_hypothesis_home_dir(home)
        try:
            yield
        finally:
            configuration.set_hypothesis_home_dir(previous)


def _paths_to_hide(submission: Path, options: GradeOptions) -> list[Path]:
    """The grader's own tree, its cache, the user's home, the folder other submissions sit in, $GRADER_HIDE.
    (The sandbox's root is an allow-list: these matter where they lie inside what it is shown.)"""
    package = Path(grader.__file__).resolve().parent
    hide = [package]
    root = package.parent
    if (root / "solutions").is_dir() or (root / "pyproject.toml").is_file():
        hide.append(root)  # a source checkout: solutions/ and tests/ live beside the package
    from grader.training.cache import default_cache_dir

    hide.append(Path(options.cache_dir) if options.cache_dir else default_cache_dir())
    hide.append(Path(os.path.expanduser("~")))
    hide.append(submission.resolve().parent)
    hide.append(Path.cwd())
    hide.extend(Path(p) for p in options.hide)
    # More paths the sandbox must not see, where they lie inside what it is shown (e.g. a package with
    # answers inside site-packages): GRADER_HIDE, separated like PATH.
    hide.extend(Path(p) for p in os.environ.get("GRADER_HIDE", "").split(os.pathsep) if p.strip())
    unique: list[Path] = []
    for candidate in hide:
        resolved = candidate.resolve()
        if resolved != Path("/") and resolved not in unique:
            unique.append(resolved)
    return unique
