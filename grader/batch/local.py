"""A pool of long-lived grading worker processes on this machine (`grader grade --jobs N`).

Workers import TensorFlow once and grade many submissions. Tasks go to a worker as JSON lines on
its stdin; it answers with JSON lines on a dedicated pipe. A worker that dies mid-submission is
replaced; the submission it held is recorded with what was saved of it (partial) or as an error.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from grader.batch.common import (
    RECORD,
    BatchOptions,
    BatchRow,
    environment_for_workers,
    error_result,
    row_of,
    save_result,
)
from grader.results import load_result


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    channel: IO[bytes]
    buffer: bytes = b""
    task: tuple[str, Path] | None = None
    started: float = 0.0
    progress: dict[str, Any] = field(default_factory=dict)


def run_in_workers(tasks: list[tuple[str, Path]], out_dir: Path, options: BatchOptions) -> list[BatchRow]:
    pending = deque(tasks)
    rows: list[BatchRow] = []
    logs = out_dir / ".grader-logs"
    logs.mkdir(parents=True, exist_ok=True)
    selector = selectors.DefaultSelector()
    workers: list[_Worker] = []
    display = _Display(len(tasks), options.quiet)
    try:
        for index in range(min(options.jobs, len(tasks))):
            workers.append(_spawn(index, out_dir, options, selector, logs))
        for worker in workers:
            _assign(worker, pending, len(workers))
        while any(w.task is not None for w in workers):
            for key, _ in selector.select(timeout=0.5):
                worker = key.data
                chunk = os.read(worker.channel.fileno(), 65536)
                if chunk:
                    worker.buffer += chunk
                    while b"\n" in worker.buffer:
                        line, worker.buffer = worker.buffer.split(b"\n", 1)
                        row = _handle(worker, line, display)
                        if row is not None:
                            rows.append(row)
                            display.done(row)
                            _assign(worker, pending, len(workers))
                    continue
                selector.unregister(worker.channel)
                if worker.task is not None:  # died while grading
                    row = _record_death(worker, out_dir)
                    rows.append(row)
                    display.done(row)
                index = workers.index(worker)
                _stop(worker)
                if pending:
                    workers[index] = _spawn(index, out_dir, options, selector, logs)
                    _assign(workers[index], pending, len(workers))
            display.tick(workers)
    finally:
        for worker in workers:
            _stop(worker)
        display.close()
    return rows


def _spawn(index: int, out_dir: Path, options: BatchOptions, selector: selectors.BaseSelector,
           logs: Path) -> _Worker:
    read_fd, write_fd = os.pipe()
    log = open(logs / f"worker-{index}.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "grader.batch.worker", str(write_fd), str(out_dir), json.dumps(options.to_json())],
        stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write_fd,), env=environment_for_workers(),
        start_new_session=True,  # a Ctrl-C in the terminal reaches the batch, which stops the workers itself
    )
    log.close()
    os.close(write_fd)
    channel = os.fdopen(read_fd, "rb", buffering=0)
    worker = _Worker(process, channel)
    selector.register(channel, selectors.EVENT_READ, worker)
    return worker


def _assign(worker: _Worker, pending: deque[tuple[str, Path]], workers: int) -> None:
    worker.task = None
    if not pending or worker.process.stdin is None:
        return
    submission_id, path = pending.popleft()
    worker.task, worker.started, worker.progress = (submission_id, path), time.perf_counter(), {}
    # "more": this worker is likely to get another submission, so a spare sandbox started now will be used.
    task = {"id": submission_id, "source": str(path), "more": len(pending) >= workers}
    try:
        worker.process.stdin.write((json.dumps(task) + "\n").encode())
        worker.process.stdin.flush()
    except (BrokenPipeError, OSError):
        pass  # the worker is gone: its channel's EOF records the death


def _handle(worker: _Worker, line: bytes, display: _Display) -> BatchRow | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if "progress" in message:
        worker.progress = message["progress"]
        return None
    if "row" in message:
        return BatchRow(**message["row"])
    return None


def _record_death(worker: _Worker, out_dir: Path) -> BatchRow:
    assert worker.task is not None
    submission_id, path = worker.task
    code = worker.process.wait()
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    reason = f"the grader's worker process died while grading this submission ({how}); partial results kept"
    folder = out_dir / submission_id
    try:
        result = load_result(folder / RECORD)
        if result.status in ("graded", "error"):  # it finished just before the worker died: keep that
            return row_of(result, str(path))
        result.status = "partial"
        result.messages.append(reason)
    except (OSError, ValueError, KeyError, TypeError):
        result = error_result(submission_id, reason.replace("; partial results kept", ""),
                              time.perf_counter() - worker.started)
    from grader.reports import write_submission_reports

    write_submission_reports(result, folder, show_hidden=True)
    save_result(result, folder / RECORD)
    return row_of(result, str(path))


def _stop(worker: _Worker) -> None:
    try:
        if worker.process.stdin:
            worker.process.stdin.close()
    except OSError:
        pass
    if worker.process.poll() is None:
        try:
            worker.process.wait(timeout=5 if worker.task is None else 0.1)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
    worker.channel.close()


class _Display:
    """One line per finished submission; on a terminal, a live line with the epochs being trained."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.count, self.quiet = total, 0, quiet
        self.live = sys.stderr.isatty() and not quiet

    def done(self, row: BatchRow) -> None:
        self.count += 1
        if self.quiet:
            return
        self._clear()
        print(f"[{self.count}/{self.total}] {row.id}: {row.status} {row.score:g}/{row.max_score:g} "
              f"({row.seconds:.1f} s){' - ' + row.reason if row.reason else ''}", file=sys.stderr, flush=True)

    def tick(self, workers: list[_Worker]) -> None:
        if not self.live:
            return
        parts = []
        for worker in workers:
            if worker.task is not None:
                epoch = worker.progress
                training = f" epoch {epoch['epoch']}/{epoch['epochs']}" if epoch else ""
                parts.append(f"{worker.task[0]}{training}")
        bar_width = 20
        filled = int(bar_width * self.count / max(self.total, 1))
        text = f"[{'#' * filled}{'.' * (bar_width - filled)}] {self.count}/{self.total} " + ", ".join(parts)
        print("\r" + text[:150].ljust(150), end="", file=sys.stderr, flush=True)

    def _clear(self) -> None:
        if self.live:
            print("\r" + " " * 150 + "\r", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._clear()
