"""The judge's own expectations for the convolutions lab, in closed form.

Nothing here imports the reference solutions: the grader ships without them. Expected layer
tables come from the formulas (Conv2D params = (kh*kw*in_channels + 1) * filters), and the
reference models that feed other exercises (no double jeopardy) are built here directly.
"""

from __future__ import annotations

import collections
import functools
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from grader.models.rebuild import LayerInfo

INPUT = (28, 28, 1)
KERNEL = 3
POOL = 2
HIDDEN_UNITS = 128
CLASSES = 10
ANKLE_BOOTS = (0, 23, 28)  # test images, all label 9: the lab's activation-map example
# What the accuracy gates train: the student's compile_model(builder(*args)), by gate.
GATE_MODELS: dict[str, tuple[str, list[Any]]] = {"dnn": ("build_dnn", []), "cnn": ("build_cnn", [(32, 32)])}


def conv_params(in_channels: int, filters: int, kernel: int = KERNEL) -> int:
    return (kernel * kernel * in_channels + 1) * filters


def conv_formula(in_channels: int, filters: int, kernel: int = KERNEL) -> str:
    return f"({kernel}*{kernel}*{in_channels}+1)*{filters} = {conv_params(in_channels, filters, kernel):,}"


def dense_formula(inputs: int, units: int) -> str:
    return f"({inputs:,}+1)*{units} = {(inputs + 1) * units:,}"


def expected_dnn() -> list[LayerInfo]:
    flat = INPUT[0] * INPUT[1] * INPUT[2]
    return [
        LayerInfo("Flatten", "", (flat,), 0),
        LayerInfo("Dense", f"{HIDDEN_UNITS}, relu", (HIDDEN_UNITS,), (flat + 1) * HIDDEN_UNITS),
        LayerInfo("Dense", f"{CLASSES}, softmax", (CLASSES,), (HIDDEN_UNITS + 1) * CLASSES),
    ]


def cnn_fits(filters: Sequence[int]) -> bool:
    size = INPUT[0]
    for _ in filters:
        size -= KERNEL - 1
        if size < 1:
            return False
        size //= POOL
        if size < 1:
            return False
    return True


def expected_cnn(filters: Sequence[int]) -> list[LayerInfo]:
    size, channels = INPUT[0], INPUT[2]
    rows: list[LayerInfo] = []
    for f in filters:
        size -= KERNEL - 1
        rows.append(LayerInfo("Conv2D", f"{f}, {KERNEL}x{KERNEL}, relu", (size, size, f), conv_params(channels, f)))
        size //= POOL
        rows.append(LayerInfo("MaxPooling2D", f"{POOL}x{POOL}", (size, size, f), 0))
        channels = f
    flat = size * size * channels
    rows += [
        LayerInfo("Flatten", "", (flat,), 0),
        LayerInfo("Dense", f"{HIDDEN_UNITS}, relu", (HIDDEN_UNITS,), (flat + 1) * HIDDEN_UNITS),
        LayerInfo("Dense", f"{CLASSES}, softmax", (CLASSES,), (HIDDEN_UNITS + 1) * CLASSES),
    ]
    return rows


def formula_for(rows: Sequence[LayerInfo], index: int) -> str:
    """How the parameter count of row `index` of an expected table comes about."""
    row = rows[index]
    if row.kind == "Conv2D":
        in_channels = INPUT[2]
        for previous in rows[:index]:
            if previous.kind == "Conv2D":
                in_channels = previous.output_shape[-1] or 1
        return conv_formula(in_channels, int(row.output_shape[-1] or 0))
    if row.kind == "Dense":
        inputs = int(rows[index - 1].output_shape[-1] or 0)
        return dense_formula(inputs, int(row.output_shape[-1] or 0))
    return "no weights"


