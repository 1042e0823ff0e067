"""A model's size from its config alone: the input shape propagated through the lab's layers, by formula.

What `configbounds` uses to refuse a model too large for the judge before Keras builds a variable of it.
The formulas are Keras' own output shapes and weight counts for the allowed layers; parameters count the
variables a build creates (for each layer, with the larger of the shape it is given and the shape its
`build_config` claims, since Keras builds a layer from its build_config on its own); multiply-adds and
activations are per image, which is what a forward pass over a batch multiplies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class ModelRejected(Exception):
    """A model config the judge will not rebuild; the message says why and what to use instead."""


LAYER_KINDS = frozenset({
    "InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "Flatten", "Dense", "Dropout", "Reshape", "Rescaling", "Activation", "BatchNormalization", "ReLU", "Softmax",
    "ZeroPadding2D", "SpatialDropout2D",
})
_SAME_SHAPE = frozenset({"Dropout", "Rescaling", "Activation", "ReLU", "Softmax", "SpatialDropout2D"})


@dataclass(frozen=True)
class Limits:
    params: int = 3_000_000  # weights a rebuild creates (the lab's CNN: 113,386)
    multiply_adds: int = 20_000_000  # per image, ~14x the lab's CNN (1.4M)
    activations: int = 400_000  # values the layers output per image, ~12x the lab's CNN (~33,000)
    input_values: int = 1_000_000  # any shape a config declares


LIMITS = Limits()


@dataclass
class Totals:
    params: int = 0
    multiply_adds: int = 0
    activations: int = 0
    largest: str = ""  # the layer with the most parameters, for the message
    largest_params: int = -1

    def add(self, kind: str, detail: str, params: int, macs: int, activations: int) -> None:
        self.params += params
        self.multiply_adds += macs
        self.activations += activations
        if params > self.largest_params:
            self.largest, self.largest_params = f"{kind}({detail})", params


def check_limits(totals: Totals, limits: Limits = LIMITS) -> None:
    for what, value, limit in (("parameters", totals.params, limits.params),
                               ("multiply-adds per image", totals.multiply_adds, limits.multiply_adds),
                               ("activations per image", totals.activations, limits.activations)):
        if value > limit:
            raise ModelRejected(
                f"the model is too large for the judge: {value:,} {what} (the limit is {limit:,}; the lab's CNN "
                f"has 113,386 parameters, 1.4 million multiply-adds and ~33,000 activations per image). Received: "
                f"a model whose largest layer is {totals.largest}. Use fewer filters or units."
            )


def estimate(data: dict[str, Any], input_shape: tuple[int, ...]) -> Totals:
    """The size of a model config (validated by configbounds), the largest over the input shapes it declares."""
    config = data["config"]
    starts = [tuple(input_shape)]
    for declared in ((data.get("build_config") or {}).get("input_shape"), config.get("build_input_shape")):
        if declared is not None:
            starts.append(_shape(declared, input_shape, batch=True))
    worst = Totals()
    for start in dict.fromkeys(starts):
        totals = Totals()
        _model(data, start, input_shape, totals)
        check_limits(totals)
        if (totals.params, totals.multiply_adds, totals.activations) > (
                worst.params, worst.multiply_adds, worst.activations):
            worst = totals
    return worst


def _model(data: dict[str, Any], shape: tuple[int, ...], default: tuple[int, ...], totals: Totals) -> tuple[int, ...]:
    for layer in data["config"]["layers"]:
        shape = _any_layer(layer, shape, default, totals)
    return shape


def _any_layer(layer: dict[str, Any], shape: tuple[int, ...], default: tuple[int, ...],
               totals: Totals) -> tuple[int, ...]:
    if layer.get("class_name") == "Sequential":
        return _model(layer, shape, default, totals)
    kind, config = layer["class_name"], layer["config"]
    if kind == "InputLayer":
        declared = config.get("batch_shape", config.get("batch_input_shape"))
        start = _shape(declared, default, batch=True) if declared is not None else shape
        totals.add(kind, "", 0, 0, math.prod(start))
        return start
    out, params, macs = _apply(kind, config, shape)
    built = (layer.get("build_config") or {}).get("input_shape")
    if built is not None:  # Keras builds the layer from this shape when it deserialises it
        params = max(params, _apply(kind, config, _shape(built, default, batch=True))[1])
    totals.add(kind, _detail(kind, config), params, macs, math.prod(out))
    return out


def _apply(kind: str, config: dict[str, Any], shape: tuple[int, ...]) -> tuple[tuple[int, ...], int, int]:
    """(output shape, parameters, multiply-adds) of one layer on an input of `shape` (no batch axis)."""
    if kind in _SAME_SHAPE:
        return shape, 0, 0
    if kind == "Flatten":
        return (math.prod(shape),), 0, 0
    if kind == "Dense":
        units = _int(config, "units", None, 1)
        inputs = shape[-1] if shape else 1
        bias = units if config.get("use_bias", True) else 0
        return (*shape[:-1], units), inputs * units + bias, math.prod(shape[:-1]) * inputs * units
    if kind == "BatchNormalization":
        return shape, 4 * (shape[-1] if shape else 1), 0
    if kind == "Reshape":
        target = config.get("target_shape")
        if not isinstance(target, list) or not all(isinstance(v, int) and (v >= 1 or v == -1) for v in target):
            raise ModelRejected(f"Reshape needs a list of positive sizes. Received: target_shape={str(target)[:60]}.")
        known = math.prod(v for v in target if v != -1)
        return tuple(math.prod(shape) // max(known, 1) if v == -1 else v for v in target), 0, 0
    rows, cols, channels, first = _spatial(kind, config, shape)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return ((1, 1, channels) if config.get("keepdims") else (channels,)), 0, 0
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = _padding(config.get("padding", 1))
        rows, cols = rows + top + bottom, cols + left + right
    elif kind in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair(config, "pool_size", (2, 2))
        strides = _pair(config, "strides", pool) if config.get("strides") is not None else pool
        sides = zip((rows, cols), pool, strides, strict=True)
        rows, cols = (_out(n, k, s, 1, config.get("padding")) for n, k, s in sides)
    else:  # Conv2D
        filters = _int(config, "filters", None, 1)
        kernel = _pair(config, "kernel_size", None)
        strides, dilation = _pair(config, "strides", (1, 1)), _pair(config, "dilation_rate", (1, 1))
        groups = _int(config, "groups", 1, 1)
        axes = zip((rows, cols), kernel, strides, dilation, strict=True)
        rows, cols = (_out(n, k, s, d, config.get("padding")) for n, k, s, d in axes)
        per_filter = kernel[0] * kernel[1] * max(channels // groups, 1)
        params = per_filter * filters + (filters if config.get("use_bias", True) else 0)
        out = (filters, rows, cols) if first else (rows, cols, filters)
        return out, params, rows * cols * filters * per_filter
    return ((channels, rows, cols) if first else (rows, cols, channels)), 0, 0


def _spatial(kind: str, config: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, int, int, bool]:
    if len(shape) != 3:
        raise ModelRejected(f"{kind} needs images of shape (rows, cols, channels). Received: input shape {shape}. "
                            "Start the model with keras.Input(shape=(rows, cols, channels)).")
    first = config.get("data_format") == "channels_first"
    return (shape[1], shape[2], shape[0], True) if first else (shape[0], shape[1], shape[2], False)


def _out(size: int, kernel: int, stride: int, dilation: int, padding: Any) -> int:
    if padding == "same":
        return max(-(-size // stride), 0)
    return max((size - (kernel - 1) * dilation - 1) // stride + 1, 0)


def _int(config: dict[str, Any], key: str, default: int | None, low: int) -> int:
    value = config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ModelRejected(f"expected {key} to be an integer >= {low}. Received: {key}={str(value)[:40]}.")
    return value


def _pair(config: dict[str, Any], key: str, default: tuple[int, int] | None) -> tuple[int, int]:
    value = config.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ModelRejected(f"expected {key} to be two integers >= 1. Received: {key}={str(value)[:40]}.")
    return int(value[0]), int(value[1])


def _padding(value: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    def ok(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1000

    if ok(value):
        return (value, value), (value, value)
    if isinstance(value, list) and len(value) == 2:
        if all(ok(v) for v in value):
            return (value[0], value[0]), (value[1], value[1])
        if all(isinstance(v, list) and len(v) == 2 and all(ok(x) for x in v) for v in value):
            return (value[0][0], value[0][1]), (value[1][0], value[1][1])
    raise ModelRejected(f"ZeroPadding2D needs padding of at most 1000 per side. Received: padding={str(value)[:60]}.")


def _shape(value: Any, default: tuple[int, ...], *, batch: bool) -> tuple[int, ...]:
    """A declared shape without its batch axis, unknown sizes read as the judge's own input's."""
    if not isinstance(value, list) or not 1 + batch <= len(value) <= 5 + batch:
        raise ModelRejected(f"expected an input shape of 1 to 5 sizes. Received: {str(value)[:60]}.")
    sizes = value[1:] if batch else value
    filled = []
    for i, size in enumerate(sizes):
        if size is None:
            size = default[i] if len(sizes) == len(default) else default[0]
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ModelRejected(f"expected positive sizes in an input shape. Received: {str(value)[:60]}.")
        filled.append(size)
    if math.prod(filled) > LIMITS.input_values:
        raise ModelRejected(f"the model declares an input of {math.prod(filled):,} values per image; the judge's "
                            f"limit is {LIMITS.input_values:,}. Received: shape {tuple(filled)}; the assignment's "
                            f"input is {tuple(default)}.")
    return tuple(filled)


def _detail(kind: str, config: dict[str, Any]) -> str:
    for key in ("filters", "units"):
        if key in config:
            return f"{key}={str(config[key])[:20]}"
    return ""
