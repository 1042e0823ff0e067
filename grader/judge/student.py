"""What a check sees of a submission: calls into the sandbox that fail as readable check failures.

Every value that comes back is data produced by untrusted code. Models come back as configs and
are rebuilt here with built-in layers only (grader.models.rebuild).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.checks import Mismatch
from grader.faults import GraderFault
from grader.intake.submission import Origin
from grader.judge.canary import require_keras
from grader.judge.prefetch import Ahead, Recorder, Request, request_key
from grader.models.rebuild import ModelRejected, compile_summary, describe, rebuild_shared
from grader.sandbox import SandboxError, StudentError
from grader.sandbox.protocol import ModelSpec, Opaque


class StudentFailure(AssertionError):
    """Student code could not be run or raised: the message is the feedback."""


@dataclass
class StudentModel:
    """A model the student built, rebuilt on the judge side."""

    spec: ModelSpec
    model: Any  # keras.Model

    @property
    def layers(self) -> list[Any]:
        return describe(self.model)

    @property
    def compile(self) -> dict[str, Any]:
        return compile_summary(self.spec.compile_config)


_KEYS_SHOWN = 12


def describe_value(value: Any) -> str:
    """A short description of a returned value for 'got:' lines."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, Opaque):
        return f"a {value.type_name[:100]} ({value.repr[:300]})"
    if isinstance(value, ModelSpec):
        return f"a Keras {value.class_name} model"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    if isinstance(value, dict):
        keys = sorted(str(key)[:60] for key in value)
        if len(keys) <= _KEYS_SHOWN:
            return f"a dict with keys {keys}"
        return f"a dict with {len(keys):,} keys, the first {_KEYS_SHOWN}: {keys[:_KEYS_SHOWN]}"
    return f"a {type(value).__name__} ({value!r:.80})"


class Student:
    """The submission, as reachable through its sandbox."""

    def __init__(self, sandbox: Any, *, ahead: Ahead | None = None, recorder: Recorder | None = None,
                 origin: Origin | None = None, input_shape: tuple[int, ...] | None = None) -> None:
        self.sandbox = sandbox
        self.input_shape = input_shape  # the assignment's: the input of a student model that declares none
        self.origin = origin or Origin()  # folder, notebook or kernel: what the feedback names
        self.ahead = ahead  # answers of driver requests run ahead in a second sandbox (grader.judge.prefetch)
        self.recorder = recorder  # what to run ahead in the next grading
        self._models: dict[str, StudentModel] = {}

    def __repr__(self) -> str:  # shown in Hypothesis' falsifying examples: stable and short
        return "<your submission>"

    def call(self, module: str, function: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            return self.sandbox.call(module, function, *args, timeout=timeout, **kwargs)
        except SandboxError as exc:
            raise self._failure(exc, module, function) from None

    def call_full(self, module: str, function: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            return self.sandbox.call_full(module, function, *args, timeout=timeout, **kwargs)
        except SandboxError as exc:
            raise self._failure(exc, module, function) from None

    def attr(self, module: str, name: str) -> Any:
        try:
            return self.sandbox.attr(module, name)
        except SandboxError as exc:
            raise self._failure(exc, module, name) from None

    def drive(self, driver: str, *args: Any, module: str, function: str, timeout: float | None = None,
              **kwargs: Any) -> Any:
        """Run one of the judge's drivers inside the sandbox; module/function name what it exercises."""
        return self.drive_timed(driver, *args, module=module, function=function, timeout=timeout, **kwargs)[0]

    def drive_timed(self, driver: str, *args: Any, module: str, function: str, timeout: float | None = None,
                    **kwargs: Any) -> tuple[Any, float]:
        """drive(), and the wall-clock seconds the request took, measured by the judge around it (also when
        it ran ahead, in a second sandbox: then not the time this call waited for it)."""
        try:
            return self._drive(driver, args, kwargs, (module, function), timeout)
        except SandboxError as exc:
            if isinstance(exc, GraderFault):
                raise
            # The student knows the function the driver exercised, not the driver's own name.
            message = self._explain(exc, module, function).replace(driver, function)
            raise StudentFailure(message) from None

    def _drive(self, driver: str, args: tuple[Any, ...], kwargs: dict[str, Any], blame: tuple[str, str],
               timeout: float | None) -> tuple[Any, float]:
        recorder = self.recorder if self.recorder is not None and self.recorder.wants(driver) else None
        if recorder is not None or (self.ahead is not None and driver in self.ahead.drivers):
            key = request_key(driver, args, kwargs)
            if recorder is not None:
                recorder.add(Request(key, driver, args, dict(kwargs), blame, timeout))
            answer = self.ahead.take(key) if self.ahead is not None else None
            if answer is not None:
                if answer.error is not None:
                    raise answer.error
                return answer.value, answer.seconds
        started = time.perf_counter()
        value = self.sandbox.drive(driver, *args, timeout=timeout, blame=blame, **kwargs)
        return value, time.perf_counter() - started

    def model(self, module: str, function: str, *args: Any, input_shape: tuple[int, ...] | None = None,
              **kwargs: Any) -> StudentModel:
        """Call a function that must return a Keras model, and rebuild that model here.

        Several checks ask for the same model (the lab's main one above all): the sandbox seeds every request
        alike, so the same call gives the same model, and it is built and rebuilt once per grading. The
        rebuilt Keras model is shared further, with every grading of this process whose model has the
        same config (modelspec.rebuild_shared). Checks must therefore treat the returned model as read-only.
        """
        input_shape = input_shape or self.input_shape
        if input_shape is None:
            raise ValueError("Student.model needs an input shape: the assignment declares none (input_shape=...)")
        call = _call_text(function, args, kwargs)
        key = repr((module, call, input_shape))
        if key not in self._models:
            self._models[key] = self._model(module, function, args, kwargs, input_shape, call)
        return self._models[key]

    def _model(self, module: str, function: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               input_shape: tuple[int, ...], call: str) -> StudentModel:
        value = self.call(module, function, *args, **kwargs)
        if not isinstance(value, ModelSpec):
            raise Mismatch(
                f"{call} must return a Keras model.",
                expected="a keras.Model (e.g. keras.Sequential([...]))",
                got=describe_value(value),
                hint="end the function with `return model`.",
            )
        try:
            model = rebuild_shared(value.json_config, input_shape)
        except ModelRejected as exc:
            require_keras()  # the judge's own Keras broken: the grader's fault, not this model's
            raise Mismatch(f"{call} returned a model the grader cannot use: {exc}") from None
        return StudentModel(spec=value, model=model)

    def _failure(self, exc: SandboxError, module: str, name: str) -> Exception:
        """The student's failure, or, for a fault of the grader (its sandbox did not start), that fault."""
        return exc if isinstance(exc, GraderFault) else StudentFailure(self._explain(exc, module, name))

    def _explain(self, exc: SandboxError, module: str, name: str) -> str:
        if isinstance(exc, StudentError) and exc.exc_type == "AttributeError" and exc.phase != "import":
            try:
                if not self.sandbox.has(module, name):
                    return self.origin.undefined(module, name)
            except SandboxError:
                pass
        return exc.message


def _call_text(function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{function}({', '.join(parts)})"
