"""Rebuilding student models from configs: built-in layers only, described as students see them."""

from __future__ import annotations

import json

import keras
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.models.rebuild import (
    ModelRejected,
    check_trainable_size,
    compile_from,
    compile_summary,
    describe,
    rebuild,
    rebuild_shared,
)
from grader.suites.convolutions import reference as ref

INPUT_SHAPE = (28, 28, 1)  # the lab's images


def _cnn(filters: tuple[int, ...]) -> keras.Model:
    return ref.reference_cnn(filters)


def test_rebuilt_cnn_matches_the_lab_table() -> None:
    model = rebuild(_cnn((32, 32)).to_json(), INPUT_SHAPE)
    assert describe(model) == ref.expected_cnn((32, 32))
    assert [row.params for row in describe(model)] == [320, 0, 9248, 0, 0, 102528, 1290]
    assert model.count_params() == 113_386


def test_dense_model_table() -> None:
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    assert describe(rebuild(model.to_json(), INPUT_SHAPE)) == ref.expected_dnn()
    assert rebuild(model.to_json(), INPUT_SHAPE).count_params() == 101_770


def test_lambda_layer_is_refused_before_deserialisation() -> None:
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Flatten()])
    with pytest.raises(ModelRejected, match="Lambda"):
        rebuild(model.to_json(), INPUT_SHAPE)


def test_custom_layer_is_refused() -> None:
    config = json.loads(_cnn((8,)).to_json())
    config["config"]["layers"][1]["module"] = "student_code"
    config["config"]["layers"][1]["registered_name"] = "Custom>Conv"
    with pytest.raises(ModelRejected, match="custom object"):
        rebuild(json.dumps(config), INPUT_SHAPE)


def test_unknown_builtin_layer_is_refused_with_the_allowed_list() -> None:
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2DTranspose(4, 3), keras.layers.Flatten()])
    with pytest.raises(ModelRejected, match="Conv2DTranspose.*allowed layers"):
        rebuild(model.to_json(), INPUT_SHAPE)


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", json.dumps({"class_name": "Sequential"})])
def test_garbage_configs_give_a_clear_error(text: str) -> None:
    with pytest.raises(ModelRejected):
        rebuild(text, INPUT_SHAPE)


def test_unbuilt_model_is_built_for_the_lab_input() -> None:
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    rebuilt = rebuild(model.to_json(), INPUT_SHAPE)
    assert rebuilt.built and rebuilt.count_params() == 7850


def test_compile_summary_normalises_names() -> None:
    model = keras.models.model_from_json(_cnn((8,)).to_json())  # its own copy: reference_cnn's model is shared
    model.compile(optimizer=keras.optimizers.SGD(), metrics=["acc"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    summary = compile_summary(model.get_compile_config())
    assert summary == {"optimizer": "sgd", "loss": "sparse_categorical_crossentropy", "from_logits": True,
                       "metrics": ["accuracy"]}
    assert compile_summary(_cnn((8,)).get_compile_config())["optimizer"] == "adam"


def test_uncompiled_model_cannot_be_trained() -> None:
    with pytest.raises(ModelRejected, match="not compiled"):
        compile_from(rebuild(_cnn((8,)).to_json(), INPUT_SHAPE), None)


def test_models_far_beyond_the_lab_are_not_trained() -> None:
    huge = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2048, 3), keras.layers.Flatten(),
                             keras.layers.Dense(10)])
    with pytest.raises(ModelRejected, match="too large"):
        check_trainable_size(huge)
    check_trainable_size(_cnn((32, 32)))  # the lab's model is fine
    check_trainable_size(_cnn((64, 64)))


@settings(max_examples=15)
@given(filters=st.lists(st.integers(1, 128), min_size=1, max_size=3).map(tuple))
def test_closed_form_parameter_counts_agree_with_keras(filters: tuple[int, ...]) -> None:
    model = _cnn(filters)
    assert describe(model) == ref.expected_cnn(filters)


@given(in_channels=st.integers(1, 512), filters=st.integers(1, 512), kernel=st.integers(1, 7))
def test_conv_formula_text_matches_its_value(in_channels: int, filters: int, kernel: int) -> None:
    text = ref.conv_formula(in_channels, filters, kernel)
    left, right = text.split(" = ")
    assert eval(left) == int(right.replace(",", "")) == ref.conv_params(in_channels, filters, kernel)  # noqa: S307


def test_layer_table_marks_the_first_difference() -> None:
    expected = ref.expected_cnn((32, 32))
    got = ref.expected_cnn((32, 64))
    table = ref.layer_table(expected, got)
    assert table is not None
    marked = [line for line in table.splitlines() if line.startswith(">>")]
    assert marked == [">> layer 3: expected Conv2D(32, 3x3, relu) -> 11x11x32, 9,248 params"]
    assert "found    Conv2D(64, 3x3, relu) -> 11x11x64, 18,496 params" in table
    assert "(3*3*32+1)*32 = 9,248" in ref.first_difference(expected, got)
    assert ref.layer_table(expected, expected) is None


