"""Models the judge sends into the sandbox, rebuilt once and lent again for the next identical payload.

The suites send the same few judge models many times (the training suite's frozen model alone goes in
four times). Each fresh Keras model has to trace its train and test steps, the dominant cost of these
short fits; a model lent again keeps its traced functions. Before it is lent again it is put back as
the payload describes it: the payload's weights, and the optimizer's variables (step count, learning
rate, slots) as they were before its first fit.

A model goes back into the pool only if the call left it as a model of the same payload: not recompiled
(same compile config object, same optimizer, as many optimizer variables), the same JSON config (layers,
activations, trainable flags), the same class, and no method replaced on the model or a layer. Anything
else is dropped and the next payload is rebuilt from scratch, as without the pool. A model is lent to
one argument of one request at a time; the server gives all of them back when the request ends.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from grader.sandbox.protocol import ModelPayload

IDLE_LIMIT = 6  # idle models kept (the judge's are small); the least recently used goes first


def payload_digest(payload: ModelPayload) -> str:
    """What makes two payloads the same model: config, compile config and weights (SHA-256)."""
    digest = hashlib.sha256(payload.json_config.encode())
    digest.update(json.dumps(payload.compile_config, sort_keys=True, default=repr).encode())
    for weight in payload.weights:
        array = np.ascontiguousarray(weight)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _overrides(model: Any) -> list[dict[str, int]]:
    """For the model and each layer: the instance attributes that hide a method of the class, by identity.
    Keras sets a few itself (build, quantize, loss); a call that adds or swaps one (model.fit = fake) shows."""

    def of(obj: Any) -> dict[str, int]:
        cls = type(obj)
        return {name: id(value) for name, value in vars(obj).items() if callable(getattr(cls, name, None))}

    return [of(model), *(of(layer) for layer in model.layers)]


class _Lent:
    """A pooled model and what it must still be when it comes back."""

    def __init__(self, key: str, model: Any, payload: ModelPayload) -> None:
        self.key = key
        self.model = model
        self.json_config = payload.json_config
        self.cls = type(model)
        self.overrides = _overrides(model)
        self.compile_config = getattr(model, "_compile_config", None)
        self.optimizer = getattr(model, "optimizer", None)
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(model.trainable_variables)  # what fit would do first; its initial state:
        self.initial = [np.array(v) for v in self.optimizer.variables] if self.optimizer is not None else []

    def unchanged(self) -> bool:
        model = self.model
        try:
            return (
                type(model) is self.cls
                and getattr(model, "_compile_config", None) is self.compile_config
                and getattr(model, "optimizer", None) is self.optimizer
                and (self.optimizer is None or len(self.optimizer.variables) == len(self.initial))
                and _overrides(model) == self.overrides
                and model.to_json() == self.json_config
            )
        except BaseException:  # noqa: B036 - student code may raise anything; such a model is not lent again
            return False

    def reset(self, payload: ModelPayload) -> None:
        self.model.set_weights(payload.weights)
        if self.optimizer is not None:
            for variable, value in zip(self.optimizer.variables, self.initial, strict=True):
                variable.assign(value)
        self.model.stop_training = False


class ModelPool:
    """`take(payload)` a model (rebuilt or lent again); `give_back()` at the end of each request."""

    def __init__(self, build: Callable[[ModelPayload], Any], idle_limit: int = IDLE_LIMIT) -> None:
        self.build = build
        self.idle_limit = idle_limit
        self.idle: OrderedDict[str, list[_Lent]] = OrderedDict()
        self.lent: list[_Lent] = []
        self.reused = 0  # models lent again (tests, timing)

    def take(self, payload: ModelPayload) -> Any:
        key = payload_digest(payload)
        waiting = self.idle.get(key)
        if waiting:
            entry = waiting.pop()
            if not waiting:
                del self.idle[key]
            try:
                entry.reset(payload)
            except BaseException:  # noqa: B036 - rebuild instead
                pass
            else:
                self.lent.append(entry)
                self.reused += 1
                return entry.model
        model = self.build(payload)
        try:
            self.lent.append(_Lent(key, model, payload))
        except Exception:  # noqa: BLE001 - a model that cannot be pooled is simply not kept
            pass
        return model

    def give_back(self) -> None:
        lent, self.lent = self.lent, []
        for entry in lent:
            if entry.unchanged():
                self.idle.setdefault(entry.key, []).append(entry)
                self.idle.move_to_end(entry.key)
        while sum(len(entries) for entries in self.idle.values()) > self.idle_limit:
            oldest = next(iter(self.idle))
            self.idle[oldest].pop(0)
            if not self.idle[oldest]:
                del self.idle[oldest]
