"""Exercise data.py: prepare_images scales uint8 images to float32 in [0, 1] with a channel axis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.checks import Mismatch, check
from grader.datasets.fashion_mnist import prepare
from grader.suites.convolutions.feedback import differing_cells, fmt, on_input, require_array, run_property

EXERCISE = "data"
ATOL = 1e-6
FIX_SHAPE = "add the channel axis last, e.g. `images[..., np.newaxis]` or `images.reshape(-1, 28, 28, 1)`."
FIX_DTYPE = "convert before dividing, e.g. `images.astype(np.float32) / 255.0`."


def _prepare(student: Any, images: np.ndarray) -> np.ndarray:
    value = student.call("data", "prepare_images", images)
    return require_array(value, f"prepare_images(<{len(images)} images>)", hint="return the scaled array.")


def _shape_problem(images: np.ndarray, got: np.ndarray) -> Mismatch | None:
    expected = (*images.shape, 1)
    if got.shape == expected:
        return None
    hint = FIX_SHAPE
    if got.shape == images.shape:
        hint = "the channel axis is missing: Conv2D needs (n, 28, 28, 1). " + FIX_SHAPE
    elif got.size == images.size and got.shape[:1] != images.shape[:1]:
        hint = "keep one entry per image on the first axis. " + FIX_SHAPE
    return Mismatch(
        f"prepare_images(images) with images of shape {images.shape} returned the wrong shape.",
        expected=str(expected), got=str(got.shape), hint=hint,
    )


def _dtype_problem(got: np.ndarray) -> Mismatch | None:
    if got.dtype == np.float32:
        return None
    hint = FIX_DTYPE
    if got.dtype == np.float64:
        hint = "NumPy computes in float64 by default; Keras works in float32. " + FIX_DTYPE
    elif got.dtype.kind in "iu":
        hint = "integer division or an integer array loses the fractions. " + FIX_DTYPE
    return Mismatch("prepare_images returned the wrong dtype.", expected="float32", got=str(got.dtype), hint=hint)


def _value_problem(images: np.ndarray, got: np.ndarray) -> Mismatch | None:
    expected = prepare(images)
    values = got.reshape(expected.shape).astype(np.float64)
    if np.allclose(values, expected, atol=ATOL, rtol=0):
        return None
    hint = "divide by 255 (the largest pixel value) so that 0 -> 0.0 and 255 -> 1.0."
    source = images.astype(np.float64)[..., np.newaxis]
    if not np.isfinite(values).all():
        hint = ("NaN or infinite values: a division by zero? Scale by the constant 255, not by a statistic of "
                "the batch (its largest value, mean or standard deviation).")
    elif np.allclose(values, source, atol=ATOL):
        hint = "the pixels were not scaled: " + hint
    elif np.allclose(values, source / 127.5, atol=1e-5) or np.allclose(values, source / 127.5 - 1, atol=1e-5):
        hint = "that is a [-1, 1] or [0, 2] scaling (127.5); this lab scales to [0, 1]: " + hint
    elif np.allclose(values, 1 - expected, atol=1e-5):
        hint = "the image is inverted (1 - x): " + hint
    elif images.max() > 0 and np.allclose(values, source / images.max(), atol=1e-5):
        hint = "divide by the constant 255, not by the batch's largest value."
    details = "first differences (image, row, column, channel):\n" + differing_cells(expected, values, atol=ATOL)
    return Mismatch(
        f"prepare_images(images) does not return images / 255 (tolerance {ATOL:g}).",
        details=details, hint=hint,
    )


def _value_range_text(got: np.ndarray) -> str:
    return f"values from {float(got.min()):.6g} to {float(got.max()):.6g}"


@check(points=3, exercise=EXERCISE)
def check_prepare_shape_and_dtype(student: Any, fashion: Any) -> None:
    """prepare_images returns a float32 array of shape (n, 28, 28, 1) for the first 5 test images"""
    images = np.array(fashion.test_images[:5])
    got = _prepare(student, images)
    problem = _shape_problem(images, got) or _dtype_problem(got)
    if problem is not None:
        raise problem


@check(points=2, exercise=EXERCISE)
def check_prepare_range(student: Any, fashion: Any) -> None:
    """prepare_images puts the first 5 test images in the range [0, 1]"""
    got = _prepare(student, np.array(fashion.test_images[:5]))
    if not np.isfinite(got).all() or got.min() < 0 or got.max() > 1:
        raise Mismatch(
            "prepare_images returned values outside [0, 1].",
            expected="values from 0.0 to 1.0", got=_value_range_text(got),
            hint="divide by 255, the largest value of a uint8 pixel.",
        )
    if got.max() < 0.5:
        raise Mismatch(
            "prepare_images squeezed the images into a small part of [0, 1].",
            expected="the brightest pixels (255) close to 1.0", got=_value_range_text(got),
            hint="divide by 255, not by a larger number.",
        )


@check(points=3, exercise=EXERCISE)
def check_prepare_values_real(student: Any, fashion: Any) -> None:
    """prepare_images returns exactly images / 255 for the first 5 test images"""
    images = np.array(fashion.test_images[:5])
    got = _prepare(student, images)
    problem = _shape_problem(images, got) or _value_problem(images, got)
    if problem is not None:
        raise problem


@check(points=4, exercise=EXERCISE)
def check_prepare_random_batches(student: Any) -> None:
    """prepare_images gives float32 (n, 28, 28, 1) = images / 255 for random uint8 batches of 1 to 8 images"""
    batches = hnp.arrays(np.uint8, st.tuples(st.integers(1, 8), st.just(28), st.just(28)))

    @settings(max_examples=25, report_multiple_bugs=False)
    @given(images=batches)
    @example(images=np.zeros((1, 28, 28), np.uint8))  # code that fails everywhere fails here, unshrunk
    def prepares_exactly(images: np.ndarray) -> None:
        with on_input(lambda: _example_text(images)):
            got = _prepare(student, images)
        problem = _shape_problem(images, got) or _dtype_problem(got) or _value_problem(images, got)
        if problem is not None:
            raise _with_example(problem, images)

    run_property(prepares_exactly)


def _with_example(problem: Mismatch, images: np.ndarray) -> Mismatch:
    """The same feedback, led by a description of the (shrunk) failing input."""
    details = "\n".join(filter(None, [_example_text(images), problem.details]))
    return Mismatch(problem.message, expected=problem.expected, got=problem.got, hint=problem.hint, details=details)


def _example_text(images: np.ndarray) -> str:
    """The (shrunk) input in words: its most common pixel value and the pixels that differ from it."""
    values, counts = np.unique(images, return_counts=True)
    common = values[np.argmax(counts)]
    others = np.argwhere(images != common)
    text = f"smallest failing input: {len(images)} image(s) of 28x28 pixels, every pixel {common}"
    if len(others) == 0:
        return text + "."
    cells = ", ".join(f"[{', '.join(map(str, idx))}] = {images[tuple(idx)]}" for idx in others[:6])
    more = f" and {len(others) - 6} more" if len(others) > 6 else ""
    return text + f" except {cells}{more}."


@check(points=1, exercise=EXERCISE, hidden=True)
@pytest.mark.parametrize("level", [0, 255], ids=["all black", "all white"])
def check_prepare_extremes(student: Any, level: int) -> None:
    """prepare_images maps an all-black batch to exactly 0.0 and an all-white batch to exactly 1.0"""
    images = np.full((3, 28, 28), level, dtype=np.uint8)
    got = _prepare(student, images)
    problem = _shape_problem(images, got) or _value_problem(images, got)
    if problem is not None:
        unique = np.unique(got)
        raise Mismatch(
            f"prepare_images on 3 images whose pixels are all {level} must return {level / 255:.1f} everywhere.",
            expected=f"shape (3, 28, 28, 1), every value {level / 255:.1f}",
            got=f"shape {got.shape}, values {fmt(unique[:4])}{' ...' if unique.size > 4 else ''}",
            hint=problem.hint,
        )


@check(points=1, exercise=EXERCISE, hidden=True)
def check_prepare_whole_batch(student: Any, fashion: Any) -> None:
    """prepare_images handles 2,000 test images at once"""
    images = np.array(fashion.test_images[:2000])
    got = _prepare(student, images)
    problem = _shape_problem(images, got) or _dtype_problem(got) or _value_problem(images, got)
    if problem is not None:
        raise problem
