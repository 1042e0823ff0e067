"""The training cache: a trained model's outcome, stored once per content key and never inherited as poison.

Training is the dominant cost of grading this lab, so a model is trained once per distinct
(model config, compile config, recipe, seed, dataset checksum, TensorFlow/Keras versions): a
class of submissions with the same architecture trains it once. The key covers every field of both
configs except the names that are pure labels (the model's, its layers', the optimizer's and the loss
object's `name`), so two students whose code differs only in names and comments share an entry, and a
model that differs in anything that changes training (a dtype policy, an initialiser, a metric's name,
which names a history key) never does.

An entry is inherited by other submissions, so it must not be poison: each entry records the (label-free)
configs it was trained from and a hit is checked against them, and an outcome that trained to NaN or to
chance is never stored for others (it is kept, at most, in a private cache of the grading that trained it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.models.bounds import judge_settings
from grader.results import write_atomic

CACHE_FORMAT = 2
CHANCE_ACCURACY = 0.15  # 10 classes: at or below this, a model learned nothing another submission may inherit


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


def cache_payload(json_config: str, compile_config: dict[str, Any] | None, recipe: Recipe,
                  data_checksum: str) -> dict[str, Any]:
    """Everything that decides what training gives, as JSON data: the key is its digest."""
    payload = {
        "format": CACHE_FORMAT,
        "model": without_labels(json.loads(json_config)),
        "compile": without_labels(compile_config or {}),
        "recipe": asdict(recipe),
        "data": data_checksum,
        "versions": library_versions(),
    }
    return json.loads(json.dumps(payload, sort_keys=True))  # as it reads back from an entry


def training_payload(json_config: str, compile_config: dict[str, Any] | None, recipe: Recipe,
                     data_checksum: str) -> dict[str, Any]:
    """cache_payload of what the judge trains: the compile config with the judge's own settings for how Keras runs
    it (grader.models.bounds.JUDGE_SETTINGS: they change speed, not results, so no key differs by them)."""
    return cache_payload(json_config, judge_settings(compile_config), recipe, data_checksum)


def cache_key(json_config: str, compile_config: dict[str, Any] | None, recipe: Recipe, data_checksum: str) -> str:
    return key_of(cache_payload(json_config, compile_config, recipe, data_checksum))


def key_of(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def inheritable(outcome: TrainingOutcome) -> bool:
    """Whether another submission may reuse this outcome: finite numbers and better than chance."""
    numbers = [outcome.test_loss, outcome.test_accuracy, *(v for values in outcome.history.values() for v in values)]
    return all(math.isfinite(v) for v in numbers) and outcome.test_accuracy > CHANCE_ACCURACY


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

    def get(self, key: str, need_weights: bool = False, *,
            trained_from: dict[str, Any] | None = None) -> TrainingOutcome | None:
        """The entry for key, verified; with trained_from (a cache_payload), only if it was trained from that."""
        meta_path, weights_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            body = meta["outcome"]
            if meta.get("key") != key or meta.get("digest") != _digest({**body, "trained_from": meta["trained_from"]}):
                return None
            if trained_from is not None and meta["trained_from"] != trained_from:
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

    def put(self, key: str, outcome: TrainingOutcome, trained_from: dict[str, Any] | None = None) -> None:
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
            "digest": _digest({**body, "trained_from": trained_from}),
            "weights_sha256": hashlib.sha256(blob).hexdigest(),
            "trained_from": trained_from,
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


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# Objects whose config "name" is a pure label: it names the object in summaries and history keys of nothing
# that training computes. Everything else called "name" stays in the key: a DTypePolicy's name *is* the
# policy ("float16"), a metric's name is the key of its history.
_LABELLED_MODULES = frozenset({"keras.layers", "keras.optimizers", "keras.losses"})
_LABELLED_MODELS = frozenset({"Sequential", "Functional", "Model"})


def without_labels(value: Any) -> Any:
    """A config with the names that are pure labels removed (see _LABELLED_MODULES)."""
    if isinstance(value, list):
        return [without_labels(v) for v in value]
    if not isinstance(value, dict):
        return value
    labelled = value.get("module") in _LABELLED_MODULES or (
        value.get("module") == "keras" and value.get("class_name") in _LABELLED_MODELS)
    out = {}
    for k, v in value.items():
        if labelled and k == "config" and isinstance(v, dict):
            out[k] = {ck: without_labels(cv) for ck, cv in v.items() if ck != "name"}
        elif labelled and k == "name" and isinstance(v, str):
            continue  # a Functional model's layer entries carry their name beside their config too
        else:
            out[k] = without_labels(v)
    return out
