"""grader.sandbox.pool: the judge's models are rebuilt once, lent again only as the payload describes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from grader.sandbox.pool import ModelPool
from grader.sandbox.protocol import ModelPayload
from grader.sandbox.runner import payload_to_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TensorFlow's own imports


def _payload(optimizer: str = "adam", seed: int = 5) -> ModelPayload:
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return ModelPayload(json_config=model.to_json(), weights=[np.asarray(w) for w in model.get_weights()],
                        compile_config=model.get_compile_config())


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((48, 4, 4, 1), dtype=np.float32), rng.integers(0, 3, 48)


def _fit(model: Any) -> tuple[dict[str, list[float]], list[np.ndarray]]:
    import keras

    keras.utils.set_random_seed(11)  # the sandbox seeds every request alike
    x, y = _data()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return history.history, [np.array(w) for w in model.get_weights()]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_model_lent_again_trains_exactly_like_a_fresh_one(optimizer: str) -> None:
    payload, pool = _payload(optimizer), ModelPool(payload_to_model)
    first = pool.take(payload)
    fresh = _fit(first)
    pool.give_back()
    again = pool.take(payload)
    assert again is first and pool.reused == 1
    assert all(np.array_equal(w, p) for w, p in zip(again.get_weights(), payload.weights, strict=True))
    assert int(again.optimizer.iterations) == 0
    reused = _fit(again)
    assert reused[0] == fresh[0]
    assert all(np.array_equal(a, b) for a, b in zip(reused[1], fresh[1], strict=True))


def test_one_request_gets_one_model_per_argument() -> None:
    payload, pool = _payload(), ModelPool(payload_to_model)
    a, b = pool.take(payload), pool.take(payload)
    assert a is not b
    pool.give_back()
    assert {id(pool.take(payload)), id(pool.take(payload))} == {id(a), id(b)}


def test_another_payload_gets_another_model() -> None:
    pool = ModelPool(payload_to_model)
    first = pool.take(_payload(seed=1))
    pool.give_back()
    assert pool.take(_payload(seed=2)) is not first
    assert pool.take(_payload("sgd", seed=1)) is not first


def _recompile(model: Any) -> None:
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")


def _replace_fit(model: Any) -> None:
    model.fit = lambda *args, **kwargs: None


def _replace_layer_call(model: Any) -> None:
    model.layers[-1].call = lambda inputs: inputs


def _freeze(model: Any) -> None:
    model.layers[1].trainable = False


def _relu_to_linear(model: Any) -> None:
    import keras

    model.layers[1].activation = keras.activations.linear


def _same_optimizer_object(model: Any) -> None:
    model.compile(optimizer=model.optimizer, loss="sparse_categorical_crossentropy")


@pytest.mark.parametrize("tamper", [_recompile, _same_optimizer_object, _replace_fit, _replace_layer_call, _freeze,
                                    _relu_to_linear])
def test_a_changed_model_is_not_lent_again(tamper: Any) -> None:
    payload, pool = _payload(), ModelPool(payload_to_model)
    first = pool.take(payload)
    tamper(first)
    pool.give_back()
    second = pool.take(payload)
    assert second is not first and pool.reused == 0
    assert second.to_json() == payload.json_config


def test_a_model_that_raises_when_inspected_is_dropped() -> None:
    payload, pool = _payload(), ModelPool(payload_to_model)
    first = pool.take(payload)

    def explode() -> str:
        raise SystemExit("no")

    first.to_json = explode  # also a replaced method, but the inspection must survive it either way
    pool.give_back()
    assert pool.take(payload) is not first


def test_idle_models_are_bounded() -> None:
    pool = ModelPool(payload_to_model, idle_limit=2)
    payloads = [_payload(seed=s) for s in range(4)]
    for payload in payloads:
        pool.take(payload)
    pool.give_back()
    assert sum(len(v) for v in pool.idle.values()) == 2
    kept = [p for p in payloads if pool.take(p) is not None and pool.reused]
    assert pool.reused == 2 and len(kept) >= 1


def test_the_judge_sends_the_same_payload_for_the_same_model() -> None:
    # Keras names layers and optimizers with per-process counters (dense_17, adam_3); the pool needs equal payloads.
    import json

    from grader.suites.convolutions.reference import _reference_cnn, payload_of, reference_cnn

    fresh = _reference_cnn.__wrapped__((32, 32), 1234)  # built anew, not the process's shared reference_cnn()
    first, second = payload_of(reference_cnn()), payload_of(fresh)
    assert fresh is not reference_cnn() and fresh.layers[1].name != reference_cnn().layers[1].name
    assert first.json_config == second.json_config and first.compile_config == second.compile_config
    layers = json.loads(first.json_config)["config"]["layers"]
    assert [layer["config"]["name"] for layer in layers] == [
        "input_layer", "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten", "dense", "dense_1"]
    model = payload_to_model(first)
    assert model.count_params() == reference_cnn().count_params()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), first.weights, strict=True))
