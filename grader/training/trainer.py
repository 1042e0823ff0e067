"""What an accuracy gate calls: `train()`, the outcome of a model on the data, from wherever it is quickest.

In order: a background job of this grading that has (or is training) the model, the shared cache, and
last a fit in this process. Each gives the same numbers (same seed, op determinism, same recipe).
"""

from __future__ import annotations

from typing import Any

from grader.assignment import default_data
from grader.training import background, fit
from grader.training.cache import Progress, Recipe, TrainingCache, TrainingOutcome, key_of, training_payload

_DEFAULT_RECIPE = Recipe()  # 5 epochs, batch 32, seed 0


def train(
    json_config: str,
    compile_config: dict[str, Any] | None,
    recipe: Recipe = _DEFAULT_RECIPE,
    *,
    cache: TrainingCache | None = None,
    progress: Progress | None = None,
    private: TrainingCache | None = None,
    data: Any = None,
    stop: fit.Stop | None = None,
) -> TrainingOutcome:
    """Train a rebuilt model with the recipe on `data` (cached); raises ModelRejected for bad configs.

    `data`: a loaded data set (grader.datasets: train/test images and labels, `checksum`, `prepare`); None for
    the data set of the only assignment installed. An outcome that is not `inheritable` is not written to
    `cache`; where `private` is given (a cache of one grading only, e.g. a background job's), it is written
    there instead. `stop` (e.g. the grading's time budget) is asked before and during a fit in this process:
    a reason ends it with fit.TrainingStopped."""
    data = data if data is not None else default_data()
    payload = training_payload(json_config, compile_config, recipe, data.checksum)
    key = key_of(payload)
    if cache is None:
        return fit.train_now(json_config, compile_config, recipe, data, key, progress, stop=stop)
    trained_now = background.wait(key)  # a job started by this grading may be training it
    hit = cache.get(key, trained_from=payload)
    if hit is None and trained_now:
        hit = background.private_outcome(key, payload)  # what the job kept for this grading only
    if hit is not None:
        hit.cached = not trained_now  # what the job trained for this grading is no cache hit to report
        return hit
    return fit.fit_cached(json_config, compile_config, recipe, data, key, payload, cache, private=private,
                          progress=progress, stop=stop)
