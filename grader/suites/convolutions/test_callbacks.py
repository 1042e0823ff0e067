"""Exercise callbacks.py: StopOnThreshold stops training at the first epoch whose metric crosses the threshold.

The callback runs inside the sandbox under the judge's drivers: `callback_logs` feeds it epoch logs as
Keras' fit loop would, `callback_fit` attaches it to a real short fit. Where it should stop is worked
out here from the logs, never sent in.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.checks import Mismatch, check
from grader.datasets.fashion_mnist import prepare
from grader.suites.convolutions.feedback import describe, on_input, run_property
from grader.suites.convolutions.reference import CLASSES, INPUT, payload_of

EXERCISE = "callbacks"
FIT_IMAGES = 512
FIT_EPOCHS = 8
RULE = (
    "a metric whose name ends with 'loss' stops when value < threshold; any other metric stops when "
    "value >= threshold. Then print a message and set self.model.stop_training = True."
)
Logs = list[dict[str, float]]


# --- the judge's expectation -------------------------------------------------------------------------
def is_loss(metric: str) -> bool:
    return metric.endswith("loss")


def crosses(metric: str, value: float, threshold: float) -> bool:
    return value < threshold if is_loss(metric) else value >= threshold


def expected_stop(metric: str, threshold: float, epochs: Sequence[dict[str, float]]) -> int | None:
    """Index of the first epoch whose logged metric crosses the threshold; None if none does."""
    for index, logs in enumerate(epochs):
        if metric in logs and crosses(metric, logs[metric], threshold):
            return index
    return None


# --- running the student's callback ------------------------------------------------------------------
def _arguments(kwargs: dict[str, Any] | None) -> str:
    if not kwargs:
        return "StopOnThreshold()"
    return "StopOnThreshold(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"


def logs_text(epochs: Sequence[dict[str, float]]) -> str:
    lines = []
    for index, logs in enumerate(epochs, start=1):
        values = ", ".join(f"{k}={v:g}" for k, v in logs.items()) or "(empty logs)"
        lines.append(f"  epoch {index}: {values}")
    return "\n".join(lines)


def _when(stop: int | None) -> str:
    return "never stops" if stop is None else f"stops at the end of epoch {stop + 1}"


def drive_logs(student: Any, kwargs: dict[str, Any] | None, epochs: Logs) -> dict[str, Any]:
    """Feed `epochs` to the student's callback; a failure names the logs that caused it."""
    where = (f"{_arguments(kwargs)} was given these epoch logs:\n{logs_text(epochs)}" if epochs
             else f"(creating {_arguments(kwargs)} and starting training, before any epoch)")
    with on_input(lambda: where):
        outcome = student.drive("callback_logs", kwargs, epochs, module="callbacks", function="StopOnThreshold")
    if not isinstance(outcome, dict) or "stopped_at" not in outcome:
        raise Mismatch("the callback driver returned something unexpected.", got=describe(outcome))
    return outcome


def stop_problem(kwargs: dict[str, Any] | None, epochs: Logs, stopped_at: int | None) -> Mismatch | None:
    arguments = kwargs or {}
    metric, threshold = arguments.get("metric", "loss"), arguments.get("threshold", 0.01)
    expected = expected_stop(metric, threshold, epochs)
    if stopped_at == expected:
        return None
    hint = RULE
    relation = "<" if is_loss(metric) else ">="
    if expected is not None and stopped_at is None:
        hint = f"epoch {expected + 1} has {metric} {epochs[expected][metric]:g} {relation} {threshold:g}. " + RULE
    elif stopped_at is not None and expected is not None and stopped_at == expected + 1:
        hint = "one epoch late: decide on the logs of the epoch that just ended. " + RULE
    elif stopped_at is not None and metric in epochs[stopped_at]:
        value = epochs[stopped_at][metric]
        if value == threshold:
            hint = (f"{metric} equals the threshold at epoch {stopped_at + 1}; "
                    + ("a loss must be strictly below it. " if is_loss(metric) else "") + RULE)
        else:
            hint = f"at epoch {stopped_at + 1} {metric} is {value:g}, not {relation} {threshold:g}. " + RULE
    elif stopped_at is not None:
        hint = f"epoch {stopped_at + 1} has no {metric!r} in its logs, so nothing should happen. " + RULE
    return Mismatch(
        f"{_arguments(kwargs)} stopped at the wrong epoch.",
        expected=_when(expected),
        got="never stopped" if stopped_at is None else f"stopped at the end of epoch {stopped_at + 1}",
        details=f"the epoch logs:\n{logs_text(epochs)}",
        hint=hint,
    )