def test_rebuild_shared_builds_each_config_once_per_process() -> None:
    small, wide = _cnn((8,)).to_json(), _cnn((16,)).to_json()
    first = rebuild_shared(small, INPUT_SHAPE)
    assert rebuild_shared(small, INPUT_SHAPE) is first  # a second grading of the same architecture rebuilds nothing
    assert rebuild_shared(wide, INPUT_SHAPE) is not first
    assert describe(rebuild_shared(wide, INPUT_SHAPE)) == ref.expected_cnn((16,))
    assert rebuild_shared(small, (28, 28, 1)) is first
    assert rebuild(small, INPUT_SHAPE) is not first  # rebuild() still gives a model of the caller's own
    assert describe(first) == ref.expected_cnn((8,))


@pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning")  # the legacy model, on purpose
@pytest.mark.parametrize("name", ["cnn", "compiled", "built_later", "legacy", "unbuilt"])
def test_shared_models_read_as_rebuilt_ones_without_variable_values(name: str) -> None:
    """rebuild_shared's models are only read: same layers, shapes and counts as rebuild's, no variable created,
    and none left queued for Keras to create later."""
    from keras.src.backend.common import global_state

    config = _lab_models()[name].to_json()
    own = rebuild(config, INPUT_SHAPE)
    shared = rebuild_shared(config + " ", INPUT_SHAPE)  # a config text of its own: built now, not taken from the cache
    assert describe(shared) == describe(own) and shared.count_params() == own.count_params()
    assert [w.shape for w in shared.weights] == [w.shape for w in own.weights]
    with keras.StatelessScope():  # where Keras creates the variables queued so far
        pass
    assert not global_state.get_global_attribute("uninitialized_variables")
    assert all(w._value is not None for w in own.weights)
    deferred = [w._value is None for w in shared.weights]
    assert all(deferred) or not any(deferred)
    assert all(deferred) == (not own.compiled)  # a compiled config's metrics refuse the scope: built as usual


def test_rebuild_shared_refuses_a_bad_config_every_time() -> None:
    config = json.loads(_cnn((8,)).to_json())
    config["config"]["layers"][1]["class_name"] = "Lambda"
    text = json.dumps(config)
    for _ in range(2):  # a refusal is not remembered as a model
        with pytest.raises(ModelRejected, match="Lambda"):
            rebuild_shared(text, INPUT_SHAPE)


def test_reference_cnn_is_built_once_per_filters() -> None:
    shared = ref.reference_cnn((8,))
    assert ref.reference_cnn([8]) is shared and ref.reference_cnn((16,)) is not shared
    fresh = ref._reference_cnn.__wrapped__((8,), 1234)  # what a first call builds: the same weights
    assert all((a == b).all() for a, b in zip(shared.get_weights(), fresh.get_weights(), strict=True))


def _lab_models() -> dict[str, keras.Model]:
    """Sequential models as students write them: with an Input, with a legacy input_shape, built later, compiled."""
    layers = keras.layers
    cnn = ref.reference_cnn((16, 32))
    compiled = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")])
    compiled.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    built_later = keras.Sequential([layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(), layers.Flatten(),
                                    layers.Dense(10)], name="built_later")
    built_later.build((None, 28, 28, 1))
    legacy = keras.Sequential([layers.Flatten(input_shape=(28, 28)), layers.Dense(16), layers.Dense(10)])
    unbuilt = keras.Sequential([layers.Flatten(), layers.Dense(10)])
    return {"cnn": cnn, "compiled": compiled, "built_later": built_later, "legacy": legacy, "unbuilt": unbuilt}


@pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning")  # the legacy model, on purpose
@pytest.mark.parametrize("name", ["cnn", "compiled", "built_later", "legacy", "unbuilt"])
def test_one_build_gives_the_model_keras_deserialisation_gives(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from grader.keras_compat import sequential as sequential_config

    original = _lab_models()[name]
    builds: list[str] = []
    real = keras.Sequential._maybe_rebuild
    monkeypatch.setattr(keras.Sequential, "_maybe_rebuild", lambda self: builds.append(self.name) or real(self))
    keras.utils.set_random_seed(7)
    slow = keras.models.model_from_json(original.to_json())
    slow_builds, builds[:] = len(builds), []
    keras.utils.set_random_seed(7)
    fast = sequential_config.from_json_config(json.loads(original.to_json()))
    assert fast is not None
    assert len(builds) <= 1 < slow_builds or len(original.layers) <= 1
    assert fast.to_json() == slow.to_json()
    assert [layer.name for layer in fast.layers] == [layer.name for layer in slow.layers]
    assert fast.built == slow.built and fast.compiled == slow.compiled
    if slow.compiled:
        assert fast.get_compile_config() == slow.get_compile_config()
    assert [w.shape for w in fast.get_weights()] == [w.shape for w in slow.get_weights()]
    assert all((a == b).all() for a, b in zip(fast.get_weights(), slow.get_weights(), strict=True))


def test_other_configs_are_left_to_keras() -> None:
    from grader.keras_compat import sequential as sequential_config

    config = json.loads(ref.reference_cnn((8,)).to_json())
    functional = json.loads(keras.Model(*(lambda x: (x, keras.layers.Dense(2)(x)))(keras.Input((3,)))).to_json())
    for other in (functional, {**config, "class_name": "Model"}, {**config, "shared_object_id": 1},
                  {**config, "config": {**config["config"], "extra": 1}}, "text", None):
        assert sequential_config.from_json_config(other) is None
    assert sequential_config.from_json(json.dumps(functional)).__class__.__name__ == "Functional"
