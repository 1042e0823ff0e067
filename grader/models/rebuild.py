"""Rebuild student models on the judge side from their Keras JSON config, and describe them.

Student code never runs here: a model comes out of the sandbox as its JSON config and compile
config. Before Keras sees either, the config is walked and every object in it must be one of
Keras' own built-in classes from an allow-list, resolved by exact (module, class) pairs, and the
model's size is estimated from the config (grader.models.bounds): a Lambda layer, a custom layer,
loss or activation, a private module, a Dense(300000) or a MeanIoU(num_classes=6000) is refused
with a clear message before anything is deserialised, built or compiled.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras

from grader.keras_compat import sequential as sequential_config
from grader.models import bounds as configbounds
from grader.models.bounds import ALLOWED_LAYERS, ALLOWED_MODELS, ModelRejected

__all__ = ["ALLOWED_LAYERS", "ALLOWED_MODELS", "ModelRejected", "LayerInfo", "rebuild", "rebuild_shared",
           "compile_from", "describe", "compile_summary", "check_trainable_size", "validate_config"]
_ALLOWED_MODULE_PREFIXES = ("keras",)


@dataclass(frozen=True)
class LayerInfo:
    """One layer as the student sees it in feedback."""

    kind: str
    detail: str  # e.g. "32, 3x3, relu"
    output_shape: tuple[int | None, ...]
    params: int

    def render(self) -> str:
        shape = "x".join("?" if d is None else str(d) for d in self.output_shape)
        inner = f"({self.detail})" if self.detail else ""
        return f"{self.kind}{inner} -> {shape}, {self.params:,} params"


def validate_config(config: Any, where: str = "model") -> None:
    """Refuse anything that is not a built-in Keras object, before deserialisation."""
    if isinstance(config, list):
        for item in config:
            validate_config(item, where)
        return
    if not isinstance(config, dict):
        return
    class_name = config.get("class_name")
    if class_name == "__lambda__" or (class_name == "Lambda"):
        raise ModelRejected(
            f"the {where} contains a Lambda layer, which the grader does not run. "
            "Use built-in Keras layers only (Conv2D, MaxPooling2D, Flatten, Dense, ...)."
        )
    if configbounds.is_builtin_function(config):
        return  # a loss or metric function by its public name (configbounds checks the name where it is used)
    if isinstance(class_name, str) and "module" in config:
        module = config.get("module") or ""
        registered = config.get("registered_name")
        if not str(module).startswith(_ALLOWED_MODULE_PREFIXES) or (
            registered is not None and not str(registered).startswith("keras")
        ):
            raise ModelRejected(
                f"the {where} uses a custom object {class_name!r} (from {module or registered!r}), "
                "which the grader does not run. Use built-in Keras layers, losses and activations only."
            )
        if module == "keras.layers" and class_name not in ALLOWED_LAYERS:
            raise ModelRejected(
                f"the {where} contains a {class_name} layer, which this lab does not use. "
                f"Received: {class_name}; allowed layers: {', '.join(sorted(ALLOWED_LAYERS))}."
            )
        if module == "keras" and class_name not in ALLOWED_MODELS and class_name != "DTypePolicy":
            raise ModelRejected(f"the {where} is a {class_name}; build a keras.Sequential model instead.")
    for key, value in config.items():
        if key == "function":
            raise ModelRejected(f"the {where} contains serialised Python code ({key!r}); use built-in layers only.")
        validate_config(value, where)


def rebuild(json_config: str, input_shape: tuple[int, ...]) -> keras.Model:
    """A fresh, built Keras model from a student's `model.to_json()`; `input_shape` (one example's, e.g. the
    assignment's) is the input of a model that declares none."""
    try:
        data = json.loads(json_config)
    except (TypeError, ValueError) as exc:
        raise ModelRejected(f"the model's JSON config could not be read: {exc}") from None
    if not isinstance(data, dict):
        raise ModelRejected(f"the model's config is not a Keras model config (received a {type(data).__name__}).")
    configbounds.bound_model(data, tuple(input_shape), len(json_config))  # before Keras creates anything
    validate_config(data)
    try:
        model = sequential_config.deserialize(data)  # what keras.models.model_from_json does, built once
    except Exception as exc:  # Keras raises many types on bad configs
        raise ModelRejected(f"Keras could not rebuild the model from its config: {_short(exc)}") from None
    if not isinstance(model, keras.Model):
        raise ModelRejected(f"the config did not describe a Keras model (Keras gave a {type(model).__name__}).")
    if not model.built:
        try:
            model.build((None, *input_shape))
        except Exception as exc:
            raise ModelRejected(
                f"the model has no input shape and could not be built for input {input_shape}: {_short(exc)}. "
                f"Start the model with keras.Input(shape={tuple(input_shape)})."
            ) from None
    return model


SHARED_MODELS = 64  # rebuilt models kept per process by rebuild_shared; a class's configs repeat


def rebuild_shared(json_config: str, input_shape: tuple[int, ...]) -> keras.Model:
    """rebuild(), once per process and config: the same built model for every caller that only reads it
    (layers, output shapes, parameter counts). A batch worker sees the same configs in submission after
    submission, and each rebuild costs tens of milliseconds of variable creation. A config that is refused
    raises each time (exceptions are not cached). Never compile, fit or set the weights of what it returns:
    use rebuild() for a model of your own."""
    return _rebuilt(json_config, tuple(input_shape))


@functools.lru_cache(maxsize=SHARED_MODELS)
def _rebuilt(json_config: str, input_shape: tuple[int, ...]) -> keras.Model:
    try:
        with _without_variable_values():
            return rebuild(json_config, input_shape)
    except ModelRejected:  # e.g. a variable Keras creates from a value, which a stateless scope refuses
        return rebuild(json_config, input_shape)  # as it would be built anywhere else (or refused again)