def check_stops(student: Any, kwargs: dict[str, Any] | None, epochs: Logs) -> dict[str, Any]:
    outcome = drive_logs(student, kwargs, epochs)
    problem = stop_problem(kwargs, epochs, outcome["stopped_at"])
    if problem is not None:
        raise problem
    return outcome


# --- the checks --------------------------------------------------------------------------------------
@check(points=1, exercise=EXERCISE)
def check_is_keras_callback(student: Any) -> None:
    """StopOnThreshold(metric='loss', threshold=0.5) is a keras.callbacks.Callback"""
    try:
        drive_logs(student, {"metric": "loss", "threshold": 0.5}, [])
    except AssertionError as exc:
        raise Mismatch(
            str(exc),
            hint="define `class StopOnThreshold(keras.callbacks.Callback):` with "
            '`def __init__(self, metric="loss", threshold=0.01):` that calls super().__init__().',
        ) from None


@st.composite
def log_sequences(draw: st.DrawFn, metric: str) -> tuple[float, Logs]:
    """A threshold and 1-8 epochs of logs; the watched metric is sometimes missing, the other one varies."""
    scale = 200 if is_loss(metric) else 100  # loss in [0, 2], accuracy in [0, 1], two decimals
    value = st.integers(0, scale).map(lambda v: v / 100)
    other = "accuracy" if is_loss(metric) else "loss"
    epoch = st.fixed_dictionaries({}, optional={metric: value, other: value})
    epochs: Logs = draw(st.lists(epoch, min_size=1, max_size=8))
    seen = [logs[metric] for logs in epochs if metric in logs]
    threshold = draw(st.sampled_from(seen) | value if seen else value)  # thresholds equal to a value, too
    return threshold, epochs


@check(points=3, exercise=EXERCISE, depends=("check_is_keras_callback",))
@pytest.mark.parametrize("metric", ["loss", "accuracy"])
def check_stops_at_first_crossing(student: Any, metric: str) -> None:
    """StopOnThreshold stops at the first epoch that crosses the threshold, never before, on random logs"""

    @settings(max_examples=20, report_multiple_bugs=False)
    @given(case=log_sequences(metric))
    def stops_at_first_crossing(case: tuple[float, Logs]) -> None:
        threshold, epochs = case
        check_stops(student, {"metric": metric, "threshold": threshold}, epochs)

    run_property(stops_at_first_crossing)


@check(points=2, exercise=EXERCISE, depends=("check_is_keras_callback",))
def check_threshold_boundary(student: Any) -> None:
    """StopOnThreshold keeps training on a loss equal to the threshold but stops on an accuracy equal to it"""
    check_stops(student, {"metric": "loss", "threshold": 0.25}, [{"loss": 0.5}, {"loss": 0.25}, {"loss": 0.125}])
    check_stops(student, {"metric": "accuracy", "threshold": 0.75},
                [{"accuracy": 0.5}, {"accuracy": 0.75}, {"accuracy": 0.875}])


@check(points=2, exercise=EXERCISE, depends=("check_is_keras_callback",))
def check_defaults(student: Any) -> None:
    """StopOnThreshold() watches 'loss' with threshold 0.01 by default"""
    losses = [0.5, 0.05, 0.012, 0.0099, 0.001]
    check_stops(student, None, [{"loss": loss, "accuracy": 1.0} for loss in losses])


@check(points=1, exercise=EXERCISE, depends=("check_is_keras_callback",))
def check_missing_metric(student: Any) -> None:
    """StopOnThreshold ignores epochs whose logs lack its metric (no crash, no stop)"""
    epochs: Logs = [{"loss": 0.001}, {}, {"loss": 0.002}, {"accuracy": 0.9, "loss": 0.001}]
    check_stops(student, {"metric": "accuracy", "threshold": 0.8}, epochs)


@check(points=1, exercise=EXERCISE, depends=("check_is_keras_callback",))
def check_prints_message(student: Any) -> None:
    """StopOnThreshold prints a message when it stops training"""
    kwargs = {"metric": "loss", "threshold": 0.5}
    outcome = check_stops(student, kwargs, [{"loss": 0.9}, {"loss": 0.4}])
    printed = outcome.get("printed") or []
    if len(printed) < 2 or not str(printed[1]).strip():
        raise Mismatch(
            f"{_arguments(kwargs)} stopped training at epoch 2 without printing anything.",
            expected="a message such as 'Reached loss 0.4 < 0.5 at epoch 2: stopping training.'",
            got="no output",
            hint="print(...) a line saying why training stops before setting self.model.stop_training.",
        )


