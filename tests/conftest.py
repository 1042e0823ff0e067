"""Shared fixtures for the grader's own tests."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions" / "convolutions"
STUBS = ROOT / "assignments" / "convolutions"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Fixture submissions and the toy assignment hold test_*.py files of their own: suites the judge runs, not ours.
collect_ignore = ["fixtures"]

settings.register_profile("ci", database=None, derandomize=True, deadline=None)
settings.register_profile("dev", database=None, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# One training cache for the whole test session, outside HOME: each distinct model trains once per run.
# Under pytest-xdist (`-n 2`) the workers share the controller's folder (the cache is safe for
# concurrent writers), and only the process that made it removes it.
_OWNS_CACHE = not (os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("GRADER_TEST_SESSION_DIR"))
_SESSION_CACHE = tempfile.mkdtemp(prefix="grader-test-cache-") if _OWNS_CACHE else os.environ["GRADER_TEST_SESSION_DIR"]
os.environ["GRADER_TEST_SESSION_DIR"] = _SESSION_CACHE
os.environ["XDG_CACHE_HOME"] = _SESSION_CACHE
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
set_hypothesis_home_dir(os.path.join(_SESSION_CACHE, "hypothesis"))  # no .hypothesis/ in the checkout


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWNS_CACHE:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


# Tests spread over pytest-xdist's workers one by one; every other test stays with the rest of its file
# (`--dist loadgroup`), so that a file's module fixtures (a graded batch, trained models) are made once.
_SPREAD = {"test_buggy_variant_loses_points_only_in_its_exercise"}
# Files that share one group: both train the reference on the full data, and whichever runs first leaves it in
# the session's cache for the other (on two workers at once, one would wait minutes for the other's lock).
_TOGETHER = {"tests/test_reference_accuracy.py": "full-data", "tests/test_accuracy_gates.py": "full-data"}
# The longest groups first (minutes each): xdist hands out groups in the order they are collected, so the
# short ones are left to even out the two workers at the end.
_LONGEST_FIRST = ["full-data", "tests/test_broken.py", "tests/test_hostile_judge.py", "tests/test_environments.py",
                  "tests/test_platforms.py", "tests/test_batch.py", "tests/test_live_check.py", "tests/test_hostile.py",
                  "tests/test_distributed.py", "tests/test_ahead.py"]


def _group(item: pytest.Item) -> str:
    path = item.nodeid.split("::")[0]
    return _TOGETHER.get(path, path)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        if getattr(item, "originalname", item.name) in _SPREAD:
            return len(_LONGEST_FIRST) + 1  # short, one by one: the last to be handed out
        group = _group(item)
        return _LONGEST_FIRST.index(group) if group in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order
    for item in items:
        if getattr(item, "originalname", item.name) not in _SPREAD:
            item.add_marker(pytest.mark.xdist_group(_group(item)))


MODULES = ("data", "models", "callbacks", "training", "convolution", "visualize", "experiments")


@pytest.fixture(scope="module")
def reference() -> Iterator[SimpleNamespace]:
    """The reference modules, imported in-process from solutions/convolutions as a student's would be.

    Only for testing the reference itself: the grader never imports student code.
    """
    saved = {name: sys.modules.pop(name) for name in MODULES if name in sys.modules}
    saved_flag, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    sys.path.insert(0, str(SOLUTIONS))
    try:
        yield SimpleNamespace(**{name: importlib.import_module(name) for name in MODULES})
    finally:
        sys.path.remove(str(SOLUTIONS))
        sys.dont_write_bytecode = saved_flag
        for name in MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.fixture(scope="session")
def solutions_dir() -> Path:
    return SOLUTIONS


@pytest.fixture(scope="session")
def stubs_dir() -> Path:
    return STUBS


@pytest.fixture(scope="session")
def training_cache_dir() -> Path:
    return Path(_SESSION_CACHE) / "convgrader"


def _apply_variant(name: str, submission: Path, folder: str = "buggy") -> dict[str, Any]:
    """Turn a copy of the solution into the variant tests/fixtures/<folder>/<name>.json (buggy: the quick profile's
    bugs, each graded by tests/test_judge.py)."""
    bug = json.loads((FIXTURES / folder / f"{name}.json").read_text(encoding="utf-8"))
    module = submission / str(bug["module"])
    source = module.read_text(encoding="utf-8")
    for old, new in bug["replace"]:
        assert source.count(old) == 1, f"{name}: the solution changed; update the fixture ({old!r})"
        source = source.replace(old, new)
    module.write_text(source, encoding="utf-8")
    return bug


@pytest.fixture(scope="session")
def apply_variant() -> Callable[..., dict[str, Any]]:
    return _apply_variant


@pytest.fixture
def solution_copy(tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the reference solution that a test may change."""
    target = tmp_path / "submission"
    shutil.copytree(SOLUTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    yield target
