"""Exercise convolution.py: EDGE_KERNEL, convolve2d and max_pool2d, against TensorFlow's own ops.

The expected values come from tf.nn.conv2d / tf.nn.max_pool2d with padding "VALID" (what Conv2D
and MaxPooling2D compute by default), run here on the judge's side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.checks import Mismatch, check
from grader.datasets.fashion_mnist import prepare
from grader.suites.convolutions.feedback import describe, fmt, on_input, require_array, run_property
from grader.suites.convolutions.reference import ANKLE_BOOTS

EXERCISE = "convolution"
EDGE = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float32)
VALUES = st.floats(-10, 10, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=32)
CONV_HINT = (
    "output[i, j] = sum(image[i:i + kh, j:j + kw] * kernel) for i in range(H - kh + 1) and "
    "j in range(W - kw + 1); do not flip the kernel."
)
POOL_HINT = "output[i, j] = image[i*size:(i+1)*size, j*size:(j+1)*size].max(); rows and columns left over are dropped."


# --- the judge's expectations ------------------------------------------------------------------------
def conv_reference(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    x = tf.constant(np.asarray(image, np.float64)[np.newaxis, :, :, np.newaxis])
    k = tf.constant(np.asarray(kernel, np.float64)[:, :, np.newaxis, np.newaxis])
    return np.asarray(tf.nn.conv2d(x, k, strides=1, padding="VALID"))[0, :, :, 0]


def pool_reference(image: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    x = tf.constant(np.asarray(image, np.float64)[np.newaxis, :, :, np.newaxis])
    return np.asarray(tf.nn.max_pool2d(x, ksize=size, strides=size, padding="VALID"))[0, :, :, 0]


def _conv_tolerance(image: np.ndarray, kernel: np.ndarray) -> float:
    return 1e-4 * max(1.0, float(np.abs(image).max()) * float(np.abs(kernel).sum()))


# --- calling the student's functions ----------------------------------------------------------------
def _convolve(student: Any, image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    value = student.call("convolution", "convolve2d", image, kernel)
    return require_array(value, "convolve2d(image, kernel)", hint="return the output as a NumPy array.")


def _pool(student: Any, image: np.ndarray, size: int | None) -> np.ndarray:
    args = (image,) if size is None else (image, size)
    value = student.call("convolution", "max_pool2d", *args)
    call = "max_pool2d(image)" if size is None else f"max_pool2d(image, {size})"
    return require_array(value, call, hint="return the pooled image as a NumPy array.")


# --- diagnosing a wrong convolution -----------------------------------------------------------------
def _conv_call(image: np.ndarray, kernel: np.ndarray) -> str:
    return f"convolve2d(image of shape {image.shape}, kernel of shape {kernel.shape})"


def conv_shape_problem(image: np.ndarray, kernel: np.ndarray, got: np.ndarray) -> Mismatch | None:
    (h, w), (kh, kw) = image.shape, kernel.shape
    expected = (h - kh + 1, w - kw + 1)
    if got.shape != expected:
        hint = f"with padding 'valid' the output has shape (H - kh + 1, W - kw + 1) = {expected}."
        if got.shape == image.shape:
            hint = "the output has the image's shape, as with padding 'same'; " + hint
        elif got.shape == (h - kh, w - kw):
            hint = "one row and one column too few: loop over range(H - kh + 1), not range(H - kh). " + hint
        elif got.shape == (w - kw + 1, h - kh + 1):
            hint = "height and width are swapped: rows come from the image's first axis. " + hint
        elif got.shape == (h - 2, w - 2) and (kh, kw) != (3, 3):
            hint = "the kernel size looks fixed at 3x3: use kernel.shape. " + hint
        return Mismatch(f"{_conv_call(image, kernel)} returned an array of the wrong shape.",
                        expected=str(expected), got=str(got.shape), hint=hint)
    return None


def conv_problem(image: np.ndarray, kernel: np.ndarray, got: np.ndarray) -> Mismatch | None:
    """None when `got` is the valid cross-correlation of image and kernel, else the feedback."""
    shape_problem = conv_shape_problem(image, kernel, got)
    if shape_problem is not None:
        return shape_problem
    (kh, kw), expected = kernel.shape, conv_reference(image, kernel)
    tolerance = _conv_tolerance(image, kernel)
    if np.allclose(got, expected, rtol=1e-4, atol=tolerance):
        return None
    hint = CONV_HINT
    if np.allclose(got, conv_reference(image, kernel[::-1, ::-1]), rtol=1e-4, atol=tolerance):
        hint = "the kernel was flipped (a true convolution); Conv2D computes a cross-correlation. " + CONV_HINT
    elif kh == kw and np.allclose(got, conv_reference(image, kernel.T), rtol=1e-4, atol=tolerance):
        hint = "the kernel was transposed: kernel[a, b] multiplies image[i + a, j + b]. " + CONV_HINT
    return Mismatch(
        f"{_conv_call(image, kernel)} does not match Conv2D (tf.nn.conv2d, padding 'valid').",
        details=f"image:\n{fmt(image)}\nkernel:\n{fmt(kernel)}\nexpected:\n{fmt(expected)}\ngot:\n{fmt(got)}",
        hint=hint,
    )


def pool_problem(image: np.ndarray, size: int, got: np.ndarray, *, default: bool = False) -> Mismatch | None:
    h, w = image.shape
    expected = pool_reference(image, size)
    call = f"max_pool2d(image of shape {image.shape}{'' if default else f', {size}'})"
    if got.shape != expected.shape:
        hint = f"non-overlapping {size}x{size} windows give (H // {size}, W // {size}) = {expected.shape}."
        if got.shape == (-(-h // size), -(-w // size)):
            hint = "the leftover rows/columns were pooled too (padding 'same'); drop them. " + hint
        elif got.shape == (h - size + 1, w - size + 1):
            hint = f"the windows overlap (stride 1); move by {size} pixels each step. " + hint
        return Mismatch(f"{call} returned an array of the wrong shape.", expected=str(expected.shape),
                        got=str(got.shape), hint=hint)
    if np.allclose(got, expected, rtol=1e-6, atol=1e-6):
        return None
    hint = POOL_HINT
    windows = image[: expected.shape[0] * size, : expected.shape[1] * size].reshape(
        expected.shape[0], size, expected.shape[1], size
    )
    if np.allclose(got, windows.mean(axis=(1, 3)), atol=1e-5):
        hint = "that is average pooling; take each window's maximum. " + POOL_HINT
    elif np.allclose(got, np.maximum(expected, 0), atol=1e-6):
        hint = "negative values were lost: start each window's maximum from its first value, not 0. " + POOL_HINT
    return Mismatch(
        f"{call} does not match MaxPooling2D (tf.nn.max_pool2d, padding 'valid').",
        details=f"image:\n{fmt(image)}\nexpected:\n{fmt(expected)}\ngot:\n{fmt(got)}",
        hint=hint,
    )


# --- EDGE_KERNEL -------------------------------------------------------------------------------------
@check(points=2, exercise=EXERCISE)
def check_edge_kernel(student: Any) -> None:
    """EDGE_KERNEL is the 3x3 edge filter: 8 in the middle, -1 around it"""
    value = student.attr("convolution", "EDGE_KERNEL")
    try:
        kernel = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        kernel = None
    if kernel is None or kernel.dtype == object or kernel.shape != (3, 3):
        raise Mismatch(
            "EDGE_KERNEL must be a 3x3 array.",
            expected=f"np.array(\n{fmt(EDGE)}, dtype=np.float32)",
            got=describe(value) if kernel is None else f"{describe(value)} of shape {kernel.shape}",
        )
    if not np.array_equal(kernel, EDGE):
        hint = "8 in the middle and -1 on the eight neighbours, so the weights sum to 0."
        if np.array_equal(kernel, -EDGE):
            hint = "the signs are reversed: " + hint
        raise Mismatch("EDGE_KERNEL has the wrong weights.", expected=fmt(EDGE), got=fmt(kernel), hint=hint)


# --- convolve2d --------------------------------------------------------------------------------------
SHAPE_CASES = [((5, 7), (3, 3)), ((6, 4), (2, 3)), ((9, 8), (4, 1)), ((28, 28), (3, 3))]


@check(points=2, exercise=EXERCISE)
def check_convolve2d_shapes(student: Any) -> None:
    """convolve2d returns shape (H - kh + 1, W - kw + 1) for square and non-square images and kernels"""
    rng = np.random.default_rng(7)
    for image_shape, kernel_shape in SHAPE_CASES:
        image, kernel = rng.normal(size=image_shape), rng.normal(size=kernel_shape)
        problem = conv_shape_problem(image, kernel, _convolve(student, image, kernel))
        if problem is not None:
            raise problem


@st.composite
def conv_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    h, w = draw(st.integers(3, 16)), draw(st.integers(3, 16))
    kh = draw(st.integers(1, min(5, h)))
    kw = draw(st.just(kh) if kh <= w and draw(st.booleans()) else st.integers(1, min(5, w)))  # square half the time
    image = draw(hnp.arrays(np.float64, (h, w), elements=VALUES))
    kernel = draw(hnp.arrays(np.float64, (kh, kw), elements=VALUES))
    return image, kernel


def _fixed_conv_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Small cases every run tries first: asymmetric square and non-square kernels (flips and transposes show)."""
    rng = np.random.default_rng(3)
    shapes = [((4, 4), (2, 2)), ((5, 6), (3, 3)), ((6, 5), (2, 3)), ((7, 4), (3, 2))]
    return [(rng.integers(-4, 5, size=i).astype(np.float64), rng.integers(-3, 4, size=k).astype(np.float64))
            for i, k in shapes]


