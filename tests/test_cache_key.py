"""The training cache cannot be poisoned: its key covers every field that changes training, an entry is checked
against the configs it was trained from, and an outcome that learned nothing is never inherited."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import keras
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.suites.convolutions import reference as ref
from grader.training.cache import Recipe, TrainingCache, TrainingOutcome, cache_key, cache_payload, inheritable
from grader.training.trainer import train

SMALL = Recipe(epochs=1, train_subset=600, test_subset=300)


def _lab_cnn() -> tuple[dict[str, Any], dict[str, Any]]:
    model = ref.reference_cnn()
    return json.loads(model.to_json()), copy.deepcopy(model.get_compile_config())


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _is_label(root: str, path: tuple[Any, ...]) -> bool:
    """The names the key may ignore, written out here independently of the grader: the model's own name,
    each layer's name, and the optimizer's name (in the compile config and in the model's embedded one)."""
    if root == "model":
        if path == ("config", "name"):
            return True
        if len(path) == 5 and path[:2] == ("config", "layers") and path[3:] == ("config", "name"):
            return True
        return path == ("compile_config", "optimizer", "config", "name")
    return path == ("optimizer", "config", "name")


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(value: Any, path: tuple[Any, ...], new: Any) -> None:
    _get(value, path[:-1])[path[-1]] = new


def _other(old: Any, data: st.DataObject) -> Any:
    """A value of a similar kind that differs from old as JSON."""
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return old + data.draw(st.integers(1, 50))
    if isinstance(old, float):
        return old * data.draw(st.sampled_from([0.5, 2.0, -1.0])) + (1.0 if old == 0 else 0.0)
    if isinstance(old, str):
        return old + data.draw(st.text("abcdef0123456789_", min_size=1, max_size=6))
    if old is None:
        return data.draw(st.sampled_from([0, 1.5, "x", True]))
    return data.draw(st.sampled_from([None, "x", 3]))  # an empty dict or list


MODEL, COMPILE = _lab_cnn()
FIELDS = [("model", p) for p in _leaves(MODEL)] + [("compile", p) for p in _leaves(COMPILE)]


def _key(model: dict[str, Any], compile_config: dict[str, Any]) -> str:
    return cache_key(json.dumps(model), compile_config, SMALL, "data")


def test_the_lab_cnn_has_many_fields_and_a_few_labels() -> None:
    labels = [f for f in FIELDS if _is_label(*f)]
    assert len(FIELDS) > 150
    assert len(labels) == 1 + len(MODEL["config"]["layers"]) + 2


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_field_but_a_label_changes_the_key(data: st.DataObject) -> None:
    base = _key(MODEL, COMPILE)
    for root, path in FIELDS:
        model, compile_config = copy.deepcopy(MODEL), copy.deepcopy(COMPILE)
        target = model if root == "model" else compile_config
        _set(target, path, _other(_get(target, path), data))
        changed = _key(model, compile_config) != base
        assert changed != _is_label(root, path), f"{root} field {path}: key changed={changed}"


def test_a_float16_last_layer_does_not_share_the_lab_cnns_key() -> None:
    poison = copy.deepcopy(MODEL)
    poison["config"]["layers"][-1]["config"]["dtype"]["config"]["name"] = "float16"
    assert _key(poison, COMPILE) != _key(MODEL, COMPILE)
    renamed = copy.deepcopy(MODEL)
    renamed["config"]["layers"][-1]["config"]["name"] = "output"
    assert _key(renamed, COMPILE) == _key(MODEL, COMPILE)


def _outcome(accuracy: float, loss: float = 0.5, history: list[float] | None = None) -> TrainingOutcome:
    return TrainingOutcome(history={"loss": history or [0.6, 0.5]}, test_loss=loss, test_accuracy=accuracy,
                           test_size=300, seconds=1.0)


@pytest.mark.parametrize(("outcome", "expected"), [
    (_outcome(0.8), True),
    (_outcome(0.16), True),
    (_outcome(0.15), False),
    (_outcome(0.1), False),
    (_outcome(0.8, loss=math.nan), False),
    (_outcome(0.8, history=[0.6, math.nan]), False),
    (_outcome(math.nan), False),
])
def test_only_outcomes_that_learned_are_inheritable(outcome: TrainingOutcome, expected: bool) -> None:
    assert inheritable(outcome) is expected


def test_an_entry_is_used_only_for_the_configs_it_was_trained_from(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path)
    payload = cache_payload(json.dumps(MODEL), COMPILE, SMALL, "data")
    other = cache_payload(json.dumps(MODEL), COMPILE, SMALL, "other data")
    key = cache_key(json.dumps(MODEL), COMPILE, SMALL, "data")
    cache.put(key, _outcome(0.8), payload)
    assert cache.get(key, trained_from=payload) is not None
    assert cache.get(key, trained_from=other) is None  # e.g. an entry planted under another config's key
    meta = next(tmp_path.rglob("*.json"))
    data = json.loads(meta.read_text())
    data["trained_from"] = other
    meta.write_text(json.dumps(data))  # the record of what it was trained from is covered by the digest
    assert cache.get(key) is None


def _nan_model() -> keras.Model:
    """Deterministically NaN: inputs scaled past float32's range."""
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1e38), keras.layers.Rescaling(1e38),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_an_outcome_that_learned_nothing_is_not_stored(tmp_path: Path) -> None:
    cache, private = TrainingCache(tmp_path / "shared"), TrainingCache(tmp_path / "private")
    model = _nan_model()
    first = train(model.to_json(), model.get_compile_config(), SMALL, cache=cache, private=private)
    assert not inheritable(first)
    assert not cache.has(first.key) and private.has(first.key)
    again = train(model.to_json(), model.get_compile_config(), SMALL, cache=cache)
    assert not again.cached  # trained again for the next submission: nothing was inherited


