"""Exercise visualize.py: layer_activations and plot_activations on the judge's reference CNN.

No double jeopardy: the model is the judge's reference_cnn() (deterministic weights, sent as config
and weights) and the images are prepared by the judge, so a bug in models.py or data.py costs nothing
here. The expected activations are computed here with the same model.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from grader.checks import Mismatch, check
from grader.datasets.fashion_mnist import prepare
from grader.suites.convolutions.feedback import Outcome, attempt, describe
from grader.suites.convolutions.reference import ANKLE_BOOTS, payload_of, reference_activations, reference_cnn

EXERCISE = "visualize"
ATOL = 1e-4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_SIDE = 100
MIN_CHANGED = 0.02
ACTIVATIONS_HINT = (
    "pick the Conv2D and MaxPooling2D layers of the model, build "
    "keras.Model(inputs=model.inputs, outputs=[layer.output for layer in those layers]) and predict(images)."
)
PLOT_HINT = "draw one imshow per (image, layer) cell and save the figure with figure.savefig(path) (PNG)."


# --- the judge's inputs and expectations -------------------------------------------------------------
@pytest.fixture(scope="module")
def boots(fashion: Any) -> np.ndarray:
    """Test images 0, 23 and 28 (three ankle boots), prepared by the judge."""
    return prepare(fashion.test_images[list(ANKLE_BOOTS)])


@pytest.fixture(scope="module")
def cnn() -> Any:
    return reference_cnn()


def expected_shapes(model: Any, n: int) -> list[tuple[int, ...]]:
    return [(n, *layer.output.shape[1:]) for layer in model.layers
            if type(layer).__name__ in ("Conv2D", "MaxPooling2D")]


def layer_names(model: Any) -> list[str]:
    return [type(layer).__name__ for layer in model.layers if type(layer).__name__ in ("Conv2D", "MaxPooling2D")]


def activations_of(student: Any, model: Any, images: np.ndarray) -> list[np.ndarray]:
    """The student's layer_activations(model, images), checked to be one array per conv/pool layer."""
    value = student.call("visualize", "layer_activations", payload_of(model), images)
    shapes = expected_shapes(model, len(images))
    call = f"layer_activations(model, images of shape {images.shape})"
    names = " -> ".join(layer_names(model))
    if not isinstance(value, (list, tuple)) or not all(isinstance(a, np.ndarray) for a in value):
        raise Mismatch(
            f"{call} must return a list of NumPy arrays, one per Conv2D/MaxPooling2D layer.",
            expected=f"a list of {len(shapes)} arrays", got=describe(value),
            hint="convert each output with np.asarray; predict with several outputs returns a list. "
            + ACTIVATIONS_HINT,
        )
    got_shapes = [a.shape for a in value]
    if got_shapes != shapes:
        hint = ACTIVATIONS_HINT
        if len(value) > len(shapes):
            hint = "only the Conv2D and MaxPooling2D layers count (not Flatten or Dense). " + hint
        elif len(value) == len(shapes) // 2:
            hint = "both kinds count: every Conv2D and every MaxPooling2D layer, in order. " + hint
        elif len(value) == len(shapes) and all(len(s) == 3 for s in got_shapes):
            hint = "keep the batch axis: one map per image, (n, height, width, channels). " + hint
        raise Mismatch(
            f"{call} returned the wrong arrays for a model with layers {names} -> Flatten -> Dense -> Dense.",
            expected=", ".join(map(str, shapes)), got=", ".join(map(str, got_shapes)) or "an empty list",
            hint=hint,
        )
    return list(value)


def values_problem(model: Any, images: np.ndarray, got: Sequence[np.ndarray]) -> Mismatch | None:
    expected = reference_activations(model, images)
    names = layer_names(model)
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        if np.allclose(have, want, atol=ATOL, rtol=0):
            continue
        difference = np.abs(have.astype(np.float64) - want)
        where = np.unravel_index(np.argmax(difference), want.shape)
        hint = ACTIVATIONS_HINT
        if names[index] == "Conv2D" and have.min() < -ATOL:
            hint = "the maps have negative values: use the layer's own output (after its relu). " + hint
        elif any(np.allclose(have, other, atol=ATOL) for other in expected if other.shape == have.shape):
            hint = "those are another layer's maps: keep the layers in model order. " + hint
        return Mismatch(
            f"layer_activations: the maps of layer {index + 1} ({names[index]}) differ from the model's own "
            f"output (tolerance {ATOL:g}).",
            expected=f"{want[where]:.5f} at index {tuple(int(i) for i in where)}",
            got=f"{have[where]:.5f} (largest difference {difference.max():.4g})",
            hint=hint,
        )
    return None


@pytest.fixture(scope="module")
def boot_maps(student: Any, cnn: Any, boots: np.ndarray) -> Outcome[list[np.ndarray]]:
    return attempt(lambda: activations_of(student, cnn, boots))


# --- layer_activations -------------------------------------------------------------------------------
@check(points=3, exercise=EXERCISE)
def check_activation_shapes(boot_maps: Outcome[list[np.ndarray]]) -> None:
    """layer_activations gives 4 maps (3,26,26,32), (3,13,13,32), (3,11,11,32), (3,5,5,32) for 3 images"""
    boot_maps.get()


