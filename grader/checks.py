"""Declaring graded checks, the way check50 and Otter do.

    @check(points=2, exercise="models", depends=("cnn_builds",))
    def cnn_parameter_counts(student):
        \"\"\"build_model() has 320, 9,248, 102,528 and 1,290 parameters in its weighted layers\"\"\"
        ...
        raise Mismatch(expected="320", got="640", hint="(3*3*1+1)*32 = 320: ...")

The docstring's first line is the title a student sees. A check fails by raising `Mismatch` (or any
assertion); a dependency that did not pass skips the check with a message naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from grader.textcap import FIELD_LIMIT, MESSAGE_LIMIT, clip

F = TypeVar("F", bound=Callable[..., Any])

MARKER = "grader_check"


@dataclass(frozen=True)
class CheckSpec:
    """What the decorator records about a check."""

    points: float
    exercise: str
    hidden: bool = False
    depends: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    title: str = ""
    name: str = ""


class Mismatch(AssertionError):
    """A failed check: what was expected, what was found, and what to try."""

    def __init__(
        self,
        message: str = "",
        *,
        expected: Any = None,
        got: Any = None,
        hint: str | None = None,
        details: str | None = None,
    ) -> None:
        # Each part may hold what a submission returned: all are capped, with a marker where text was cut.
        self.message = clip(message, MESSAGE_LIMIT)
        self.expected = None if expected is None else clip(expected, FIELD_LIMIT)
        self.got = None if got is None else clip(got, FIELD_LIMIT)
        self.hint = None if hint is None else clip(hint, FIELD_LIMIT)
        self.details = None if details is None else clip(details, FIELD_LIMIT)
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.message] if self.message else []
        if self.expected is not None:
            lines.append(_labelled("expected", self.expected))
        if self.got is not None:
            lines.append(_labelled("got", self.got))
        if self.details:
            lines.append(self.details)
        if self.hint:
            lines.append(_labelled("hint", self.hint))
        return "\n".join(lines)


@dataclass
class Feedback:
    """Extra data a check wants in its result (learning curves, accuracy intervals, notes)."""

    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _labelled(label: str, text: str) -> str:
    if "\n" in text:
        indented = "\n".join("    " + line for line in text.splitlines())
        return f"  {label}:\n{indented}"
    return f"  {label}: {text}"


def check(
    points: float,
    exercise: str,
    *,
    hidden: bool = False,
    depends: Sequence[str] = (),
    tags: Sequence[str] = (),
) -> Callable[[F], F]:
    """Mark a test function as a graded check worth `points` in `exercise`."""

    def decorate(func: F) -> F:
        where = f"{func.__code__.co_filename}:{func.__code__.co_firstlineno}"
        doc = inspect.getdoc(func)
        if not doc:
            raise TypeError(f"{where}: check {func.__name__} needs a docstring: it is the title students see")
        if not points > 0:
            raise ValueError(f"{where}: check {func.__name__} is worth {points!r} points; give a positive number")
        if isinstance(depends, str):
            raise TypeError(f"{where}: check {func.__name__} has depends={depends!r}; give a tuple of check "
                            f"names, e.g. depends=({depends!r},)")
        spec = CheckSpec(
            points=float(points),
            exercise=exercise,
            hidden=hidden,
            depends=tuple(depends),
            tags=tuple(tags),
            title=doc.strip().splitlines()[0],
            name=func.__name__,
        )
        func.__grader_check__ = spec  # type: ignore[attr-defined]
        return getattr(pytest.mark, MARKER)(spec)(func)  # type: ignore[no-any-return]

    return decorate


def register_marker(config: pytest.Config) -> None:
    """Declare the checks' marker to a pytest run over suites (else pytest warns of an unknown mark)."""
    config.addinivalue_line("markers", f"{MARKER}(spec): a graded check, declared with grader.checks.check")


def spec_of(item: pytest.Item) -> CheckSpec | None:
    marker = item.get_closest_marker(MARKER)
    if marker is None or not marker.args:
        return None
    spec = marker.args[0]
    return spec if isinstance(spec, CheckSpec) else None
