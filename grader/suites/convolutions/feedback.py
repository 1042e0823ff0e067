"""Helpers the convolutions suites share: property runs with clean failures, value checks, formatting.

A Hypothesis property is run inside a check (not as the check itself) so that its failure reaches
the student as one message about the smallest failing input, without Hypothesis' own notes
("Falsifying example: ...") that name the judge's variables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from grader.checks import Mismatch

T = TypeVar("T")


def fmt(array: Any, precision: int = 3) -> str:
    """A small array as the feedback shows it."""
    return np.array2string(
        np.asarray(array), precision=precision, suppress_small=True, max_line_width=100, threshold=200
    )


def describe(value: Any) -> str:
    """What a returned value is, for a 'got:' line."""
    from grader.judge.student import describe_value

    return describe_value(value)


def run_property(test: Callable[[], None]) -> None:
    """Run a @given-decorated function; re-raise its (shrunk) failure without Hypothesis' notes."""
    from hypothesis.errors import Flaky

    try:
        test()
    except AssertionError as exc:
        if hasattr(exc, "__notes__"):
            del exc.__notes__
        raise
    except Flaky as exc:  # the same input failed once and passed once: say so, with the failure
        first = _first_assertion(exc)
        if first is None:
            raise
        raise Mismatch(
            str(first),
            hint="the same input did not always give the same result: avoid randomness and state kept "
            "between calls.",
        ) from None


@contextmanager
def on_input(describe_input: Callable[[], str]) -> Iterator[None]:
    """Student code that fails (raises, hangs) on a generated input: name that input in the feedback."""
    try:
        yield
    except Mismatch:
        raise
    except AssertionError as exc:  # a StudentFailure: its message, then the input that caused it
        raise Mismatch(str(exc), details=describe_input()) from None


def _first_assertion(exc: BaseException) -> AssertionError | None:
    if isinstance(exc, AssertionError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _first_assertion(inner)
        if found is not None:
            return found
    return None


def require_array(value: Any, call: str, *, hint: str) -> np.ndarray:
    """`value` as an ndarray of numbers, or a Mismatch saying what came back instead."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    raise Mismatch(
        f"{call} must return a NumPy array of numbers.",
        expected="a numpy.ndarray",
        got=describe(value),
        hint=hint,
    )


def require_shape(array: np.ndarray, shape: tuple[int, ...], call: str, *, hint: str, details: str = "") -> None:
    if array.shape != shape:
        raise Mismatch(
            f"{call} returned an array of the wrong shape.",
            expected=str(shape),
            got=str(array.shape),
            hint=hint,
            details=details or None,
        )


def differing_cells(expected: np.ndarray, got: np.ndarray, *, atol: float, rtol: float = 0.0,
                    limit: int = 5) -> str:
    """The first cells where two same-shaped arrays differ, one per line."""
    bad = ~np.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=False)
    lines = []
    for index in list(zip(*np.nonzero(bad), strict=True))[:limit]:
        where = ", ".join(str(int(i)) for i in index)
        lines.append(f"  at [{where}]: expected {expected[index]:.6g}, got {got[index]:.6g}")
    count = int(bad.sum())
    if count > limit:
        lines.append(f"  ... and {count - limit} more of {bad.size} values")
    return "\n".join(lines)


@dataclass
class Outcome(Generic[T]):
    """One sandbox run shared by several checks: its value, or the failure each of them reports."""

    value: T | None = None
    error: AssertionError | None = None

    def get(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def attempt(run: Callable[[], T]) -> Outcome[T]:
    """Run `run` once; a failure of the student code (an AssertionError) is kept for later checks."""
    try:
        return Outcome(value=run())
    except AssertionError as exc:
        return Outcome(error=exc)


def require_keys(value: Any, keys: Sequence[str], call: str, *, hint: str, extra_ok: bool = False) -> dict[str, Any]:
    """`value` as a dict with the given keys (and no others unless `extra_ok`), or the feedback."""
    if not isinstance(value, dict):
        raise Mismatch(f"{call} must return a dict.", expected=f"a dict with keys {list(keys)}",
                       got=describe(value), hint=hint)
    missing = [k for k in keys if k not in value]
    extra = [] if extra_ok else sorted(str(k) for k in value if k not in keys)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        raise Mismatch(
            f"{call} returned a dict with the wrong keys ({'; '.join(parts)}).",
            expected=f"{'the' if extra_ok else 'exactly the'} keys {list(keys)}",
            got=f"the keys {sorted(map(str, value))}",
            hint=hint,
        )
    return value
