"""Bound a student's model and compile configs before Keras builds, compiles or runs anything of them.

A config comes out of the sandbox and is hostile until proved otherwise. Each object in it is resolved by
what it is, an exact (module, class_name) pair of Keras' public API in a role where the lab can use it (a
layer where layers go, an initializer where initializers go), never by a module prefix: `"module":
"keras.src.layers"` names a private module that Keras would happily import from, and is refused like any
other. Then the model's size is estimated from the config alone, by propagating the input shape through
its layers: parameters, multiply-adds and activations per image must stay within the judge's limits
before a single variable exists. Compile configs take optimizers, losses and metrics from allow-lists
with bounded arguments (no `MeanIoU(num_classes=6000)`, whose confusion matrix the judge would allocate).
Every refusal is a ModelRejected whose message says what was received, what is expected and what to do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from grader.models import shapes as configshapes
from grader.models.shapes import ModelRejected, Totals

__all__ = ["ModelRejected", "bound_model", "bound_compile", "LIMITS"]

MAX_CONFIG_CHARS = 512 * 1024
MAX_LAYERS = 100
MAX_STRING = 1000
MAX_METRICS = 16
LIMITS = configshapes.LIMITS

ALLOWED_LAYERS = configshapes.LAYER_KINDS
ALLOWED_MODELS = frozenset({"Sequential", "Functional", "Model"})
_MODELS = {("keras", "Sequential")}
_OBJECTS: dict[str, tuple[str, frozenset[str]]] = {  # role -> (the public module, the classes allowed there)
    "dtype": ("keras", frozenset({"DTypePolicy", "FloatDTypePolicy"})),
    "initializer": ("keras.initializers", frozenset({
        "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Zeros", "Ones",
        "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling"})),
    "regularizer": ("keras.regularizers", frozenset({"L1", "L2", "L1L2"})),
    "constraint": ("keras.constraints", frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"})),
    "optimizer": ("keras.optimizers", frozenset({
        "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl", "Lion"})),
    "schedule": ("keras.optimizers.schedules", frozenset({
        "ExponentialDecay", "InverseTimeDecay", "PolynomialDecay", "CosineDecay", "PiecewiseConstantDecay"})),
    "loss": ("keras.losses", frozenset({
        "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy", "MeanSquaredError",
        "MeanAbsoluteError", "Huber", "KLDivergence", "CategoricalHinge", "Hinge", "SquaredHinge", "Poisson"})),
    "metric": ("keras.metrics", frozenset({
        "Accuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy", "BinaryAccuracy",
        "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseCategoricalCrossentropy",
        "CategoricalCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError"})),
}
_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64", "mixed_float16", "mixed_bfloat16"})
_METRIC_NAMES = frozenset({
    "accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy",
    "sparse_top_k_categorical_accuracy", "top_k_categorical_accuracy", "sparse_categorical_crossentropy",
    "categorical_crossentropy", "mse", "mae", "mean_squared_error", "mean_absolute_error", "crossentropy"})
_LOSS_NAMES = frozenset({
    "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "mean_squared_error",
    "mean_absolute_error", "mse", "mae", "huber", "kl_divergence", "hinge", "squared_hinge", "categorical_hinge",
    "poisson"})
_COMPILE_KEYS = frozenset({"optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
                           "steps_per_execution", "jit_compile", "auto_scale_loss"})
_AUX_ROLES = {"_initializer": "initializer", "_regularizer": "regularizer", "_constraint": "constraint"}


def bound_model(data: Any, input_shape: tuple[int, ...], json_size: int = 0) -> Totals:
    """Refuse a model config that is not made of allowed objects or that would be too large; its size."""
    if json_size > MAX_CONFIG_CHARS:
        raise ModelRejected(f"the model's config is {json_size:,} characters long; the judge reads at most "
                            f"{MAX_CONFIG_CHARS:,}. A model for this lab needs a few thousand.")
    _scalars(data, "model")
    _model_objects(data, "model", depth=0)
    if isinstance(data.get("compile_config"), dict):
        bound_compile(data["compile_config"])
    totals = configshapes.estimate(data, input_shape)
    configshapes.check_limits(totals)
    return totals


def bound_compile(config: Any) -> None:
    """Refuse a compile config with anything but allowed optimizers, losses and metrics, bounded."""
    where = "compile config"
    if not isinstance(config, dict):
        raise ModelRejected(f"the {where} is not a dict. Received: {type(config).__name__}.")
    _scalars(config, where)
    unknown = sorted(set(config) - _COMPILE_KEYS)
    if unknown:
        raise ModelRejected(f"the {where} has arguments model.compile() does not take here. Received: "
                            f"{', '.join(map(repr, unknown))[:200]}; expected only {', '.join(sorted(_COMPILE_KEYS))}.")
    optimizer = config.get("optimizer")
    if isinstance(optimizer, str):
        if optimizer.lower() not in {name.lower() for name in _OBJECTS["optimizer"][1]}:
            raise ModelRejected(f"unknown optimizer. Received: optimizer={optimizer[:60]!r}; expected one of "
                                f"{', '.join(sorted(n.lower() for n in _OBJECTS['optimizer'][1]))}.")
    elif optimizer is not None:
        _object(optimizer, "optimizer", where)
        _optimizer_config(optimizer.get("config"))
    for loss in _flat(config.get("loss"), where, "loss"):
        if _is_function(loss):
            if loss["config"] not in _LOSS_NAMES:
                raise ModelRejected(f"unknown loss function. Received: {str(loss['config'])[:60]!r}; expected one of "
                                    f"{', '.join(sorted(_LOSS_NAMES))}.")
        elif not isinstance(loss, str):
            _object(loss, "loss", where)
    metrics = list(_flat(config.get("metrics"), where, "metrics")) + list(
        _flat(config.get("weighted_metrics"), where, "weighted_metrics"))
    if len(metrics) > MAX_METRICS:
        raise ModelRejected(f"the {where} asks for {len(metrics)} metrics; the judge computes at most {MAX_METRICS}. "
                            "Received too many metrics; `metrics=['accuracy']` is what this lab needs.")
    for metric in metrics:
        name = metric["config"] if _is_function(metric) else metric
        if isinstance(name, str):
            if name not in _METRIC_NAMES | _LOSS_NAMES:
                raise ModelRejected(f"unknown metric. Received: {str(name)[:60]!r}; expected one of "
                                    f"{', '.join(sorted(_METRIC_NAMES))}.")
        else:
            _object(metric, "metric", where)
            k = (metric.get("config") or {}).get("k", 1)
            if not isinstance(k, int) or not 1 <= k <= 10:
                raise ModelRejected(f"a top-k metric needs 1 <= k <= 10 for 10 classes. Received: k={k!r}.")
    steps = config.get("steps_per_execution", 1)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 1000:
        raise ModelRejected(f"steps_per_execution must be an integer from 1 to 1000. Received: {steps!r}.")
    for loss_weight in _flat(config.get("loss_weights"), where, "loss_weights"):
        if not isinstance(loss_weight, (int, float)) or isinstance(loss_weight, bool):
            raise ModelRejected(f"loss_weights must be numbers. Received: {str(loss_weight)[:60]}.")


# Compile settings that decide how fast Keras runs a model, not what it computes. The judge runs every model it
# rebuilds its own way, so that a student's `run_eagerly=True` does not make the judge's training of the
# accuracy gates five times slower (nor a training cache entry differ by it).
JUDGE_SETTINGS: dict[str, Any] = {"run_eagerly": False, "jit_compile": False, "steps_per_execution": 1}


def judge_settings(compile_config: Any) -> Any:
    """The compile config with JUDGE_SETTINGS in place of the student's own; anything else as it is."""
    if not isinstance(compile_config, dict):
        return compile_config
    return {**compile_config, **JUDGE_SETTINGS}


