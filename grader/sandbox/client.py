"""The judge's handle on a submission's sandbox: call student functions, get data back, never run them here.

Design note: the layers of isolation
====================================
Student code runs only in the sandbox server (``grader/sandbox/server.py``), a separate Python process.
The judging process treats everything that comes back as untrusted data.

1. Data, not objects. Requests and replies are length-prefixed JSON frames on dedicated pipes
   (protocol.py); arrays travel as ``.npy`` bytes without pickle, Keras models as their JSON
   config, anything else as an Opaque (type name + short repr). Frames over 256 MiB are refused. The
   judge never sends an expected answer into the sandbox.
2. Namespaces (mode "root", isolation ``namespaces+uid``). The server is started through
   ``unshare --mount --net --pid --ipc --uts --fork --kill-child --mount-proc``: no network (only a
   downed loopback), its own pid namespace (it sees and can signal only its own processes; when its
   pid 1 dies, the kernel kills them all) and a private mount namespace.
3. Filesystem (lockdown.py). After importing numpy/TensorFlow/Keras and the judge's drivers, and
   before any student code, the server mounts a fresh tmpfs (``Limits.tmp_size``) on /tmp, with
   /var/tmp and /dev/shm as folders of it; copies the submission into /tmp/work (HOME is
   /tmp/work/home); covers every ``hide`` path (and a closed folder above Python, e.g. /root with mode
   700) with an empty read-only tmpfs, putting back only the Python installation where it lies inside
   one; and remounts every other mount read-only and nosuid.
   Nothing the student writes reaches the host; the grader's tree, solutions, outputs, caches and
   other submissions are simply absent.
4. Privileges. The server then drops to a fresh uid/gid (60000 + random, unused by any process, so
   sandboxes cannot signal each other), with no supplementary groups, no capabilities, no_new_privs,
   RLIMIT_NPROC (``Limits.nproc``), RLIMIT_CORE=0 and RLIMIT_DATA (memory mapped at lock-down plus
   ``Limits.memory``, so one huge allocation fails as a MemoryError in the student's code).
5. Resources, enforced from outside. A watchdog thread here sums the resident memory (PSS when shared
   pages could be double counted) of all the sandbox's processes every 0.1 s and kills the sandbox
   over ``Limits.memory``; each request has a wall-clock deadline, after which the whole sandbox is
   killed. stdout/stderr are drained by threads into a bounded tail, so floods neither block nor grow.
   If the judge dies, even mid-call, the server sees its request pipe hang up and exits.
6. Failure memory. A function that hung, crashed or blew the memory is remembered and fails at once
   when called again (its module too, if that happened while importing it); other functions get a
   fresh sandbox, started lazily.

What student code can still see: the sandbox server's own memory (its process is the student's), so
the server code, the protocol and the judge's drivers module are readable there; drivers must hold no
expected answers and import everything they need at import time (the grader's tree is hidden
afterwards). The drivers module is restored to its imported state before every request, so patching it
gains nothing later; a student function can still tamper with the driver that is running it, so a
driver's observations deserve no more trust than the student's own return values. The Python
installation, system libraries and /usr/share/datasets stay visible, read-only.

A batch worker starts its sandboxes from a zygote (zygote.py): one process per worker that imported
numpy/TensorFlow/Keras once and forks each sandbox, which then sets up the same namespaces itself (the
``unshare`` steps above, by ``unshare(2)``) and goes on exactly as a started one; the tests run the
sandbox's isolation checks on both kinds. What a forked sandbox shares with the others of its worker:
the libraries' pages (copy-on-write) and their address layout.

Without root, the same runs in an unprivileged user namespace (``userns``: no uid change; capabilities
are dropped in the server's main thread only, so threads TensorFlow started earlier keep theirs:
weaker). Where that fails too (``none``): an own session, rlimits, the client's watchdogs, and
nothing hidden. ``Sandbox.isolation`` says which one ran; the judge reports anything but the first.
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.faults import DOCTOR, GraderFault
from grader.sandbox import procs
from grader.sandbox.errors import (
    CallResult,
    Limits,
    ModuleMissing,
    SandboxCrashed,
    SandboxError,
    SandboxMemoryError,
    SandboxTimeout,
    StudentError,
    describe_size,
)
from grader.sandbox.process import MODES, OutputTail, ProcessDied, SandboxProcess, choose_mode, sandbox_env
from grader.sandbox.protocol import ProtocolError, decode_value, encode_frame, encode_value
from grader.sandbox.rootfs import python_paths
from grader.sandbox.zygote import Zygote, ZygoteError

DEFAULT_PRELOAD = ("numpy", "tensorflow", "keras")
STARTUP_TIMEOUT = 180.0
_SPARE_THREADS = 64  # threads a call may leave behind (TensorFlow grows its pools) before a restart
_UID_BASE = 60000
_UID_SPAN = 1_000_000
_DEFAULT_LIMITS = Limits()


class SandboxStartError(SandboxError, GraderFault):
    """The sandbox itself could not start: a problem of the grader's machine, not of the submission."""

    fix = DOCTOR


