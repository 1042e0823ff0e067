"""Rebuild a keras.Sequential model from its JSON config with one build instead of one per layer.

`keras.models.model_from_json` ends in `Sequential.from_config`, which adds the layers one at a time; each
`add()` to a model that starts with an Input rebuilds the model's whole graph, so a model of n layers is
built n times over (the lab's CNN: ~40 ms instead of ~11 ms here). The judge rebuilds ~25 student configs
per grading and the sandbox every model the judge sends. `from_json_config` does what Keras' deserialisation
does for a Sequential config (safe mode, the layers, `build_input_shape`, `build_config`, `compile_config`),
except that it hands all the layers to the Sequential constructor, which builds once. The result is the
same model: same layers and names, same config, same variables in the same order and, under the same seed,
the same initial values (tests/test_modelspec.py compares both ways). Anything but a plain Sequential
config returns None, and the caller uses Keras' own deserialisation. The private Keras names it uses come
from grader.keras_compat.private, with public fallbacks.
"""

from __future__ import annotations

import json
from typing import Any

_SEQUENTIAL_KEYS = {"name", "trainable", "dtype", "layers", "build_input_shape"}


def from_json_config(data: Any, *, safe_mode: bool = True) -> Any:
    """A keras.Sequential from a parsed `model.to_json()`, or None where this is not a plain Sequential config."""
    if not _plain_sequential(data):
        return None
    import keras

    from grader.keras_compat import private as keras_compat

    config = data["config"]
    with keras_compat.safe_mode_scope(safe_mode):
        layers = [keras_compat.deserialize(layer, safe_mode=safe_mode) for layer in config["layers"]]
        model = keras.Sequential(layers, name=config["name"])  # Sequential.from_config passes the name only
        shape = config.get("build_input_shape")
        if not keras_compat.started_from_input(model) and shape and isinstance(shape, (tuple, list)):
            model.build(shape)
        build_config = data.get("build_config")
        if build_config and not model.built:
            model.build_from_config(build_config)
            model.built = True
        compile_config = data.get("compile_config")
        if compile_config:
            model.compile_from_config(compile_config)
            model.compiled = True
    return model


def deserialize(data: Any, *, safe_mode: bool = True) -> Any:
    """Keras' deserialisation of a parsed model config, built once where it is a plain Sequential config."""
    model = from_json_config(data, safe_mode=safe_mode)
    if model is None:
        from grader.keras_compat import private as keras_compat

        model = keras_compat.deserialize(data, safe_mode=safe_mode)
    return model


def from_json(json_config: str, *, safe_mode: bool = True) -> Any:
    """keras.models.model_from_json(json_config), built once where it is a plain Sequential config."""
    return deserialize(json.loads(json_config), safe_mode=safe_mode)


def _plain_sequential(data: Any) -> bool:
    if not isinstance(data, dict) or data.get("module") != "keras" or data.get("class_name") != "Sequential":
        return False
    if data.get("registered_name") not in (None, "Sequential") or "shared_object_id" in data:
        return False
    config = data.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("name"), str) or set(config) - _SEQUENTIAL_KEYS:
        return False
    layers = config.get("layers")
    return isinstance(layers, list) and all(isinstance(layer, dict) and "module" in layer for layer in layers)
