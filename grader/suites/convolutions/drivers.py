"""Judge-written helpers that run INSIDE the sandbox, next to the student's code.

They exist for what cannot cross the protocol as data: a student's callback must be driven by
Keras-like calls, a spy callback must reach the student's `fit`, a PNG must be read back from the
sandbox's disk. Each driver is `name(load, *args)` where `load(module)` imports a student module.
Their results are still untrusted data: the judge never sends an expected answer in here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from grader.keras_compat.seeding import seed_keeping_caches

Load = Callable[[str], Any]

# The drivers whose arguments are only ever the judge's own (its models, Fashion-MNIST slices and options, never
# a value a submission returned), and which run real fits: a batch worker sends one grading's requests to them
# again, ahead, to a second sandbox of the next submission (grader.judge.prefetch). A driver given anything a submission
# returned must stay out of this list: the request would carry one student's answer into another's sandbox.
AHEAD = ("train_and_evaluate", "train_and_evaluate_stopping", "filter_experiment_spy")


def _tiny_model() -> Any:
    """The model a driven callback is attached to, with stop_training cleared. One per sandbox process: the
    callback suite drives ~50 callbacks, and building a Keras model costs ~8 ms."""
    model = _built_tiny_model()
    model.stop_training = False
    return model


@functools.cache
def _built_tiny_model() -> Any:
    import keras

    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


def _make_callback(load: Load, kwargs: dict[str, Any] | None) -> Any:
    import keras

    cls = load("callbacks").StopOnThreshold
    callback = cls(**(kwargs or {}))
    if not isinstance(callback, keras.callbacks.Callback):
        raise TypeError(f"StopOnThreshold(...) is a {type(callback).__name__}, not a keras.callbacks.Callback")
    return callback


def callback_logs(load: Load, kwargs: dict[str, Any] | None, epochs: list[dict[str, float]]) -> dict[str, Any]:
    """Feed synthetic epoch logs to StopOnThreshold(**kwargs) as Keras' fit loop would."""
    callback = _make_callback(load, kwargs)
    model = _tiny_model()
    callback.set_model(model)
    printed: list[str] = []
    stopped_at = None
    callback.on_train_begin({})
    for epoch, logs in enumerate(epochs):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            callback.on_epoch_end(epoch, dict(logs))
        printed.append(buffer.getvalue()[:2000])
        if bool(getattr(model, "stop_training", False)):
            stopped_at = epoch
            break
    return {"stopped_at": stopped_at, "printed": printed}


def callback_fit(
    load: Load, kwargs: dict[str, Any] | None, model: Any, x: np.ndarray, y: np.ndarray, epochs: int
) -> dict[str, Any]:
    """A real short fit of the judge's small compiled model with the student's callback attached."""
    callback = _make_callback(load, kwargs)
    seed_keeping_caches(0)  # the same batches whether the model was just built or lent again
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[callback])
    return {
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "printed": buffer.getvalue()[-4000:],
    }


