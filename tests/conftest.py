"""Shared fixtures for the grader's own tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions" / "convolutions"
STUBS = ROOT / "assignments" / "convolutions"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

settings.register_profile("ci", database=None, derandomize=True, deadline=None)
settings.register_profile("dev", database=None, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# One training cache for the whole test session, outside HOME: each distinct model trains once per run.
_SESSION_CACHE = tempfile.mkdtemp(prefix="grader-test-cache-")
os.environ["XDG_CACHE_HOME"] = _SESSION_CACHE
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def solutions_dir() -> Path:
    return SOLUTIONS


@pytest.fixture(scope="session")
def stubs_dir() -> Path:
    return STUBS


@pytest.fixture(scope="session")
def training_cache_dir() -> Path:
    return Path(_SESSION_CACHE) / "convgrader"


@pytest.fixture
def solution_copy(tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the reference solution that a test may change."""
    target = tmp_path / "submission"
    shutil.copytree(SOLUTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    yield target
