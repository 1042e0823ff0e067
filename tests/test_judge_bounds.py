"""Model and compile configs are bounded before the judge builds, compiles or runs anything of them."""

from __future__ import annotations

import copy
import json
import resource
import tracemalloc
from collections.abc import Iterator
from typing import Any

import keras
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.keras_compat import sequential as sequential_config
from grader.models import bounds as configbounds
from grader.models import shapes as configshapes
from grader.models.rebuild import ModelRejected, compile_from, describe, rebuild
from grader.suites.convolutions import reference as ref

INPUT_SHAPE = (28, 28, 1)  # the lab's images


def _lab() -> dict[str, Any]:
    return json.loads(ref.reference_cnn().to_json())


def _layer(class_name: str, config: dict[str, Any], module: str = "keras.layers") -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": {"name": class_name.lower(), **config},
            "registered_name": None}


def _with_layer(layer: dict[str, Any], at: int = 1) -> str:
    config = _lab()
    config["config"]["layers"].insert(at, layer)
    return json.dumps(config)


@pytest.fixture
def nothing_is_built(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fails the test if Keras is asked to deserialise, build or compile anything."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Keras was asked to build a config the judge should have refused")

    monkeypatch.setattr(sequential_config, "deserialize", refuse)
    monkeypatch.setattr(keras.Model, "compile_from_config", refuse)
    yield


@pytest.mark.parametrize("module", ["keras.layers", "keras.src.layers", "keras", "keras.src",
                                    "keras.src.layers.regularization.gaussian_noise"])
@pytest.mark.parametrize("class_name", ["GaussianNoise", "StringLookup", "TextVectorization", "TFSMLayer",
                                        "IntegerLookup", "Embedding"])
def test_layers_are_resolved_by_what_they_are_not_their_module(module: str, class_name: str,
                                                               nothing_is_built: None) -> None:
    layer = _layer(class_name, {"vocabulary": "/etc/passwd", "filepath": "/srv/model", "stddev": 0.1})
    with pytest.raises(ModelRejected, match=rf"{class_name}.*allowed layers"):
        rebuild(_with_layer(layer), INPUT_SHAPE)


def test_an_allowed_layer_under_a_private_module_is_refused_too(nothing_is_built: None) -> None:
    config = _lab()
    config["config"]["layers"][1]["module"] = "keras.src.layers"
    with pytest.raises(ModelRejected, match=r"Conv2D layer \(module 'keras.src.layers'\)"):
        rebuild(json.dumps(config), INPUT_SHAPE)


@pytest.mark.parametrize(("layer", "what"), [
    (_layer("Dense", {"units": 300_000}), "parameters"),
    (_layer("Conv2D", {"filters": 1000, "kernel_size": [3, 3]}), "activations per image"),
    (_layer("Conv2D", {"filters": 64, "kernel_size": [3, 3], "padding": "same"}), None),
    (_layer("ZeroPadding2D", {"padding": [[1000, 1000], [1000, 1000]]}), "activations per image"),
])
def test_sizes_are_bounded_from_the_config_before_a_build(layer: dict[str, Any], what: str | None,
                                                          nothing_is_built: None) -> None:
    """Dense(300000) after Flatten, Conv2D(1000) on the image: refused by the estimate, nothing built."""
    text = _with_layer(layer, at=len(_lab()["config"]["layers"]) - 2 if layer["class_name"] == "Dense" else 1)
    if what is None:
        with pytest.raises(ModelRejected, match="Keras was asked"):  # within the limits: Keras may build it
            rebuild(text, INPUT_SHAPE)
        return
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        with pytest.raises(ModelRejected, match=f"too large for the judge: .* {what}"):
            rebuild(text, INPUT_SHAPE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024**2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: no build happened


def test_a_build_config_claiming_a_huge_input_is_refused(nothing_is_built: None) -> None:
    config = _lab()
    config["config"]["layers"][-1]["build_config"] = {"input_shape": [None, 900_000]}  # Keras builds from it
    with pytest.raises(ModelRejected, match="parameters"):
        rebuild(json.dumps(config), INPUT_SHAPE)


def test_declared_inputs_are_bounded(nothing_is_built: None) -> None:
    config = _lab()
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 5000, 5000, 1]
    with pytest.raises(ModelRejected, match="input of 25,000,000 values"):
        rebuild(json.dumps(config), INPUT_SHAPE)


