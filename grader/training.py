"""Deterministic training of rebuilt student models, cached by content.

Training is the dominant cost of grading this lab, so a model is trained once per distinct
(model config, compile config, recipe, seed, dataset checksum, TensorFlow/Keras versions): a
class of submissions with the same architecture trains it once. Layer and model names are not
part of the key, so two students whose code differs only in names and comments share an entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.results import write_atomic

CACHE_FORMAT = 1


@dataclass(frozen=True)
class Recipe:
    """How the judge trains a model: the lab's recipe by default."""

    epochs: int = 5
    batch_size: int = 32
    seed: int = 0
    train_subset: int | None = None  # first N training images; None = all 60,000
    test_subset: int | None = None


@dataclass
class TrainingOutcome:
    history: dict[str, list[float]]
    test_loss: float
    test_accuracy: float
    test_size: int
    seconds: float
    key: str = ""
    cached: bool = False
    weights: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.test_accuracy, self.test_size)


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy measured on n examples."""
    if n <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def library_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


def cache_key(json_config: str, compile_config: dict[str, Any] | None, recipe: Recipe, data_checksum: str) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "model": _without_names(json.loads(json_config)),
        "compile": _without_names(compile_config or {}),
        "recipe": asdict(recipe),
        "data": data_checksum,
        "versions": library_versions(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "convgrader"


class TrainingCache:
    """Entries under DIR/training/<k[:2]>/<key>.json (+ .npz weights); safe with concurrent writers."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.directory / "training" / key[:2]
        return folder / f"{key}.json", folder / f"{key}.npz"

    def has(self, key: str) -> bool:
        """Whether an entry for key is there (not verified: get() does that)."""
        return self._paths(key)[0].exists()

    def get(self, key: str, need_weights: bool = False) -> TrainingOutcome | None:
        meta_path, weights_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            body = meta["outcome"]
            if meta.get("key") != key or meta.get("digest") != _digest(body):
                return None
            weights = None
            if need_weights or weights_path.exists():
                blob = weights_path.read_bytes()
                if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
                    return None
                with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                    weights = [npz[f"w{i}"] for i in range(len(npz.files))]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or corrupt: the caller trains again and overwrites it
        return TrainingOutcome(**body, key=key, cached=True, weights=weights)

    def put(self, key: str, outcome: TrainingOutcome) -> None:
        meta_path, weights_path = self._paths(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {f"w{i}": w for i, w in enumerate(outcome.weights or [])}
        np.savez(buffer, **arrays)
        blob = buffer.getvalue()
        tmp = weights_path.with_name(f".{weights_path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, weights_path)
        body = {
            "history": outcome.history,
            "test_loss": outcome.test_loss,
            "test_accuracy": outcome.test_accuracy,
            "test_size": outcome.test_size,
            "seconds": outcome.seconds,
        }
        meta = {
            "key": key,
            "digest": _digest(body),
            "weights_sha256": hashlib.sha256(blob).hexdigest(),
            "outcome": body,
        }
        write_atomic(meta_path, json.dumps(meta))  # the JSON is the commit point

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Held while one process trains `key`, so concurrent graders wait instead of training it twice."""
        meta_path, _ = self._paths(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        with open(meta_path.with_suffix(".lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


Progress = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, logs)


def train(
    json_config: str,
    compile_config: dict[str, Any] | None,
    recipe: Recipe = Recipe(),
    *,
    cache: TrainingCache | None = None,
    progress: Progress | None = None,
) -> TrainingOutcome:
    """Train a rebuilt model with the recipe on Fashion-MNIST (cached); raises ModelRejected for bad configs."""
    from grader.data import load_fashion_mnist

    data = load_fashion_mnist()
    key = cache_key(json_config, compile_config, recipe, data.checksum)
    if cache is None:
        return _train_now(json_config, compile_config, recipe, data, key, progress)
    from grader import background_training

    trained_now = background_training.wait(key)  # a job started by this grading may be training it
    hit = cache.get(key)
    if hit is not None:
        hit.cached = not trained_now  # what the job trained for this grading is no cache hit to report
        return hit
    with cache.lock(key):
        hit = cache.get(key)  # another process may have finished it while we waited
        if hit is not None:
            return hit
        outcome = _train_now(json_config, compile_config, recipe, data, key, progress)
        cache.put(key, outcome)
        return outcome


def deterministic(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _train_now(json_config, compile_config, recipe, data, key, progress) -> TrainingOutcome:  # type: ignore[no-untyped-def]
    import keras

    from grader.data import prepare
    from grader.modelspec import check_trainable_size, compile_from, rebuild

    deterministic(recipe.seed)
    model = rebuild(json_config)
    check_trainable_size(model)
    model = compile_from(model, compile_config)
    x_train, y_train = _inputs(model, prepare(data.train_images)), data.train_labels
    x_test, y_test = _inputs(model, prepare(data.test_images)), data.test_labels
    if recipe.train_subset:
        x_train, y_train = x_train[: recipe.train_subset], y_train[: recipe.train_subset]
    if recipe.test_subset:
        x_test, y_test = x_test[: recipe.test_subset], y_test[: recipe.test_subset]
    callbacks: list[keras.callbacks.Callback] = []
    if progress is not None:
        callbacks.append(_ProgressCallback(progress, recipe.epochs))
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
    """Shape the judge's prepared images for the model's own input ((28, 28) or (28, 28, 1))."""
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


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _without_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_names(v) for k, v in value.items() if k != "name"}
    if isinstance(value, list):
        return [_without_names(v) for v in value]
    return value
