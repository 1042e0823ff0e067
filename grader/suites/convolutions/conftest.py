"""Fixtures shared by the convolutions suites: the data, the background training, the records (`context` and
`student` come from the judge: grader/judge/fixtures.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from grader.judge.plugin import GradingContext

settings.register_profile(
    "grader",
    max_examples=40,
    deadline=None,
    database=None,  # nothing written to disk
    derandomize=True,  # the same examples on every run: grading is reproducible
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
settings.load_profile("grader")


@pytest.fixture(scope="session")
def fashion() -> Any:
    from grader.datasets.fashion_mnist import load_fashion_mnist

    return load_fashion_mnist()


@pytest.fixture(scope="session", autouse=True)
def _train_in_background(request: pytest.FixtureRequest, context: GradingContext) -> None:
    """The accuracy gates run last (grader.judge.plugin); what they will train starts training now, in a separate
    process, while the other checks run (grader.training.background). Nothing here is graded: a model that
    cannot be had or trained now is left to its gate, which asks again and reports what goes wrong."""
    from grader.checks import spec_of

    if context.skip_training or context.cache is None:
        return
    if not any("accuracy" in (spec.tags if (spec := spec_of(item)) else ()) for item in request.session.items):
        return
    from grader.sandbox.protocol import ModelSpec
    from grader.suites.convolutions import ASSIGNMENT
    from grader.suites.convolutions import reference as ref
    from grader.training import background as background_training
    from grader.training.cache import Recipe

    models: list[tuple[str, Any]] = []
    for builder, args in ref.GATE_MODELS.values():
        try:
            value = context.student.drive("compiled", builder, args, module="models", function=builder)
        except Exception:  # noqa: BLE001 - StudentFailure and the like: the gate asks again and reports it
            continue
        if isinstance(value, ModelSpec):
            models.append((value.json_config, value.compile_config))
    try:
        reference_model = ref.reference_cnn()  # the activation maps compare with it
        models.append((reference_model.to_json(), reference_model.get_compile_config()))
        background_training.start(models, Recipe(seed=context.seed), context.cache, context.progress,
                                  data=ASSIGNMENT.load_dataset())
    except Exception:  # noqa: BLE001 - no job (e.g. no process could start): the gates train in-process
        pass


@pytest.fixture
def record(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Data a check attaches to its result (curves, intervals): check.extra in the result model."""
    extra: dict[str, Any] = {}
    request.node.grader_extra = extra
    return extra


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
