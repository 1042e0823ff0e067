"""Client side: find a sandbox's processes in /proc, measure their memory, kill them.

Every reading tolerates processes that vanish mid-scan. Without /proc (macOS, or a container that hides
it), the process table comes from `ps` instead, polled less often: the sandbox's mode "none" still has a
memory limit there, only a coarser one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    session: int
    rss: int  # bytes
    threads: int = 1


def has_proc() -> bool:
    return os.path.isdir("/proc/self")


def snapshot() -> dict[int, ProcInfo]:
    """Every process on the machine (thread-group leaders only), by pid."""
    if not has_proc():
        return _ps_snapshot()
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        if len(rest) < 22:
            continue
        pid = int(name)
        table[pid] = ProcInfo(pid, int(rest[1]), int(rest[3]), int(rest[21]) * _PAGE, int(rest[17]))
    return table


def _ps_snapshot() -> dict[int, ProcInfo]:
    """The process table from `ps` (POSIX keywords; rss in KiB), where there is no /proc."""
    try:
        done = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "sess=", "-o", "rss="],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    table = {}
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and all(f.isdigit() for f in fields):
            pid, ppid, session, rss = map(int, fields)
            table[pid] = ProcInfo(pid, ppid, session, rss * 1024)
    return table


def tree(root: int, table: dict[int, ProcInfo] | None = None, session: int | None = None) -> list[int]:
    """root and all its descendants; with ``session``, also every process still in that session
    (catches orphans that were re-parented to init outside a pid namespace)."""
    table = snapshot() if table is None else table
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found, stack = set(), [root] if root in table else []
    if session is not None:
        stack += [info.pid for info in table.values() if info.session == session]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return sorted(found)


def pss(pids: Iterable[int]) -> int:
    """Proportional set size (shared pages split between their users), in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_gone(pids: Iterable[int], timeout: float) -> None:
    """Until these processes have left /proc (killed processes linger a moment as zombies)."""
    deadline = time.monotonic() + timeout
    remaining = set(pids)
    while remaining and time.monotonic() < deadline:
        remaining = {pid for pid in remaining if _exists(pid)}
        if remaining:
            time.sleep(0.005)


def _exists(pid: int) -> bool:
    if has_proc():
        return os.path.exists(f"/proc/{pid}")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MemoryWatchdog(threading.Thread):
    """Every ``interval`` s, sum the resident memory of a sandbox's processes (``pids`` picks them from
    a snapshot); over the limit (checked
    again with PSS, so pages shared after a fork count once), call ``on_exceeded`` and stop."""

    def __init__(self, pids: Callable[[dict[int, ProcInfo]], list[int]], limit: int, on_exceeded: Callable[[int], None],
                 interval: float = 0.1) -> None:
        super().__init__(name="sandbox-memory-watchdog", daemon=True)
        self._pids = pids
        self.limit = limit
        self._on_exceeded = on_exceeded
        self._interval = interval if has_proc() else max(interval, 0.5)  # `ps` costs a process each time
        self._stop_event = threading.Event()
        self.peak = 0

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            table = snapshot()
            pids = [pid for pid in self._pids(table) if pid in table]
            if not pids:
                continue
            used = sum(table[pid].rss for pid in pids if pid in table)
            if used > self.limit:
                used = pss(pids) or used  # no smaps without /proc: resident memory as measured
            self.peak = max(self.peak, used)
            if used > self.limit:
                self._on_exceeded(used)
                return

    def stop(self) -> None:
        self._stop_event.set()
