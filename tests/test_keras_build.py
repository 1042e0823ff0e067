"""grader.keras_compat.build: fit traces its train step once, and computes exactly what Keras alone computes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from grader.keras_compat import build as keras_build

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TensorFlow's own imports


def _model(optimizer: str) -> Any:
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.random((40, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, 40)


@pytest.fixture
def early() -> Iterator[None]:
    assert keras_build.install()
    yield
    keras_build.uninstall()


def _variables_created_while_tracing(model: Any, **fit: Any) -> list[str]:
    import tensorflow as tf

    created: list[str] = []

    def creator(next_creator: Any, **kwargs: Any) -> Any:
        if tf.inside_function():
            created.append(str(kwargs.get("name")))
        return next_creator(**kwargs)

    x, y = _data()
    with tf.variable_creator_scope(creator):
        model.fit(x, y, batch_size=8, verbose=0, **fit)
    return created


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fit_creates_no_variable_while_tracing(early: None, optimizer: str) -> None:
    # A variable created in the first trace is what makes tf.function trace a second time.
    assert _variables_created_while_tracing(_model(optimizer), epochs=1) == []


def test_without_it_keras_builds_while_tracing() -> None:
    # The behaviour install() changes; should Keras stop doing this, the module can go.
    keras_build.uninstall()
    assert _variables_created_while_tracing(_model("adam"), epochs=1) != []


def _fit(validation: bool) -> tuple[dict[str, list[float]], list[np.ndarray], list[float]]:
    x, y = _data()
    model = _model("adam")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=True,
                        validation_data=(x[:8], y[:8]) if validation else None)
    return history.history, model.get_weights(), model.evaluate(x, y, verbose=0)


@pytest.mark.parametrize("validation", [False, True], ids=["fit", "fit with validation"])
def test_same_numbers_as_keras_alone(validation: bool) -> None:
    keras_build.uninstall()
    plain = _fit(validation)
    keras_build.install()
    try:
        early = _fit(validation)
    finally:
        keras_build.uninstall()
    assert early[0] == plain[0]
    assert all(np.array_equal(a, b) for a, b in zip(early[1], plain[1], strict=True))
    assert early[2] == plain[2]


def test_install_is_idempotent_and_reversible(early: None) -> None:
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    patched = TensorFlowTrainer._maybe_symbolic_build
    assert keras_build.install()
    assert TensorFlowTrainer._maybe_symbolic_build is patched
    keras_build.uninstall()
    assert TensorFlowTrainer._maybe_symbolic_build is patched.__wrapped__  # type: ignore[attr-defined]


def test_when_the_early_build_fails_keras_builds_while_tracing(early: None) -> None:
    model = _model("adam")
    calls: list[Any] = []

    def refuse(**kwargs: Any) -> None:
        calls.append(kwargs)
        raise RuntimeError("cannot build this model symbolically")

    model._symbolic_build = refuse  # as for a model whose call() rejects symbolic inputs
    created = _variables_created_while_tracing(model, epochs=1)
    assert calls, "the early build was not attempted"
    assert created != []  # Keras' deferred build ran instead ...
    assert np.isfinite(model.history.history["loss"][0])  # ... and fit trained as usual
