"""Every private Keras and TensorFlow name the grader uses, in one place, each with a public fallback.

The grader reaches into Keras' internals in four places, each for speed only: one build of a Sequential
model instead of one per layer (sequential_config), variables without values for models only read
(modelspec), seeding that keeps TensorFlow's kernel cache (seeding) and an early symbolic build of fit's
training state (keras_build). A Keras or TensorFlow release may move or rename any of these names. Where
one is missing, the function here says so (None) or does the same thing through the public API, and the
caller takes its public path: the same models, seeds and fits, a little slower, never a failure charged to
a student. tests/test_keras_compat.py makes each private module unavailable in turn and compares.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

# The private modules the grader may use, by what they give it.
SERIALIZATION = "keras.src.saving.serialization_lib"
GLOBAL_STATE = "keras.src.backend.common.global_state"
SEED_GENERATOR = "keras.src.random.seed_generator"
RNG_UTILS = "keras.src.utils.rng_utils"
TF_CONTEXT = "tensorflow.python.eager.context"
TF_TRAINER = "keras.src.backend.tensorflow.trainer"
PRIVATE_MODULES = (SERIALIZATION, GLOBAL_STATE, SEED_GENERATOR, RNG_UTILS, TF_CONTEXT, TF_TRAINER)


def _import(name: str) -> Any | None:
    """A private module, or None where this Keras/TensorFlow has no such module (or it fails to import)."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a private module may fail in any way; the public path is taken then
        return None


def _attribute(module_name: str, name: str) -> Any | None:
    module = _import(module_name)
    return getattr(module, name, None) if module is not None else None


# ------------------------------------------------------------------------------- deserialisation
def safe_mode_scope(safe_mode: bool) -> contextlib.AbstractContextManager[Any]:
    """Keras' SafeModeScope; public fallback: no scope (each deserialize call below passes safe_mode itself)."""
    scope = _attribute(SERIALIZATION, "SafeModeScope")
    return scope(safe_mode) if callable(scope) else contextlib.nullcontext()


def deserialize(config: Any, safe_mode: bool = True) -> Any:
    """serialization_lib.deserialize_keras_object; public fallback: keras.saving.deserialize_keras_object."""
    private = _attribute(SERIALIZATION, "deserialize_keras_object")
    if callable(private):
        return private(config, safe_mode=safe_mode)
    import keras

    return keras.saving.deserialize_keras_object(config, safe_mode=safe_mode)


def started_from_input(model: Any) -> bool:
    """Sequential's private `_functional` (it began with an Input, so it is built); public fallback: `built`,
    which a Sequential just constructed has exactly when it began with an Input."""
    functional = getattr(model, "_functional", None)
    return functional if isinstance(functional, bool) else bool(model.built)


# ------------------------------------------------------------------------------- deferred variables
@contextlib.contextmanager
def deferred_variables_dropped() -> Iterator[bool]:
    """Keras queues the variables a StatelessScope defers; restore the queue on exit. Yields False where the
    queue is not reachable: the caller must not defer variables then (it builds them as usual)."""
    state = _import(GLOBAL_STATE)
    getter = getattr(state, "get_global_attribute", None)
    setter = getattr(state, "set_global_attribute", None)
    if not (callable(getter) and callable(setter)):
        yield False
        return
    queued = list(getter("uninitialized_variables") or [])
    try:
        yield True
    finally:
        setter("uninitialized_variables", queued)


# ------------------------------------------------------------------------------- seeding
def seed_parts() -> tuple[Any, str, str, Any] | None:
    """(global_state, the global seed's key, the global SeedGenerator's key, TensorFlow's eager context), or None
    where any is missing: the caller then seeds with keras.utils.set_random_seed."""
    modules: list[Any] = [_import(name) for name in (GLOBAL_STATE, SEED_GENERATOR, RNG_UTILS, TF_CONTEXT)]
    if any(module is None for module in modules):
        return None
    global_state, seed_generator, rng_utils, context = modules
    import keras

    try:
        if keras.backend.backend() != "tensorflow" or not context.executing_eagerly():
            return None
        eager = context.context()
    except Exception:  # noqa: BLE001 - an internal that changed shape: take the public path
        return None
    names = (getattr(rng_utils, "GLOBAL_RANDOM_SEED", None), getattr(seed_generator, "GLOBAL_SEED_GENERATOR", None))
    if not all(isinstance(name, str) for name in names) or not (hasattr(eager, "_seed") and hasattr(eager, "_rng")):
        return None
    if not callable(getattr(global_state, "set_global_attribute", None)):
        return None
    return global_state, str(names[0]), str(names[1]), eager


# ------------------------------------------------------------------------------- fit
def tensorflow_trainer() -> Any | None:
    """Keras' TensorFlowTrainer with the two methods keras_build patches, or None (Keras builds as it does)."""
    trainer = _attribute(TF_TRAINER, "TensorFlowTrainer")
    if trainer is None or not callable(getattr(trainer, "_maybe_symbolic_build", None)) or not callable(
            getattr(trainer, "_symbolic_build", None)):
        return None
    return trainer
