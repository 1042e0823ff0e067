"""Batches: results written as they finish, resumed after a kill, a dead worker costing one submission only."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from grader.batch.common import BatchOptions, submission_ids
from grader.batch.run import run_batch

QUICK = BatchOptions(skip_training=True, quiet=True)


@pytest.fixture
def class_of_three(tmp_path: Path, stubs_dir: Path) -> list[Path]:
    """Three submissions: copies of the stubs (they grade quickly, with zero points)."""
    paths = []
    for name in ("alice", "bob", "carol"):
        target = tmp_path / "class" / name
        shutil.copytree(stubs_dir, target, ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
        paths.append(target)
    return paths


def _record(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / name / "grader-result.json").read_text())


def _outcomes(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(c["id"], c["status"], c["score"], c["output"]) for c in record["checks"]]


def _gradebook(out: Path) -> list[dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_ids_are_unique_and_safe(tmp_path: Path) -> None:
    paths = [tmp_path / "a b.zip", tmp_path / "x" / "a b.zip", tmp_path / "alice.ipynb", tmp_path / "../..evil"]
    ids = [i for i, _ in submission_ids(paths)]
    assert ids == ["a_b", "a_b-2", "alice", "evil"]


def test_batch_writes_every_result_resumes_and_two_jobs_agree(class_of_three: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = run_batch(class_of_three[:2], out, QUICK)
    assert [r.id for r in rows] == ["alice", "bob"] and all(r.status == "graded" for r in rows)
    before = (out / "alice" / "grader-result.json").stat().st_mtime_ns
    rows = run_batch(class_of_three, out, QUICK)
    assert [(r.id, r.resumed) for r in rows] == [("alice", True), ("bob", True), ("carol", False)]
    assert (out / "alice" / "grader-result.json").stat().st_mtime_ns == before
    assert [row["id"] for row in _gradebook(out)] == ["alice", "bob", "carol"]
    forced = run_batch(class_of_three[:1], out, BatchOptions(skip_training=True, quiet=True, force=True))
    assert not forced[0].resumed
    assert (out / "alice" / "grader-result.json").stat().st_mtime_ns != before
    # two jobs give the same results as the one job above
    two = run_batch(class_of_three, tmp_path / "two", BatchOptions(skip_training=True, quiet=True, jobs=2))
    assert [r.id for r in two] == ["alice", "bob", "carol"] and not any(r.resumed for r in two)
    for row in two:
        ours, theirs = _record(tmp_path / "two", row.id), _record(out, row.id)
        assert [ours[k] for k in ("status", "score", "max_score")] == [theirs[k] for k in ("status", "score",
                                                                                        "max_score")]
        assert _outcomes(ours) == _outcomes(theirs)


def _start_batch(paths: list[Path], out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "grader.cli", "grade", *map(str, paths), "--out", str(out), "--skip-training", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )


def _wait_for(condition, timeout: float = 300) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def _final(out: Path, name: str) -> bool:
    try:
        return _record(out, name)["status"] in ("graded", "error")
    except (OSError, ValueError):
        return False


def test_sigkill_of_the_whole_batch_then_resume(class_of_three: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    batch = _start_batch(class_of_three, out)
    _wait_for(lambda: _final(out, "alice"))
    os.killpg(batch.pid, signal.SIGKILL)
    batch.wait()
    alice = (out / "alice" / "grader-result.json").read_bytes()
    completed = subprocess.run(
        [sys.executable, "-m", "grader.cli", "grade", *map(str, class_of_three), "--out", str(out),
         "--skip-training", "-q"], capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (out / "alice" / "grader-result.json").read_bytes() == alice  # not regraded
    assert [row["id"] for row in _gradebook(out)] == ["alice", "bob", "carol"]
    assert all(_final(out, name) for name in ("alice", "bob", "carol"))
    assert not list(out.rglob("*.tmp"))


def _worker_pids(batch_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"grader.batch.worker" in cmdline and int(stat[1]) == batch_pid:
            pids.append(int(entry.name))
    return pids


def test_a_dead_worker_costs_only_its_submission(class_of_three: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    batch = _start_batch(class_of_three, out)
    try:
        _wait_for(lambda: (out / "bob").is_dir())  # the worker has started on bob
        _wait_for(lambda: bool(_worker_pids(batch.pid)))
        for pid in _worker_pids(batch.pid):
            os.kill(pid, signal.SIGKILL)
        assert batch.wait(timeout=600) == 0
    finally:
        if batch.poll() is None:
            os.killpg(batch.pid, signal.SIGKILL)
    bob = _record(out, "bob")
    assert bob["status"] in ("partial", "error")
    assert "worker process died" in " ".join(bob["messages"])  # type: ignore[arg-type]
    assert _record(out, "carol")["status"] == "graded"
    assert _record(out, "alice")["status"] == "graded"