@pytest.mark.parametrize("metric", [
    {"module": "keras.metrics", "class_name": "MeanIoU", "config": {"num_classes": 6000}, "registered_name": None},
    {"module": "keras.src.metrics", "class_name": "SparseCategoricalAccuracy", "config": {}, "registered_name": None},
    {"module": "keras.metrics", "class_name": "SparseTopKCategoricalAccuracy", "config": {"k": 100000},
     "registered_name": None},
    "mean_io_u",
])
def test_compile_configs_take_allowed_metrics_with_bounded_arguments(metric: Any, nothing_is_built: None) -> None:
    compile_config = ref.reference_cnn().get_compile_config()
    compile_config["metrics"] = [metric]
    with pytest.raises(ModelRejected, match="metric"):
        compile_from(rebuild_unbuilt(), compile_config)
    model = _lab()
    model["compile_config"] = compile_config  # the model's own JSON carries one too, and rebuild compiles it
    with pytest.raises(ModelRejected, match="metric"):
        rebuild(json.dumps(model), INPUT_SHAPE)


def rebuild_unbuilt() -> keras.Model:
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])


@pytest.mark.parametrize("change", [
    {"optimizer": {"module": "keras.optimizers", "class_name": "LossScaleOptimizer", "config": {},
                   "registered_name": None}},
    {"optimizer": "student_opt"},
    {"loss": {"module": "keras.src.losses", "class_name": "Loss", "config": {}, "registered_name": None}},
    {"steps_per_execution": 10**9},
    {"metrics": ["accuracy"] * 100},
    {"unknown": 1},
])
def test_other_compile_arguments_are_bounded(change: dict[str, Any], nothing_is_built: None) -> None:
    compile_config = {**ref.reference_cnn().get_compile_config(), **change}
    with pytest.raises(ModelRejected, match="Received"):
        configbounds.bound_compile(compile_config)


def test_the_lab_models_and_their_compile_configs_pass() -> None:
    model = ref.reference_cnn()
    configbounds.bound_model(json.loads(model.to_json()), INPUT_SHAPE)
    configbounds.bound_compile(model.get_compile_config())
    for compile_config in ({"optimizer": "sgd", "loss": "sparse_categorical_crossentropy", "metrics": ["acc"]},
                           keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).get_compile_config()):
        configbounds.bound_compile(compile_config or {"optimizer": "adam"})
    assert describe(rebuild(model.to_json(), INPUT_SHAPE)) == ref.expected_cnn((32, 32))


def test_odd_values_are_refused_with_a_message(nothing_is_built: None) -> None:
    for damage in ("nan", "int", "string", "functional", "dtype"):
        config = _lab()
        layer = config["config"]["layers"][1]["config"]
        if damage == "nan":
            layer["filters"] = float("nan")
        elif damage == "int":
            layer["filters"] = 10**40
        elif damage == "string":
            layer["padding"] = "x" * 100_000
        elif damage == "functional":
            config["config"]["layers"][1]["inbound_nodes"] = []
        else:
            layer["dtype"] = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "int8_from_float32"},
                              "registered_name": None}
        with pytest.raises(ModelRejected):
            rebuild(json.dumps(config), INPUT_SHAPE)


_KINDS = st.sampled_from(["conv", "pool", "dense", "flatten", "pad", "bn", "gap"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(_KINDS, st.integers(1, 24), st.sampled_from(["valid", "same"]), st.integers(1, 3)),
                min_size=1, max_size=5))
def test_the_estimate_counts_what_keras_builds(stack: list[tuple[str, int, str, int]]) -> None:
    """On random stacks of the lab's layers, the estimate's parameter count is Keras' own."""
    layers: list[Any] = [keras.Input((28, 28, 1))]
    flat = False
    for kind, size, padding, step in stack:
        if kind == "conv" and not flat:
            layers.append(keras.layers.Conv2D(size, (step, 2), strides=step, padding=padding))
        elif kind == "pool" and not flat:
            layers.append(keras.layers.MaxPooling2D(step + 1, strides=step, padding=padding))
        elif kind == "pad" and not flat:
            layers.append(keras.layers.ZeroPadding2D(((step, 1), (0, step))))
        elif kind == "gap" and not flat:
            layers.append(keras.layers.GlobalAveragePooling2D())
            flat = True
        elif kind == "flatten" and not flat:
            layers.append(keras.layers.Flatten())
            flat = True
        elif kind == "bn":
            layers.append(keras.layers.BatchNormalization())
        else:
            layers.append(keras.layers.Dense(size))
    try:
        model = keras.Sequential(layers)
    except ValueError:  # Keras refuses the stack (e.g. a pooling larger than what is left): nothing to compare
        return
    totals = configshapes.estimate(json.loads(model.to_json()), (28, 28, 1))
    assert totals.params == model.count_params()
    assert totals.activations == 28 * 28 + sum(
        int(__import__("math").prod(layer.output.shape[1:])) for layer in model.layers)