def layer_table(expected: Sequence[LayerInfo], got: Sequence[LayerInfo]) -> str | None:
    """None when the tables agree; else both tables with the first differing row marked."""
    if list(expected) == list(got):
        return None
    first = next(
        (i for i, (e, g) in enumerate(zip(expected, got, strict=False)) if e != g), min(len(expected), len(got))
    )
    lines = []
    for i in range(max(len(expected), len(got))):
        mark = ">>" if i == first else "  "
        e = expected[i].render() if i < len(expected) else "(no layer)"
        g = got[i].render() if i < len(got) else "(no layer)"
        lines.append(f"{mark} layer {i + 1}: expected {e}")
        lines.append(f"{'  '}          found    {g}")
    return "\n".join(lines)


def first_difference(expected: Sequence[LayerInfo], got: Sequence[LayerInfo]) -> str:
    for i, (e, g) in enumerate(zip(expected, got, strict=False)):
        if e != g:
            text = f"layer {i + 1}: expected {e.render()}; found {g.render()}"
            if e.params != g.params and e.kind in ("Conv2D", "Dense"):
                text += f" (expected parameters: {formula_for(expected, i)})"
            return text
    if len(expected) != len(got):
        return f"expected {len(expected)} layers after the input; found {len(got)}"
    return "the tables agree"


def reference_cnn(filters: Sequence[int] = (32, 32), seed: int = 1234) -> Any:
    """The judge's own CNN (deterministic weights): the input for exercises that build on models.py.

    Built once per process for each (filters, seed) and shared by every check of every grading: read it,
    send it (payload_of), copy it, never compile, fit or set the weights of this very object."""
    return _reference_cnn(tuple(filters), seed)


@functools.cache
def _reference_cnn(filters: tuple[int, ...], seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    layers: list[Any] = [keras.Input(INPUT)]
    for f in filters:
        layers += [keras.layers.Conv2D(f, (KERNEL, KERNEL), activation="relu"), keras.layers.MaxPooling2D(POOL, POOL)]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(HIDDEN_UNITS, activation="relu"),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ]
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def reference_activations(model: Any, images: np.ndarray) -> list[np.ndarray]:
    """Outputs of every Conv2D/MaxPooling2D layer of `model` for `images`, computed by the judge."""
    outputs = []
    x = images
    for layer in model.layers:
        x = layer(x)
        if type(layer).__name__ in ("Conv2D", "MaxPooling2D"):
            outputs.append(np.asarray(x))
    return outputs


def payload_of(model: Any) -> Any:
    """A model to send into the sandbox: its config and weights, never a pickle.

    A Sequential model's layers go with the names Keras gives them in a fresh process (sequential,
    conv2d, conv2d_1, dense, ...), not the judge process's running counters (dense_17): the same model
    then makes the same payload every time, and the sandbox lends it again instead of rebuilding it."""
    from grader.sandbox.protocol import ModelPayload

    return ModelPayload(
        json_config=_first_names(model.to_json()),
        weights=[np.asarray(w) for w in model.get_weights()],
        compile_config=_first_optimizer_name(model.get_compile_config()) if model.compiled else None,
    )


def _snake(name: str) -> str:
    """Keras' own naming of a layer class: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _first_names(json_config: str) -> str:
    data = json.loads(json_config)
    if data.get("class_name") != "Sequential":
        return json_config
    config = data["config"]
    config["name"] = "sequential"
    seen: collections.Counter[str] = collections.Counter()
    for layer in config.get("layers", []):
        base = _snake(str(layer.get("class_name", "layer")))
        layer["config"]["name"] = base if not seen[base] else f"{base}_{seen[base]}"
        seen[base] += 1
    if isinstance(data.get("compile_config"), dict):
        data["compile_config"] = _first_optimizer_name(data["compile_config"])
    return json.dumps(data)


def _first_optimizer_name(compile_config: Any) -> Any:
    """adam_3 -> adam: the optimizer's name counts optimizers made in this process, like layer names."""
    optimizer = compile_config.get("optimizer") if isinstance(compile_config, dict) else None
    if isinstance(optimizer, dict) and isinstance(optimizer.get("config"), dict) and "name" in optimizer["config"]:
        optimizer["config"]["name"] = _snake(str(optimizer.get("class_name", "optimizer")))
    return compile_config
