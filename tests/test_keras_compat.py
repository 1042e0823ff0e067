"""Each private Keras/TensorFlow module the grader uses, made unavailable in turn: the public fallbacks give the
same rebuilt models, the same seeds and the same fits."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from grader.keras_compat import build as keras_build
from grader.keras_compat import private as keras_compat
from grader.keras_compat import seeding
from grader.keras_compat import sequential as sequential_config
from grader.models import rebuild as modelspec
from grader.suites.convolutions import reference as ref

INPUT_SHAPE = (28, 28, 1)  # the lab's images

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TensorFlow's own imports


def _results() -> dict[str, Any]:
    import keras

    config = ref.reference_cnn((8,)).to_json()
    keras.utils.set_random_seed(11)
    model = sequential_config.from_json(config)
    modelspec._rebuilt.cache_clear()
    shared = modelspec.describe(modelspec.rebuild_shared(config, INPUT_SHAPE))
    seeding.seed_keeping_caches(5)
    draws = [random.random(), np.random.rand(2), np.asarray(keras.random.uniform((3,))),
             np.asarray(keras.random.dropout(np.ones((2, 8), np.float32), 0.5))]
    keras_build.uninstall()
    installed = keras_build.install()
    try:
        fit = _fit()
    finally:
        keras_build.uninstall()
    return {"config": json.dumps(model.get_config(), sort_keys=True), "weights": model.get_weights(),
            "shared": shared, "draws": draws, "fit": fit, "installed": installed}


def _fit() -> dict[str, Any]:
    import keras

    seeding.seed_keeping_caches(7)
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, 40)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dropout(0.2),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=8, shuffle=True, verbose=0)
    return {"history": history.history, "weights": model.get_weights()}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return _results()


@pytest.fixture
def restore() -> Iterator[None]:
    yield
    keras_build.uninstall()
    modelspec._rebuilt.cache_clear()


def test_the_baseline_takes_the_private_paths(baseline: dict[str, Any]) -> None:
    assert baseline["installed"] and keras_compat.seed_parts() is not None
    assert all(keras_compat._import(name) is not None for name in keras_compat.PRIVATE_MODULES)


@pytest.mark.parametrize("missing", keras_compat.PRIVATE_MODULES)
def test_without_each_private_module_the_results_are_the_same(missing: str, baseline: dict[str, Any],
                                                              monkeypatch: pytest.MonkeyPatch, restore: None) -> None:
    import importlib

    original = importlib.import_module

    def without(name: str, package: str | None = None) -> Any:  # as in a Keras that moved or renamed it
        if name == missing or name.startswith(missing + "."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return original(name, package)

    monkeypatch.setattr(importlib, "import_module", without)
    assert keras_compat._import(missing) is None
    results = _results()
    assert results["installed"] is (missing != keras_compat.TF_TRAINER)
    if missing in (keras_compat.GLOBAL_STATE, keras_compat.SEED_GENERATOR, keras_compat.RNG_UTILS,
                   keras_compat.TF_CONTEXT):
        assert keras_compat.seed_parts() is None  # the public keras.utils.set_random_seed seeds
    for key in ("config", "weights", "shared", "draws", "fit"):
        assert _same(results[key], baseline[key]), f"{key} differs without {missing}"


def test_a_sequential_without_the_private_attribute_reads_built_for_started_from_input() -> None:
    class Plain:
        built = True

    assert keras_compat.started_from_input(Plain())
    Plain.built = False
    assert not keras_compat.started_from_input(Plain())


def test_safe_mode_holds_on_the_public_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    monkeypatch.setattr(keras_compat, "_import", lambda name: None)  # every private module gone
    layer = keras.saving.serialize_keras_object(keras.layers.Lambda(lambda x: x * 2))
    with pytest.raises(ValueError, match="unsafe|lambda|Lambda"):
        keras_compat.deserialize(json.loads(json.dumps(layer)), safe_mode=True)
