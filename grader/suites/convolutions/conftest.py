"""Fixtures shared by the convolutions suites: the submission, the data, the judge's reference models."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from grader.plugin import CONTEXT, GradingContext

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
def context(request: pytest.FixtureRequest) -> GradingContext:
    context = request.config.stash.get(CONTEXT, None)
    if context is None:
        pytest.fail("these suites run through `grader check` or `grader grade`, not plain pytest")
    return context


@pytest.fixture(scope="session")
def student(context: GradingContext) -> Any:
    return context.student


@pytest.fixture(scope="session")
def fashion() -> Any:
    from grader.data import load_fashion_mnist

    return load_fashion_mnist()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Data a check attaches to its result (curves, intervals): check.extra in the result model."""
    extra: dict[str, Any] = {}
    request.node.grader_extra = extra
    return extra


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
