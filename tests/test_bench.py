"""The benchmark's arithmetic (bench/run.py), on made-up timings: which runs each ratio divides, and that a
figure taken twice, before and after what it is compared with, counts as the mean of the two. The
benchmark itself runs for half an hour and is not run here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def bench_run(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_run_under_test", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_run_under_test", module)
    spec.loader.exec_module(module)
    return module


SECONDS = {"keras-1": 60.0, "full-1": 78.0, "keras-2": 70.0, "batch-j1-1": 140.0, "notebook": 330.0,
           "batch-j2": 130.0, "batch-j1-2": 160.0, "full-2": 82.0}


def test_each_ratio_divides_by_the_mean_of_the_runs_around_it(bench_run: ModuleType, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    def fake_run(self: Any, key: str, label: str, command: list[str]) -> Any:
        order.append(key)
        return bench_run.Run(label, SECONDS[key], 2**30, 2**30, 0, "", 0.01)

    monkeypatch.setattr(bench_run.Bench, "run", fake_run)
    monkeypatch.setattr(bench_run, "_full_marks", lambda report: True)
    monkeypatch.setattr(bench_run, "_check_batch", lambda out: None)
    rows = bench_run.slow(bench_run.Bench(tmp_path, 0))

    def row(start: str) -> Any:
        (found,) = [r for r in rows if r.measurement.startswith(start)]
        return found

    assert order == list(SECONDS)  # the bracketed order of the module's docstring
    assert row("plain Keras").seconds == 65.0
    assert row("(b)").ratio == pytest.approx(78.0 / 65.0)
    assert row("(c) batch of 10, --jobs 1").ratio == pytest.approx(150.0 / 80.0)  # both batches, both grades
    assert "(140.0 and 160.0 s)" in row("(c) batch of 10, --jobs 1").measurement
    assert row("(c) batch of 10, --jobs 2").ratio == pytest.approx(130.0 / 150.0)
    assert row("(d) notebook run / one full grade").ratio == pytest.approx(330.0 / 80.0)
    assert row("(d) notebook run / our cost").ratio == pytest.approx(330.0 / 15.0)
    table = bench_run.render(rows)
    assert "1.88x" in table and "22.00x" in table