def test_nested_models_are_sized_too(nothing_is_built: None) -> None:
    inner = keras.Sequential([keras.layers.Dense(300_000)])
    config = _lab()
    config["config"]["layers"].insert(-1, json.loads(json.dumps(keras.saving.serialize_keras_object(inner))))
    with pytest.raises(ModelRejected, match="too large"):
        rebuild(json.dumps(config), INPUT_SHAPE)
    assert copy.deepcopy(config)  # the config itself is plain data


def test_loss_and_metric_functions_passed_by_name_are_accepted() -> None:
    """`loss=keras.losses.sparse_categorical_crossentropy` serialises as a builtins function: Keras resolves it by
    its public name, so a known name is accepted and any other refused."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=keras.losses.sparse_categorical_crossentropy,
                  metrics=[keras.metrics.sparse_categorical_accuracy, "accuracy"])
    compile_config = model.get_compile_config()
    compile_from(rebuild(model.to_json(), (4,)), compile_config)
    for key in ("loss", "metrics"):
        bad = copy.deepcopy(compile_config)
        target = bad["loss"] if key == "loss" else bad["metrics"][0]
        target["config"] = "student_loss"
        with pytest.raises(ModelRejected, match="student_loss|custom object"):
            compile_from(rebuild(model.to_json(), (4,)), bad)


@pytest.mark.parametrize("filters", [(8, 8), (16,), (4, 8, 16)])
def test_the_judge_draws_the_initial_weights_the_sandbox_gave(filters: tuple[int, ...]) -> None:
    """The spy in the sandbox gives a fitted model `drivers.initial_weights(model.to_json(), seed)`; the judge,
    from the recorded config, draws them again through its bounded rebuild: the same arrays, or every honest
    experiment would fail check_trains_each_model."""
    import numpy as np

    from grader.keras_compat.seeding import seed_keeping_caches
    from grader.suites.convolutions.drivers import initial_weights

    model = sequential_config.from_json(ref.reference_cnn(filters).to_json())  # a copy of the shared model
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    given_in_sandbox = initial_weights(model.to_json(), 1729)
    seed_keeping_caches(1729)
    drawn_by_judge = rebuild(model.to_json(), INPUT_SHAPE).get_weights()
    assert len(given_in_sandbox) == len(drawn_by_judge) == 2 * (len(filters) + 2)
    assert all(np.array_equal(a, b) for a, b in zip(given_in_sandbox, drawn_by_judge, strict=True))
    other_seed = initial_weights(model.to_json(), 1730)
    assert not np.array_equal(other_seed[0], given_in_sandbox[0])


def test_weights_not_trained_from_the_judges_are_told_from_a_fit() -> None:
    """What check_trains_each_model asks of a record's weights after fit, given the judge's initial weights."""
    import numpy as np

    from grader.suites.convolutions.drivers import initial_weights
    from grader.suites.convolutions.evidence import ForgedRecord, trained_from

    config = ref.reference_cnn((8, 8)).to_json()
    initial = initial_weights(config, 1)
    rng = np.random.default_rng(0)
    moved = [w + rng.normal(0, 0.05 * (float(np.std(w)) or 0.01), w.shape) for w in initial]  # a fit's few percent
    trained_from(initial, moved)
    trained_from(initial, [w * 1.8 for w in initial])
    trained_from(initial, [np.full_like(w, np.nan) for w in initial])  # NaN: its loss says it did not learn
    for forged in (initial_weights(config, 2), [np.zeros_like(w) for w in initial], [-w for w in initial]):
        with pytest.raises(ForgedRecord, match="not trained from the judge's initial weights"):
            trained_from(initial, forged)
