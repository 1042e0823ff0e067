"""Run a command as a subprocess and measure its wall time and the peak memory of its process tree.

Memory is sampled from /proc every 50 ms: the resident set (RSS) of the process and all its descendants,
summed. Summing RSS counts pages shared between processes more than once, so the figure is an upper
bound of what the tree really holds; the sandbox's server is a separate Python process that imports
TensorFlow itself, so the judge's process tree does hold two TensorFlows at once. Samples can miss a
spike shorter than the interval; `ru_maxrss` of the children (the largest single process, never missed)
is kept beside it as a floor.

The machine may be shared: `other_cores` is the CPU time the rest of the machine used while the command
ran (all busy CPU time from /proc/stat minus the command's own, from getrusage of the children), per
second of wall time. Anything well above zero means the figure was taken on a busy machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")
_INTERVAL = 0.05


@dataclass
class Run:
    label: str
    seconds: float
    peak_tree_bytes: int  # the largest sum of RSS over the process tree seen while it ran
    peak_single_bytes: int  # ru_maxrss of the largest single process (kernel-accounted)
    returncode: int
    output_tail: str
    other_cores: float = 0.0  # CPU used by other processes meanwhile, in cores (0 = a quiet machine)

    @property
    def peak_bytes(self) -> int:
        return max(self.peak_tree_bytes, self.peak_single_bytes)


class CommandFailed(RuntimeError):
    pass


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[1].split()
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _busy_seconds() -> float:
    """CPU time (all CPUs) spent not idle since boot, from /proc/stat."""
    with open("/proc/stat", "rb") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_load(window: float = 2.0) -> float:
    """Cores kept busy by the machine (everything, this process included) over the next `window` seconds."""
    before = _busy_seconds()
    time.sleep(window)
    return (_busy_seconds() - before) / window


def wait_until_quiet(max_wait: float, threshold: float = 0.2) -> float:
    """Wait (at most `max_wait` s) until under `threshold` cores are busy; the load last seen."""
    deadline = time.monotonic() + max_wait
    load = machine_load()
    while load > threshold and time.monotonic() < deadline:
        time.sleep(5)
        load = machine_load()
    return load


def _children_cpu() -> float:
    """CPU time of the commands run so far, and of this process (its memory sampler)."""
    total = 0.0
    for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int) -> int:
    """Sum of the resident memory of `root` and every process below it."""
    tree = _children()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _rss(pid)
        stack.extend(tree.get(pid, ()))
    return total


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop_event.wait(_INTERVAL)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run(label: str, command: list[str], env: dict[str, str], cwd: Path, log: Path | None = None,
        check: bool = True, timeout: float = 3600) -> Run:
    """Run `command`, timing it from spawn to exit; its output goes to `log` (and the last lines are kept)."""
    log = log or Path(os.devnull)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    busy_before, ours_before = _busy_seconds(), _children_cpu()
    with open(log, "wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
        sampler = _Sampler(process.pid)
        sampler.start()
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        seconds = time.perf_counter() - started
        sampler.stop()
    other = (_busy_seconds() - busy_before) - (_children_cpu() - ours_before)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is a running maximum over all of them: it only says something new when it grew.
    single = after * 1024 if after > before else 0
    tail = _tail(log)
    result = Run(label, seconds, sampler.peak, single, code, tail, max(0.0, other) / seconds)
    if check and code != 0:
        raise CommandFailed(f"{label} failed (exit {code}): {' '.join(command)}\n{tail}")
    return result


def _tail(log: Path, size: int = 3000) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
