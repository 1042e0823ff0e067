"""Training in a background job while the other checks run (grader.training.background).

Small subsets of the real data: these tests check the mechanism (same numbers as in-process training, one
training per model, errors left to in-process training), not the lab's accuracy. Each job is a real
process that imports TensorFlow (seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import pytest

from grader.datasets.fashion_mnist import load_fashion_mnist
from grader.models.rebuild import ModelRejected
from grader.training import background as background_training
from grader.training import fit as training
from grader.training.cache import Recipe, TrainingCache, cache_key
from grader.training.trainer import train

SMALL = Recipe(epochs=2, train_subset=600, test_subset=300)


def _model(units: int = 16) -> tuple[str, dict[str, Any]]:
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.to_json(), model.get_compile_config()


@pytest.fixture(autouse=True)
def _no_jobs_left() -> Iterator[None]:
    yield
    background_training.stop_all()


@pytest.fixture
def no_training_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the trainings this process runs itself (they still run)."""
    calls: list[str] = []
    original = training.train_now

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[4])
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train_now", counted)
    return calls


def test_the_job_trains_what_the_judge_would_and_the_judge_trains_nothing(tmp_path: Path,
                                                                          no_training_here: list[str]) -> None:
    json_config, compile_config = _model()
    here = train(json_config, compile_config, SMALL, cache=TrainingCache(tmp_path / "here"))
    assert len(no_training_here) == 1
    progress: list[tuple[int, int]] = []
    cache = TrainingCache(tmp_path / "job")
    assert background_training.start([(json_config, compile_config)], SMALL, cache,
                                     lambda epoch, epochs, logs: progress.append((epoch, epochs)))
    there = train(json_config, compile_config, SMALL, cache=cache)
    assert len(no_training_here) == 1  # the judge waited for the job instead of training it again
    assert there.history == here.history
    assert there.test_accuracy == here.test_accuracy and there.test_loss == here.test_loss
    assert there.weights is not None and here.weights is not None
    assert all((a == b).all() for a, b in zip(there.weights, here.weights, strict=True))
    assert not there.cached  # trained for this grading, by its job: no cache hit to report
    assert progress == [(1, 2), (2, 2)]
    background_training.stop_all()  # the grading's end
    assert train(json_config, compile_config, SMALL, cache=cache).cached  # later gradings: a hit


def test_nothing_starts_for_what_the_cache_holds_or_a_job_already_has(tmp_path: Path) -> None:
    cache = TrainingCache(tmp_path)
    held, other = _model(16), _model(24)
    train(*held, SMALL, cache=cache)
    assert not background_training.start([held], SMALL, cache)
    assert not background_training.start([held], SMALL, None)  # no cache (quick profile): nothing to fill
    assert background_training.start([other, held, other], SMALL, cache)
    assert not background_training.start([other], SMALL, cache)  # the running job has it
    (job,) = background_training.jobs()
    assert list(job.done) == [cache_key(*other, SMALL, load_fashion_mnist().checksum)]


def test_a_model_the_job_cannot_train_is_trained_and_reported_by_the_judge(tmp_path: Path,
                                                                           no_training_here: list[str]) -> None:
    cache = TrainingCache(tmp_path)
    good = _model()
    unbuildable = (good[0].replace('"Dense"', '"NoSuchLayer"', 1), good[1])
    assert background_training.start([unbuildable, good], SMALL, cache)
    with pytest.raises(ModelRejected):  # what the gate reports, as without a job
        train(*unbuildable, SMALL, cache=cache)
    assert len(no_training_here) == 1  # the judge's own attempt, which refused the config
    assert not train(*good, SMALL, cache=cache).cached  # the job went on with the next model
    assert len(no_training_here) == 1  # and the judge waited for it


def test_a_stopped_job_leaves_its_models_to_the_judge(tmp_path: Path, no_training_here: list[str]) -> None:
    cache = TrainingCache(tmp_path)
    model = _model()
    assert background_training.start([model], SMALL, cache)
    (job,) = background_training.jobs()
    background_training.stop_all()
    assert job.process.poll() is not None and background_training.jobs() == []
    outcome = train(*model, SMALL, cache=cache)
    assert len(no_training_here) == 1 and not outcome.cached


def test_a_job_ends_when_its_parent_closes_the_pipe(tmp_path: Path) -> None:
    assert background_training.start([_model()], Recipe(epochs=50), TrainingCache(tmp_path))
    (job,) = background_training.jobs()
    assert job.process.stdin is not None
    job.process.stdin.close()  # what the parent's death does to the pipe
    assert job.process.wait(timeout=60) != 0
    assert not TrainingCache(tmp_path).has(next(iter(job.done)))



def test_the_accuracy_gates_run_last_and_keep_their_numbers(tmp_path: Path) -> None:
    from grader.judge import grading as judge
    from grader.judge.plugin import GraderPlugin, GradingContext

    ran = tmp_path / "ran.txt"
    checks = [("first", "data", ()), ("gate", "models", ("accuracy",)), ("shape", "models", ()),
              ("later", "callbacks", ())]
    source = "from grader.checks import check\n"
    for name, exercise, tags in checks:
        source += (f"@check(points=1, exercise={exercise!r}, tags={tags!r})\n"
                   f"def check_{name}():\n    \"\"\"{name}\"\"\"\n"
                   f"    with open({str(ran)!r}, 'a') as log:\n        log.write('{name}\\n')\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\npython_functions = check_*\nmarkers = grader_check\n",
                                          encoding="utf-8")
    (tmp_path / "test_gate_order.py").write_text(source, encoding="utf-8")  # a module name of its own
    plugin = GraderPlugin(GradingContext(student=None))
    judge._run_suites(plugin, tmp_path)
    assert {r.name: (r.number, r.status) for r in plugin.results.values()} == {
        "first": ("1.1", "passed"), "gate": ("2.1", "passed"), "shape": ("2.2", "passed"), "later": ("3.1", "passed")}
    assert ran.read_text().split() == ["first", "shape", "later", "gate"]
