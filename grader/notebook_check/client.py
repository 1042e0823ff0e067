"""The kernel's side of grader.check(): one judge process (server.py) per kernel, started on the first check
and kept for the next ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import grader


class GraderFault(RuntimeError):
    """The grader itself failed while checking: not the student's mistake, and no score."""


class JudgeProcess:
    """`python -m grader.notebook_check.server`, started when first needed, restarted if it died."""

    command = (sys.executable, "-m", "grader.notebook_check.server")

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def request(self, payload: dict[str, Any], on_progress: Callable[[int, int], None]) -> dict[str, Any]:
        """Send one grading request; the answer ({"result"}, {"unusable"} or {"error"}). Progress reports go to
        `on_progress`. An interrupt (the notebook's stop button) stops the judge: the next check starts afresh."""
        with self._lock:
            process = self._ensure()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(payload) + "\n")
                process.stdin.flush()
                for line in process.stdout:
                    message = json.loads(line)
                    if "progress" in message:
                        on_progress(*message["progress"])
                        continue
                    return dict(message)
            except KeyboardInterrupt:
                self._stop(process)
                raise
            except (BrokenPipeError, ValueError):  # it died while we wrote, or wrote something else than an answer
                self._stop(process)
            code = process.wait()
            self._close_pipes(process)
            self._process = None
            raise GraderFault(f"the grader's judge process stopped (exit code {code}) before it answered. This "
                              "is not a mistake in your code; please report it with the end of its log:\n"
                              + self.log_tail())

    def log_tail(self, limit: int = 3000) -> str:
        if self._log is None:
            return ""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")[-limit:]

    def close(self) -> None:
        """Stop the judge and remove its log (at the kernel's exit, or to start afresh)."""
        with self._lock:
            if self._process is not None:
                self._stop(self._process)
            self._process = None
            if self._log is not None:
                self._log.close()
                Path(self._log.name).unlink(missing_ok=True)
                self._log = None

    def _ensure(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        if self._process is not None:
            self._close_pipes(self._process)
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
        self._log = tempfile.NamedTemporaryFile(prefix="convgrader-check-", suffix=".log", delete=False)
        self._process = subprocess.Popen(
            list(self.command),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, encoding="utf-8",
            bufsize=1, env=_environment(), cwd=tempfile.gettempdir(),
        )
        return self._process

    @classmethod
    def _stop(cls, process: subprocess.Popen[str]) -> None:
        """SIGINT first, so that the judge closes its sandboxes; then, after 10 s, SIGKILL."""
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        cls._close_pipes(process)

    @staticmethod
    def _close_pipes(process: subprocess.Popen[str]) -> None:
        for pipe in (process.stdin, process.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # e.g. a broken pipe while flushing stdin
                pass


def _environment() -> dict[str, str]:
    """The kernel's environment, with this grader first on the path (the judge must be the grader the kernel
    imported) and matplotlib off the notebook's inline backend."""
    root = str(Path(grader.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
