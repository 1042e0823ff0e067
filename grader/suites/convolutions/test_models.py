"""models.py: build_dnn, build_cnn, compile_model, and the accuracy gates of the two lab models."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.checks import Mismatch, check
from grader.suites.convolutions import ASSIGNMENT, INPUT_SHAPE
from grader.suites.convolutions import reference as ref

DNN_THRESHOLD = 0.85
CNN_THRESHOLD = 0.88


def _compare(title: str, expected: list[Any], got: list[Any], hint: str) -> None:
    table = ref.layer_table(expected, got)
    if table is not None:
        raise Mismatch(
            f"{title} does not have the expected layers: {ref.first_difference(expected, got)}.",
            details=table,
            hint=hint,
        )


# --- the dense baseline ---------------------------------------------------------------------------
@check(points=1, exercise="models")
def check_dnn_builds(student: Any) -> None:
    """build_dnn() returns a Keras model"""
    student.model("models", "build_dnn")


@check(points=3, exercise="models", depends=("check_dnn_builds",))
def check_dnn_layers(student: Any) -> None:
    """build_dnn() is Flatten -> Dense(128, relu) -> Dense(10, softmax) with 101,770 parameters"""
    built = student.model("models", "build_dnn")
    _compare(
        "build_dnn()", ref.expected_dnn(), built.layers,
        "keras.Sequential([keras.Input((28, 28, 1)), Flatten(), Dense(128, activation='relu'), "
        "Dense(10, activation='softmax')])",
    )


# --- the CNN ---------------------------------------------------------------------------------------
@check(points=1, exercise="models")
def check_cnn_builds(student: Any) -> None:
    """build_cnn() returns a Keras model"""
    student.model("models", "build_cnn")


@check(points=4, exercise="models", depends=("check_cnn_builds",))
def check_cnn_layers(student: Any) -> None:
    """build_cnn() has the lab's layers, output shapes 26x26x32 -> 13x13x32 -> 11x11x32 -> 5x5x32 -> 800"""
    built = student.model("models", "build_cnn")
    _compare(
        "build_cnn()", ref.expected_cnn((32, 32)), built.layers,
        "for each entry f of `filters`: Conv2D(f, (3, 3), activation='relu') then MaxPooling2D(2, 2); "
        "then Flatten, Dense(128, relu), Dense(10, softmax).",
    )


@check(points=2, exercise="models", depends=("check_cnn_builds",))
def check_cnn_parameter_counts(student: Any) -> None:
    """build_cnn() has 320, 9,248, 102,528 and 1,290 parameters in its weighted layers (113,386 in all)"""
    built = student.model("models", "build_cnn")
    expected = ref.expected_cnn((32, 32))
    want = [(r.kind, r.params) for r in expected if r.params]
    got = [(r.kind, r.params) for r in built.layers if r.params]
    if want != got:
        formulas = [ref.formula_for(expected, i) for i, r in enumerate(expected) if r.params]
        raise Mismatch(
            "build_cnn() has different parameter counts.",
            expected=", ".join(f"{k} {p:,}" for k, p in want) + f" ({sum(p for _, p in want):,} in all)",
            got=", ".join(f"{k} {p:,}" for k, p in got) + f" ({sum(p for _, p in got):,} in all)",
            hint="parameters per layer: " + "; ".join(formulas),
        )


VARIANTS = [(16, 16), (64, 64), (32,), (32, 32, 64)]


@check(points=1.5, exercise="models", depends=("check_cnn_builds",))
@pytest.mark.parametrize("filters", VARIANTS, ids=lambda f: "filters=" + "-".join(map(str, f)))
def check_cnn_variants(student: Any, filters: tuple[int, ...]) -> None:
    """build_cnn(filters) builds one Conv2D + MaxPooling2D pair per entry of filters"""
    built = student.model("models", "build_cnn", filters)
    _compare(
        f"build_cnn({filters})", ref.expected_cnn(filters), built.layers,
        "loop over `filters` and add Conv2D(f, (3, 3), activation='relu') and MaxPooling2D(2, 2) for each f.",
    )


_filter_tuples = st.lists(st.integers(1, 128), min_size=1, max_size=3).map(tuple)


@check(points=2, exercise="models", depends=("check_cnn_builds",))
@settings(max_examples=12)
@given(filters=_filter_tuples)
def check_cnn_parameter_formula(student: Any, filters: tuple[int, ...]) -> None:
    """build_cnn(filters) has (3*3*in+1)*f parameters per convolution for any 1-3 filter counts in 1..128"""
    built = student.model("models", "build_cnn", filters)
    expected = ref.expected_cnn(filters)
    want = [r.params for r in expected]
    got = [r.params for r in built.layers]
    if want != got:
        raise Mismatch(
            f"build_cnn({filters}) has the wrong parameter counts: {ref.first_difference(expected, built.layers)}.",
            expected=f"{want} ({sum(want):,} in all)",
            got=f"{got} ({sum(got):,} in all)",
            hint="the first Conv2D sees 1 input channel, each later one sees the previous layer's filters.",
        )


