"""Run student code in an isolated process and get plain data back (see client.py's design note)."""

from grader.sandbox.client import DEFAULT_PRELOAD, Sandbox, SandboxStartError
from grader.sandbox.errors import (
    CallResult,
    Limits,
    ModuleMissing,
    SandboxCrashed,
    SandboxError,
    SandboxMemoryError,
    SandboxTimeout,
    StudentError,
)
from grader.sandbox.protocol import ModelPayload, ModelSpec, Opaque

__all__ = [
    "DEFAULT_PRELOAD",
    "CallResult",
    "Limits",
    "ModelPayload",
    "ModelSpec",
    "ModuleMissing",
    "Opaque",
    "Sandbox",
    "SandboxCrashed",
    "SandboxError",
    "SandboxMemoryError",
    "SandboxStartError",
    "SandboxTimeout",
    "StudentError",
]
