"""Property tests of the reference solutions' numerics against TensorFlow's own ops.

``convolve2d`` must compute what ``Conv2D`` computes (``tf.nn.conv2d``, valid padding, no
kernel flip) and ``max_pool2d`` what ``MaxPooling2D`` computes (``tf.nn.max_pool2d``, valid
padding), for any shapes; ``prepare_images`` must scale exactly like the judge's ``prepare``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.datasets.fashion_mnist import prepare

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions" / "convolutions"
MODULES = ("data", "models", "callbacks", "training", "convolution", "visualize", "experiments")
PROPERTY = settings(max_examples=60, deadline=None, database=None, derandomize=bool(os.environ.get("CI")))




def _floats(bound: float) -> st.SearchStrategy[float]:
    """float32 values in [-bound, bound], no subnormals: TensorFlow's CPU kernels flush them to zero (a pooled
    1e-45 comes back 0.0), which numpy does not, and the lab's grading never feeds them either."""
    return st.floats(-bound, bound, width=32, allow_subnormal=False)


@st.composite
def image_and_kernel(draw):
    """A float32 image up to 13x13 and a kernel of any shape that fits it (odd, even, non-square)."""
    height, width = draw(st.integers(1, 13)), draw(st.integers(1, 13))
    kernel_shape = (draw(st.integers(1, height)), draw(st.integers(1, width)))
    image = draw(hnp.arrays(np.float32, (height, width), elements=_floats(100)))
    kernel = draw(hnp.arrays(np.float32, kernel_shape, elements=_floats(10)))
    return image, kernel


@st.composite
def image_and_pool_size(draw):
    height, width = draw(st.integers(1, 15)), draw(st.integers(1, 15))
    size = draw(st.integers(1, min(height, width, 4)))
    image = draw(hnp.arrays(np.float32, (height, width), elements=_floats(1e6)))
    return image, size


def _tf_conv(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    result = tf.nn.conv2d(image[None, :, :, None], kernel[:, :, None, None], strides=1, padding="VALID")
    return result.numpy()[0, :, :, 0]


@PROPERTY
@given(case=image_and_kernel())
def test_convolve2d_matches_tf_conv2d(reference, case):
    image, kernel = case
    got = reference.convolution.convolve2d(image, kernel)
    expected = _tf_conv(image, kernel)
    assert got.shape == (image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)
    # float32 sums of up to 169 products: allow a few float32 ulps of the largest possible term sum
    scale = float(np.abs(image).max(initial=0.0)) * float(np.abs(kernel).sum()) + 1.0
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)


@PROPERTY
@given(case=image_and_pool_size())
def test_max_pool2d_matches_tf_max_pool2d(reference, case):
    image, size = case
    got = reference.convolution.max_pool2d(image, size)
    expected = tf.nn.max_pool2d(image[None, :, :, None], ksize=size, strides=size, padding="VALID")
    assert got.dtype == image.dtype
    np.testing.assert_array_equal(got, expected.numpy()[0, :, :, 0])


@PROPERTY
@given(images=hnp.arrays(np.uint8, st.tuples(st.integers(0, 4), st.just(28), st.just(28))))
def test_prepare_images_scales_exactly(reference, images):
    before = images.copy()
    prepared = reference.data.prepare_images(images)
    assert prepared.dtype == np.float32
    assert prepared.shape == (*images.shape, 1)
    assert np.all((prepared >= 0) & (prepared <= 1))
    np.testing.assert_array_equal(prepared, prepare(images))
    # float64 division rounded once to float32 is the correctly rounded float32 quotient
    np.testing.assert_array_equal(prepared[..., 0], (images / 255.0).astype(np.float32))
    np.testing.assert_array_equal(images, before)


def test_edge_kernel(reference):
    kernel = reference.convolution.EDGE_KERNEL
    assert kernel.shape == (3, 3)
    assert kernel[1, 1] == 8
    assert np.count_nonzero(kernel == -1) == 8
    assert kernel.sum() == 0


