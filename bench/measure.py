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


_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, int, float]]:
    """pid -> (parent pid, start time in ticks, CPU seconds used by the process itself), from /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # after the command: state ppid ... utime(12) stime(13) ... starttime(20), counted from "state" = 0
        table[int(entry.name)] = (int(fields[1]), int(fields[19]), (int(fields[11]) + int(fields[12])) / _TICK)
    return table


def _tree(root: int, table: dict[int, tuple[int, int, float]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


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


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int) -> int:
    """Sum of the resident memory of `root` and every process below it."""
    return sum(_rss(pid) for pid in _tree(root, _processes()))


class _Sampler(threading.Thread):
    """Every 50 ms: the tree's summed RSS (keeping the peak) and the CPU time of each of its processes.

    The CPU time is kept per process as last seen, because the sandbox's processes die in their own
    pid namespace and are never waited for by the command: getrusage of the children misses them.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self.cpu: dict[tuple[int, int], float] = {}  # (pid, start time) -> CPU seconds last seen
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            table = _processes()
            members = _tree(self.pid, table)
            self.peak = max(self.peak, sum(_rss(pid) for pid in members))
            for pid in members:
                self.cpu[(pid, table[pid][1])] = table[pid][2]
            self._stop_event.wait(_INTERVAL)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run(label: str, command: list[str], env: dict[str, str], cwd: Path, log: Path | None = None,
        check: bool = True, timeout: float = 3600) -> Run:
    """Run `command`, timing it from spawn to exit; its output goes to `log` (and the last lines are kept)."""
    log = log or Path(os.devnull)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    busy_before = _busy_seconds()
    children_before, self_before = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
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
    # The command's CPU: what getrusage saw of the waited-for children, or what the sampler saw of the whole
    # tree (it misses the last 50 ms of each process, getrusage misses the sandbox): the larger; plus the sampler's.
    command_cpu = max(_cpu(resource.RUSAGE_CHILDREN) - children_before, sum(sampler.cpu.values()))
    other = (_busy_seconds() - busy_before) - command_cpu - (_cpu(resource.RUSAGE_SELF) - self_before)
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
