"""Exercise training.py: train_and_evaluate fits the model it is given, evaluates it, and reports as a dict.

No double jeopardy: the model is the judge's own small compiled model and the data is prepared by the
judge. The trained weights stay in the sandbox, so the test metrics cannot be recomputed here after a
real training. Instead the main run uses a model compiled with SGD(learning_rate=0): fit runs its
epochs (callbacks and history as usual) but leaves the weights unchanged, so the judge evaluates the
very same model itself and the returned test_loss/test_accuracy must match that evaluation. A second
model compiled with SGD(learning_rate=0.1) really learns: it checks the epochs argument and that training happened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from grader.checks import Mismatch, check
from grader.datasets.fashion_mnist import prepare
from grader.suites.convolutions.feedback import Outcome, attempt, describe, require_keys
from grader.suites.convolutions.reference import CLASSES, INPUT, payload_of

EXERCISE = "training"
KEYS = ("history", "epochs_run", "test_loss", "test_accuracy")
TYPES: dict[str, tuple[type, ...]] = {"history": (dict,), "epochs_run": (int,), "test_loss": (float,),
                                      "test_accuracy": (float,)}
TRAIN_IMAGES, TEST_IMAGES, SMALL = 512, 256, 128
EPOCHS = 2
SEED = 4321
RETURN_HINT = (
    'return {"history": history.history, "epochs_run": len(history.history["loss"]), '
    '"test_loss": float(loss), "test_accuracy": float(accuracy)}.'
)
Data = tuple[np.ndarray, np.ndarray]


# --- the judge's model and data ----------------------------------------------------------------------
def judge_model(frozen: bool) -> Any:
    """Flatten -> Dense(16, relu) -> Dense(10, softmax) compiled with SGD; `frozen`: learning rate 0 (fit changes
    nothing), else 0.1, which learns in a few epochs on 512 images. SGD, not Adam: it has no slot variables, so
    tracing fit, the dominant cost of these short runs, is cheaper."""
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([
        keras.Input(INPUT),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ])
    optimizer = keras.optimizers.SGD(learning_rate=0.0 if frozen else 0.1)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _split(images: np.ndarray, labels: np.ndarray, count: int) -> Data:
    return prepare(images[:count]), np.asarray(labels[:count], dtype=np.int64)


@pytest.fixture(scope="module")
def training_data(fashion: Any) -> Data:
    return _split(fashion.train_images, fashion.train_labels, TRAIN_IMAGES)


@pytest.fixture(scope="module")
def held_out_data(fashion: Any) -> Data:
    return _split(fashion.test_images, fashion.test_labels, TEST_IMAGES)


def _drive(student: Any, model: Any, train: Data, test: Data, epochs: int) -> dict[str, Any]:
    outcome = student.drive("train_and_evaluate", payload_of(model), train, test, epochs,
                            module="training", function="train_and_evaluate")
    if not isinstance(outcome, dict) or "result" not in outcome:
        raise Mismatch("the training driver returned something unexpected.", got=describe(outcome))
    return outcome


@pytest.fixture(scope="module")
def frozen_run(student: Any, training_data: Data, held_out_data: Data) -> Outcome[dict[str, Any]]:
    """train_and_evaluate(frozen model, 512 images, 256 images, epochs=2, callbacks=[spy]), run once."""
    return attempt(lambda: _drive(student, judge_model(frozen=True), training_data, held_out_data, EPOCHS))


@pytest.fixture(scope="module")
def judge_scores(training_data: Data, held_out_data: Data) -> dict[str, tuple[float, float]]:
    """(loss, accuracy) of the frozen model, evaluated here on the test and on the training data."""
    model = judge_model(frozen=True)
    scores = {}
    for name, (x, y) in (("test", held_out_data), ("train", training_data)):
        values = model.evaluate(x, y, verbose=0, return_dict=True)
        scores[name] = (float(values["loss"]), float(values["accuracy"]))
    return scores


# --- validating what came back -----------------------------------------------------------------------
def result_of(outcome: dict[str, Any], epochs: int, needed: Sequence[str] = KEYS) -> dict[str, Any]:
    """The returned dict with the `needed` keys and their value types checked; all keys: exactly those."""
    call = f"train_and_evaluate(model, train, test, epochs={epochs}, callbacks=[...])"
    result = outcome["result"]
    if tuple(needed) == KEYS:
        require_keys(result, KEYS, call, hint=RETURN_HINT)
    else:
        require_keys(result, needed, call, hint=RETURN_HINT, extra_ok=True)
    for key in needed:
        value, types = result[key], TYPES[key]
        if not isinstance(value, types) or isinstance(value, bool):
            hint = RETURN_HINT
            if key == "history" and "History" in describe(value):
                hint = "use the History object's .history dict: `history = model.fit(...)`, then history.history."
            elif key != "history" and "Tensor" in describe(value):
                hint = f"convert with float(...) / int(...) so that {key!r} is a plain Python number."
            elif key in ("test_loss", "test_accuracy") and isinstance(value, (list, tuple)):
                hint = "model.evaluate returns [loss, accuracy]: take the two values apart."
            raise Mismatch(f"{call} returned a wrong type for {key!r}.",
                           expected=" or ".join(t.__name__ for t in types), got=describe(value), hint=hint)
    return result  # type: ignore[no-any-return]


def history_of(result: dict[str, Any], epochs: int) -> dict[str, list[float]]:
    history = result["history"]
    problems = []
    for name in ("loss", "accuracy"):
        values = history.get(name)
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, (int, float)) for v in values):
            problems.append(f"{name!r}: {describe(values)}")
        elif len(values) != epochs:
            problems.append(f"{name!r}: {len(values)} value(s)")
    if problems:
        raise Mismatch(
            f"history must hold one number per epoch for 'loss' and 'accuracy' ({epochs} epochs ran).",
            expected=f"lists of {epochs} numbers under 'loss' and 'accuracy'", got="; ".join(problems),
            hint="return fit's History.history, the dict {metric name: [value per epoch]}.",
        )
    return history  # type: ignore[no-any-return]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)


# --- the checks --------------------------------------------------------------------------------------
@check(points=3, exercise=EXERCISE)
def check_returns_result_dict(frozen_run: Outcome[dict[str, Any]]) -> None:
    """train_and_evaluate returns a dict with history (dict), epochs_run (int), test_loss and test_accuracy (floats)"""
    result_of(frozen_run.get(), EPOCHS)


@check(points=2, exercise=EXERCISE)
def check_history(frozen_run: Outcome[dict[str, Any]]) -> None:
    """history holds the per-epoch 'loss' and 'accuracy' of the fit"""
    history_of(result_of(frozen_run.get(), EPOCHS, ("history",)), EPOCHS)


@check(points=2, exercise=EXERCISE)
def check_epochs_run(frozen_run: Outcome[dict[str, Any]]) -> None:
    """epochs_run is 2 after a 2-epoch fit that no callback stops"""
    result = result_of(frozen_run.get(), EPOCHS, ("epochs_run",))
    if result["epochs_run"] != EPOCHS:
        raise Mismatch(f"train_and_evaluate(..., epochs={EPOCHS}) reported the wrong epochs_run.",
                       expected=str(EPOCHS), got=repr(result["epochs_run"]),
                       hint='count the epochs that ran: len(history.history["loss"]).')


@check(points=2, exercise=EXERCISE)
def check_callbacks_reach_fit(frozen_run: Outcome[dict[str, Any]], student: Any, fashion: Any) -> None:
    """the callbacks given to train_and_evaluate are passed on to fit"""
    outcome = frozen_run.get()
    seen = outcome.get("spy_epochs")
    hint = "pass them on: model.fit(images, labels, epochs=epochs, callbacks=list(callbacks))."
    if seen != EPOCHS:
        raise Mismatch(
            f"a callback passed to train_and_evaluate(..., epochs={EPOCHS}, callbacks=[spy]) saw the wrong "
            "number of epochs.",
            expected=f"{EPOCHS} epochs", got=f"{seen} epoch(s)", hint=hint,
        )
    # The spy's count lives inside the sandbox; what fit itself returned is the evidence the judge trusts:
    # a callback that stops training after one epoch must leave a history of one epoch.
    stopped = _stopping_run(student, fashion, 4, 1)
    history = result_of(stopped, 4, ("history",))["history"]
    losses = history.get("loss") if isinstance(history, dict) else None
    if not isinstance(losses, list) or len(losses) != 1:
        raise Mismatch(
            "train_and_evaluate(..., epochs=4, callbacks=(stop_after_1_epoch,)) did not stop after one epoch.",
            expected="a history of 1 epoch", got=f"a history of {len(losses) if isinstance(losses, list) else '?'}",
            hint=hint,
        )


@check(points=3, exercise=EXERCISE)
def check_test_metrics(frozen_run: Outcome[dict[str, Any]], judge_scores: dict[str, tuple[float, float]]) -> None:
    """test_loss and test_accuracy are the model's evaluation on the test images"""
    result = result_of(frozen_run.get(), EPOCHS, ("test_loss", "test_accuracy"))
    got = (result["test_loss"], result["test_accuracy"])
    expected = judge_scores["test"]
    if close(got[0], expected[0]) and close(got[1], expected[1]):
        return
    hint = "call model.evaluate(test_images, test_labels) after fit and return its two values."
    history: dict[str, Any] = result["history"] if isinstance(result.get("history"), dict) else {}
    last = tuple((history.get(k) or [math.nan])[-1] for k in ("loss", "accuracy"))
    if close(got[0], expected[1]) and close(got[1], expected[0]):
        hint = "loss and accuracy are swapped: model.evaluate returns [loss, accuracy]."
    elif (all(isinstance(v, float) for v in last) and close(got[0], last[0]) and close(got[1], last[1])) or (
        math.isclose(got[0], judge_scores["train"][0], rel_tol=1e-3) and close(got[1], judge_scores["train"][1])
    ):
        hint = ("those are metrics on the training data (the last epoch of the history, or an evaluation of the "
                "training images); evaluate on the test data. " + hint)
    raise Mismatch(
        "test_loss/test_accuracy are not the evaluation of the trained model on the test data.",
        expected=f"test_loss {expected[0]:.5f}, test_accuracy {expected[1]:.5f}",
        got=f"test_loss {got[0]:.5f}, test_accuracy {got[1]:.5f}",
        details="(the judge's model was compiled with learning rate 0, so fit leaves it unchanged and the judge "
        "can evaluate it too. Do not compile the model again inside train_and_evaluate.)",
        hint=hint,
    )