def test_edge_kernel_ignores_flat_areas_and_finds_edges(reference):
    image = np.zeros((6, 8), dtype=np.float32)
    image[:, 4:] = 1.0  # a vertical edge between columns 3 and 4
    edges = reference.convolution.convolve2d(image, reference.convolution.EDGE_KERNEL)
    np.testing.assert_array_equal(edges[:, 0:2], 0)  # flat dark area
    np.testing.assert_array_equal(edges[:, 4:], 0)  # flat bright area
    np.testing.assert_array_equal(edges[:, 2], -3)  # dark side of the edge
    np.testing.assert_array_equal(edges[:, 3], 3)  # bright side of the edge


def test_convolution_is_not_flipped(reference):
    image = np.arange(9, dtype=np.float32).reshape(3, 3)
    kernel = np.array([[1, 0], [0, 0]], dtype=np.float32)  # picks the top-left pixel of each window
    np.testing.assert_array_equal(reference.convolution.convolve2d(image, kernel), image[:2, :2])


@pytest.mark.parametrize(
    ("image_shape", "kernel_shape"),
    [((3, 3), (4, 1)), ((3, 3), (1, 4)), ((3,), (1,)), ((3, 3, 1), (3, 3))],
)
def test_convolve2d_rejects_bad_shapes(reference, image_shape, kernel_shape):
    with pytest.raises(ValueError):
        reference.convolution.convolve2d(np.zeros(image_shape), np.zeros(kernel_shape))


@pytest.mark.parametrize(
    ("shape", "size", "expected"), [((5, 7), 2, (2, 3)), ((28, 28), 2, (14, 14)), ((9, 9), 3, (3, 3))]
)
def test_max_pool2d_drops_odd_edges(reference, shape, size, expected):
    image = np.zeros(shape, dtype=np.int64)
    image[-1, :] = image[:, -1] = 100  # only in dropped rows/columns when the size does not divide
    pooled = reference.convolution.max_pool2d(image, size)
    assert pooled.shape == expected
    assert pooled.max() == (100 if shape[0] % size == 0 else 0)


class _FakeModel:
    stop_training = False


def _callback(reference, metric, threshold):
    callback = reference.callbacks.StopOnThreshold(metric, threshold)
    callback.set_model(_FakeModel())
    return callback


@PROPERTY
@given(
    metric=st.sampled_from(["loss", "val_loss", "accuracy", "val_accuracy"]),
    value=st.floats(0, 2, width=32),
    threshold=st.floats(0, 2, width=32),
)
def test_callback_stops_exactly_when_the_threshold_is_crossed(reference, metric, value, threshold):
    callback = _callback(reference, metric, threshold)
    callback.on_epoch_end(0, {metric: np.float32(value), "other": 123.0})
    should_stop = value < threshold if metric.endswith("loss") else value >= threshold
    assert callback.model.stop_training is should_stop


@pytest.mark.parametrize(
    ("metric", "threshold", "logs", "epoch", "message"),
    [
        ("loss", 0.01, {"loss": 0.0091}, 6, "\nReached loss 0.0091 < 0.01 at epoch 7: stopping training.\n"),
        ("accuracy", 0.95, {"accuracy": 0.95}, 0, "\nReached accuracy 0.9500 >= 0.95 at epoch 1: stopping training.\n"),
        (
            "val_loss",
            0.3,
            {"loss": 0.1, "val_loss": 0.25},
            2,
            "\nReached val_loss 0.2500 < 0.3 at epoch 3: stopping training.\n",
        ),
        ("loss", 0.01, {"loss": 0.01}, 0, ""),
        ("val_loss", 0.3, {"loss": 0.1}, 0, ""),
        ("loss", 0.3, None, 0, ""),
    ],
    ids=["loss-below", "accuracy-reached", "val-loss", "loss-equal", "metric-missing", "no-logs"],
)
def test_callback_message(reference, capsys, metric, threshold, logs, epoch, message):
    callback = _callback(reference, metric, threshold)
    callback.on_epoch_end(epoch, logs)
    assert capsys.readouterr().out == message
    assert callback.model.stop_training is bool(message)