# --------------------------------------------------------------------------------------- objects
def _model_objects(data: Any, where: str, depth: int) -> None:
    if depth > 3:
        raise ModelRejected(f"the {where} nests models more than 3 deep; build one keras.Sequential model.")
    if not isinstance(data, dict) or (data.get("module"), data.get("class_name")) not in _MODELS:
        raise ModelRejected(f"expected a keras.Sequential model. Received: "
                            f"{_kind(data) if isinstance(data, dict) else type(data).__name__}. The grader rebuilds "
                            "keras.Sequential([...]) models only: build the model with keras.Sequential.")
    _registered(data, where)
    config = data.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ModelRejected(f"the {where}'s config has no list of layers. Received: {str(config)[:100]}.")
    if len(config["layers"]) > MAX_LAYERS:
        raise ModelRejected(f"the {where} has {len(config['layers'])} layers; the judge rebuilds at most {MAX_LAYERS}.")
    _dtype(config.get("dtype"), where)
    for layer in config["layers"]:
        if isinstance(layer, dict) and (layer.get("module"), layer.get("class_name")) in _MODELS:
            _model_objects(layer, where, depth + 1)
            continue
        _layer(layer, where)


def _layer(layer: Any, where: str) -> None:
    if not isinstance(layer, dict):
        raise ModelRejected(f"the {where} has a layer that is not a layer config. Received: {str(layer)[:100]}.")
    name = layer.get("class_name")
    if name in ("Lambda", "__lambda__"):
        raise ModelRejected(f"the {where} contains a Lambda layer, which the grader does not run. "
                            "Use built-in Keras layers only (Conv2D, MaxPooling2D, Flatten, Dense, ...).")
    module = layer.get("module")
    if not (isinstance(module, str) and module.startswith("keras")) or not _is_builtin_name(layer):
        raise ModelRejected(f"the {where} uses a custom object {str(name)[:60]!r} (from "
                            f"{str(module or layer.get('registered_name'))[:60]!r}), which the grader does not run. "
                            "Use built-in Keras layers, losses and activations only.")
    if module != "keras.layers" or name not in ALLOWED_LAYERS:
        raise ModelRejected(f"the {where} contains a {str(name)[:60]} layer (module {str(module)[:60]!r}), which this "
                            f"lab does not use. Received: {_kind(layer)}; allowed layers: "
                            f"{', '.join(sorted(ALLOWED_LAYERS))} (module 'keras.layers').")
    config = layer.get("config")
    if not isinstance(config, dict):
        raise ModelRejected(f"the {where}'s {name} layer has no config. Received: {str(config)[:100]}.")
    for key, value in config.items():
        role = next((r for suffix, r in _AUX_ROLES.items() if key.endswith(suffix)), None)
        if key == "dtype":
            _dtype(value, where)
        elif role is not None:
            if isinstance(value, dict):
                _object(value, role, where)
        elif key == "quantization_config" and value is not None:
            raise ModelRejected(f"the {where}'s {name} layer is quantized; the lab trains float models. "
                                f"Received: quantization_config={str(value)[:80]}.")
        elif _has_object(value):
            raise ModelRejected(f"the {where}'s {name} layer has an object as its {key!r}; this lab uses plain "
                                f"values there (e.g. activation='relu'). Received: {str(value)[:100]}.")
    if "inbound_nodes" in layer:
        raise ModelRejected(f"the {where}'s {name} layer is called like a Functional model's layer; the grader "
                            "rebuilds keras.Sequential models only.")


