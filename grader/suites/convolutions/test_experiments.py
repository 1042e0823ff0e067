"""Exercise experiments.py: filter_experiment trains build_cnn((f, f)) per option and reports one row each.

filter_experiment necessarily uses the student's own build_cnn, compile_model and train_and_evaluate.
So that a build_cnn bug is not charged twice, the reported params are compared with the student's own
build_cnn((f, f)) (rebuilt here from its config); only when that cannot be built is the closed form
used, and the feedback says which. A spy on keras.Model.fit (driver filter_experiment_spy) records
how many models were trained and for how many epochs, and a spy on the student's train_and_evaluate what
experiments.py asked of it and got back: a mistake inherited from training.py is not charged here again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from grader.checks import Mismatch, check
from grader.datasets.fashion_mnist import prepare
from grader.suites.convolutions import INPUT_SHAPE
from grader.suites.convolutions.drivers import architecture
from grader.suites.convolutions.evidence import ForgedRecord, trained_from
from grader.suites.convolutions.feedback import Outcome, attempt, describe
from grader.suites.convolutions.reference import expected_cnn

EXERCISE = "experiments"
OPTIONS = (8, 16)
TRAIN_IMAGES, TEST_IMAGES = 512, 256
EPOCHS = 1
FIRST_SEED = 1729  # the judge's initial weights of the i-th model fitted: its config's draws under FIRST_SEED + i
KEYS = ("filters", "params", "seconds", "test_accuracy")
CALL = f"filter_experiment({OPTIONS}, train, test, epochs={EPOCHS})"
ROW_HINT = (
    'for each f: model = compile_model(build_cnn((f, f))), time train_and_evaluate, then append '
    '{"filters": f, "params": model.count_params(), "seconds": elapsed, "test_accuracy": result["test_accuracy"]}.'
)
Data = tuple[np.ndarray, np.ndarray]


def _data(fashion: Any, train_count: int, test_count: int) -> tuple[Data, Data]:
    train = (prepare(fashion.train_images[:train_count]), np.asarray(fashion.train_labels[:train_count], np.int64))
    test = (prepare(fashion.test_images[:test_count]), np.asarray(fashion.test_labels[:test_count], np.int64))
    return train, test


def run_experiment(student: Any, fashion: Any, options: Any, sizes: tuple[int, int]) -> dict[str, Any]:
    train, test = _data(fashion, *sizes)
    outcome, seconds = student.drive_timed("filter_experiment_spy", options, train, test, EPOCHS, FIRST_SEED,
                                           module="experiments", function="filter_experiment")
    if not isinstance(outcome, dict) or "rows" not in outcome:
        raise Mismatch("the experiment driver returned something unexpected.", got=describe(outcome))
    outcome["judge_seconds"] = seconds
    outcome["judge_train"] = train  # the judge's own copy, to evaluate the trained models with
    return outcome


@pytest.fixture(scope="module")
def experiment(student: Any, fashion: Any) -> Outcome[dict[str, Any]]:
    """filter_experiment((8, 16), 512 training images, 256 test images, epochs=1), run once."""
    return attempt(lambda: run_experiment(student, fashion, OPTIONS, (TRAIN_IMAGES, TEST_IMAGES)))


def rows_of(outcome: dict[str, Any], options: Any = OPTIONS, call: str = CALL) -> list[dict[str, Any]]:
    rows = outcome["rows"]
    if not isinstance(rows, (list, tuple)) or not all(isinstance(row, dict) for row in rows):
        raise Mismatch(f"{call} must return a list of dicts, one per filter option.",
                       expected=f"a list of {len(options)} dicts", got=describe(rows), hint=ROW_HINT)
    filters = [row.get("filters") for row in rows]
    if filters != list(options):
        raise Mismatch(
            f"{call} must return one row per filter option, in the order given.",
            expected=f"rows with filters {list(options)}", got=f"{len(rows)} row(s) with filters {filters}",
            hint="loop over filter_options and append one row per option. " + ROW_HINT,
        )
    return list(rows)


def field(row: dict[str, Any], key: str) -> Any:
    """One value of a row; a missing key is that check's failure (check_row_keys grades the key set)."""
    if key not in row:
        raise Mismatch(f"the row for filters={row.get('filters')} has no {key!r}.", expected=f"the keys {list(KEYS)}",
                       got=f"the keys {sorted(map(str, row))}", hint=ROW_HINT)
    return row[key]


