"""Server side: import student modules lazily, run one request, describe what went wrong.

Everything here runs inside the sandbox, after the lockdown, in the same process as student code.
"""

from __future__ import annotations

import collections
import importlib
import io
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from grader.keras_compat import seeding
from grader.keras_compat import sequential as sequential_config
from grader.sandbox.protocol import ModelPayload, ModelSpec

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MESSAGE_LIMIT = 2000
_TRACEBACK_LIMIT = 6000


class ImportFailed(BaseException):
    """A student module could not be imported; carries the (remembered) error record.

    A BaseException so that an ``except Exception`` in a driver does not swallow it."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(record.get("exc_message", ""))
        self.record = record


class StudentModules:
    """Imports student modules from the working directory, once; import failures are remembered."""

    def __init__(self, workdir: str, event: Callable[[str, str], None]) -> None:
        self.workdir = workdir
        self.event = event
        self.failures: dict[str, dict[str, Any]] = {}

    def load(self, name: str) -> Any:
        if name in self.failures:
            raise ImportFailed(self.failures[name])
        module = sys.modules.get(name)
        if module is not None and self.owns(getattr(module, "__file__", None)):
            return module
        if not _MODULE_NAME.fullmatch(name) or not self.exists(name):
            record = {
                "kind": "missing", "exc_type": "ModuleNotFoundError", "phase": "import", "module": name,
                "exc_message": f"the submission has no {name}.py", "traceback": "",
            }
            self.failures[name] = record
            raise ImportFailed(record)
        if module is not None:
            del sys.modules[name]  # an installed module of the same name: the student's file wins
        self.event("importing", name)
        try:
            module = importlib.import_module(name)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt at import are the student's too
            record = describe(exc, "import", name, self.workdir)
            self.failures[name] = record
            self.event("import_failed", name)
            raise ImportFailed(record) from None
        self.event("imported", name)
        return module

    def exists(self, name: str) -> bool:
        base = os.path.join(self.workdir, name)
        return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))

    def owns(self, filename: str | None) -> bool:
        return filename is not None and _inside(filename, self.workdir)


def describe(exc: BaseException, phase: str, module: str, workdir: str, function: str = "") -> dict[str, Any]:
    """An exception as plain data; the traceback keeps only frames from the submission's files."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if _inside(frame.filename, workdir)]
    innermost = _module_of(frames[-1].filename, workdir) if frames else ""
    text = "".join(traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc))
    text = text.replace(workdir.rstrip("/") + "/", "")
    if len(text) > _TRACEBACK_LIMIT:
        text = "...\n" + text[-_TRACEBACK_LIMIT:]
    if isinstance(exc, SystemExit):
        kind, message = "exit", f"SystemExit {exc.code!r}" if exc.code is not None else "SystemExit"
    else:
        kind, message = "student", _safe_str(exc)
    return {
        "kind": kind,
        "exc_type": _type_name(exc),
        "exc_message": message[:_MESSAGE_LIMIT],
        "traceback": text,
        "phase": phase,
        "module": module or innermost,
        "function": function,
    }


def _inside(filename: str, workdir: str) -> bool:
    """Only real paths count: the cwd is the workdir, so '<frozen importlib._bootstrap>' must not."""
    return os.path.isabs(filename) and os.path.normpath(filename).startswith(workdir.rstrip("/") + "/")


def _module_of(filename: str, workdir: str) -> str:
    relative = os.path.relpath(filename, workdir)
    return relative[:-3].replace("/", ".").removesuffix(".__init__") if relative.endswith(".py") else ""


def _type_name(exc: BaseException) -> str:
    """Private classes are named by their first public base (numpy's _ArrayMemoryError: MemoryError)."""
    kind = next((k for k in type(exc).__mro__ if _public(k)), type(exc))
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _public(kind: type) -> bool:
    parts = f"{kind.__module__}.{kind.__qualname__}".split(".")
    return not any(part.startswith("_") for part in parts if part != "__main__")


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return f"<{type(exc).__name__} whose str() raised>"


def seed_everything(seed: int) -> None:
    """The same seed before every request: results do not depend on what ran before (TensorFlow's kernel
    cache is kept: see grader/keras_compat/seeding.py)."""
    seed %= 2**32
    if "keras" in sys.modules:
        seeding.seed_keeping_caches(seed)  # Python's and NumPy's generators included
        return
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)


def model_to_spec(value: Any) -> ModelSpec | None:
    """A Keras model as data: its JSON config and compile config. None for anything else."""
    keras = sys.modules.get("keras")
    if keras is None or not isinstance(value, keras.Model):
        return None
    try:
        json_config = value.to_json()
    except Exception:
        return None  # e.g. a subclassed model without get_config: it travels as an Opaque
    compile_config = None
    if getattr(value, "compiled", False):
        try:
            compile_config = value.get_compile_config()
        except Exception:
            compile_config = None
    return ModelSpec(json_config=json_config, compile_config=compile_config, class_name=type(value).__name__)


def payload_to_model(payload: ModelPayload) -> Any:
    """Rebuild a model the judge sent: built-in layers only (safe mode), its weights, its compile."""
    model = sequential_config.from_json(payload.json_config, safe_mode=True)
    model.set_weights(payload.weights)
    if payload.compile_config:
        model.compile_from_config(payload.compile_config)
    return model


class Capture:
    """sys.stdout/sys.stderr for one call: writes go through to the real stream (the client's bounded
    tail) and the first and last few KiB are kept for CallResult.stdout."""

    def __init__(self, limit: int = 16 * 1024) -> None:
        self.head_limit = limit // 4
        self.tail_limit = limit - self.head_limit
        self.head: list[str] = []
        self.head_size = 0
        self.tail: collections.deque[str] = collections.deque()
        self.tail_size = 0
        self.dropped = 0

    def record(self, text: str) -> None:
        if self.head_size < self.head_limit:
            part = text[: self.head_limit - self.head_size]
            self.head.append(part)
            self.head_size += len(part)
            text = text[len(part):]
        if not text:
            return
        if len(text) > self.tail_limit:
            self.dropped += len(text) - self.tail_limit
            text = text[-self.tail_limit:]
        self.tail.append(text)
        self.tail_size += len(text)
        while self.tail_size - len(self.tail[0]) >= self.tail_limit:
            self.dropped += len(self.tail[0])
            self.tail_size -= len(self.tail.popleft())

    def text(self) -> str:
        tail = "".join(self.tail)
        if len(tail) > self.tail_limit:
            self.dropped += len(tail) - self.tail_limit
            tail = tail[-self.tail_limit:]
        middle = f"\n[... {self.dropped} characters of output left out ...]\n" if self.dropped else ""
        return "".join(self.head) + middle + tail

    def stream(self, real: Any) -> _Tee:
        return _Tee(real, self)


class _Tee(io.TextIOBase):
    def __init__(self, real: Any, capture: Capture) -> None:
        self._real = real
        self._capture = capture

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._real.write(text)
        self._capture.record(text)
        return len(text)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return int(self._real.fileno())

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._real, "encoding", "utf-8"))


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started