@check(points=2, exercise="models")
def check_compile_settings(student: Any) -> None:
    """compile_model(model) compiles with adam, sparse_categorical_crossentropy and the accuracy metric"""
    from grader.judge.student import describe_value
    from grader.models.rebuild import compile_summary
    from grader.sandbox.protocol import ModelSpec

    model = ref.reference_cnn()  # the judge's own model: a build_cnn bug does not cost points here
    value = student.call("models", "compile_model", ref.payload_of(_uncompiled(model)))
    if not isinstance(value, ModelSpec):
        raise Mismatch(
            "compile_model(model) must return the compiled model.",
            expected="the Keras model it was given, compiled", got=describe_value(value),
            hint="end compile_model with `return model`.",
        )
    if not value.compile_config:
        raise Mismatch("compile_model(model) returned a model that is not compiled.", hint="call model.compile(...).")
    summary = compile_summary(value.compile_config)
    want = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "from_logits": False}
    got = {k: summary[k] for k in want}
    problems = [f"{k}: expected {want[k]!r}, found {got[k]!r}" for k in want if want[k] != got[k]]
    if "accuracy" not in summary["metrics"]:
        problems.append(f"metrics: expected ['accuracy'], found {summary['metrics']!r}")
    if problems:
        raise Mismatch(
            "compile_model(model) does not use the lab's settings: " + "; ".join(problems) + ".",
            expected="optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']",
            got=f"optimizer={got['optimizer']!r}, loss={got['loss']!r}, metrics={summary['metrics']!r}",
            hint="model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])",
        )


def _uncompiled(model: Any) -> Any:
    from grader.keras_compat.sequential import from_json

    fresh = from_json(model.to_json())
    fresh.set_weights(model.get_weights())
    return fresh


# --- hidden checks ---------------------------------------------------------------------------------
@check(points=1, exercise="models", hidden=True, depends=("check_cnn_builds",))
def check_cnn_wide_single_layer(student: Any) -> None:
    """build_cnn((128,)) has a single 1,280-parameter convolution before the dense layers"""
    built = student.model("models", "build_cnn", (128,))
    _compare("build_cnn((128,))", ref.expected_cnn((128,)), built.layers, "one Conv2D/MaxPooling2D pair per filter.")


@check(points=1, exercise="models", hidden=True, depends=("check_cnn_builds",))
def check_cnn_accepts_list(student: Any) -> None:
    """build_cnn accepts filters as a list as well as a tuple"""
    built = student.model("models", "build_cnn", [8, 16])
    _compare("build_cnn([8, 16])", ref.expected_cnn((8, 16)), built.layers, "iterate over `filters`.")


@check(points=1, exercise="models", hidden=True)
def check_compile_keeps_layers(student: Any) -> None:
    """compile_model returns the same architecture it was given"""
    from grader.models.rebuild import ModelRejected, describe, rebuild_shared
    from grader.sandbox.protocol import ModelSpec

    model = ref.reference_cnn((16,))
    value = student.call("models", "compile_model", ref.payload_of(_uncompiled(model)))
    if not isinstance(value, ModelSpec):
        raise Mismatch("compile_model(model) must return the model.")
    try:
        got = describe(rebuild_shared(value.json_config, INPUT_SHAPE))
    except ModelRejected as exc:  # e.g. a compile config the judge refuses: the student's, said as such
        raise Mismatch(f"compile_model(model) returned a model the grader cannot use: {exc}") from None
    _compare("the model returned by compile_model", describe(model), got, "compile the model in place and return it.")


# --- accuracy gates: the judge trains the student's models itself ------------------------------------
def _train(student: Any, context: Any, record: dict[str, Any], builder: str, args: list[Any], name: str,
           threshold: float) -> Any:
    from grader.judge.student import describe_value
    from grader.models.rebuild import ModelRejected
    from grader.sandbox.protocol import ModelSpec
    from grader.training.cache import Recipe
    from grader.training.trainer import train

    value = student.drive("compiled", builder, args, module="models", function=builder)
    if not isinstance(value, ModelSpec):
        raise Mismatch(f"compile_model({builder}()) must return a compiled Keras model.", got=describe_value(value))
    try:
        outcome = train(value.json_config, value.compile_config, Recipe(seed=context.seed), cache=context.cache,
                        progress=context.progress, data=ASSIGNMENT.load_dataset(), stop=context.cut_off)
    except ModelRejected as exc:
        raise Mismatch(f"the judge could not train compile_model({builder}()): {exc}") from None
    low, high = outcome.ci95
    record.update({
        "model": name, "test_accuracy": outcome.test_accuracy, "ci95": [low, high], "threshold": threshold,
        "history": outcome.history, "seconds": outcome.seconds, "cached": outcome.cached,
    })
    context.artifacts.setdefault("training", {})[name] = {
        "test_accuracy": outcome.test_accuracy, "ci95": [low, high], "history": outcome.history,
    }
    return value, outcome


