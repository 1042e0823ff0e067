"""The reference models: their structure (fast) and their accuracy on the real data (slow).

The accuracy tests train the lab's dense network and CNN for 5 epochs (adam, batch 32)
on the full Fashion-MNIST data with a fixed seed and deterministic ops, and check the
test accuracy against the lab's figures (dense ~0.865, CNN ~0.898).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from grader.datasets.fashion_mnist import load_fashion_mnist, prepare

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions" / "convolutions"
MODULES = ("data", "models", "callbacks", "training", "convolution", "visualize", "experiments")
SEED = 0
EPOCHS = 5




def _conv_params(kernel: int, channels_in: int, filters: int) -> int:
    return (kernel * kernel * channels_in + 1) * filters


def _dense_params(inputs: int, units: int) -> int:
    return (inputs + 1) * units


def _layer_table(model: keras.Model) -> list[tuple[str, int, tuple]]:
    return [(type(layer).__name__, layer.count_params(), tuple(layer.output.shape[1:])) for layer in model.layers]


def test_dense_structure(reference):
    model = reference.models.build_dnn()
    assert _layer_table(model) == [
        ("Flatten", 0, (784,)),
        ("Dense", 100_480, (128,)),
        ("Dense", 1_290, (10,)),
    ]
    assert model.count_params() == 101_770
    assert tuple(model.inputs[0].shape[1:]) == (28, 28, 1)


def test_cnn_structure_matches_the_lab(reference):
    model = reference.models.build_cnn()
    assert _layer_table(model) == [
        ("Conv2D", 320, (26, 26, 32)),
        ("MaxPooling2D", 0, (13, 13, 32)),
        ("Conv2D", 9_248, (11, 11, 32)),
        ("MaxPooling2D", 0, (5, 5, 32)),
        ("Flatten", 0, (800,)),
        ("Dense", 102_528, (128,)),
        ("Dense", 1_290, (10,)),
    ]
    assert model.count_params() == 113_386
    assert all(layer.activation.__name__ == "relu" for layer in model.layers[:-1] if hasattr(layer, "activation"))
    assert model.layers[-1].activation.__name__ == "softmax"


@pytest.mark.parametrize("filters", [(16,), (16, 16), (64, 64), (32, 32, 64)])
def test_cnn_structure_follows_filters(reference, filters):
    model = reference.models.build_cnn(filters)
    side, channels, expected = 28, 1, []
    for count in filters:
        side -= 2
        expected.append(("Conv2D", _conv_params(3, channels, count), (side, side, count)))
        side //= 2
        expected.append(("MaxPooling2D", 0, (side, side, count)))
        channels = count
    flat = side * side * channels
    expected += [("Flatten", 0, (flat,)), ("Dense", _dense_params(flat, 128), (128,)), ("Dense", 1_290, (10,))]
    assert _layer_table(model) == expected


def test_a_fourth_convolution_does_not_fit(reference):
    with pytest.raises(ValueError):
        reference.models.build_cnn((32, 32, 64, 64))


def test_compile_model(reference):
    model = reference.models.build_dnn()
    assert reference.models.compile_model(model) is model
    assert isinstance(model.optimizer, keras.optimizers.Adam)  # its name is numbered: adam, adam_1, ...
    assert model.loss == "sparse_categorical_crossentropy"


@pytest.fixture(scope="module")
def subset():
    """The first 512 training and 256 test images: enough to exercise the code, not to learn much."""
    fashion = load_fashion_mnist()
    return (
        (prepare(fashion.train_images[:512]), fashion.train_labels[:512]),
        (prepare(fashion.test_images[:256]), fashion.test_labels[:256]),
    )


def test_train_and_evaluate_stops_with_the_callback(reference, subset, capsys):
    keras.utils.set_random_seed(SEED)
    model = reference.models.compile_model(reference.models.build_dnn())
    stopper = reference.callbacks.StopOnThreshold("loss", 100.0)
    result = reference.training.train_and_evaluate(model, *subset, epochs=3, callbacks=[stopper])
    assert result["epochs_run"] == 1
    assert "at epoch 1: stopping training." in capsys.readouterr().out
    assert isinstance(result["test_accuracy"], float) and 0 <= result["test_accuracy"] <= 1
    assert isinstance(result["test_loss"], float)
    assert [len(values) for values in result["history"].values()] == [1, 1]


def test_activations_of_the_ankle_boots(reference, tmp_path):
    fashion = load_fashion_mnist()
    boots = prepare(fashion.test_images[[0, 23, 28]])
    keras.utils.set_random_seed(SEED)
    model = reference.models.build_cnn()
    maps = reference.visualize.layer_activations(model, boots)
    assert [m.shape for m in maps] == [(3, 26, 26, 32), (3, 13, 13, 32), (3, 11, 11, 32), (3, 5, 5, 32)]
    first_conv = keras.Model(model.inputs, model.layers[0].output)
    np.testing.assert_allclose(maps[0], first_conv.predict(boots, verbose=0), rtol=1e-6)
    path = reference.visualize.plot_activations(model, boots, tmp_path / "boots.png", channel=1)
    assert path == tmp_path / "boots.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_filter_experiment_rows(reference, subset):
    keras.utils.set_random_seed(SEED)
    rows = reference.experiments.filter_experiment((4, 8), *subset, epochs=1)
    assert [row["filters"] for row in rows] == [4, 8]
    assert [row["params"] for row in rows] == [reference.models.build_cnn((f, f)).count_params() for f in (4, 8)]
    assert all(set(row) == {"filters", "params", "seconds", "test_accuracy"} for row in rows)
    assert all(row["seconds"] > 0 and 0 <= row["test_accuracy"] <= 1 for row in rows)


def _train_reference(reference, build: str) -> tuple[keras.Model, dict]:
    """Train the reference model ``build`` ("build_dnn" or "build_cnn") the lab's way, on the full data.

    Through the judge's own training (same seed, op determinism, 5 epochs, batch 32) and the test
    session's training cache, so the accuracy-gate tests reuse these two trainings instead of
    repeating them. The reference train_and_evaluate itself is exercised on a subset above.
    """
    from grader.training.cache import Recipe, TrainingCache
    from grader.training.trainer import train

    model = reference.models.compile_model(getattr(reference.models, build)())
    outcome = train(model.to_json(), model.get_compile_config(), Recipe(epochs=EPOCHS, seed=SEED),
                    cache=TrainingCache())
    result = {
        "history": outcome.history,
        "epochs_run": len(outcome.history["loss"]),
        "test_loss": outcome.test_loss,
        "test_accuracy": outcome.test_accuracy,
    }
    return model, result


@pytest.fixture(scope="module")
def trained(reference) -> dict[str, tuple[keras.Model, dict]]:
    return {build: _train_reference(reference, build) for build in ("build_dnn", "build_cnn")}


@pytest.mark.slow
@pytest.mark.parametrize(("build", "low", "high"), [("build_dnn", 0.85, 0.89), ("build_cnn", 0.88, 0.92)])
def test_reference_accuracy(trained, build, low, high):
    model, result = trained[build]
    assert low <= result["test_accuracy"] <= high
    assert result["epochs_run"] == EPOCHS
    assert set(result["history"]) == {"loss", "accuracy"}
    assert all(len(values) == EPOCHS for values in result["history"].values())
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]
    assert 0 < result["test_loss"] < 1


@pytest.mark.slow
def test_cnn_beats_dense(trained):
    assert trained["build_cnn"][1]["test_accuracy"] > trained["build_dnn"][1]["test_accuracy"]
