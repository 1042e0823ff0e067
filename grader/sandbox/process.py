"""Client side: start one sandbox server process, talk to it over its pipes, drain its output, kill it.

A SandboxProcess is one life of the sandbox; the Sandbox (client.py) starts a new one after a crash.
"""

from __future__ import annotations

import collections
import fcntl
import os
import select
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.sandbox import procs
from grader.sandbox.protocol import FrameReader, ProtocolError, encode_frame
from grader.sandbox.zygote import Zygote

_NAMESPACES = ["--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc"]
MODES = {"root": "namespaces+uid", "userns": "userns", "none": "none"}
_PROBE = (
    "import ctypes,sys;l=ctypes.CDLL(None,use_errno=True);"
    "sys.exit(0 if l.mount(b'none',b'/',None,0x44000,None)==0 and "
    "l.mount(b'tmpfs',b'/tmp',b'tmpfs',0,b'size=1m')==0 else 1)"
)
# Thread and TensorFlow settings, and matplotlib's font cache (read before the lock-down): nothing else
# of the judge's environment reaches the sandbox.
_PASS_ENV = ("TF_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "CUDA_VISIBLE_DEVICES", "MPLCONFIGDIR")
_probed: dict[str, bool] = {}


class ProcessDied(Exception):
    """The server process is gone (its reply pipe reached end of file)."""


def choose_mode(forced: str | None = None) -> str:
    """The strongest isolation this machine allows: "root" (namespaces + a fresh uid), "userns"
    (an unprivileged user namespace) or "none" (an own session and rlimits only)."""
    if forced is not None:
        if forced not in MODES:
            raise ValueError(f"unknown isolation mode {forced!r}; use one of {sorted(MODES)}")
        return forced
    candidates = (["root"] if os.geteuid() == 0 else []) + ["userns"]
    return next((mode for mode in candidates if _works(mode)), "none")


def mode_problem(mode: str) -> str:
    """"" when this machine can run the sandbox in `mode`; otherwise why not, and what to use instead."""
    if mode == "none" or _works(mode):
        return ""
    if mode == "root" and os.geteuid() != 0:
        return (f"namespaces with a fresh uid need root (the grader runs as uid {os.geteuid()}); "
                "use --isolation userns, or none where user namespaces are not allowed")
    if mode == "root":
        return ("mount/pid/network namespaces are not allowed here (a container without privileges?); "
                "use --isolation userns, or none")
    return ("unprivileged user namespaces are not allowed here (kernel.unprivileged_userns_clone=0, Ubuntu's "
            "kernel.apparmor_restrict_unprivileged_userns=1, or a container without privileges); "
            "use --isolation none")


def _works(mode: str) -> bool:
    if mode not in _probed:
        command = _prefix(mode) + [sys.executable, "-S", "-c", _PROBE]
        try:
            _probed[mode] = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _probed[mode] = False
    return _probed[mode]


def _prefix(mode: str) -> list[str]:
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    if mode == "root":
        return [unshare, *_NAMESPACES]
    if mode == "userns":
        return [unshare, "--user", "--map-root-user", *_NAMESPACES]
    return []


class OutputTail:
    """The last ``limit`` bytes of everything the sandbox wrote to its stdout and stderr."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def append(self, data: bytes) -> None:
        with self._lock:
            if len(data) > self.limit:
                self.dropped += len(data) - self.limit
                data = data[-self.limit :]
            self._chunks.append(data)
            self._size += len(data)
            while self._size > self.limit:
                excess = self._size - self.limit
                first = self._chunks[0]
                if len(first) <= excess:
                    self._chunks.popleft()
                    self._size -= len(first)
                    self.dropped += len(first)
                else:
                    self._chunks[0] = first[excess:]
                    self._size -= excess
                    self.dropped += excess

    def text(self) -> str:
        with self._lock:
            data = b"".join(self._chunks)
            dropped = self.dropped
        body = data.decode("utf-8", errors="replace")
        return (f"[... {dropped} bytes of earlier output left out ...]\n" if dropped else "") + body


class SandboxProcess:
    """One running server: its pipes, its output drains and its memory watchdog."""

    def __init__(self, mode: str, config: dict[str, Any] | None, env: dict[str, str], output: OutputTail,
                 memory_limit: int, early: Sequence[str] = (), zygote: Zygote | None = None) -> None:
        """Start the server. With `config` None it waits for one (configure); `early` names the modules
        it imports meanwhile: a spare, started ahead of the submission it will serve. With `zygote`
        (a spare in mode "root" or "userns"), the spare is forked from it, `early` already imported
        there; zygote.ZygoteError means that failed, and nothing was started."""
        self.mode = mode
        self.memory_exceeded: int | None = None
        self._reader = FrameReader()
        self._pending: collections.deque[Any] = collections.deque()
        self.popen: subprocess.Popen[bytes] | Forked
        if zygote is not None:
            pid, pidfd, (self._request_w, self._reply_r, self._status_r, out, err) = zygote.fork(mode)
            self.popen = Forked(pid, pidfd, out, err)
        else:
            self._spawn(mode, config, env, early)
        os.set_blocking(self._request_w, False)
        self._drains = [_Drain(stream, output) for stream in (self.popen.stdout, self.popen.stderr)]
        for drain in self._drains:
            drain.start()
        self.watchdog = procs.MemoryWatchdog(self.pids, memory_limit, self._over_memory)
        self.watchdog.start()
        if config is not None:
            self.configure(config, memory_limit, output)

    def _spawn(self, mode: str, config: dict[str, Any] | None, env: dict[str, str], early: Sequence[str]) -> None:
        request_r, self._request_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        self._status_r, status_w = os.pipe()
        child_fds = (request_r, reply_w, status_w)
        boot = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r}); "
                "from grader.sandbox.server import main; main()")
        command = _prefix(mode) + [sys.executable, "-B", "-c", boot, *map(str, child_fds)]
        if config is None:
            command.append(("reaper" if mode != "none" else "") + ";" + ",".join(early))
        try:
            self.popen = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=child_fds, start_new_session=True, env=env, cwd="/",
            )
        finally:
            for fd in child_fds:
                os.close(fd)

    def configure(self, config: dict[str, Any], memory_limit: int, output: OutputTail) -> None:
        """Send the configuration (once); from now on the output goes to `output`, within `memory_limit`."""
        for drain in self._drains:
            drain.output = output
        self.watchdog.limit = memory_limit
        self.send(encode_frame(config), time.monotonic() + 30)

    # ------------------------------------------------------------------------------- processes

    def pids(self, table: dict[int, procs.ProcInfo] | None = None) -> list[int]:
        """The sandbox's processes. Once unshare is reaped its pid may be reused, so it is no longer
        a root to walk from (and in the namespace modes nothing of the sandbox is left by then)."""
        alive = self.alive()
        if self.mode == "none":  # orphans leave the tree but keep the session (until they setsid)
            return procs.tree(self.popen.pid if alive else -1, table, session=self.popen.pid)
        return procs.tree(self.popen.pid, table) if alive else []

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _over_memory(self, used: int) -> None:
        self.memory_exceeded = used
        self.kill()

    def kill(self) -> None:
        """Kill every process of this sandbox and reap unshare. Its child, pid 1 of the namespace,
        takes the whole namespace with it; unshare itself is spared, so that it reaps that child and
        exits (killed first, it would leave the child a zombie for the host's init to collect)."""
        self.watchdog.stop()
        spare = self.popen.pid if self.mode != "none" else None
        seen: set[int] = set()
        for _ in range(3):
            pids = [pid for pid in self.pids() if pid != spare]
            if not pids:
                break
            seen.update(pids)
            procs.kill_all(pids)
            if self.mode == "none":
                _killpg(self.popen.pid)
            time.sleep(0.01)
        try:
            self.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            procs.kill_all([self.popen.pid])
            self.popen.wait()
        procs.wait_gone(seen, timeout=2)

    def settle(self, timeout: float = 1.0) -> None:
        """Wait until the drain threads have taken in everything already written to stdout/stderr."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(drain.pending() for drain in self._drains):
                time.sleep(0.002)  # a read that returned just now has not yet counted as busy
                if not any(drain.busy for drain in self._drains):
                    return
            time.sleep(0.002)

    def close(self) -> None:
        self.kill()
        if isinstance(self.popen, Forked):
            self.popen.close()
        for fd in (self._request_w, self._reply_r, self._status_r):
            try:
                os.close(fd)
            except OSError:
                pass
        for drain in self._drains:
            drain.join(timeout=2)

    def exit_status(self) -> int | None:
        """How the server ended: its exit code, or minus the signal that killed it (None: unknown)."""
        if self.mode == "none":
            return self.popen.poll()
        if not _ready(self._status_r, select.POLLIN, 0.5):
            return None
        try:
            messages = FrameReader().feed(os.read(self._status_r, 4096))
        except (OSError, ProtocolError):
            return None
        status = messages[0].get("status") if messages and isinstance(messages[0], dict) else None
        return status if isinstance(status, int) else None

    # --------------------------------------------------------------------------------- messages

    def send(self, frame: bytes, deadline: float) -> bool:
        """Write one encoded frame; False when the deadline passed first (the server is not reading)."""
        view = memoryview(frame)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not _ready(self._request_w, select.POLLOUT, min(remaining, 0.2)):
                if not self.alive():
                    raise ProcessDied()
                continue
            try:
                view = view[os.write(self._request_w, view) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise ProcessDied() from None
        return True

    def receive(self, deadline: float) -> Any | None:
        """The next message, or None when the deadline passes first. Raises ProcessDied at end of
        file and ProtocolError for a malformed or oversized frame."""
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not _ready(self._reply_r, select.POLLIN, min(remaining, 0.2)):
                if not self.alive() and not _ready(self._reply_r, select.POLLIN, 0):
                    raise ProcessDied()
                continue
            data = os.read(self._reply_r, 1 << 20)
            if not data:
                raise ProcessDied()
            self._pending.extend(self._reader.feed(data))
        return self._pending.popleft()


class Forked:
    """A sandbox forked by the zygote, as SandboxProcess sees it: the part of subprocess.Popen it uses.
    Its parent is the zygote, so a pidfd says when it has ended; its exit status comes through the
    status pipe, as unshare's does."""

    def __init__(self, pid: int, pidfd: int, stdout: int, stderr: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd  # open until close(): the memory watchdog's thread and the caller's poll it at once
        self._lock = threading.Lock()
        self.stdout = os.fdopen(stdout, "rb", buffering=0)
        self.stderr = os.fdopen(stderr, "rb", buffering=0)

    def poll(self) -> int | None:
        with self._lock:
            return self._poll_locked()

    def _poll_locked(self) -> int | None:
        if self.returncode is None and self._pidfd >= 0 and _ready(self._pidfd, select.POLLIN, 0):
            self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._lock:
            pidfd = self._pidfd
        if self.poll() is None and pidfd >= 0 and not _ready(pidfd, select.POLLIN,
                                                             86400.0 if timeout is None else timeout):
            raise subprocess.TimeoutExpired("forked sandbox", timeout or 0)
        return self.poll() or 0

    def close(self) -> None:
        """Close the pidfd, once (after the sandbox was killed and waited for)."""
        with self._lock:
            if self._pidfd >= 0:
                self._poll_locked()
                os.close(self._pidfd)
                self._pidfd = -1


def _ready(fd: int, events: int, timeout: float) -> bool:
    """poll(), not select(): file descriptor numbers above 1024 are fine."""
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(max(0, int(timeout * 1000))))


class _Drain(threading.Thread):
    """Reads one of the sandbox's output pipes into the shared tail until end of file."""

    def __init__(self, stream: Any, output: OutputTail) -> None:
        super().__init__(name="sandbox-output", daemon=True)
        self.stream = stream
        self.fd = stream.fileno()
        self.output = output
        self.busy = False  # between a read and its append

    def run(self) -> None:
        try:
            while chunk := os.read(self.fd, 1 << 16):
                self.busy = True
                self.output.append(chunk)
                self.busy = False
        except OSError:
            pass
        finally:
            self.busy = False
            self.stream.close()

    def pending(self) -> bool:
        """Bytes still in the pipe (or in hand): only while this thread runs, so the fd is still ours."""
        if not self.is_alive():
            return False
        if self.busy:
            return True
        try:
            return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0] > 0
        except OSError:
            return False


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def sandbox_env(home: str, seed: int) -> dict[str, str]:
    """A small, explicit environment (see _PASS_ENV)."""
    env = {key: value for key, value in os.environ.items() if key.startswith(_PASS_ENV)}
    env.update(
        PATH=os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        HOME=home,
        PYTHONHASHSEED=str(seed % 2**32),
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