class Sandbox:
    """One submission's sandbox; see the design note above. One caller at a time (guarded by a lock)."""

    def __init__(
        self,
        submission_dir: Path,
        limits: Limits = _DEFAULT_LIMITS,
        *,
        hide: Sequence[Path] = (),
        drivers: str | None = None,
        seed: int = 0,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        isolation: str | None = None,  # force "root", "userns" or "none" (tests); None: the strongest
    ) -> None:
        self.submission_dir = Path(submission_dir).resolve()
        if not self.submission_dir.is_dir():
            raise ValueError(f"{submission_dir} is not a folder")
        self.limits = limits
        self.hide = [str(Path(p).resolve()) for p in hide]
        if "/" in self.hide:
            raise ValueError("the sandbox cannot hide the root folder")
        self.drivers = drivers
        self.seed = int(seed)
        self.preload = tuple(preload)
        self._forced = isolation
        self._mode: str | None = None
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._output = OutputTail(limits.output_tail)
        self._process: SandboxProcess | None = None
        self._ready = False
        self._baseline: tuple[int, int] = (0, 0)
        self._scratch: list[str] = []  # client-side temp folders of the current process
        self._boot_home = ""
        self._fatal: dict[tuple[str, str], SandboxError] = {}  # (module or "<driver>", function)
        self._poisoned: dict[str, SandboxError] = {}  # modules whose import killed the sandbox
        self._start_error: SandboxStartError | None = None
        self._closed = False
        self.starts = 0
        self.spares_used = 0  # how many of those starts took a spare process (see keep_spare_sandbox)
        self.info: dict[str, Any] = {}

    # --------------------------------------------------------------------------------- public API

    @property
    def isolation(self) -> str:
        """How isolated this sandbox runs: "namespaces+uid", "userns", "none+uid" (no namespaces, but root
        could still run it as a fresh uid) or "none"."""
        if self._mode is None:
            self._mode = choose_mode(self._forced)
        if self._mode == "none" and _uid_drop_possible():
            return "none+uid"
        return MODES[self._mode]

    def start(self) -> None:
        """Spawn the server now without waiting for it (TensorFlow loads while the caller goes on)."""
        with self._lock:
            self._ensure_process()

    def call(self, module: str, function: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return self.call_full(module, function, *args, timeout=timeout, **kwargs).value

    def call_full(self, module: str, function: str, *args: Any, timeout: float | None = None,
                  **kwargs: Any) -> CallResult:
        return self._request("call", module, function, args, kwargs, timeout)

    def attr(self, module: str, name: str) -> Any:
        return self._request("attr", module, name, (), {}, None).value

    def has(self, module: str, name: str) -> bool:
        return bool(self._request("has", module, name, (), {}, None).value)

    def drive(self, driver: str, *args: Any, timeout: float | None = None, blame: tuple[str, str] | None = None,
              **kwargs: Any) -> Any:
        """Run a judge driver; `blame` = (module, function) it exercises, so that a hang or crash is
        remembered against that student function (one timeout per function, whichever driver met it)."""
        return self._request("drive", "", driver, args, kwargs, timeout, blame).value

    def output_tail(self) -> str:
        with self._lock:
            if self._process is not None:
                self._process.settle()
        return self._output.text()

    def memory_in_use(self) -> int:
        """Resident memory of all the sandbox's processes now, in bytes (0 when none is running)."""
        with self._lock:
            if self._process is None:
                return 0
            table = procs.snapshot()
            return sum(table[pid].rss for pid in self._process.pids(table) if pid in table)

    def kill(self) -> None:
        """Kill the server now, from any thread, without waiting for the request it runs (that request
        fails as a crash). The sandbox stays usable: the next request starts a fresh server."""
        process = self._process
        if process is not None:
            process.kill()

    def cut_off(self) -> None:
        """From any thread: no request runs any more (the one in flight is killed and fails; later ones fail
        at once). For a submission whose time budget ran out."""
        self._closed = True
        self.kill()

    def would_fork(self) -> bool:
        """Whether another sandbox like this one would start now by a fork of this process's zygote,
        without importing TensorFlow again (see _Spares)."""
        mode = self._mode or choose_mode(self._forced)
        return _spares.would_fork((mode, self.seed, self.preload))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._discard()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- processes

    def _ensure_process(self) -> SandboxProcess:
        if self._closed:
            raise SandboxError("the sandbox was closed")
        if self._start_error is not None:
            raise self._start_error
        if self._process is not None and self._process.alive():
            return self._process
        self._discard()
        mode = self._mode = self._mode or choose_mode(self._forced)
        spare_key = (mode, self.seed, self.preload)  # what a spare must have been started with
        spare = _spares.take(spare_key, self.limits)
        config: dict[str, Any] = {
            "mode": mode, "reaper": mode != "none", "submission": str(self.submission_dir),
            "hide": self.hide, "tmp_size": self.limits.tmp_size, "memory": self.limits.memory,
            "nproc": self.limits.nproc, "preload": list(self.preload), "drivers": self.drivers,
            "seed": self.seed, "poisoned": sorted(self._poisoned), "workdir": None,
            "sys_path": [os.path.abspath(p) if p else os.getcwd() for p in sys.path],
        }
        if mode == "root" or (mode == "none" and _uid_drop_possible()):
            config["uid"] = config["gid"] = _free_uid()  # mode none as root: still not the student's root
        if mode == "none":
            config["workdir"] = tempfile.mkdtemp(prefix="convgrader-work-")
            self._scratch.append(config["workdir"])
        if spare is not None:
            self._process, self._boot_home = spare
            self._process.configure(config, self.limits.memory, self._output)
        else:
            self._boot_home = tempfile.mkdtemp(prefix="convgrader-boot-home-")  # HOME until the lock-down
            self._process = SandboxProcess(mode, config, sandbox_env(self._boot_home, self.seed), self._output,
                                           self.limits.memory)
        self._scratch.append(self._boot_home)
        self._ready = False
        self.starts += 1
        self.spares_used += spare is not None
        _spares.replenish(spare_key, self.limits)
        return self._process

    def _await_ready(self, process: SandboxProcess) -> None:
        if self._ready:
            return
        deadline = time.monotonic() + STARTUP_TIMEOUT
        problem = None
        try:
            while problem is None:
                message = process.receive(deadline)
                if message is None:
                    problem = f"it did not start within {STARTUP_TIMEOUT:g} s"
                elif message.get("event") == "ready":
                    self._ready = True
                    self._baseline = self._usage(process)
                    self.info = message
                    shutil.rmtree(self._boot_home, ignore_errors=True)  # no longer needed
                    return
                elif message.get("event") == "startup_failed":
                    problem = str(message.get("message"))[:2000]
        except (ProcessDied, ProtocolError) as exc:
            problem = f"it ended while starting ({exc or 'exit status ' + str(process.exit_status())})"
            if process.memory_exceeded:
                problem = f"starting it took more than its {describe_size(self.limits.memory)} memory limit"
        self._discard()
        self._start_error = SandboxStartError(
            f"The grader's sandbox could not start: {problem}.\n{self._output.text()[-3000:]}"
        )
        raise self._start_error

    def _usage(self, process: SandboxProcess) -> tuple[int, int]:
        """(processes, threads) of the sandbox right now."""
        table = procs.snapshot()
        pids = [pid for pid in process.pids(table) if pid in table]
        return len(pids), sum(table[pid].threads for pid in pids)

    def _healthy(self, process: SandboxProcess) -> bool:
        """After a call that failed: did it leave processes or a pile of threads behind?

        A thread bomb that ended in "can't start new thread" leaves its threads (and their stacks)
        running; the next exercise's correct code would then fail for want of resources.
        """
        processes, threads = self._usage(process)
        base_processes, base_threads = self._baseline
        return processes <= base_processes and threads <= base_threads + _SPARE_THREADS

    def _discard(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
        self._ready = False
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)
        self._scratch.clear()

    # ----------------------------------------------------------------------------------- requests

    def _request(self, op: str, module: str, target: str, args: Sequence[Any], kwargs: dict[str, Any],
                 timeout: float | None, blame: tuple[str, str] | None = None) -> CallResult:
        with self._lock:
            key = blame or (("<driver>", target) if op == "drive" else (module, target))
            if module in self._poisoned:
                raise _again(self._poisoned[module])
            if key in self._fatal:
                raise _again(self._fatal[key])
            request_id = next(self._ids)
            request = encode_frame({  # EncodeError here is the caller's bug, raised as is
                "op": op, "id": request_id, "module": module, "function": target,
                "args": encode_value(list(args)), "kwargs": encode_value(dict(kwargs)),
            })
            process = self._ensure_process()
            self._await_ready(process)
            limit = self.limits.timeout if timeout is None else float(timeout)
            progress = _Progress(op, module, target)
            deadline = time.monotonic() + limit
            try:
                if process.send(request, deadline):
                    while (message := process.receive(deadline)) is not None:
                        if "event" in message:
                            progress.update(message)
                            continue
                        if message.get("id") != request_id:
                            raise ProtocolError("a reply to another request arrived")
                        try:
                            return self._result(message, progress)
                        except SandboxError:
                            if not self._healthy(process):
                                self._discard()  # the next call gets a fresh process, not this one's debris
                            raise
                failure: SandboxError = SandboxTimeout(
                    progress.timeout_message(limit), module=progress.module, function=target
                )
            except ProcessDied:
                failure = self._death(process, progress)
            except ProtocolError as exc:
                failure = SandboxCrashed(f"the sandbox sent a broken reply while {progress.doing()}: {exc}")
            self._discard()
            if progress.importing:
                self._poisoned[progress.importing] = failure
            else:
                self._fatal[key] = failure
            raise failure

    def _death(self, process: SandboxProcess, progress: _Progress) -> SandboxError:
        if process.memory_exceeded is not None:
            return SandboxMemoryError(
                f"the sandbox ran out of its {describe_size(self.limits.memory)} memory limit while "
                f"{progress.doing()}"
            )
        status = process.exit_status()
        if status is not None and status < 0:
            return SandboxCrashed(
                f"the sandbox process was killed by signal {-status} ({_signal_name(-status)}) while "
                f"{progress.doing()}"
            )
        if progress.importing and status is not None:
            return SandboxCrashed(f"{progress.importing}.py exited during import (exit status {status})")
        ending = f"exited with status {status}" if status is not None else "ended unexpectedly"
        return SandboxCrashed(f"the sandbox process {ending} while {progress.doing()}")

    def _result(self, message: dict[str, Any], progress: _Progress) -> CallResult:
        stdout = str(message.get("stdout", ""))
        if message.get("ok") is True:
            seconds = message.get("seconds")
            return CallResult(
                value=decode_value(message.get("value")),
                stdout=stdout,
                seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0,
            )
        error = message.get("error")
        if not isinstance(error, dict):
            raise ProtocolError("an error reply without an error")
        exc = self._error(error, progress)
        exc.stdout = stdout
        raise exc

    def _error(self, error: dict[str, Any], progress: _Progress) -> SandboxError:
        kind = error.get("kind")
        fields = {name: str(error.get(name) or "") for name in
                  ("exc_type", "exc_message", "traceback", "phase", "module", "function")}
        module = fields["module"] or progress.module
        if kind == "poisoned" and module in self._poisoned:
            return _again(self._poisoned[module])
        if kind == "missing":
            return ModuleMissing(f"the submission has no {module}.py", **{**fields, "module": module})
        if kind == "exit":
            if fields["phase"] == "import":
                return SandboxCrashed(f"{module}.py exited during import ({fields['exc_message']})")
            return SandboxCrashed(f"{progress.who} exited ({fields['exc_message']})")
        if kind == "too_large":
            return SandboxError(fields["exc_message"])
        if kind == "student":
            return StudentError(_student_message(fields, progress, self.limits), **fields)
        raise GraderFault(f"the sandbox could not run the grader's request: {fields['exc_message']}")


class _Progress:
    """What the server reported doing during one request (which module it was importing)."""

    def __init__(self, op: str, module: str, target: str) -> None:
        self.op = op
        self.module = module
        self.who = target if op in ("call", "drive") else f"{module}.{target}"
        self.importing: str | None = None

    def update(self, message: dict[str, Any]) -> None:
        event, module = message.get("event"), str(message.get("module", ""))
        if event == "importing":
            self.importing = module
            self.module = self.module or module
        elif event in ("imported", "import_failed"):
            self.importing = None

    def doing(self) -> str:
        return f"importing {self.importing}.py" if self.importing else f"running {self.who}"

    def timeout_message(self, limit: float) -> str:
        if self.importing:
            return f"importing {self.importing}.py did not finish within {limit:g} s"
        return f"{self.who} did not return within {limit:g} s"


def _student_message(fields: dict[str, str], progress: _Progress, limits: Limits) -> str:
    if fields["phase"] == "import":
        who = f"importing {fields['module'] or progress.module}.py"
    else:
        who = progress.who
    exc_type, text = fields["exc_type"], fields["exc_message"]
    message = f"{who} raised {exc_type}: {text}" if text else f"{who} raised {exc_type}"
    if exc_type == "MemoryError":
        message += f" (the sandbox's memory limit is {describe_size(limits.memory)})"
    if "\n  File " in "\n" + fields["traceback"]:
        message += "\nTraceback (your code only):\n" + fields["traceback"].rstrip("\n")
    return message


def _again(exc: SandboxError) -> SandboxError:
    """The remembered failure, for a call that is not run again."""
    message = f"{exc.message} earlier, so it was not run again"
    if isinstance(exc, SandboxTimeout):
        return SandboxTimeout(message, module=exc.module, function=exc.function, retried=False)
    return type(exc)(message)


class _Spares:
    """At most one sandbox server started ahead of need, for a process that grades one submission after
    another (a batch worker): it imports TensorFlow while the current submission is graded, and the next
    sandbox takes it, configured for its own submission only then. It has run nothing but the trusted
    imports; the lock-down, the fresh uid and the submission all come with the configuration.

    In modes "root" and "userns" the spare comes from a zygote (zygote.py) instead: one process that
    imported the libraries once and forks each spare when it is taken. Should the zygote fail, this
    process goes back to starting spares as above."""

    def __init__(self) -> None:
        self.enabled = False
        self.use_zygote = True
        self._lock = threading.Lock()
        self._held: tuple[tuple[Any, ...], SandboxProcess, str] | None = None
        self._zygote: tuple[tuple[Any, ...], Zygote, str] | None = None
        self._zygote_failed: set[tuple[Any, ...]] = set()

    def take(self, key: tuple[Any, ...], limits: Limits) -> tuple[SandboxProcess, str] | None:
        forked = self._fork(key, limits)
        if forked is not None:
            return forked
        with self._lock:
            held, self._held = self._held, None
        if held is None:
            return None
        if held[0] == key and held[1].alive():
            return held[1], held[2]
        _close_spare(held[1], held[2])
        return None

    def would_fork(self, key: tuple[Any, ...]) -> bool:
        with self._lock:
            held = self._zygote
        return held is not None and held[0] == key and held[1].alive()

    def _fork(self, key: tuple[Any, ...], limits: Limits) -> tuple[SandboxProcess, str] | None:
        with self._lock:
            held = self._zygote
        if held is None or held[0] != key:
            return None
        output = OutputTail(limits.output_tail)
        try:
            return SandboxProcess(key[0], None, {}, output, limits.memory, zygote=held[1]), ""
        except ZygoteError:
            with self._lock:
                self._zygote_failed.add(key)
                self._zygote = None
            _close_zygote(held[1], held[2])
            return None

    def replenish(self, key: tuple[Any, ...], limits: Limits) -> None:
        if not self.enabled:
            return
        mode, seed, preload = key
        if self.use_zygote and mode != "none" and key not in self._zygote_failed:
            self._replenish_zygote(key)
            return
        with self._lock:
            if self._held is not None:
                return
            home = tempfile.mkdtemp(prefix="convgrader-boot-home-")
            output = OutputTail(limits.output_tail)
            self._held = (key, SandboxProcess(mode, None, sandbox_env(home, seed), output, limits.memory,
                                              early=preload), home)

    def _replenish_zygote(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            held = self._zygote
            if held is not None and held[0] == key and held[1].alive():
                return
            self._zygote = None
        if held is not None:
            _close_zygote(held[1], held[2])
        mode, seed, preload = key
        home = tempfile.mkdtemp(prefix="convgrader-boot-home-")
        zygote = Zygote(sandbox_env(home, seed), preload)
        with self._lock:
            self._zygote = (key, zygote, home)

    def state(self) -> SpareState:
        with self._lock:
            held, zygote, failed = self._held, self._zygote, bool(self._zygote_failed)
        return SpareState(
            spare=held is not None and held[1].alive(),
            zygote_mode=zygote[0][0] if zygote is not None else None,
            zygote_pid=zygote[1].popen.pid if zygote is not None else None,
            zygote_failed=failed,
        )

    def discard(self, forget_failures: bool = False) -> None:
        with self._lock:
            held, self._held = self._held, None
            zygote, self._zygote = self._zygote, None
            if forget_failures:
                self._zygote_failed.clear()
        if held is not None:
            _close_spare(held[1], held[2])
        if zygote is not None:
            _close_zygote(zygote[1], zygote[2])


def _close_spare(process: SandboxProcess, home: str) -> None:
    process.close()
    shutil.rmtree(home, ignore_errors=True)


def _close_zygote(zygote: Zygote, home: str) -> None:
    zygote.close()
    shutil.rmtree(home, ignore_errors=True)


_spares = _Spares()


@dataclass(frozen=True)
class SpareState:
    """What this process holds for its next Sandbox (see keep_spare_sandbox)."""

    spare: bool  # a live server started ahead, not from a zygote
    zygote_mode: str | None  # the mode of the zygote held, or None
    zygote_pid: int | None
    zygote_failed: bool  # a zygote failed in this process: spares are processes from then on


def keep_spare_sandbox(enabled: bool = True, *, zygote: bool = True) -> None:
    """Whether each Sandbox of this process, once started, starts a spare for the next one (batch
    workers), from a zygote where the mode allows (`zygote`) or as a process. A spare already held stays
    for the next Sandbox; it is stopped when this process exits."""
    _spares.enabled = enabled
    _spares.use_zygote = zygote


def spare_state() -> SpareState:
    return _spares.state()


def discard_spares(forget_failures: bool = False) -> None:
    """Stop what is held for the next Sandbox (and, with forget_failures, try zygotes again)."""
    _spares.discard(forget_failures)


atexit.register(_spares.discard)


def _uid_drop_possible() -> bool:
    """As root without namespaces (a container such as Gradescope's): can the sandbox run as a fresh uid,
    that is, can any user reach and read the Python installation (not pyenv's under /root, mode 700)?"""
    if os.geteuid() != 0:
        return False
    return all(_open_to_others(path) for path in (sys.executable, *python_paths()))


def _open_to_others(path: str) -> bool:
    real = os.path.realpath(path)
    parts = real.strip("/").split("/")
    for depth in range(1, len(parts)):
        try:
            if not os.stat("/" + "/".join(parts[:depth])).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IROTH and (mode & stat.S_IXOTH or not stat.S_ISDIR(mode)))


def _free_uid() -> int:
    """A uid no process uses now, so this sandbox cannot signal or ptrace another one."""
    used = set()
    for pid in procs.snapshot():
        try:
            used.add(os.stat(f"/proc/{pid}").st_uid)
        except OSError:
            continue
    while True:
        uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
        if uid not in used:
            return uid


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"