@contextlib.contextmanager
def _without_variable_values() -> Iterator[None]:
    """Build models whose variables have shapes but no values: Keras' stateless scope defers creating them
    (TensorFlow variables and their initialisers: ~2/3 of a rebuild). For models that are only read (layers,
    output shapes, parameter counts). Keras refuses some builds in that scope (a variable made from a value, not
    an initialiser; a compiled config's metrics do); the caller then rebuilds as usual. Keras queues deferred
    variables to be created when the next top-level stateless scope ends (e.g. in a later compute_output_spec);
    ours are taken off that queue again. Where that queue is private and out of reach (grader.keras_compat.private),
    the model is built as usual, with values."""
    from grader.keras_compat import private as keras_compat

    with keras_compat.deferred_variables_dropped() as reachable:
        if not reachable:
            yield
            return
        with keras.StatelessScope(initialize_variables=False):
            yield


def compile_from(model: keras.Model, compile_config: dict[str, Any] | None) -> keras.Model:
    """Compile a rebuilt model with the student's compile config (validated first), with the judge's settings
    for how it runs (grader.models.bounds.JUDGE_SETTINGS)."""
    if not compile_config:
        raise ModelRejected(
            "the model was not compiled: call model.compile(...) in compile_model and return the model."
        )
    validate_config(compile_config, where="compile config")
    configbounds.bound_compile(compile_config)
    try:
        model.compile_from_config(configbounds.judge_settings(compile_config))
    except Exception as exc:
        raise ModelRejected(f"Keras could not compile the model from its compile config: {_short(exc)}") from None
    return model


def describe(model: keras.Model) -> list[LayerInfo]:
    """The model's layers (without the InputLayer) as the feedback shows them."""
    rows = []
    for layer in model.layers:
        config = layer.get_config()
        shape = tuple(layer.output.shape[1:])
        rows.append(LayerInfo(type(layer).__name__, _detail(type(layer).__name__, config), shape, layer.count_params()))
    return rows


def compile_summary(compile_config: dict[str, Any] | None) -> dict[str, Any]:
    """Optimizer, loss and metrics in plain names: {"optimizer": "adam", "loss": "...", "from_logits": bool, ...}."""
    config = compile_config or {}
    optimizer = config.get("optimizer")
    loss = config.get("loss")
    from_logits = False
    if isinstance(loss, dict):
        from_logits = bool(loss.get("config", {}).get("from_logits", False))
        loss = loss.get("class_name")
    metrics = [m.get("class_name") if isinstance(m, dict) else m for m in (config.get("metrics") or [])]
    return {
        "optimizer": _name_of(optimizer),
        "loss": _normalise(loss),
        "from_logits": from_logits,
        "metrics": [_normalise(m) for m in metrics],
    }


def activation_name(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("config", {}).get("name") or value.get("class_name")
    return str(value)


def _detail(kind: str, config: dict[str, Any]) -> str:
    if kind == "Conv2D":
        k = "x".join(str(v) for v in config["kernel_size"])
        extra = "" if config.get("padding") == "valid" else f", padding={config.get('padding')}"
        return f"{config['filters']}, {k}, {activation_name(config.get('activation'))}{extra}"
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        pool = "x".join(str(v) for v in config["pool_size"])
        strides = config.get("strides")
        extra = "" if strides in (None, config["pool_size"]) else f", strides={tuple(strides)}"
        extra += "" if config.get("padding") == "valid" else f", padding={config.get('padding')}"
        return f"{pool}{extra}"
    if kind == "Dense":
        return f"{config['units']}, {activation_name(config.get('activation'))}"
    if kind == "Dropout":
        return f"{config.get('rate')}"
    if kind == "Activation":
        return activation_name(config.get("activation"))
    return ""


def _name_of(obj: Any) -> str:
    if isinstance(obj, dict):  # the class, not config["name"]: Keras numbers repeated names ("adam_3")
        obj = obj.get("class_name") or obj.get("config", {}).get("name")
    return _normalise(obj)


def _normalise(name: Any) -> str:
    """'SparseCategoricalCrossentropy' and 'sparse_categorical_crossentropy' both -> the snake_case name."""
    text = str(name)
    if text and not text.islower() and "_" not in text:
        out = []
        for i, ch in enumerate(text):
            if ch.isupper() and i and not text[i - 1].isupper():
                out.append("_")
            out.append(ch.lower())
        text = "".join(out)
    return {"acc": "accuracy"}.get(text, text)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def multiply_adds(model: keras.Model) -> int:
    """Multiply-adds per image of the weighted layers: the judge's bound on what it agrees to train."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            kh, kw = layer.kernel_size
            in_channels = int(layer.input.shape[-1])
            out = layer.output.shape
            total += int(out[1]) * int(out[2]) * int(out[3]) * kh * kw * in_channels
        elif kind == "Dense":
            total += layer.count_params()
    return total


MAX_TRAINABLE_PARAMS = 3_000_000
MAX_MULTIPLY_ADDS = 20_000_000  # ~14x the lab's CNN (1.4M per image)


def check_trainable_size(model: keras.Model) -> None:
    """Refuse to spend the judge's time on a model far beyond the lab's: a clear failure, not a hang."""
    params, macs = model.count_params(), multiply_adds(model)
    if params > MAX_TRAINABLE_PARAMS or macs > MAX_MULTIPLY_ADDS:
        raise ModelRejected(
            f"the model is too large for the judge to train ({params:,} parameters, {macs:,} multiply-adds per "
            f"image; the limits are {MAX_TRAINABLE_PARAMS:,} and {MAX_MULTIPLY_ADDS:,}). The lab's CNN has 113,386."
        )