@pytest.fixture(scope="module")
def learning_runs(student: Any, training_data: Data, held_out_data: Data) -> dict[int, Outcome[dict[str, Any]]]:
    """train_and_evaluate(learning model, ..., epochs=k) per k, each run at most once (a lazy cache)."""

    class Runs(dict[int, Outcome[dict[str, Any]]]):
        def __missing__(self, epochs: int) -> Outcome[dict[str, Any]]:
            model = judge_model(frozen=False)
            self[epochs] = attempt(lambda: _drive(student, model, training_data, held_out_data, epochs))
            return self[epochs]

    return Runs()


@check(points=1, exercise=EXERCISE)
@pytest.mark.parametrize("epochs", [1, 3], ids=["1 epoch", "3 epochs"])
def check_epochs_argument(learning_runs: dict[int, Outcome[dict[str, Any]]], epochs: int) -> None:
    """train_and_evaluate trains for the number of epochs it is given"""
    outcome = learning_runs[epochs].get()
    result = result_of(outcome, epochs, ())
    history = result.get("history")
    losses = history.get("loss") if isinstance(history, dict) else None
    counts = {"len(history['loss'])": len(losses) if isinstance(losses, (list, tuple)) else None,
              "epochs a callback saw": outcome.get("spy_epochs")}
    if epochs not in counts.values():  # either witness of the epochs fit ran will do (each has its own check)
        raise Mismatch(
            f"train_and_evaluate(..., epochs={epochs}) did not train for {epochs} epoch(s).",
            expected=f"{epochs} everywhere", got=", ".join(f"{k} = {v}" for k, v in counts.items()),
            hint="pass the argument on: model.fit(..., epochs=epochs) (not a fixed number).",
        )


