"""Driver requests run ahead in a second sandbox (grader.judge.prefetch): same answers, same failures, fewer seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.judge import grading as judge
from grader.judge import prefetch as ahead
from grader.judge.grading import GradeOptions, grade
from grader.judge.prefetch import Ahead, Recorder, Request, request_key
from grader.judge.student import Student, StudentFailure
from grader.results import SubmissionResult
from grader.sandbox import Limits, SandboxStartError, SandboxTimeout, StudentError
from grader.sandbox.client import discard_spares, keep_spare_sandbox
from grader.suites.convolutions import drivers


def _student_error(message: str) -> StudentError:
    return StudentError(message, exc_type="ValueError", exc_message="no", traceback="", phase="call", module="training")


def _request(driver: str, *args: Any, **kwargs: Any) -> Request:
    return Request(request_key(driver, args, kwargs), driver, args, kwargs, ("training", "train_and_evaluate"), None)


class FakeSandbox:
    """Answers drive() with (driver, first argument); `fail` maps a first argument to what it raises."""

    def __init__(self, fail: dict[Any, BaseException] | None = None, block_on: Any = None) -> None:
        self.fail = fail or {}
        self.block_on = block_on
        self.ran: list[Any] = []
        self.killed = threading.Event()
        self.closed = False

    def drive(self, driver: str, *args: Any, timeout: float | None = None, blame: Any = None, **kwargs: Any) -> Any:
        self.ran.append(args[0])
        if args[0] == self.block_on:
            self.killed.wait(30)
            raise _student_error("killed")
        if args[0] in self.fail:
            raise self.fail[args[0]]
        return (driver, args[0])

    def kill(self) -> None:
        self.killed.set()

    def close(self) -> None:
        self.closed = True


def test_a_request_key_is_its_driver_and_the_bytes_of_its_arguments() -> None:
    images = np.arange(12, dtype=np.float32).reshape(3, 4)
    same = request_key("train_and_evaluate", (images, 2), {"x": 1})
    assert request_key("train_and_evaluate", (images.copy(), 2), {"x": 1}) == same
    assert request_key("train_and_evaluate", (images + 1, 2), {"x": 1}) != same
    assert request_key("train_and_evaluate", (images.astype(np.float64), 2), {"x": 1}) != same
    assert request_key("callback_fit", (images, 2), {"x": 1}) != same
    assert request_key("train_and_evaluate", (images, 2), {"x": 2}) != same


def test_answers_are_run_in_the_recorded_order_and_taken_once_each() -> None:
    plan = [_request("d", 1), _request("d", 2), _request("d", 1), _request("e", 3)]
    sandbox = FakeSandbox()
    runner = Ahead(sandbox, plan).start()
    first = runner.take(plan[0].key)
    again = runner.take(plan[0].key)
    assert first is not None and again is not None and first is not again
    assert runner.take(plan[0].key) is None  # both recorded runs of ("d", 1) are taken
    assert runner.take(request_key("d", (9,), {})) is None  # never recorded
    answer = runner.take(plan[3].key)
    assert answer is not None and answer.value == ("e", 3) and answer.seconds >= 0
    runner.close()
    assert sandbox.ran == [1, 2, 1, 3] and sandbox.closed
    assert runner.taken == 3


@pytest.mark.parametrize(("error", "handed_on"), [
    (_student_error("train_and_evaluate raised ValueError: no"), True),
    (SandboxTimeout("train_and_evaluate did not return within 60 s"), True),
    (SandboxStartError("The grader's sandbox could not start"), False),
    (RuntimeError("the sandbox could not run the grader's request"), False),
])
def test_a_submissions_failure_is_handed_on_and_the_graders_own_leaves_it_to_the_main_sandbox(
        error: BaseException, handed_on: bool) -> None:
    plan = [_request("d", 1)]
    runner = Ahead(FakeSandbox({1: error}), plan).start()
    answer = runner.take(plan[0].key)
    runner.close()
    if handed_on:
        assert answer is not None and answer.error is error
    else:
        assert answer is None


def test_closing_stops_a_request_that_is_still_running() -> None:
    plan = [_request("d", 1), _request("d", 2)]
    sandbox = FakeSandbox(block_on=1)
    runner = Ahead(sandbox, plan).start()
    time.sleep(0.2)
    started = time.perf_counter()
    runner.close()
    assert time.perf_counter() - started < 5
    assert sandbox.killed.is_set() and sandbox.closed and sandbox.ran == [1]  # the second one never ran


class MainSandbox:
    def __init__(self) -> None:
        self.driven: list[str] = []

    def drive(self, driver: str, *args: Any, timeout: float | None = None, blame: Any = None, **kwargs: Any) -> Any:
        self.driven.append(driver)
        return "main"


def test_a_student_records_only_the_drivers_that_may_run_ahead_and_takes_their_answers() -> None:
    recorder = Recorder(("train_and_evaluate",))
    plan = [_request("train_and_evaluate", 1)]
    main = MainSandbox()
    runner = Ahead(FakeSandbox({}), plan).start()
    student = Student(main, ahead=runner, recorder=recorder)
    assert student.drive("train_and_evaluate", 1, module="training", function="train_and_evaluate") == \
        ("train_and_evaluate", 1)
    assert student.drive("train_and_evaluate", 2, module="training", function="train_and_evaluate") == "main"
    assert student.drive("callback_logs", 1, module="callbacks", function="StopOnThreshold") == "main"
    runner.close()
    assert main.driven == ["train_and_evaluate", "callback_logs"]
    assert [r.args for r in recorder.requests] == [(1,), (2,)]  # callback_logs is not a driver run ahead
    assert recorder.requests[0].key == plan[0].key


def test_a_failure_run_ahead_reads_as_the_main_sandboxs_would() -> None:
    plan = [_request("train_and_evaluate", 1)]
    runner = Ahead(FakeSandbox({1: _student_error("train_and_evaluate raised ValueError: no")}), plan).start()
    student = Student(MainSandbox(), ahead=runner)
    with pytest.raises(StudentFailure, match="train_and_evaluate raised ValueError: no"):
        student.drive("train_and_evaluate", 1, module="training", function="train_and_evaluate")
    runner.close()


def test_the_drivers_run_ahead_are_drivers_of_the_suite() -> None:
    assert drivers.AHEAD and all(callable(getattr(drivers, name, None)) for name in drivers.AHEAD)


# --- end to end: a batch worker's gradings, with and without the second sandbox --------------------------
LIMITS = Limits(timeout=15)
WITHOUT = GradeOptions(skip_training=True, run_hidden=True, limits=LIMITS)
WITH = GradeOptions(skip_training=True, run_hidden=True, limits=LIMITS, ahead=True)

# train_and_evaluate that counts its calls in the sandbox and fails the second and the fifth: which checks
# fail depends on the order of its calls, so the same checks fail only if that order is kept.
STATEFUL = ("    train_images, train_labels = train\n",
            "    global _CALLS\n    _CALLS = globals().get('_CALLS', 0) + 1\n    if _CALLS in (2, 5):\n"
            "        raise RuntimeError(f'call {_CALLS}')\n    train_images, train_labels = train\n")
# ... and one that hangs when asked for 3 epochs: a timeout there, remembered for the later calls.
HANGING = ("    train_images, train_labels = train\n",
           "    if epochs == 3:\n        import time\n        time.sleep(3600)\n"
           "    train_images, train_labels = train\n")


def _comparable(result: SubmissionResult) -> list[tuple[str, str, float, str]]:
    return [(c.id, c.status, c.score, c.output) for c in result.checks]


@pytest.fixture(scope="module")
def worker() -> Iterator[list[tuple[int, int]]]:
    """This process as a batch worker (zygote-forked sandboxes); yields (taken, recorded) of each Ahead."""
    used: list[tuple[int, int]] = []
    original = ahead.Ahead.close

    def close(self: Ahead) -> None:
        used.append((self.taken, len(self._queue)))
        original(self)

    judge.forget_plans()
    keep_spare_sandbox(True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ahead.Ahead, "close", close)
        try:
            yield used
        finally:
            keep_spare_sandbox(False)
            discard_spares()
            judge.forget_plans()


@pytest.fixture(scope="module")
def primed(worker: list[tuple[int, int]], solutions_dir: Path) -> list[str]:
    """The first grading records the plan; the keys of its requests."""
    grade(solutions_dir, WITH)
    assert not worker  # nothing to run ahead yet
    return judge.planned_requests(WITH)


def test_the_reference_grades_the_same_with_its_requests_run_ahead(
        primed: list[str], worker: list[tuple[int, int]], solutions_dir: Path) -> None:
    assert len(primed) >= 8
    ahead_result = grade(solutions_dir, WITH)
    assert worker[-1] == (len(primed), len(primed))  # every recorded request was answered from there
    assert ahead_result.score == ahead_result.max_score
    assert _comparable(ahead_result) == _comparable(grade(solutions_dir, WITHOUT))


@pytest.mark.parametrize("change", [STATEFUL, HANGING], ids=["stateful", "hanging"])
def test_a_submission_loses_the_same_points_with_its_requests_run_ahead(
        change: tuple[str, str], primed: list[str], worker: list[tuple[int, int]], solution_copy: Path) -> None:
    module = solution_copy / "training.py"
    module.write_text(module.read_text(encoding="utf-8").replace(*change), encoding="utf-8")
    ahead_result = grade(solution_copy, WITH)
    assert worker[-1][0] == len(primed)
    # The requests carry no answer of the submission: this grading's are the reference's, byte for byte.
    assert judge.planned_requests(WITH) == primed
    without = grade(solution_copy, WITHOUT)
    assert without.score < without.max_score
    assert _comparable(ahead_result) == _comparable(without)
