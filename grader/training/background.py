"""Train a grading's models in a separate process while the other checks run.

The accuracy gates need the judge to train two models (minutes), the other ~65 checks need the sandbox
and one core (tens of seconds), and training alone keeps only ~1.25 of two cores busy. So as soon as a
grading knows what the gates will train, `start()` hands those models to a training job, a plain Python
process of the judge (not the sandbox: it rebuilds configs with built-in layers only, as the judge does),
which trains them one after the other with `grader.training.fit` and writes each into the training
cache. The gates run last and find the cache filled: `trainer.train()` calls `wait()` for its key first.

The job changes no number: it runs the same fit (same seed, op determinism, same recipe) in a fresh
process, and the outcome is read back from the cache entry it wrote (tests compare it with in-process
training). Whatever goes wrong in the job (a config Keras refuses, a crash, a kill) only leaves the entry
missing, and `trainer.train()` then trains in-process exactly as without a job, raising what it raises. A job
ends with the process that started it (it watches its stdin) and is stopped at the end of the grading
that started it (`stop_all()`), so an unused one never runs into the next submission's time.

An outcome another submission must not inherit (NaN, chance: `cache.inheritable`) is not written to the
shared cache: the job writes it to a private cache of its own (a folder under the cache, removed when the
job stops), where `private_outcome()` finds it for the grading that started the job, and no one else.

Protocol: one JSON line on the job's stdin ({"cache": dir, "private": dir, "dataset": module, "models": [{"key",
"json", "compile", "recipe"}]}), then the pipe stays open; JSON lines on its stdout: {"epoch", "epochs", "logs"}
after each epoch and {"done": key, "trained": bool} after each model.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from grader.assignment import default_data
from grader.training import fit
from grader.training.cache import Progress, Recipe, TrainingCache, key_of, training_payload

_jobs: list[_Job] = []  # jobs started by this process and not yet stopped
_lock = threading.Lock()


class _Job:
    """One training process, the keys it was given, and a reader thread for its lines."""

    def __init__(self, models: list[dict[str, Any]], cache: TrainingCache, progress: Progress | None,
                 dataset: str) -> None:
        self.done: dict[str, threading.Event] = {model["key"]: threading.Event() for model in models}
        self.trained: set[str] = set()  # keys this job trained itself (not already in the cache)
        self.progress = progress
        self.private = TrainingCache(cache.directory / "private" / secrets.token_hex(8))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader.training.background"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        job = {"cache": str(cache.directory), "private": str(self.private.directory), "models": models,
               "dataset": dataset}
        self.process.stdin.write((json.dumps(job) + "\n").encode())
        self.process.stdin.flush()  # the pipe stays open: the job ends when it closes
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            for line in stream:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "done" in message and message["done"] in self.done:
                    if message.get("trained"):
                        self.trained.add(message["done"])
                    self.done[message["done"]].set()
                elif "epoch" in message and self.progress is not None:
                    try:
                        self.progress(int(message["epoch"]), int(message["epochs"]), dict(message.get("logs") or {}))
                    except Exception:  # noqa: BLE001 - progress is cosmetic; never lose the job over it
                        pass
        finally:
            for event in self.done.values():  # the job is gone: nobody waits for it any longer
                event.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self.reader.join(timeout=5)
        shutil.rmtree(self.private.directory, ignore_errors=True)


def start(models: list[tuple[str, dict[str, Any] | None]], recipe: Recipe, cache: TrainingCache | None,
          progress: Progress | None = None, data: Any = None) -> bool:
    """Train these (json_config, compile_config) pairs on `data` (None: the only assignment's data set) in a
    background job, in this order, unless the cache already holds them or a job of this process already has
    them. True if a job was started."""
    if cache is None or _cores() < 2:  # one core (a Gradescope container): nothing to overlap, and a third
        return False                   # TensorFlow process would only add its memory
    data = data if data is not None else default_data()
    checksum = data.checksum
    wanted: list[dict[str, Any]] = []
    with _lock:
        running = {key for job in _jobs for key in job.done}
        for json_config, compile_config in models:
            key = key_of(training_payload(json_config, compile_config, recipe, checksum))  # as trainer.train keys it
            if key in running or cache.has(key) or any(m["key"] == key for m in wanted):
                continue
            wanted.append({"key": key, "json": json_config, "compile": compile_config, "recipe": asdict(recipe)})
        if not wanted:
            return False
        _jobs.append(_Job(wanted, cache, progress, type(data).__module__))
        return True


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def jobs() -> list[_Job]:
    """This process's running jobs (a copy of the list): their `done` keys and `process`."""
    with _lock:
        return list(_jobs)


def wait(key: str) -> bool | None:
    """Block until a job of this process has finished `key`. None: no job has it; True: a job trained it."""
    with _lock:
        job = next((j for j in _jobs if key in j.done), None)
    if job is None:
        return None
    job.done[key].wait()
    return key in job.trained


def private_outcome(key: str, trained_from: dict[str, Any]) -> Any:
    """The outcome a job of this process trained for key and kept to itself (not inheritable), or None."""
    with _lock:
        job = next((j for j in _jobs if key in j.done), None)
    return None if job is None else job.private.get(key, trained_from=trained_from)


def stop_all() -> None:
    """Stop this process's jobs (a grading's end): what they finished stays in the cache."""
    with _lock:
        jobs = list(_jobs)
        _jobs.clear()
    for job in jobs:
        job.stop()


# --------------------------------------------------------------------------------- the job's side
def _watch_parent(stdin: IO[bytes]) -> None:
    stdin.read()  # returns when the parent closes the pipe or dies
    os._exit(1)


def main() -> int:
    import importlib

    from grader.keras_compat import build as keras_build

    stdin = sys.stdin.buffer
    job = json.loads(stdin.readline())
    threading.Thread(target=_watch_parent, args=(stdin,), daemon=True).start()
    out = sys.stdout

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    def progress(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        send({"epoch": epoch, "epochs": epochs, "logs": {k: float(v) for k, v in logs.items()}})

    import keras  # noqa: F401 - imported before install(), as in the judge

    keras_build.install()
    data = importlib.import_module(job["dataset"]).load()  # the module of the data set the grading loaded
    cache = TrainingCache(Path(job["cache"]))
    private = TrainingCache(Path(job["private"]))
    for model in job["models"]:
        trained = False
        try:
            recipe = Recipe(**model["recipe"])
            payload = training_payload(model["json"], model["compile"], recipe, data.checksum)
            outcome = fit.fit_cached(model["json"], model["compile"], recipe, data, model["key"], payload, cache,
                                     private=private, progress=progress)
            trained = not outcome.cached
        except Exception:  # noqa: BLE001 - the gate trains in-process and reports the error itself
            pass
        send({"done": model["key"], "trained": trained})
    return 0


if __name__ == "__main__":
    sys.exit(main())
