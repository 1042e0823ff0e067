"""Grading on a Dask cluster gives what the local pool gives, and the two resume each other's batches."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grader.batch.common import BatchOptions, BatchRow
from grader.batch.run import run_batch

distributed = pytest.importorskip("distributed")  # an optional dependency ([distributed] extra)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes of one thread, as the README tells.

    A task whose worker died is not retried (allowed-failures 0) so that a death shows at once, and a
    worker holds only the task it runs (worker-saturation 1.0), so a death costs no queued submission.
    """
    import dask

    settings = {"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(settings), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local_cluster:
        yield local_cluster


@pytest.fixture
def small_class(tmp_path: Path, stubs_dir: Path, solutions_dir: Path) -> list[Path]:
    """Two copies of the stubs (quick, zero points) and the reference solution (quick, full marks)."""
    paths = []
    for name, source in (("alice", stubs_dir), ("bob", stubs_dir), ("reference", solutions_dir)):
        target = tmp_path / "class" / name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
        paths.append(target)
    return paths


def _quick(scheduler: str | None = None) -> BatchOptions:
    return BatchOptions(skip_training=True, quiet=True, scheduler=scheduler)


def _outcomes(rows: list[BatchRow]) -> list[tuple[str, str, float, float]]:
    return [(row.id, row.status, row.score, row.max_score) for row in rows]


def _gradebook(out: Path) -> list[dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _checks(out: Path, name: str) -> list[tuple[str, str, float]]:
    record = json.loads((out / name / "grader-result.json").read_text(encoding="utf-8"))
    return [(check["number"], check["status"], check["score"]) for check in record["checks"]]


def _mtime(out: Path, name: str) -> int:
    return (out / name / "grader-result.json").stat().st_mtime_ns


def test_cluster_grades_like_the_local_pool_and_resumes_it(cluster: Any, small_class: list[Path],
                                                           tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    local_rows = run_batch(small_class, local, _quick())
    alice, _, reference = small_class
    run_batch([alice, reference], remote, _quick(cluster.scheduler_address))
    kept = _mtime(remote, "alice"), _mtime(remote, "reference")
    remote_rows = run_batch(small_class, remote, _quick(cluster.scheduler_address))  # resumes, grades bob only
    assert [(row.id, row.resumed) for row in remote_rows] == [("alice", True), ("bob", False), ("reference", True)]
    assert (_mtime(remote, "alice"), _mtime(remote, "reference")) == kept

    assert _outcomes(remote_rows) == _outcomes(local_rows)
    assert [row.status for row in remote_rows] == ["graded"] * 3
    assert remote_rows[2].score == remote_rows[2].max_score > remote_rows[0].score  # the reference beats the stubs
    assert _gradebook(remote) == _gradebook(local)
    for name in ("alice", "bob", "reference"):
        assert _checks(remote, name) == _checks(local, name)
        assert (remote / name / "report.html").is_file()

    # Either way round, a finished batch is taken as it is: the local pool's by the cluster and vice versa.
    before = {name: _mtime(remote, name) for name in ("alice", "bob", "reference")}
    assert all(row.resumed for row in run_batch(small_class, remote, _quick()))
    assert all(row.resumed for row in run_batch(small_class, local, _quick(cluster.scheduler_address)))
    assert {name: _mtime(remote, name) for name in before} == before


def _kill_worker_grading(scheduler: str, submission_id: str, out: Path, killed: list[int]) -> None:
    """Once `submission_id` has a partial record, SIGKILL the worker process that grades it."""
    deadline = time.monotonic() + 300
    with distributed.Client(scheduler, set_as_default=False) as client:
        while time.monotonic() < deadline:
            if (out / submission_id / "grader-result.json").exists():
                for address, keys in client.processing().items():
                    if any(str(key).startswith(f"grade-{submission_id}-") for key in keys):
                        pid = client.run(os.getpid, workers=[address])[address]
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
            time.sleep(0.1)


def test_a_bad_submission_or_a_dead_worker_costs_only_its_submission(cluster: Any, small_class: list[Path],
                                                                     tmp_path: Path) -> None:
    broken = tmp_path / "class" / "broken.zip"
    broken.write_bytes(b"not a zip file")
    out = tmp_path / "out"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_worker_grading, args=(cluster.scheduler_address, "bob", out, killed))
    killer.start()
    try:
        rows = run_batch([broken, *small_class[:2]], out, _quick(cluster.scheduler_address))
    finally:
        killer.join()
    assert killed, "the worker grading bob was never found"
    statuses = {row.id: row.status for row in rows}
    assert statuses["broken"] == "error" and statuses["alice"] == "graded"
    assert statuses["bob"] in ("partial", "error")
    bob = json.loads((out / "bob" / "grader-result.json").read_text(encoding="utf-8"))
    assert bob["status"] == statuses["bob"]
    assert "worker process died" in " ".join(bob["messages"])
    assert (out / "bob" / "report.html").is_file()
    assert [row["id"] for row in _gradebook(out)] == ["alice", "bob", "broken"]


@pytest.mark.parametrize("address", ["no-port-here", "tcp://127.0.0.1:notaport"])
def test_a_bad_scheduler_address_is_refused_before_grading(small_class: list[Path], tmp_path: Path,
                                                           address: str) -> None:
    from grader.batch.cluster import ClusterUnavailable

    with pytest.raises(ClusterUnavailable, match="cannot reach the Dask scheduler"):
        run_batch(small_class[:1], tmp_path / "out", _quick(address))
    assert not (tmp_path / "out" / "alice").exists()


@pytest.mark.parametrize(("failure", "status", "words"), [
    (RuntimeError("judge bug"), "error", "the grader failed on this submission: RuntimeError: judge bug"),
    (distributed.comm.CommClosedError("scheduler gone"), "partial", "the grading cluster failed"),
])
def test_a_failed_task_gets_a_record_final_only_when_the_submission_is_to_blame(
        tmp_path: Path, failure: Exception, status: str, words: str) -> None:
    from grader.batch.cluster import _record_failure, _start_marker
    from grader.results import CheckResult, SubmissionResult, save_result

    out = tmp_path / "out"
    check = CheckResult(id="data::check_x", name="x", exercise="data", number="1.1", max_score=1, score=1,
                        status="passed")
    earlier = out / "earlier" / "grader-result.json"  # finished by an earlier run (regraded with --force)
    earlier.parent.mkdir(parents=True)
    save_result(SubmissionResult(submission="earlier", checks=[check], messages=["from the earlier run"]), earlier)
    os.utime(earlier, (time.time() - 60, time.time() - 60))
    marker = _start_marker(out)
    half = out / "half" / "grader-result.json"  # this batch saved part of it before the failure
    half.parent.mkdir(parents=True)
    save_result(SubmissionResult(submission="half", status="partial", checks=[check]), half)

    for name, kept_checks in (("new", 0), ("earlier", 0), ("half", 1)):
        row = _record_failure(out, name, tmp_path / name, failure, 1.5, marker)
        record = json.loads((out / name / "grader-result.json").read_text(encoding="utf-8"))
        assert row.status == record["status"] == ("partial" if kept_checks else status)
        assert len(record["checks"]) == kept_checks
        assert words in " ".join(record["messages"]) and "from the earlier run" not in record["messages"]
        assert (out / name / "report.html").is_file()


def _progress_from_another_thread(topic: str) -> bool:
    """Runs as a task: publishes one event from a thread of its own, as a background training job's reader does."""
    from grader.batch import cluster as grader_distributed

    worker = grader_distributed._this_worker()
    thread = threading.Thread(target=grader_distributed._publish, args=(worker, {"epoch": 1, "epochs": 5}))
    thread.start()
    thread.join()
    return worker is not None


def test_progress_published_from_another_thread_reaches_the_client(cluster: Any) -> None:
    from grader.batch.cluster import PROGRESS_TOPIC, _this_worker

    assert _this_worker() is None  # not in a task
    seen: list[Any] = []
    with distributed.Client(cluster) as client:
        client.subscribe_topic(PROGRESS_TOPIC, seen.append)
        assert client.submit(_progress_from_another_thread, PROGRESS_TOPIC, pure=False).result(timeout=60)
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.1)
    assert [(event[1]["epoch"], event[1]["epochs"]) for event in seen] == [(1, 5)]