@check(points=1, exercise=EXERCISE, hidden=True)
def check_learns(learning_runs: dict[int, Outcome[dict[str, Any]]], training_data: Data, held_out_data: Data) -> None:
    """after 3 epochs the model given to train_and_evaluate has learned: loss falls, test accuracy beats chance"""
    outcome = learning_runs[3].get()
    result = result_of(outcome, 3, ("history", "test_accuracy"))
    losses = history_of(result, 3)["loss"]
    accuracy = result["test_accuracy"]
    if not (losses[-1] < losses[0] and 0.3 < accuracy <= 1.0):
        raise Mismatch(
            "the judge's model did not learn in train_and_evaluate(model, train, test, epochs=3).",
            expected="a falling training loss and a test accuracy well above chance (0.1)",
            got=f"loss per epoch {[round(v, 4) for v in losses]}, test_accuracy {accuracy:.4f}",
            hint="fit the model you are given, on the training images and labels, with the given epochs.",
        )
    _judge_sees_learning(outcome.get("weights"), training_data, held_out_data)


def _judge_sees_learning(weights: Any, train: Data, test: Data) -> None:
    """The judge's own evidence: the model's weights after the call, evaluated here against the weights it sent.

    What train_and_evaluate reports (history, test metrics) is written by the submission's code; the weights the
    model holds afterwards are what fit changed. On the judge's data they must give a lower training loss than
    the weights the judge sent, and a test accuracy well above chance."""
    model = judge_model(frozen=False)  # seeded: the very weights the judge sent
    shapes = [tuple(w.shape) for w in model.get_weights()]
    if not (isinstance(weights, list) and [getattr(w, "shape", None) for w in weights] == shapes
            and all(isinstance(w, np.ndarray) and w.dtype.kind == "f" and np.all(np.isfinite(w)) for w in weights)):
        raise Mismatch("the judge could not read the weights of the model after train_and_evaluate(..., epochs=3).",
                       expected=f"arrays of shapes {shapes}", got=describe(weights),
                       hint="train the model you are given in place: model.fit(...); do not replace its weights.")
    before = float(model.evaluate(*train, verbose=0, return_dict=True)["loss"])
    model.set_weights(weights)
    after = model.evaluate(*train, verbose=0, return_dict=True)["loss"]
    accuracy = float(model.evaluate(*test, verbose=0, return_dict=True)["accuracy"])
    if not (float(after) < before and accuracy > 0.3):
        raise Mismatch(
            "the model given to train_and_evaluate(model, train, test, epochs=3) was not trained: the judge "
            "evaluated its weights after the call.",
            expected="a training loss below the untrained model's and a test accuracy well above chance (0.1)",
            got=f"training loss {before:.4f} before the call, {float(after):.4f} after; test accuracy {accuracy:.4f}",
            hint="fit the model you are given, on the training images and labels, with the given epochs.",
        )


