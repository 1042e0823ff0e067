"""Driver requests run ahead, in a second sandbox of the same submission, while the suites run.

Design note
===========
A grading whose models come from the training cache is a serial chain: the judge asks, the sandbox
runs student code, the judge checks the answer and asks again, on one core at a time. More than half
of the sandbox's time goes to a few drivers that run short real fits of Keras models (the training and
experiments exercises: ~3.5 s of ~7 s a grading on the lab's machine). Their arguments are
the judge's own (its models, slices of its data, options; never a value a submission returned), so
one grading sends them exactly as the one before it did. The suite's drivers module names them in
``AHEAD``.

A process that grades one submission after another (a batch worker) records, per grading, the
requests to those drivers in the order they were sent (:class:`Recorder`). When the next submission
is graded, and a second sandbox costs no TensorFlow import (the worker's zygote forks it) and a core is
free for it, :class:`Ahead` starts that second sandbox of the same submission and sends it the
recorded requests, in the recorded order, from a thread of its own. A check that then sends a request
with the same bytes takes the answer (or the failure) from there; any other request goes to the main
sandbox as before, and recorded requests no check asked for again are dropped. Both sandboxes are the
submission's own, with the same limits and per-request seeding, so an answer is what the main sandbox
would have given, save for what a submission carries from one request to the next: the requests run
ahead see each other, but not the other checks' requests (an exercise's state cannot leak into these).
A hang or crash there is remembered there (its later requests to the same function fail at once, as in
the main sandbox), not in the main sandbox.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.sandbox import SandboxError, SandboxStartError
from grader.sandbox.protocol import encode_frame, encode_value

_JOIN_SECONDS = 10.0


def request_key(driver: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """What makes two driver requests the same: the driver and the bytes its arguments travel as."""
    frame = encode_frame({"driver": driver, "args": encode_value(list(args)), "kwargs": encode_value(dict(kwargs))})
    return hashlib.sha256(frame).hexdigest()


@dataclass
class Request:
    """One driver request as a check sent it."""

    key: str
    driver: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    blame: tuple[str, str]
    timeout: float | None


@dataclass
class _Answer:
    request: Request
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0  # the request's wall-clock time, measured here around it


class Recorder:
    """The requests of one grading to the drivers that may run ahead, in the order they were sent."""

    def __init__(self, drivers: Sequence[str]) -> None:
        self.drivers = frozenset(drivers)
        self.requests: list[Request] = []

    def wants(self, driver: str) -> bool:
        return driver in self.drivers

    def add(self, request: Request) -> None:
        self.requests.append(request)


class Ahead:
    """Runs recorded requests in a second sandbox (any object with the Sandbox's drive, kill and close)."""

    def __init__(self, sandbox: Any, plan: Sequence[Request]) -> None:
        self._sandbox = sandbox
        self._queue = [_Answer(request) for request in plan]
        self._waiting: dict[str, deque[_Answer]] = {}
        for answer in self._queue:
            self._waiting.setdefault(answer.request.key, deque()).append(answer)
        self.drivers = frozenset(request.driver for request in plan)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grader-ahead", daemon=True)
        self.taken = 0  # answers checks took from here

    def start(self) -> Ahead:
        self._thread.start()
        return self

    def take(self, key: str) -> _Answer | None:
        """The answer to a request with this key, waiting for it while it runs. None: the main sandbox must
        run it (not recorded, or the second sandbox could not run the grader's request: it could not start,
        or the request failed on the judge's side, which the main sandbox then reports as usual)."""
        waiting = self._waiting.get(key)
        if not waiting:
            return None
        answer = waiting.popleft()
        answer.done.wait()
        if answer.error is not None and (
            not isinstance(answer.error, SandboxError) or isinstance(answer.error, SandboxStartError)
        ):
            return None
        self.taken += 1
        return answer

    def close(self) -> None:
        """Stop the second sandbox, also in the middle of a request, and wait for the thread."""
        self._closing.set()
        deadline = time.monotonic() + _JOIN_SECONDS
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._sandbox.kill()  # again while it lives: a request may have begun just as closing did
            self._thread.join(0.2)
        self._sandbox.close()

    def _run(self) -> None:
        for answer in self._queue:
            if not self._closing.is_set():
                request = answer.request
                started = time.perf_counter()
                try:
                    answer.value = self._sandbox.drive(request.driver, *request.args, timeout=request.timeout,
                                                       blame=request.blame, **request.kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to the check that takes this answer
                    answer.error = exc
                answer.seconds = time.perf_counter() - started
            else:
                answer.error = RuntimeError("the second sandbox was closed")
            answer.done.set()