def _gate(name: str, outcome: Any, threshold: float) -> None:
    low, high = outcome.ci95
    curve = ", ".join(f"{a:.3f}" for a in outcome.history.get("accuracy", outcome.history.get("acc", [])))
    text = (f"test accuracy {outcome.test_accuracy:.4f} (95% interval {low:.4f}-{high:.4f}) after 5 epochs; "
            f"training accuracy per epoch: {curve}")
    if not outcome.test_accuracy >= threshold:
        raise Mismatch(
            f"the {name} trained by the judge (5 epochs, batch 32, seed fixed) is not accurate enough.",
            expected=f"test accuracy >= {threshold}", got=text,
            hint="check the architecture and compile settings above; they decide what the judge trains.",
        )


@check(points=5, exercise="models", tags=("accuracy",), depends=("check_dnn_builds",))
def check_dnn_accuracy(student: Any, context: Any, record: dict[str, Any]) -> None:
    """the dense model reaches at least 0.85 test accuracy when the judge trains it"""
    _, outcome = _train(student, context, record, *ref.GATE_MODELS["dnn"], "dnn", DNN_THRESHOLD)
    _gate("dense model", outcome, DNN_THRESHOLD)


@check(points=5, exercise="models", tags=("accuracy",), depends=("check_cnn_builds",))
def check_cnn_accuracy(student: Any, context: Any, record: dict[str, Any], fashion: Any) -> None:
    """the CNN (32, 32) reaches at least 0.88 test accuracy when the judge trains it"""
    value, outcome = _train(student, context, record, *ref.GATE_MODELS["cnn"], "cnn", CNN_THRESHOLD)
    try:
        _activation_maps(context, value, outcome, fashion)
    except Exception as exc:  # maps are for the reports; they never decide a score
        context.artifacts["activation_maps_error"] = f"the activation maps could not be drawn: {exc}"[:300]
    _gate("CNN", outcome, CNN_THRESHOLD)


@check(points=2, exercise="models", tags=("accuracy",), depends=("check_dnn_accuracy", "check_cnn_accuracy"))
def check_cnn_beats_dnn(context: Any) -> None:
    """the CNN is more accurate than the dense model on the test set"""
    trained = context.artifacts["training"]
    dnn, cnn = trained["dnn"]["test_accuracy"], trained["cnn"]["test_accuracy"]
    if not cnn > dnn:
        raise Mismatch("the convolutions should help: the CNN is not more accurate than the dense model.",
                       expected=f"CNN accuracy > {dnn:.4f} (dense)", got=f"{cnn:.4f}")


def _activation_maps(context: Any, value: Any, outcome: Any, fashion: Any) -> None:
    """Maps of the three ankle boots through the student's trained CNN and the judge's, for the reports."""
    try:
        from grader.datasets.fashion_mnist import prepare
        from grader.models.rebuild import rebuild
        from grader.reports.images import activation_grid_png
        from grader.sandbox.pool import payload_digest
        from grader.sandbox.protocol import ModelPayload
        from grader.training.cache import Recipe
        from grader.training.trainer import train
    except ImportError:
        return
    import base64

    images = prepare(fashion.test_images[list(ref.ANKLE_BOOTS)])
    maps: dict[str, Any] = {"images": list(ref.ANKLE_BOOTS)}
    reference_model = ref.reference_cnn()
    reference_outcome = train(reference_model.to_json(), reference_model.get_compile_config(),
                              Recipe(seed=context.seed), cache=context.cache, data=fashion)
    for who, json_config, weights in (("student", value.json_config, outcome.weights),
                                      ("reference", reference_model.to_json(), reference_outcome.weights)):
        key = payload_digest(ModelPayload(json_config=json_config, weights=list(weights or []), compile_config=None))
        if key not in _drawn_maps:
            model = rebuild(json_config, INPUT_SHAPE)
            if weights is not None:
                model.set_weights(weights)
            layers = [type(layer).__name__ for layer in model.layers
                      if type(layer).__name__ in ("Conv2D", "MaxPooling2D")]
            activations = ref.reference_activations(model, images)
            png = activation_grid_png(activations, layers, [f"test image {i}" for i in ref.ANKLE_BOOTS],
                                      channel=1) if activations else None
            _drawn_maps[key] = None if png is None else {"layers": layers,
                                                         "png": base64.b64encode(png).decode("ascii")}
            while len(_drawn_maps) > _MAPS_KEPT:
                _drawn_maps.pop(next(iter(_drawn_maps)))
        entry = _drawn_maps[key]
        if entry is not None:
            maps[who] = {"layers": list(entry["layers"]), "png": entry["png"]}
    context.artifacts["activation_maps"] = maps


# The maps of a trained model depend on its config and weights only: a batch worker draws the same ones for
# every submission that trains alike (the training cache gives them the very same weights).
_MAPS_KEPT = 8
_drawn_maps: dict[str, dict[str, Any] | None] = {}