def _dtype(value: Any, where: str) -> None:
    if value is None or (isinstance(value, str) and value in _DTYPES):
        return
    if isinstance(value, dict):
        _object(value, "dtype", where)
        if (value.get("config") or {}).get("name") in _DTYPES:
            return
    raise ModelRejected(f"unknown dtype policy in the {where}. Received: {str(value)[:100]}; expected one of "
                        f"{', '.join(sorted(_DTYPES))}.")


def _object(value: Any, role: str, where: str) -> None:
    module, allowed = _OBJECTS[role]
    if not isinstance(value, dict) or value.get("module") != module or value.get("class_name") not in allowed \
            or not _is_builtin_name(value) or not isinstance(value.get("config", {}), dict):
        raise ModelRejected(f"the {where} uses a {role} the grader does not run. Received: {_kind(value)}; "
                            f"expected one of {', '.join(sorted(allowed))} (module {module!r}).")
    for key, item in value.get("config", {}).items():
        if key == "learning_rate" and role == "optimizer" and isinstance(item, dict):
            _object(item, "schedule", where)
        elif _has_object(item):
            raise ModelRejected(f"the {where}'s {value['class_name']} has an object as its {key!r}. "
                                f"Received: {str(item)[:100]}.")
        elif isinstance(item, list) and len(item) > 100:
            raise ModelRejected(f"the {where}'s {value['class_name']} has {len(item)} values in {key!r}; "
                                "the judge takes at most 100.")


