"""The judge's own canaries: proof that the grader's side works before a submission is blamed for anything.

A model config the judge cannot rebuild is the student's problem only if the judge can rebuild a
known-good one: when a Keras or TensorFlow release renames what the grader relies on, every student
config would fail to rebuild, and that is the grader's fault (GraderFault), not a class of zeros.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from grader.faults import GraderFault

_KERAS_FIX = ("install the keras and tensorflow versions that pyproject.toml allows "
              "(`pip install -e .` or `pip install convgrader`), then run `grader doctor`")


@functools.cache
def keras_rebuild_fault() -> str:
    """"" when this process's Keras rebuilds a known-good Sequential config the way the judge rebuilds a
    student's; otherwise why it cannot (the answer is kept: it does not change within a process)."""
    try:
        import keras

        from grader.models.rebuild import rebuild

        model = keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, activation="relu"), keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax"),
        ])
        rebuilt = rebuild(model.to_json(), (8, 8, 1))
        if rebuilt.count_params() != model.count_params():
            return f"a rebuilt model has {rebuilt.count_params()} parameters instead of {model.count_params()}"
    except Exception as exc:  # noqa: BLE001 - any failure here is the grader's
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return ""


def require_keras() -> None:
    """Raise GraderFault when the judge's Keras cannot rebuild a known-good model."""
    fault = keras_rebuild_fault()
    if fault:
        raise GraderFault(f"the judge's Keras cannot rebuild even a known-good model: {fault}", fix=_KERAS_FIX)


def preflight(sandbox_factory: Any, load_data: Any = None, load_keras: Any = None) -> str:
    """Before grading anyone: the sandbox starts on an empty submission and passes its canary, the judge's
    Keras rebuilds a known-good model and (`load_data`, where the assignment has a data set) its data verifies.
    `load_keras` imports TensorFlow the way the judge does (quietly), meanwhile.
    Returns the sandbox's isolation; raises GraderFault with the cause otherwise."""
    with tempfile.TemporaryDirectory(prefix="convgrader-preflight-") as empty:
        sandbox = sandbox_factory(Path(empty))
        try:
            sandbox.start()  # its TensorFlow loads while this process checks its own side
            if load_keras is not None:
                load_keras()
            require_keras()
            if load_data is not None:
                load_data()  # DatasetError is a GraderFault
            sandbox.has("__preflight__", "nothing")  # waits for its canary: SandboxStartError is a GraderFault
            return str(sandbox.isolation)
        finally:
            sandbox.close()
