"""The sandbox's limits, results and errors: what the judge sees of everything that can go wrong.

Every error carries ``.message``, text meant for the student's feedback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    timeout: float = 60.0  # wall-clock seconds per call
    memory: int = 4 * 1024**3  # bytes, whole sandbox process tree
    nproc: int = 512  # processes+threads of the sandbox user
    output_tail: int = 64 * 1024  # bytes of stdout/stderr kept
    tmp_size: int = 512 * 1024**2  # size of the sandbox's private tmpfs


@dataclass
class CallResult:
    value: Any
    stdout: str  # what this call wrote to sys.stdout/sys.stderr (bounded)
    seconds: float  # how long the function itself ran, measured inside the sandbox


class SandboxError(Exception):
    """Anything that kept student code from returning a value."""

    stdout: str = ""  # what the failed call printed, where the sandbox could still say

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StudentError(SandboxError):
    """Student code raised an exception (while importing its module or during the call)."""

    def __init__(
        self,
        message: str,
        *,
        exc_type: str,
        exc_message: str,
        traceback: str,
        phase: str,
        module: str,
        function: str = "",
    ) -> None:
        super().__init__(message)
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.traceback = traceback  # only frames from the submission's files
        self.phase = phase  # "import" or "call"
        self.module = module
        self.function = function


class ModuleMissing(StudentError):
    """The submission has no such module (an ImportError at phase "import")."""


class SandboxTimeout(SandboxError):
    """A call did not return in time; the sandbox was killed (or the call was not retried)."""

    def __init__(self, message: str, *, module: str = "", function: str = "", retried: bool = True) -> None:
        super().__init__(message)
        self.module = module
        self.function = function
        self.retried = retried


class SandboxMemoryError(SandboxError):
    """The sandbox's processes together went over the memory limit and were killed."""


class SandboxCrashed(SandboxError):
    """The sandbox process ended without answering: SystemExit, os._exit, a signal, a broken reply."""


def describe_size(size: float) -> str:
    """4294967296 -> '4 GiB'; 536870912 -> '512 MiB'."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(size)} bytes"


def describe_seconds(seconds: float) -> str:
    return f"{seconds:g} s"
