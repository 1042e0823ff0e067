"""Train one rebuilt student model, deterministically, and evaluate it: no cache, no background job.

`fit_cached` puts the outcome in a cache as `cache.py` rules (an outcome that is poison stays private); the
background job (`background.py`) and the gates (`trainer.py`) both call it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from grader.training.cache import Progress, Recipe, TrainingCache, TrainingOutcome, inheritable


class TrainingStopped(RuntimeError):
    """The judge stopped its own training: the grading's time budget ran out (the fit stops at its next batch)."""


Stop = Callable[[], str]  # why the judge must stop training now, or "" to go on


def fit_cached(json_config: str, compile_config: dict[str, Any] | None, recipe: Recipe, data: Any, key: str,
               payload: dict[str, Any], cache: TrainingCache, *, private: TrainingCache | None = None,
               progress: Progress | None = None, stop: Stop | None = None) -> TrainingOutcome:
    """The cached outcome for key, or train it now under the key's lock and store it (privately where it must
    not be inherited)."""
    with cache.lock(key):
        hit = cache.get(key, trained_from=payload)  # another process may have finished it while we waited
        if hit is not None:
            return hit
        outcome = train_now(json_config, compile_config, recipe, data, key, progress, stop=stop)
        if inheritable(outcome):
            cache.put(key, outcome, payload)
        elif private is not None:
            private.put(key, outcome, payload)
        return outcome


def deterministic(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_now(json_config, compile_config, recipe, data, key, progress,  # type: ignore[no-untyped-def]
              stop: Stop | None = None) -> TrainingOutcome:
    """Train and evaluate now; `stop` is asked before the fit and after each batch, and a reason ends the
    training with TrainingStopped (nothing is stored)."""
    import keras

    from grader.models.rebuild import check_trainable_size, compile_from, rebuild

    deterministic(recipe.seed)
    model = rebuild(json_config, data.prepare(data.test_images[:1]).shape[1:])  # a model without an input: the data's
    check_trainable_size(model)
    model = compile_from(model, compile_config)
    x_train, y_train = _inputs(model, data.prepare(data.train_images)), data.train_labels
    x_test, y_test = _inputs(model, data.prepare(data.test_images)), data.test_labels
    if recipe.train_subset:
        x_train, y_train = x_train[: recipe.train_subset], y_train[: recipe.train_subset]
    if recipe.test_subset:
        x_test, y_test = x_test[: recipe.test_subset], y_test[: recipe.test_subset]
    callbacks: list[keras.callbacks.Callback] = []
    if progress is not None:
        callbacks.append(_ProgressCallback(progress, recipe.epochs))
    if stop is not None:
        _stop_if_asked(stop)
        callbacks.append(_StopCallback(stop))
    start = time.perf_counter()
    fit = model.fit(
        x_train, y_train, epochs=recipe.epochs, batch_size=recipe.batch_size, verbose=0, callbacks=callbacks
    )
    loss, accuracy = _evaluate(model, x_test, y_test, recipe.batch_size)
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    return TrainingOutcome(
        history=history,
        test_loss=loss,
        test_accuracy=accuracy,
        test_size=int(len(y_test)),
        seconds=round(seconds, 3),
        key=key,
        weights=[np.asarray(w) for w in model.get_weights()],
    )


def _evaluate(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float]:
    """Test loss from Keras, accuracy computed here from the predictions (whatever metrics were compiled)."""
    results = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    probabilities = model.predict(x, batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y))
    loss = float(results.get("loss", float("nan")))
    return (loss if math.isfinite(loss) else float("nan")), accuracy


def _inputs(model: Any, images: np.ndarray) -> np.ndarray:
    """Shape the judge's prepared images for the model's own input (e.g. (28, 28) or (28, 28, 1))."""
    shape = tuple(model.input_shape[1:])
    if None not in shape and int(np.prod(shape)) == int(np.prod(images.shape[1:])):
        return images.reshape((len(images), *shape))
    return images


class _ProgressCallback:
    """Built lazily as a keras Callback subclass so importing this module does not import Keras."""

    def __new__(cls, progress: Progress, epochs: int):  # type: ignore[no-untyped-def]
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                progress(epoch + 1, epochs, dict(logs or {}))

        return _Callback()


def _stop_if_asked(stop: Stop) -> None:
    reason = stop()
    if reason:
        raise TrainingStopped(f"the judge stopped training: {reason}")


class _StopCallback:
    """Built lazily as a keras Callback subclass (see _ProgressCallback): asks `stop` after each batch."""

    def __new__(cls, stop: Stop):  # type: ignore[no-untyped-def]
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
                _stop_if_asked(stop)

        return _Callback()