# --- the checks --------------------------------------------------------------------------------------
@check(points=3, exercise=EXERCISE)
def check_one_row_per_option(experiment: Outcome[dict[str, Any]]) -> None:
    """filter_experiment((8, 16), ...) returns one row per option, in order, with its 'filters'"""
    rows_of(experiment.get())


@check(points=2, exercise=EXERCISE, depends=("check_one_row_per_option",))
def check_row_keys(experiment: Outcome[dict[str, Any]]) -> None:
    """each row has exactly the keys filters, params, seconds and test_accuracy"""
    for row in rows_of(experiment.get()):
        if sorted(map(str, row)) != sorted(KEYS):
            raise Mismatch(f"the row for filters={row.get('filters')} has the wrong keys.",
                           expected=f"exactly {list(KEYS)}", got=f"{sorted(map(str, row))}", hint=ROW_HINT)


def own_params(student: Any, f: int) -> tuple[int, str]:
    """The parameter count of the student's own build_cnn((f, f)); the closed form if that cannot be built."""
    try:
        model = student.model("models", "build_cnn", (f, f))
        return int(model.model.count_params()), f"your build_cnn(({f}, {f})) has"
    except AssertionError as exc:  # build_cnn is graded in its own exercise; here only the count matters
        closed = sum(row.params for row in expected_cnn((f, f)))
        reason = str(exc).splitlines()[0] if str(exc) else "it failed"
        return closed, f"your build_cnn(({f}, {f})) could not be rebuilt ({reason}); the lab's model has"


@check(points=3, exercise=EXERCISE, depends=("check_one_row_per_option",))
def check_params(student: Any, experiment: Outcome[dict[str, Any]]) -> None:
    """each row's params is the parameter count of build_cnn((f, f))"""
    for row in rows_of(experiment.get()):
        f, params = row["filters"], field(row, "params")
        expected, source = own_params(student, f)
        if params == expected and not isinstance(params, bool):
            continue
        hint = f"use model.count_params() of the model built with build_cnn(({f}, {f}))."
        if params == own_params(student, 32)[0] and f != 32:
            hint = f"that is the count of build_cnn() with its default filters; build build_cnn(({f}, {f})). " + hint
        raise Mismatch(
            f"the row for filters={f} reports the wrong params.",
            expected=f"{expected:,} ({source} {expected:,} parameters)",
            got=f"{params:,}" if isinstance(params, int) else describe(params),
            hint=hint,
        )


@check(points=2, exercise=EXERCISE, depends=("check_one_row_per_option",))
def check_seconds(experiment: Outcome[dict[str, Any]]) -> None:
    """each row's seconds is the positive wall-clock time of that model's training, in seconds"""
    outcome = experiment.get()
    rows = rows_of(outcome)
    total = min(float(outcome.get("seconds", np.inf)), outcome["judge_seconds"])
    values = [field(row, "seconds") for row in rows]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
        raise Mismatch("every row's seconds must be a positive number.", expected="floats > 0",
                       got=", ".join(describe(v) for v in values),
                       hint="start = time.perf_counter() before training; seconds = time.perf_counter() - start.")
    if sum(values) > total + 0.5:
        hint = "measure the elapsed time: time.perf_counter() - start, in seconds."
        if sum(values) > 100 * total:
            hint = "the values are far too large (milliseconds, or a clock reading instead of a difference); " + hint
        raise Mismatch(
            f"the rows' seconds add up to more than the whole {CALL} call took.",
            expected=f"a total of at most {total:.2f} s", got=f"{', '.join(f'{v:.4g}' for v in values)}", hint=hint,
        )