def _stopping_run(student: Any, fashion: Any, epochs: int | None, stop_after: int | None) -> dict[str, Any]:
    train = _split(fashion.train_images, fashion.train_labels, SMALL)
    test = _split(fashion.test_images, fashion.test_labels, SMALL)
    # The frozen model: these runs count epochs, they need no learning.
    outcome = student.drive("train_and_evaluate_stopping", payload_of(judge_model(frozen=True)), train, test,
                            epochs, stop_after, module="training", function="train_and_evaluate")
    if not isinstance(outcome, dict) or "result" not in outcome:
        raise Mismatch("the training driver returned something unexpected.", got=describe(outcome))
    return outcome


def epochs_that_ran(outcome: dict[str, Any], result: dict[str, Any]) -> int | None:
    """How many epochs fit ran: as the judge's callback counted them, else (callbacks lost) by the history."""
    if outcome.get("spy_epochs"):
        return int(outcome["spy_epochs"])
    history = result.get("history")
    losses = history.get("loss") if isinstance(history, dict) else None
    return len(losses) if isinstance(losses, (list, tuple)) else None


@check(points=2, exercise=EXERCISE, hidden=True)
def check_epochs_run_when_stopped(student: Any, fashion: Any) -> None:
    """epochs_run counts the epochs that really ran when a callback stops training early"""
    outcome = _stopping_run(student, fashion, 5, 2)
    result = result_of(outcome, 5, ("epochs_run",))
    ran = epochs_that_ran(outcome, result)
    if result["epochs_run"] != ran:
        raise Mismatch(
            "train_and_evaluate(..., epochs=5, callbacks=(stop_after_2_epochs,)) reported the wrong epochs_run.",
            expected=f"epochs_run {ran} (the epochs fit ran)" if ran is not None else "the epochs fit ran",
            got=f"epochs_run {result['epochs_run']!r}",
            hint='a callback may stop fit early: count len(history.history["loss"]) instead of returning epochs.',
        )


@check(points=1, exercise=EXERCISE, hidden=True)
def check_default_epochs(student: Any, fashion: Any) -> None:
    """train_and_evaluate trains for 5 epochs when epochs is not given"""
    outcome = _stopping_run(student, fashion, None, None)
    result = result_of(outcome, 5, ("epochs_run",))
    ran = epochs_that_ran(outcome, result)
    if ran != 5:
        raise Mismatch(
            "train_and_evaluate(model, train, test, callbacks=(spy,)) did not train for the default 5 epochs.",
            expected="5 epochs", got=f"{ran} epoch(s)" if ran is not None else "no way to tell (no history)",
            hint="give the parameter its default: def train_and_evaluate(model, train, test, epochs=5, callbacks=()).",
        )
