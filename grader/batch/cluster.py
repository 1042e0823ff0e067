"""Grading a class on a Dask cluster (`grader grade --scheduler tcp://host:8786`).

One Dask task per submission runs `grader.batch.common.grade_to_folder` on a worker, exactly what a local
worker process runs, so the files under --out, the gradebook and resuming are the same as with `--jobs`.

What the cluster must provide:

- A shared filesystem. Workers write each submission's folder under --out themselves and read the
  submissions and the training cache from the paths this machine gives them (made absolute here), so
  --out, every submission and --cache must be at the same path on every worker and on this machine
  (NFS, a cluster's home or scratch). Pass --cache explicitly: without it each worker uses its own
  default cache ($XDG_CACHE_HOME/convgrader) and shares nothing.
- The grader installed on every worker, at the same version, with the assignment's data set where its
  loader (grader.datasets) finds it.
- One thread per worker process: a grading runs pytest (which redirects the process' stdout), a sandbox
  subprocess and TensorFlow, and is not meant to share a process with another grading. Start workers
  with `TF_CPP_MIN_LOG_LEVEL=2 dask worker tcp://host:8786 --nthreads 1 --nworkers N` (N: cores per
  machine, or fewer when memory is short: count ~2 GiB per worker plus the sandbox's --memory).
- Preferably a scheduler that gives a worker only the task it runs (`DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0
  dask scheduler`): gradings are long, so queueing a second one on a busy worker only unbalances the
  batch, and a submission queued on a worker that dies is caught up in that death.

A task that raises, or whose worker dies (Dask retries a task whose worker died, up to
`distributed.scheduler.allowed-failures` times, then reports KilledWorker), costs only its submission:
it gets an error record, or keeps what was saved of it as a partial record, as with the local pool.
A submission lost to a failure of the cluster itself (scheduler gone, connection closed) is recorded
as partial, so that running the same command again grades it.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from grader.batch.common import (
    RECORD,
    BatchOptions,
    BatchRow,
    error_result,
    finished,
    grade_to_folder,
    row_of,
    save_result,
)
from grader.results import SubmissionResult, load_result

PROGRESS_TOPIC = "convgrader-progress"
CONNECT_TIMEOUT = 30.0
_ONE_AT_A_TIME = threading.Lock()  # a worker process grades one submission at a time, whatever its nthreads


class ClusterUnavailable(RuntimeError):
    """distributed is not installed, or the scheduler cannot be reached: nothing was graded."""


def run_on_cluster(tasks: list[tuple[str, Path]], out_dir: Path, options: BatchOptions) -> list[BatchRow]:
    """Grade `tasks` ((id, path) pairs) on the Dask scheduler at `options.scheduler`; rows as they finish."""
    if not options.scheduler:
        raise ValueError("run_on_cluster needs options.scheduler, the address of a Dask scheduler")
    try:
        from distributed import Client, as_completed
        from distributed.comm import get_address_host_port
    except ImportError as exc:
        raise ClusterUnavailable(f"grading on a cluster needs Dask's distributed package ({exc}); "
                                 "install it with: pip install 'convgrader[distributed]'") from None
    out_dir = Path(out_dir).resolve()
    shared = dataclasses.replace(options, cache_dir=Path(options.cache_dir).resolve() if options.cache_dir else None)
    display = _Display(len(tasks), options.quiet)
    rows: list[BatchRow] = []
    try:
        get_address_host_port(options.scheduler)  # a malformed address fails here, before a Client exists
        client = Client(options.scheduler, set_as_default=False, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterUnavailable(f"cannot reach the Dask scheduler at {options.scheduler}: {exc}") from None
    with client:
        _check_workers(client, display)
        client.subscribe_topic(PROGRESS_TOPIC, display.progress)
        futures = {}
        marker = _start_marker(out_dir)
        for submission_id, path in tasks:
            future = client.submit(
                _grade_on_worker, str(Path(path).resolve()), str(out_dir), shared.to_json(), submission_id,
                str(marker), pure=False, key=f"grade-{submission_id}-{uuid.uuid4().hex[:8]}",
            )
            futures[future] = (submission_id, Path(path), time.perf_counter())
        try:
            for future in as_completed(futures, loop=client.loop):
                submission_id, path, started = futures.pop(future)
                try:
                    row = BatchRow(**future.result())
                except Exception as exc:  # noqa: BLE001 - any failure of the task costs only its submission
                    row = _record_failure(out_dir, submission_id, path, exc, time.perf_counter() - started, marker)
                future.release()  # a worker that dies later must not make Dask recompute (regrade) it
                rows.append(row)
                display.done(row)
        except BaseException:
            if futures:
                client.cancel(list(futures))  # Ctrl-C: leave nothing queued on the cluster
            raise
        finally:
            client.unsubscribe_topic(PROGRESS_TOPIC)
            marker.unlink(missing_ok=True)
            display.close()
    return rows


def _start_marker(out_dir: Path) -> Path:
    """A file whose mtime, set by the shared filesystem itself, tells the records of this batch."""
    marker = out_dir / ".grader-logs" / f"cluster-batch-{uuid.uuid4().hex}.started"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return marker


def _grade_on_worker(source: str, out_dir: str, options_json: dict[str, Any], submission_id: str,
                     marker: str) -> dict[str, Any]:
    """Runs on a Dask worker: grade one submission into out_dir/<id>; the row as a plain dict.

    Idempotent within a batch: when Dask runs the task again (its result was lost with a worker), a
    record this batch already finished (newer than the batch's start marker) is returned as it is.
    """
    options = BatchOptions.from_json(options_json)
    folder = Path(out_dir) / submission_id
    done = finished(folder)
    try:
        if done is not None and (folder / RECORD).stat().st_mtime >= Path(marker).stat().st_mtime:
            return dataclasses.asdict(row_of(done, source))
    except OSError:
        pass

    worker = _this_worker()  # progress also comes from a background training job's reader thread

    def progress(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        _publish(worker, {"id": submission_id, "epoch": epoch, "epochs": epochs})

    with _ONE_AT_A_TIME:
        row = grade_to_folder(Path(source), folder, options, submission_id, progress=progress)
    return dataclasses.asdict(row)


def _this_worker() -> Any:
    """The Dask worker running this task (found from the task's own thread only), or None."""
    try:
        from distributed import get_worker

        return get_worker()
    except Exception:  # noqa: BLE001 - not in a worker: no progress to publish
        return None


def _publish(worker: Any, message: dict[str, Any]) -> None:
    """Worker.log_event may be called from any thread (it hands other threads' events to its loop)."""
    try:
        if worker is not None:
            worker.log_event(PROGRESS_TOPIC, message)
    except Exception:  # noqa: BLE001 - progress is cosmetic; never fail a grading over it
        pass


def _record_failure(out_dir: Path, submission_id: str, path: Path, exc: BaseException, seconds: float,
                    marker: Path) -> BatchRow:
    """The record of a submission whose task raised, whose worker died, or that the cluster lost.

    What this batch saved of it is kept (as partial). A failure of the submission's own grading is final
    (an error, as with the local pool); when the cluster itself failed, the record stays partial so that
    running the same command again grades it.
    """
    reason, final = _describe(exc)
    folder = out_dir / submission_id
    result = _record_of_this_batch(folder, marker)
    if result is not None and result.status in ("graded", "error"):  # it finished before the failure
        return row_of(result, str(path))
    if result is not None:
        result.status = "partial"
        result.messages.append(f"{reason}; partial results kept")
    else:
        result = error_result(submission_id, reason, seconds)
        if not final:
            result.status = "partial"
            result.messages.append("run the same command again to grade it")
    from grader.reports import write_submission_reports

    folder.mkdir(parents=True, exist_ok=True)
    write_submission_reports(result, folder, show_hidden=True)
    save_result(result, folder / RECORD)
    return row_of(result, str(path))


def _record_of_this_batch(folder: Path, marker: Path) -> SubmissionResult | None:
    """The submission's record if this batch wrote it (not one left by an earlier run, e.g. with --force)."""
    try:
        if (folder / RECORD).stat().st_mtime < marker.stat().st_mtime:
            return None
        return load_result(folder / RECORD)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _describe(exc: BaseException) -> tuple[str, bool]:
    """Why the task failed, and whether that is final for the submission (not the cluster's fault)."""
    from distributed import KilledWorker

    name = type(exc).__name__
    if isinstance(exc, KilledWorker):
        return f"the grader's worker process died while grading this submission (Dask: {name})", True
    if name in ("CommClosedError", "CancelledError", "FutureCancelledError") or isinstance(exc, OSError | TimeoutError):
        return f"the grading cluster failed while grading this submission ({name}: {exc})", False
    return f"the grader failed on this submission: {name}: {exc}", True


def _check_workers(client: Any, display: _Display) -> None:
    workers = client.scheduler_info().get("workers", {})
    threaded = sorted(address for address, info in workers.items() if info.get("nthreads", 1) > 1)
    if threaded:
        display.note(f"note: {len(threaded)} Dask worker(s) run more than one thread; each grades one submission "
                     "at a time anyway. Start workers with --nthreads 1 (and --nworkers N) to use every core.")
    if not workers:
        display.note("note: no Dask worker is connected yet; the submissions wait for one.")


class _Display:
    """One line per finished submission, as the local pool prints; on a terminal, a live line of epochs."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.count, self.quiet = total, 0, quiet
        self.live = sys.stderr.isatty() and not quiet
        self.training: dict[str, str] = {}
        self._lock = threading.Lock()  # progress arrives on the client's event-loop thread

    def note(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def progress(self, event: Any) -> None:
        _, message = event if isinstance(event, tuple) and len(event) == 2 else (None, event)
        if not isinstance(message, dict) or "id" not in message:
            return
        with self._lock:
            self.training[str(message["id"])] = f"epoch {message.get('epoch')}/{message.get('epochs')}"
            self._live_line()

    def done(self, row: BatchRow) -> None:
        with self._lock:
            self.count += 1
            self.training.pop(row.id, None)
            if self.quiet:
                return
            self._clear()
            print(f"[{self.count}/{self.total}] {row.id}: {row.status} {row.score:g}/{row.max_score:g} "
                  f"({row.seconds:.1f} s){' - ' + row.reason if row.reason else ''}", file=sys.stderr, flush=True)
            self._live_line()

    def close(self) -> None:
        with self._lock:
            self._clear()

    def _live_line(self) -> None:
        if not self.live:
            return
        parts = [f"{submission} {epoch}" for submission, epoch in self.training.items()]
        text = f"{self.count}/{self.total} done; training: " + ", ".join(parts) if parts else ""
        print("\r" + text[:150].ljust(150), end="", file=sys.stderr, flush=True)

    def _clear(self) -> None:
        if self.live:
            print("\r" + " " * 150 + "\r", end="", file=sys.stderr, flush=True)