@check(points=2, exercise=EXERCISE, depends=("check_one_row_per_option",))
def check_test_accuracy(experiment: Outcome[dict[str, Any]]) -> None:
    """each row's test_accuracy is a fraction between 0 and 1"""
    outcome = experiment.get()
    inherited = [call.get("test_accuracy") for call in outcome.get("calls") or []]
    for row in rows_of(outcome):
        value = field(row, "test_accuracy")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
            continue
        if value in inherited:  # passed on unchanged from train_and_evaluate: graded in training, not here
            continue
        hint = 'use train_and_evaluate(...)["test_accuracy"], a fraction (0.9 means 90%).'
        if isinstance(value, (int, float)) and 1.0 < value <= 100.0:
            hint = "that looks like a percentage; " + hint
        raise Mismatch(f"the row for filters={row['filters']} has a wrong test_accuracy.",
                       expected="a float from 0.0 to 1.0", got=describe(value), hint=hint)


@check(points=2, exercise=EXERCISE, hidden=True, depends=("check_one_row_per_option",))
def check_trains_each_model(experiment: Outcome[dict[str, Any]], student: Any, fashion: Any) -> None:
    """filter_experiment trains one model per option, each for the given number of epochs"""
    outcome = experiment.get()
    if not outcome.get("fits") and _inherits_a_training_that_never_fits(outcome, student, fashion):
        return  # experiments.py called train_and_evaluate per option, which never trains: graded in training
    _trained_models_are_real(outcome)
    calls = outcome.get("calls") or []
    if calls:  # it uses train_and_evaluate: what it asked for counts, not what training.py made of it
        asked = [call.get("epochs") for call in calls]
        if asked == [EPOCHS] * len(OPTIONS):
            return
        raise Mismatch(
            f"{CALL} must train one model per option for epochs={EPOCHS}.",
            expected=f"{len(OPTIONS)} calls of train_and_evaluate(..., epochs={EPOCHS})",
            got=f"{len(calls)} call(s) with epochs "
            + ", ".join("left at its default" if a is None else str(a) for a in asked),
            hint="pass epochs on: train_and_evaluate(model, train, test, epochs=epochs).",
        )
    fits = outcome.get("fits") or []
    epochs = [fit.get("epochs") for fit in fits]
    if epochs != [EPOCHS] * len(OPTIONS):
        raise Mismatch(
            f"{CALL} must fit one model per option for {EPOCHS} epoch(s).",
            expected=f"{len(OPTIONS)} fits of {EPOCHS} epoch(s)",
            got=f"{len(fits)} fit(s) of {epochs} epoch(s)" if fits else "no call of model.fit",
            hint="pass epochs on to train_and_evaluate(model, train, test, epochs=epochs).",
        )


def _crossentropy(labels: np.ndarray, outputs: np.ndarray) -> float:
    """The judge's own loss where the fit's compile config cannot be used: cross-entropy of the outputs."""
    probabilities = np.clip(outputs, 1e-7, 1.0)
    return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels])))


def _compiled_loss(model: Any) -> Any:
    """The loss function the model was compiled with, or the judge's cross-entropy where there is none."""
    import keras

    loss = getattr(model, "loss", None)
    try:
        function = keras.losses.get(loss) if isinstance(loss, str) else loss
    except ValueError:
        function = None
    if not callable(function):
        return _crossentropy
    return lambda labels, outputs: float(np.mean(np.asarray(function(labels, outputs))))


def _losses(fit: dict[str, Any], data: Any, seed: int) -> tuple[float, float]:
    """The loss on `data` of a fit's model with the judge's initial weights and with its weights after fit.

    The weights before fit are the judge's own: the spy gave the model its config's draws under `seed` before
    its first fit, and the judge draws them again here from the same config (`drivers.initial_weights`). The
    weights after fit must have been trained from those: their projection on them keeps most of their size
    (a fit moves the lab's models by a few percent, a float16 last layer's by more, never that whole part),
    where a fresh initialisation, or anything not made from the judge's weights, has next to none of it.
    The loss is the one the model was compiled with (rebuilt here from its validated compile config), since
    that is what fit lowers whatever build_cnn made of the last layer (a missing softmax is a models.py bug,
    graded there); the judge's cross-entropy only where there is no usable compile config. The model runs
    eagerly: tracing Keras' evaluate would cost more than these two forward passes.
    """
    from grader.keras_compat.seeding import seed_keeping_caches
    from grader.models.rebuild import ModelRejected, compile_from, rebuild

    if fit.get("seed") != seed:
        raise ForgedRecord("a fit that did not start from the judge's initial weights")
    seed_keeping_caches(seed)
    # bounded before it is built (a Conv2D(1000) is refused), and drawing what drivers.initial_weights drew
    model = rebuild(architecture(fit.get("json")), INPUT_SHAPE)
    initial = model.get_weights()
    after = list(fit.get("weights") or [])
    model.set_weights(after)  # the shapes are the model's, or ValueError
    trained_from(initial, after)
    measure = _crossentropy
    if isinstance(fit.get("compile"), dict):
        try:
            measure = _compiled_loss(compile_from(model, fit["compile"]))
        except ModelRejected:
            pass
    images, labels = data
    losses = []
    for weights in (initial, after):
        model.set_weights(weights)
        outputs = [np.asarray(model(images[i:i + _BATCH], training=False)) for i in range(0, len(images), _BATCH)]
        losses.append(measure(labels, np.concatenate(outputs)))
    return losses[0], losses[1]