def _fit_data(fashion: Any) -> tuple[np.ndarray, np.ndarray]:
    return prepare(fashion.train_images[:FIT_IMAGES]), np.asarray(fashion.train_labels[:FIT_IMAGES], np.int64)


@functools.cache
def _fit_model() -> Any:
    """The judge's small model for the real fits: Flatten -> Dense(32, relu) -> Dense(10, softmax), Adam.
    Sent as a payload, so the sandbox builds it once and lends it again (weights reset) to the next fit."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(INPUT), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(CLASSES, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return payload_of(model)


def real_fit(student: Any, fashion: Any, metric: str, threshold: float) -> None:
    """Attach StopOnThreshold(metric, threshold) to a short real fit; it must end at the first crossing."""
    kwargs = {"metric": metric, "threshold": threshold}
    x, y = _fit_data(fashion)
    outcome = student.drive("callback_fit", kwargs, _fit_model(), x, y, FIT_EPOCHS, module="callbacks",
                            function="StopOnThreshold")
    history = outcome["history"] if isinstance(outcome, dict) else None
    values = history.get(metric) if isinstance(history, dict) else None
    if not values:
        raise Mismatch("the fit driver returned no history.", got=describe(outcome))
    epochs = [{metric: float(v)} for v in values]
    expected, ran = expected_stop(metric, threshold, epochs), len(values)
    logged = f"the {metric} Keras logged per epoch (the fit ran {ran} of at most {FIT_EPOCHS} epochs):\n"
    where = f"In a real fit (up to {FIT_EPOCHS} epochs on {FIT_IMAGES} images), {_arguments(kwargs)}"
    if ran < FIT_EPOCHS and expected is None:
        raise Mismatch(
            f"{where} stopped training before {metric} crossed {threshold:g}.",
            expected=f"training to go on while {metric} {'>=' if is_loss(metric) else '<'} {threshold:g}",
            got=f"stopped at the end of epoch {ran} with {metric} {values[-1]:.4g}",
            details=logged + logs_text(epochs), hint=RULE,
        )
    if expected is not None and expected != ran - 1:
        raise Mismatch(
            f"{where} did not stop at the first epoch that crossed the threshold.",
            expected=_when(expected),
            got=f"stopped at the end of epoch {ran}" if ran < FIT_EPOCHS else "training ran all epochs",
            details=logged + logs_text(epochs), hint=RULE,
        )


@check(points=3, exercise=EXERCISE, depends=("check_is_keras_callback",))
def check_real_fit_accuracy(student: Any, fashion: Any) -> None:
    """In a real fit, StopOnThreshold('accuracy', 0.7) ends training at the first epoch reaching 0.7"""
    real_fit(student, fashion, "accuracy", 0.7)


@check(points=1, exercise=EXERCISE, hidden=True, depends=("check_is_keras_callback",))
def check_real_fit_loss(student: Any, fashion: Any) -> None:
    """In a real fit, StopOnThreshold('loss', 1.0) ends training at the first epoch with loss below 1.0"""
    real_fit(student, fashion, "loss", 1.0)


@check(points=2, exercise=EXERCISE, hidden=True, depends=("check_is_keras_callback",))
@pytest.mark.parametrize("metric, threshold", [("val_loss", 0.3), ("val_accuracy", 0.8)], ids=["val_loss",
                                                                                               "val_accuracy"])
def check_validation_metrics(student: Any, metric: str, threshold: float) -> None:
    """StopOnThreshold watches validation metrics by name (val_loss is a loss, val_accuracy is not)"""
    # (val_loss, loss, val_accuracy, accuracy): the training metrics cross earlier than the validation ones
    rows = [(0.9, 0.1, 0.6, 0.5), (0.6, 0.05, 0.7, 0.85), (0.35, 0.01, 0.8, 0.9), (0.2, 0.005, 0.85, 0.95)]
    epochs = [{"loss": lo, "val_loss": vl, "accuracy": ac, "val_accuracy": va} for vl, lo, va, ac in rows]
    check_stops(student, {"metric": metric, "threshold": threshold}, epochs)