def train_and_evaluate(load: Load, model: Any, train: Any, test: Any, epochs: int) -> dict[str, Any]:
    """Call the student's train_and_evaluate with the judge's model and a spy callback."""
    import keras

    class Spy(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epochs_seen = 0
            self.fit_started = False

        def on_train_begin(self, logs: Any = None) -> None:
            self.fit_started = True

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.epochs_seen += 1

    spy = Spy()
    result = load("training").train_and_evaluate(model, tuple(train), tuple(test), epochs=epochs, callbacks=[spy])
    # The model's weights after the call go back as arrays: the judge, which knows the weights it sent, evaluates
    # them itself, so a function that never trains cannot pass for one that does by what it reports.
    weights = [np.asarray(w) for w in model.get_weights()]
    return {"result": result, "spy_epochs": spy.epochs_seen, "spy_fit_started": spy.fit_started, "weights": weights}


def plot_activations(load: Load, model: Any, images: np.ndarray, channel: int) -> dict[str, Any]:
    """Have the student's plot_activations write a PNG in the sandbox, and bring its bytes back."""
    os.makedirs("plots", exist_ok=True)
    target = os.path.abspath(os.path.join("plots", "activations.png"))
    returned = load("visualize").plot_activations(model, images, target, channel=channel)
    path = os.fspath(returned) if isinstance(returned, (str, os.PathLike)) else None
    exists = os.path.isfile(target)
    data = b""
    if exists and os.path.getsize(target) <= 20 * 1024 * 1024:
        with open(target, "rb") as handle:
            data = handle.read()
    return {
        "returned": path,
        "returned_type": type(returned).__name__,
        "target": target,
        "exists": exists,
        "png": np.frombuffer(data, dtype=np.uint8).copy(),
    }


def compiled(load: Load, builder: str, args: list[Any]) -> Any:
    """models.compile_model(models.<builder>(*args)): the student's own model as the student compiles it."""
    models = load("models")
    return models.compile_model(getattr(models, builder)(*args))


def train_and_evaluate_stopping(
    load: Load, model: Any, train: Any, test: Any, epochs: int | None, stop_after: int | None
) -> dict[str, Any]:
    """Call train_and_evaluate with a judge callback, passed in a tuple, that stops fit after `stop_after` epochs.

    `epochs=None` leaves the argument out, so the student's default applies; `stop_after=None` never stops.
    """
    import keras

    class StopAfter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epochs_seen = 0

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.epochs_seen += 1
            if stop_after is not None and self.epochs_seen >= stop_after:
                self.model.stop_training = True

    stopper = StopAfter()
    options: dict[str, Any] = {} if epochs is None else {"epochs": epochs}
    result = load("training").train_and_evaluate(model, tuple(train), tuple(test), callbacks=(stopper,), **options)
    return {"result": result, "spy_epochs": stopper.epochs_seen}


def initial_weights(json_config: str, seed: int) -> list[np.ndarray]:
    """The initial weights the judge gives a model: those its own config's initialisers draw under `seed`.

    The judge draws the same ones from the same config (grader.models.rebuild under the same seed), so it knows
    a fit's weights before fit without taking them from a record written where the submission runs."""
    from grader.keras_compat import sequential

    config = architecture(json_config)
    seed_keeping_caches(seed)
    return [np.asarray(w) for w in sequential.from_json(config).get_weights()]


def architecture(json_config: Any) -> str:
    """A model's JSON config without the compile config Keras embeds in it: the architecture alone, whose
    initialisers `initial_weights` draws here and the judge draws again (test_experiments), where the compile
    config, sent apart, only picks the loss; so a metric the judge refuses to compile (a models.py matter, graded
    there) does not make a fit unusable."""
    import json

    try:
        data = json.loads(str(json_config))
    except ValueError:
        return str(json_config)  # rebuild() says what is wrong with it
    if isinstance(data, dict):
        data.pop("compile_config", None)
    return json.dumps(data)


def _set_initial_weights(model: Any, seed: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Give `model` the judge's initial weights for `seed` before its first fit; False where that cannot be done
    (a model Keras cannot rebuild from its config, or one without an input shape fed a dataset)."""
    try:
        if not model.built:
            data = args[0] if args else kwargs.get("x")
            shape = getattr(data, "shape", None)
            if shape is None or len(shape) < 2:
                return False
            model.build((None, *tuple(shape)[1:]))
        model.set_weights(initial_weights(model.to_json(), seed))
    except Exception:  # noqa: BLE001 - the fit goes on with the model's own weights; the judge cannot confirm it
        return False
    return True


def filter_experiment_spy(load: Load, options: Any, train: Any, test: Any, epochs: int,
                          first_seed: int = 0) -> dict[str, Any]:
    """Run filter_experiment with spies: on keras.Model.fit (epochs run, parameter count of each fit) and on the
    student's own train_and_evaluate as experiments.py reaches it (the epochs it was asked for, the test_accuracy
    it returned), so that the judge can tell a mistake of experiments.py from one inherited from training.py.

    The first fit of each model starts from the judge's initial weights (`initial_weights`, seeds `first_seed`,
    `first_seed + 1`, ... in the order of the models' first fits): the judge knows them, so a record of a fit
    cannot invent the weights it started from."""
    import sys
    import time

    import keras

    fits: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    own = "fit" in vars(keras.Model)
    original_fit = keras.Model.fit

    started: list[Any] = []  # the models fitted so far (kept alive, so that no other model takes an id)

    def spy_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        seed = None
        if all(model is not self for model in started):
            started.append(self)
            seed = first_seed + len(started) - 1
            if not _set_initial_weights(self, seed, args, kwargs):
                seed = None
        history = original_fit(self, *args, **kwargs)
        # The trained model itself goes back as evidence: the judge evaluates it, so a forged record of a
        # fit that never happened does not pass for training.
        try:
            compile_config = self.get_compile_config()
        except Exception:  # noqa: BLE001 - no compile config: the judge falls back to its own loss
            compile_config = None
        fits.append({"epochs": len(getattr(history, "epoch", None) or []), "params": int(self.count_params()),
                     "json": self.to_json(), "compile": compile_config, "seed": seed,
                     "weights": [np.asarray(w) for w in self.get_weights()]})
        return history

    experiments = load("experiments")
    training: Any = sys.modules.get("training")  # the submission's module (the sandbox imported it)
    original_tae = getattr(training, "train_and_evaluate", None)

    def spy_tae(*args: Any, **kwargs: Any) -> Any:
        asked = kwargs["epochs"] if "epochs" in kwargs else (args[3] if len(args) > 3 else None)
        result = original_tae(*args, **kwargs)  # type: ignore[misc]
        accuracy = result.get("test_accuracy") if isinstance(result, dict) else None
        calls.append({"epochs": asked if isinstance(asked, int) else None,
                      "test_accuracy": accuracy if isinstance(accuracy, (int, float)) else None})
        return result

    patched: list[Any] = [m for m in (training, experiments) if original_tae is not None
               and getattr(m, "train_and_evaluate", None) is original_tae]
    keras.Model.fit = spy_fit  # type: ignore[method-assign]
    for module in patched:
        module.train_and_evaluate = spy_tae
    try:
        start = time.perf_counter()
        rows = experiments.filter_experiment(options, tuple(train), tuple(test), epochs=epochs)
        seconds = time.perf_counter() - start
    finally:
        if own:
            keras.Model.fit = original_fit  # type: ignore[method-assign]
        else:
            del keras.Model.fit
        for module in patched:
            module.train_and_evaluate = original_tae
    return {"rows": rows, "fits": fits, "calls": calls, "seconds": seconds}