@check(points=4, exercise=EXERCISE)
def check_convolve2d_matches_conv2d(student: Any) -> None:
    """convolve2d matches Conv2D (tf.nn.conv2d, valid padding) on random images and kernels"""

    def matches_one(image: np.ndarray, kernel: np.ndarray) -> None:
        with on_input(lambda: f"for the input image:\n{fmt(image)}\nkernel:\n{fmt(kernel)}"):
            got = _convolve(student, image, kernel)
        problem = conv_problem(image, kernel, got)
        if problem is not None:
            raise problem

    for image, kernel in _fixed_conv_cases():
        matches_one(image, kernel)

    @settings(max_examples=40, report_multiple_bugs=False)
    @given(case=conv_cases())
    def matches(case: tuple[np.ndarray, np.ndarray]) -> None:
        matches_one(*case)

    run_property(matches)


@check(points=2, exercise=EXERCISE)
def check_convolve2d_edges_of_a_boot(student: Any, fashion: Any) -> None:
    """convolve2d with the edge kernel on a real Fashion-MNIST image matches Conv2D"""
    image = prepare(fashion.test_images[ANKLE_BOOTS[0] : ANKLE_BOOTS[0] + 1])[0, :, :, 0]
    got = _convolve(student, image, EDGE)
    expected = conv_reference(image, EDGE)
    if got.shape != expected.shape:
        raise Mismatch("convolve2d(boot image (28, 28), EDGE_KERNEL) returned the wrong shape.",
                       expected=str(expected.shape), got=str(got.shape),
                       hint="a 3x3 kernel without padding shrinks each side by 2.")
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        worst = np.unravel_index(np.argmax(np.abs(got - expected)), expected.shape)
        raise Mismatch(
            "convolve2d(boot image, EDGE_KERNEL) differs from Conv2D on test image 0 (an ankle boot).",
            expected=f"{expected[worst]:.4f} at row {worst[0]}, column {worst[1]}",
            got=f"{got[worst]:.4f} (largest difference {np.abs(got - expected).max():.4g})",
            hint=CONV_HINT,
        )


