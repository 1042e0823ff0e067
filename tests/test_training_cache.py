"""Deterministic training and its content-addressed cache (small subsets of the real data)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import keras
import pytest

from grader.suites.convolutions import reference as ref
from grader.training.cache import Recipe, TrainingCache, cache_key, wilson_interval
from grader.training.trainer import train

# A small subset of the real Fashion-MNIST: these tests check the mechanism, not the lab's accuracy.
SMALL = Recipe(epochs=1, train_subset=600, test_subset=300)


def _dense(name_suffix: str = "") -> keras.Model:
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(name=f"flat{name_suffix}"),
         keras.layers.Dense(16, activation="relu", name=f"hidden{name_suffix}"),
         keras.layers.Dense(10, activation="softmax", name=f"out{name_suffix}")],
        name=f"student{name_suffix}",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_training_is_deterministic_without_the_cache() -> None:
    model = _dense()
    first = train(model.to_json(), model.get_compile_config(), SMALL)
    second = train(model.to_json(), model.get_compile_config(), SMALL)
    assert first.history == second.history
    assert first.test_accuracy == second.test_accuracy
    assert not first.cached and 0.0 <= first.test_accuracy <= 1.0


def test_names_do_not_change_the_key_but_architecture_does() -> None:
    a, b = _dense("_a"), _dense("_b")
    assert cache_key(a.to_json(), a.get_compile_config(), SMALL, "x") == cache_key(
        b.to_json(), b.get_compile_config(), SMALL, "x")
    cnn = ref.reference_cnn((8,))
    assert cache_key(a.to_json(), a.get_compile_config(), SMALL, "x") != cache_key(
        cnn.to_json(), cnn.get_compile_config(), SMALL, "x")
    assert cache_key(a.to_json(), a.get_compile_config(), SMALL, "x") != cache_key(
        a.to_json(), a.get_compile_config(), Recipe(epochs=2, train_subset=600, test_subset=300), "x")
    assert cache_key(a.to_json(), a.get_compile_config(), SMALL, "x") != cache_key(
        a.to_json(), a.get_compile_config(), SMALL, "other data")


def test_cache_hit_returns_the_same_outcome_and_weights(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path)
    model = _dense()
    fresh = train(model.to_json(), model.get_compile_config(), SMALL, cache=cache)
    hit = train(_dense("_x").to_json(), model.get_compile_config(), SMALL, cache=cache)
    assert hit.cached and not fresh.cached
    assert (hit.history, hit.test_accuracy, hit.key) == (fresh.history, fresh.test_accuracy, fresh.key)
    assert hit.weights is not None and fresh.weights is not None
    assert all((a == b).all() for a, b in zip(hit.weights, fresh.weights, strict=True))


@pytest.mark.parametrize("damage", ["truncate", "tamper", "weights"])
def test_corrupt_entries_are_detected_and_recomputed(tmp_path: Path, damage: str) -> None:
    cache = TrainingCache(tmp_path)
    model = _dense()
    first = train(model.to_json(), model.get_compile_config(), SMALL, cache=cache)
    meta = next(tmp_path.rglob("*.json"))
    if damage == "truncate":
        meta.write_text(meta.read_text()[:40])
    elif damage == "tamper":
        data = json.loads(meta.read_text())
        data["outcome"]["test_accuracy"] = 0.99
        meta.write_text(json.dumps(data))
    else:
        next(tmp_path.rglob("*.npz")).write_bytes(b"not an npz")
    assert cache.get(first.key) is None
    again = train(model.to_json(), model.get_compile_config(), SMALL, cache=cache)
    assert not again.cached and again.test_accuracy == first.test_accuracy
    assert cache.get(first.key) is not None


def test_concurrent_writers_train_once(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path)
    model = _dense()
    outcomes = []

    def run() -> None:
        outcomes.append(train(model.to_json(), model.get_compile_config(), SMALL, cache=cache))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.cached for o in outcomes) == [False, True, True]
    assert len({o.test_accuracy for o in outcomes}) == 1


def test_wilson_interval_brackets_the_accuracy() -> None:
    low, high = wilson_interval(0.9, 10_000)
    assert low < 0.9 < high and high - low < 0.013
    assert wilson_interval(0.5, 0) == (0.0, 1.0)