def test_the_poison_trained_first_leaves_the_reference_its_own_entry(tmp_path: Path) -> None:
    """The lab CNN with a float16 last layer, then the lab CNN itself, on one cache (small data)."""
    cache = TrainingCache(tmp_path)
    poison = copy.deepcopy(MODEL)
    poison["config"]["layers"][-1]["config"]["dtype"]["config"]["name"] = "float16"
    poisoned = train(json.dumps(poison), COMPILE, SMALL, cache=cache)
    reference = train(json.dumps(MODEL), COMPILE, SMALL, cache=cache)
    alone = train(json.dumps(MODEL), COMPILE, SMALL, cache=TrainingCache(tmp_path / "alone"))
    assert reference.key != poisoned.key and not reference.cached
    assert (reference.test_accuracy, reference.history) == (alone.test_accuracy, alone.history)
    assert inheritable(reference)


def test_a_background_job_keeps_what_learned_nothing_to_its_own_grading(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from grader.training import background as background_training
    from grader.training import fit as training

    here: list[str] = []
    original = training.train_now

    def counted(*args: Any, **kwargs: Any) -> Any:
        here.append("trained")
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train_now", counted)
    cache = TrainingCache(tmp_path)
    model = _nan_model()
    try:
        assert background_training.start([(model.to_json(), model.get_compile_config())], SMALL, cache)
        outcome = train(model.to_json(), model.get_compile_config(), SMALL, cache=cache)
        assert here == [] and not outcome.cached and not inheritable(outcome)  # the job's own outcome
        assert not cache.has(outcome.key)
    finally:
        background_training.stop_all()
    assert not list((tmp_path / "private").glob("*/training"))  # gone with the job


def test_how_fast_keras_runs_is_the_judges(tmp_path: Path) -> None:
    """run_eagerly, jit_compile and steps_per_execution change how fast Keras trains, not what: the judge trains
    every model its own way (a student's run_eagerly=True would make the gates' training several times slower),
    so those settings neither change the key nor train again (small data)."""
    from grader.models.rebuild import compile_from, rebuild

    model = json.dumps(MODEL)
    eager = {**COMPILE, "run_eagerly": True, "jit_compile": True, "steps_per_execution": 7}
    built = compile_from(rebuild(model, (28, 28, 1)), eager)
    assert (built.run_eagerly, built.jit_compile, built.steps_per_execution) == (False, False, 1)
    cache = TrainingCache(tmp_path)
    first = train(model, COMPILE, SMALL, cache=cache)
    again = train(model, eager, SMALL, cache=cache)
    assert again.cached and again.key == first.key