def _optimizer_config(config: Any) -> None:
    for key, value in (config or {}).items():
        if isinstance(value, int) and not isinstance(value, bool) and key != "seed" and not -1 <= value <= 10_000:
            raise ModelRejected(f"the optimizer's {key} is out of range. Received: {key}={value}; expected at most "
                                "10,000.")


def is_builtin_function(value: Any) -> bool:
    """A loss or metric function by one of the public names allowed here (the form `_is_function` describes)."""
    return _is_function(value) and value["config"] in _METRIC_NAMES | _LOSS_NAMES


def _is_function(value: Any) -> bool:
    """Keras' form of a function passed by itself (`loss=keras.losses.sparse_categorical_crossentropy`), which it
    resolves by name among its own public functions; the caller checks the name."""
    return isinstance(value, dict) and value.get("module") == "builtins" and value.get("class_name") == "function" \
        and value.get("registered_name") in (None, "function") and isinstance(value.get("config"), str)


def _registered(value: dict[str, Any], where: str) -> None:
    if not _is_builtin_name(value):
        raise ModelRejected(f"the {where} uses a custom object {str(value.get('class_name'))[:60]!r} (registered as "
                            f"{str(value.get('registered_name'))[:60]!r}), which the grader does not run.")


def _is_builtin_name(value: dict[str, Any]) -> bool:
    return value.get("registered_name") in (None, value.get("class_name"))


def _has_object(value: Any) -> bool:
    if isinstance(value, dict):
        return "class_name" in value or any(_has_object(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_object(v) for v in value)
    return False


def _flat(value: Any, where: str, key: str) -> Iterable[Any]:
    """The leaves of a per-output structure (a value, a list or a dict of values, one level deep)."""
    if value is None:
        return []
    items = list(value.values()) if isinstance(value, dict) and "class_name" not in value else (
        value if isinstance(value, list) else [value])
    out = []
    for item in items:
        if isinstance(item, list):
            out.extend(item)
        elif isinstance(item, dict) and "class_name" not in item:
            out.extend(item.values())
        else:
            out.append(item)
    if any(isinstance(item, (list, dict)) and not (isinstance(item, dict) and "class_name" in item) for item in out):
        raise ModelRejected(f"the {where}'s {key} nests deeper than one level per output. "
                            f"Received: {str(value)[:100]}.")
    return out


def _scalars(value: Any, where: str, depth: int = 0) -> None:
    """Every number finite, every integer of a sane size, every string short, nothing deeply nested."""
    if depth > 40:
        raise ModelRejected(f"the {where} is nested more than 40 levels deep.")
    if isinstance(value, dict):
        for key, item in value.items():
            _scalars(key, where, depth + 1)
            _scalars(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _scalars(item, where, depth + 1)
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ModelRejected(f"the {where} holds a string of {len(value):,} characters; at most {MAX_STRING:,}.")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ModelRejected(f"the {where} holds a number that is not finite. Received: {value}.")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**31:
        raise ModelRejected(f"the {where} holds an integer out of range. Received: {str(value)[:40]}; "
                            f"expected at most {2**31:,}.")


def _kind(value: Any) -> str:
    if not isinstance(value, dict):
        return f"{type(value).__name__} {str(value)[:60]}"
    return f"class_name={str(value.get('class_name'))[:60]!r}, module={str(value.get('module'))[:60]!r}"
