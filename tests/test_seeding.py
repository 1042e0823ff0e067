"""grader.keras_compat.seeding: the sandbox's per-request seeding keeps TensorFlow's kernel cache and seeds as
Keras does."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from grader.keras_compat import seeding

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TensorFlow's own imports


@pytest.fixture
def cache_clears(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How often TensorFlow's eager kernel cache (with every instantiated tf.function) is emptied."""
    from tensorflow.python.eager import context

    context.ensure_initialized()  # before that there is no cache, and Keras' seeding skips the step
    calls: list[int] = []
    original = context.pywrap_tfe.TFE_ContextClearCaches

    def recording(handle: Any) -> None:
        calls.append(1)
        original(handle)

    monkeypatch.setattr(context.pywrap_tfe, "TFE_ContextClearCaches", recording)
    yield calls


def test_the_kernel_cache_is_kept(cache_clears: list[int]) -> None:
    import keras

    keras.utils.set_random_seed(3)
    assert cache_clears, "Keras' own seeding empties the cache (what this module avoids)"
    cache_clears.clear()
    seeding.seed_keeping_caches(3)
    assert cache_clears == []


def _draws() -> dict[str, Any]:
    """One of each kind of random number the lab's code draws (TensorFlow's stateful ops aside)."""
    import keras

    layer = keras.layers.Dense(4)
    layer.build((None, 5))
    return {
        "python": random.random(),
        "numpy": np.random.rand(3),
        "keras.random": np.asarray(keras.random.uniform((3,))),
        "initialiser": np.asarray(layer.kernel),
        "dropout": np.asarray(keras.random.dropout(np.ones((2, 8), np.float32), 0.5)),
    }


def _fit() -> dict[str, Any]:
    """A fresh model's short fit, shuffled: its weights and history depend on the seeds of fit's data pipeline."""
    import keras

    rng = np.random.default_rng(0)
    x, y = rng.random((48, 5), dtype=np.float32), rng.integers(0, 3, 48)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=8, shuffle=True, verbose=0)
    return {"weights": model.get_weights(), "loss": history.history["loss"]}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1])
@pytest.mark.parametrize("draw", [_draws, _fit], ids=["draws", "fit"])
def test_same_numbers_as_keras_seeding(seed: int, draw: Callable[[], dict[str, Any]]) -> None:
    import keras

    other = seed + 1 if seed < 2**32 - 1 else 0
    keras.utils.set_random_seed(seed)
    expected = draw()
    keras.utils.set_random_seed(other)
    _fit()  # other seeds and work in between, as other requests in the sandbox
    seeding.seed_keeping_caches(seed)
    assert _same(expected, draw())
    seeding.seed_keeping_caches(other)
    assert not _same(expected, draw()), "a different seed must give different numbers"


def test_stateful_tensorflow_ops_go_on(cache_clears: list[int]) -> None:
    """The documented difference: a stateful TensorFlow op seeded alike continues its stream."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(5)
    first = tf.random.uniform((3,)).numpy()
    keras.utils.set_random_seed(5)
    assert np.array_equal(first, tf.random.uniform((3,)).numpy())  # Keras' seeding starts it again
    seeding.seed_keeping_caches(5)
    assert not np.array_equal(first, tf.random.uniform((3,)).numpy())  # the cached kernel goes on
    seeding.seed_keeping_caches(5)
    fresh = tf.random.uniform((3,), dtype=tf.float64).numpy()  # a kernel not cached yet starts where Keras' would
    keras.utils.set_random_seed(5)
    assert np.array_equal(fresh, tf.random.uniform((3,), dtype=tf.float64).numpy())


def test_falls_back_to_keras_without_its_private_parts(monkeypatch: pytest.MonkeyPatch,
                                                        cache_clears: list[int]) -> None:
    import keras

    monkeypatch.setattr(seeding, "_private_parts", lambda: None)
    seeding.seed_keeping_caches(4)
    assert cache_clears, "the fallback is keras.utils.set_random_seed"
    expected = _draws()
    keras.utils.set_random_seed(4)
    assert _same(expected, _draws())