@check(points=4, exercise=EXERCISE, depends=("check_activation_shapes",))
def check_activation_values(boot_maps: Outcome[list[np.ndarray]], cnn: Any, boots: np.ndarray) -> None:
    """layer_activations returns the reference CNN's own conv and pool outputs for test images 0, 23 and 28"""
    problem = values_problem(cnn, boots, boot_maps.get())
    if problem is not None:
        raise problem


@check(points=2, exercise=EXERCISE)
def check_activations_one_block(student: Any, boots: np.ndarray) -> None:
    """layer_activations works for a CNN with a single Conv2D(16) + MaxPooling2D block"""
    model = reference_cnn((16,))
    problem = values_problem(model, boots, activations_of(student, model, boots))
    if problem is not None:
        raise problem


@check(points=2, exercise=EXERCISE, hidden=True)
def check_activations_three_blocks_one_image(student: Any, boots: np.ndarray) -> None:
    """layer_activations works for one image and a CNN with three conv blocks (6 maps down to 1x1)"""
    model = reference_cnn((8, 8, 8))
    images = boots[:1]
    problem = values_problem(model, images, activations_of(student, model, images))
    if problem is not None:
        raise problem


# --- plot_activations --------------------------------------------------------------------------------
def _plot(student: Any, cnn: Any, boots: np.ndarray, channel: int) -> dict[str, Any]:
    outcome = student.drive("plot_activations", payload_of(cnn), boots, channel,
                            module="visualize", function="plot_activations")
    if not isinstance(outcome, dict) or "png" not in outcome:
        raise Mismatch("the plotting driver returned something unexpected.", got=describe(outcome))
    return outcome


@pytest.fixture(scope="module")
def plot_run(student: Any, cnn: Any, boots: np.ndarray) -> Outcome[dict[str, Any]]:
    return attempt(lambda: _plot(student, cnn, boots, 1))


def decode_png(outcome: dict[str, Any], channel: int) -> np.ndarray:
    """The written PNG's pixels (RGB), after checking it is a real, non-blank PNG image."""
    from PIL import Image

    call = f"plot_activations(model, 3 images, path, channel={channel})"
    if not outcome.get("exists"):
        raise Mismatch(f"{call} did not write a file at path.", expected=f"a PNG file at {outcome.get('target')}",
                       got="no file", hint=PLOT_HINT)
    data = np.asarray(outcome["png"], dtype=np.uint8).tobytes()
    if not data.startswith(PNG_SIGNATURE):
        raise Mismatch(f"{call} wrote a file that is not a PNG image.",
                       expected="a file starting with the PNG signature", got=f"{len(data):,} bytes starting "
                       f"{data[:8]!r}", hint="save with format='png' (or a path ending in .png). " + PLOT_HINT)
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"))
    except Exception as exc:  # a broken file: PIL raises many kinds
        raise Mismatch(f"{call} wrote a PNG that cannot be decoded: {exc}", hint=PLOT_HINT) from None
    height, width = pixels.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise Mismatch(f"{call} wrote a tiny image.", expected=f"at least {MIN_SIDE}x{MIN_SIDE} pixels",
                       got=f"{width}x{height} pixels", hint=PLOT_HINT)
    colours = np.unique(pixels.reshape(-1, 3).astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32))
    if len(colours) < 16:
        raise Mismatch(f"{call} wrote an almost blank image.", expected="a grid of activation maps",
                       got=f"an image of {width}x{height} pixels with only {len(colours)} colour(s)", hint=PLOT_HINT)
    return pixels


@check(points=3, exercise=EXERCISE)
def check_plot_writes_png(plot_run: Outcome[dict[str, Any]]) -> None:
    """plot_activations writes a real PNG image of the activation maps"""
    decode_png(plot_run.get(), 1)


@check(points=1, exercise=EXERCISE)
def check_plot_returns_path(plot_run: Outcome[dict[str, Any]]) -> None:
    """plot_activations returns the path it wrote"""
    outcome = plot_run.get()
    returned, target = outcome.get("returned"), outcome.get("target")
    if returned is None or str(returned) != str(target):
        from pathlib import PurePath

        same = returned is not None and PurePath(str(returned)).name == PurePath(str(target)).name
        raise Mismatch(
            "plot_activations(model, images, path) must return the path it wrote.",
            expected=repr(target),
            got=repr(returned) if returned is not None else f"a {outcome.get('returned_type')}",
            hint="end with `return Path(path)` (or `return path`)."
            + (" Return the path as given, not a relative one." if same else ""),
        )


@check(points=1, exercise=EXERCISE, hidden=True, depends=("check_plot_writes_png",))
def check_plot_uses_channel(student: Any, cnn: Any, boots: np.ndarray, plot_run: Outcome[dict[str, Any]]) -> None:
    """plot_activations shows the requested channel (channel=1 and channel=5 give different pictures)"""
    first = decode_png(plot_run.get(), 1)
    other = decode_png(_plot(student, cnn, boots, 5), 5)
    changed = float((first != other).any(axis=2).mean()) if first.shape == other.shape else 1.0
    if changed < MIN_CHANGED:  # a title naming the channel changes a few pixels; other maps change many
        raise Mismatch(
            "plot_activations drew the same maps for channel=1 and channel=5.",
            expected=f"different feature maps for different channels (over {MIN_CHANGED:.0%} of the pixels change)",
            got=f"{changed:.2%} of the pixels differ",
            hint="show maps[row, :, :, channel] in each cell, using the channel argument.",
        )