_BATCH = 64  # the judge's forward passes over a student's architecture, a few images at a time


def _inherits_a_training_that_never_fits(outcome: dict[str, Any], student: Any, fashion: Any) -> bool:
    """No fit happened, and the records say experiments.py called train_and_evaluate once per option. Those
    records are written where the submission runs, so the judge checks the excuse itself: it has the student's
    train_and_evaluate train a small model of its own and looks at the weights that come back. Only when they
    are the weights it sent (nothing was trained) is the missing fit training.py's, graded there."""
    from grader.suites.convolutions.reference import payload_of

    if len(outcome.get("calls") or []) != len(OPTIONS):
        return False
    import keras

    keras.utils.set_random_seed(EPOCHS)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    train, test = _data(fashion, 128, 64)
    try:
        probe = student.drive("train_and_evaluate", payload_of(model), train, test, 1, module="training",
                              function="train_and_evaluate")
    except AssertionError:  # train_and_evaluate fails outright: graded in training
        return True
    weights = probe.get("weights") if isinstance(probe, dict) else None
    sent = model.get_weights()
    if not isinstance(weights, list) or len(weights) != len(sent):
        return False
    return all(isinstance(w, np.ndarray) and w.shape == s.shape and np.array_equal(w, s)
               for w, s in zip(weights, sent, strict=True))


def _trained_models_are_real(outcome: dict[str, Any]) -> None:
    """The fits the spy saw, re-evaluated by the judge: records of fits that never happened do not count.

    Each fit comes back as its model's config and compile config, the judge's seed it started from and its
    weights after fit; the weights before are the judge's own (see _losses), and on the judge's own copy of
    the training images, the model's loss must have gone down. (Not
    an accuracy bar: with a compile_model bug such as sgd, one epoch on 512 images learns little, and
    that bug is charged in models.py, not here.)
    """
    from grader.models.rebuild import ModelRejected

    fits = [f for f in outcome.get("fits") or [] if isinstance(f, dict)]
    train = outcome.get("judge_train")
    found: list[str] = []
    for index, fit in enumerate(fits[: len(OPTIONS)]):
        try:
            before, after = _losses(fit, train, FIRST_SEED + index)
        except ForgedRecord as exc:
            found.append(f"not a fit of the judge's model ({exc})")
            continue
        except (ModelRejected, ValueError, TypeError, IndexError, KeyError):
            found.append("not usable")
            continue
        learned = bool(np.isfinite(after) and after < before)
        found.append(f"training loss {before:.4f} -> {after:.4f}" + ("" if learned else " (no learning)"))
    if len(found) < len(OPTIONS) or any(not text.startswith("training loss") or "no learning" in text
                                        for text in found):
        raise Mismatch(
            f"{CALL} must train one model per option; the judge could not confirm that by evaluating them.",
            expected=f"{len(OPTIONS)} models whose loss on the training images went down during fit",
            got="; ".join(found) or "no trained model",
            hint="compile and train each build_cnn((f, f)) model with train_and_evaluate.",
        )


@check(points=1, exercise=EXERCISE, hidden=True, depends=("check_one_row_per_option",))
def check_single_option_list(student: Any, fashion: Any) -> None:
    """filter_experiment([4], ...) with a single option given as a list returns one row"""
    outcome = run_experiment(student, fashion, [4], (256, 128))
    rows_of(outcome, [4], f"filter_experiment([4], train, test, epochs={EPOCHS})")
