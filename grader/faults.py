"""Faults of the grader itself: never a student's failure.

When the sandbox cannot start or cannot use the grader's environment, when Keras cannot do what the
judge asks of it, when the data set or the machine fails, the check that met it ends with status
"error" (not "failed"), the submission with status "error", `grader check` exits 2 and `grader grade`
writes no score for it: the TA sees the cause, the student is not blamed.
"""

from __future__ import annotations


class GraderFault(RuntimeError):
    """The grader (its sandbox, its environment, Keras, the data set, the machine) failed, not the student."""

    fix: str = ""  # what the TA can do about it, where known

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix or type(self).fix


DOCTOR = "run `grader doctor` on this machine: it checks the environment and says what to fix"


def describe_fault(exc: BaseException) -> str:
    """One line for the TA: what failed (the first line of its message, and the next where it ends in ':'),
    without the fix it may carry."""
    lines = [line.strip() for line in str(getattr(exc, "message", "") or exc).splitlines() if line.strip()]
    fix = getattr(exc, "fix", "")
    lines = [line for line in lines if not fix or line not in fix]
    text = lines[0] if lines else type(exc).__name__
    if text.endswith(":") and len(lines) > 1:
        text += " " + lines[1]
    return text[:500]