@check(points=2, exercise=EXERCISE, hidden=True)
def check_convolve2d_extreme_kernels(student: Any) -> None:
    """convolve2d handles 1x1 kernels, 1xN and Nx1 kernels, and a kernel as large as the image"""
    rng = np.random.default_rng(11)
    image = rng.integers(-5, 6, size=(4, 6)).astype(np.float64)
    for kernel_shape in [(1, 1), (1, 4), (3, 1), (4, 6)]:
        kernel = rng.integers(-3, 4, size=kernel_shape).astype(np.float64)
        kernel.flat[0] = 2.0  # never all zeros
        problem = conv_problem(image, kernel, _convolve(student, image, kernel))
        if problem is not None:
            raise problem


# --- max_pool2d --------------------------------------------------------------------------------------
@st.composite
def pool_images(draw: st.DrawFn, size: int) -> np.ndarray:
    h, w = draw(st.integers(size, 5 * size + 1)), draw(st.integers(size, 5 * size + 1))
    return draw(hnp.arrays(np.float64, (h, w), elements=VALUES))


FIXED_POOL_SHAPES = [(4, 6), (5, 7), (6, 5), (9, 9)]  # even and odd sides, whatever Hypothesis draws


@check(points=2, exercise=EXERCISE)
@pytest.mark.parametrize("size", [2, 3], ids=["size 2", "size 3"])
def check_max_pool2d_matches(student: Any, size: int) -> None:
    """max_pool2d matches MaxPooling2D (tf.nn.max_pool2d, valid padding) on odd and even image sizes"""
    rng = np.random.default_rng(size)
    for shape in FIXED_POOL_SHAPES:
        image = rng.normal(size=shape).round(2)
        problem = pool_problem(image, size, _pool(student, image, size))
        if problem is not None:
            raise problem

    @settings(max_examples=25, report_multiple_bugs=False)
    @given(image=pool_images(size))
    def matches(image: np.ndarray) -> None:
        with on_input(lambda: f"for the input image:\n{fmt(image)}"):
            got = _pool(student, image, size)
        problem = pool_problem(image, size, got)
        if problem is not None:
            raise problem

    run_property(matches)


@check(points=1, exercise=EXERCISE, hidden=True)
def check_max_pool2d_default_negative(student: Any) -> None:
    """max_pool2d(image) uses 2x2 windows by default and keeps negative values"""
    image = -np.arange(1.0, 31.0).reshape(5, 6)
    problem = pool_problem(image, 2, _pool(student, image, None), default=True)
    if problem is not None:
        raise problem


@check(points=1, exercise=EXERCISE, hidden=True)
def check_max_pool2d_keeps_dtype(student: Any) -> None:
    """max_pool2d returns the image's dtype (uint8 in, uint8 out)"""
    image = (np.arange(48).reshape(6, 8) * 5 % 256).astype(np.uint8)
    got = _pool(student, image, 2)
    expected = image.reshape(3, 2, 4, 2).max(axis=(1, 3))
    if got.shape != expected.shape or not np.array_equal(got, expected):
        raise Mismatch("max_pool2d(uint8 image (6, 8), 2) returned wrong values.",
                       expected=fmt(expected), got=fmt(got), hint=POOL_HINT)
    if got.dtype != image.dtype:
        raise Mismatch(
            "max_pool2d(uint8 image (6, 8), 2) changed the dtype.", expected="uint8", got=str(got.dtype),
            hint="pooling only picks existing values: build the output from the image itself (e.g. reshape and "
            ".max) or create it with dtype=image.dtype.",
        )
