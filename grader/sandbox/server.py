"""The sandbox server: imports the heavy libraries once, locks itself down, then runs requests.

Started only by grader.sandbox.client as ``python -c <boot> REQUEST_FD REPLY_FD STATUS_FD``. The
first frame on REQUEST_FD is the configuration; replies and events go to REPLY_FD; when the server
runs as pid 1 of its own pid namespace it forks, and the parent stays pid 1 as a reaper that writes
the server's exit status on STATUS_FD. Nothing here is trusted by the client once student code ran.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import os
import select
import signal
import sys
import threading
from typing import Any

from grader.sandbox import canary
from grader.sandbox.lockdown import Plan, lock_down
from grader.sandbox.pool import ModelPool
from grader.sandbox.protocol import EncodeError, decode_value, encode_frame, encode_value, read_frame
from grader.sandbox.rootfs import python_paths
from grader.sandbox.runner import (
    Capture,
    ImportFailed,
    StudentModules,
    describe,
    model_to_spec,
    payload_to_model,
    seed_everything,
    timed,
)

CAPTURE_LIMIT = 16 * 1024


class _Internal(Exception):
    """The judge's request itself was wrong (unknown driver, bad arguments): not the student's fault."""


class _StartupLog:
    """Whatever the trusted imports print (TensorFlow's start-up chatter) goes to an in-memory file,
    not into the student's output; it is reported only if the start-up fails."""

    def __enter__(self) -> _StartupLog:
        self.text = ""
        for stream in (sys.stdout, sys.stderr):
            _flush_quietly(stream)
        self.saved = [os.dup(1), os.dup(2)]
        self.memfd = os.memfd_create("sandbox-startup")
        os.dup2(self.memfd, 1)
        os.dup2(self.memfd, 2)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            _flush_quietly(stream)
        for fd, saved in ((1, self.saved[0]), (2, self.saved[1])):
            os.dup2(saved, fd)
            os.close(saved)
        size = os.lseek(self.memfd, 0, os.SEEK_END)
        os.lseek(self.memfd, max(0, size - 8192), os.SEEK_SET)
        self.text = os.read(self.memfd, 8192).decode("utf-8", errors="replace")
        os.close(self.memfd)


class _PristineDrivers:
    """The judge's drivers module as imported, put back before every request: a submission that
    patches it (``drivers.train_and_evaluate = fake``, a function's ``__code__``, a helper or global)
    changes nothing for the next request. Drivers must therefore keep no state between requests.
    This cannot stop student code from tampering with its caller while a driver runs it; checks should
    not trust a driver's observations more than the student's own return values."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.namespace = dict(vars(module))
        self.code = {
            function: (function.__code__, function.__defaults__, function.__kwdefaults__)
            for function in self.namespace.values() if inspect.isfunction(function)
        }
        self.drivers = {
            name: function for name, function in self.namespace.items()
            if inspect.isfunction(function) and not name.startswith("_") and function.__module__ == module.__name__
        }

    def restore(self) -> None:
        namespace = vars(self.module)
        for name in [name for name in namespace if name not in self.namespace]:
            del namespace[name]
        namespace.update(self.namespace)
        for function, (code, defaults, kwdefaults) in self.code.items():
            function.__code__, function.__defaults__, function.__kwdefaults__ = code, defaults, kwdefaults
        sys.modules[self.module.__name__] = self.module


class Server:
    def __init__(self, config: dict[str, Any], request_fd: int, reply_fd: int) -> None:
        self.config = config
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self.drivers: _PristineDrivers | None = None
        self.modules: StudentModules | None = None
        self.workdir = ""
        self.startup_log: _StartupLog | None = None
        self.pid = os.getpid()
        self.pool = ModelPool(payload_to_model)  # the judge's models, rebuilt once per payload

    # -------------------------------------------------------------------------------- start-up

    def prepare(self) -> None:
        config = self.config
        sys.path[:] = list(config["sys_path"])
        with _StartupLog() as self.startup_log:
            for name in config["preload"]:
                importlib.import_module(name)
            if config.get("drivers"):
                self.drivers = _PristineDrivers(importlib.import_module(config["drivers"]))
            import numpy  # noqa: F401  (arrays cross the protocol; import it before the lockdown)

            if "keras" in sys.modules:
                from grader.keras_compat import build as keras_build

                keras_build.install()  # every fit in here, the student's own included, traces once

            if "tensorflow" in sys.modules and config["mode"] != "userns":
                # Start TensorFlow's runtime now (its thread pools drop privileges with the rest);
                # not in "userns" mode, where threads that exist before the lockdown keep capabilities.
                sys.modules["tensorflow"].zeros(1) + 1

        # The imports so far live as long as the server: keep them out of every full garbage collection the
        # student's code triggers (each would walk TensorFlow's ~400,000 objects again).
        gc.collect()
        gc.freeze()
        own = os.path.realpath(os.path.dirname(os.path.dirname(__file__)))  # the grader's package: hidden on purpose
        hidden = [os.path.realpath(p) for p in config["hide"]] + [own]
        imports = canary.import_roots(canary.loaded_files([own]), hidden)
        kept = python_paths() + imports
        files = canary.environment_files(kept, [own])  # what the lock-down must keep readable
        folders = [p for p in sys.path if p and os.path.isdir(p) and any(_inside(p, k) for k in kept)]
        plan = Plan(
            mode=config["mode"], submission=config["submission"], hide=list(config["hide"]),
            tmp_size=int(config["tmp_size"]), memory=int(config["memory"]), nproc=int(config["nproc"]),
            uid=int(config.get("uid", 0)), gid=int(config.get("gid", 0)),
            workdir=config.get("workdir") or "/tmp/work", imports=imports,
        )
        self.workdir = lock_down(plan)
        home = os.path.join(self.workdir, "home")
        os.environ.update(HOME=home, KERAS_HOME=os.path.join(home, ".keras"), TMPDIR="/tmp", PWD=self.workdir)
        sys.path[:] = [self.workdir] + [p for p in sys.path if any(_inside(p, k) for k in kept)]
        sys.path_importer_cache.clear()
        importlib.invalidate_caches()
        sys.dont_write_bytecode = True
        canary.verify(files, folders, list(config["preload"]))
        self.modules = StudentModules(self.workdir, self.event)
        for name in config.get("poisoned", []):  # their import killed an earlier life of the sandbox
            self.modules.failures[name] = {"kind": "poisoned", "module": name, "phase": "import"}
        threading.Thread(target=_exit_when_client_gone, args=(self.request_fd,), daemon=True).start()

    # ---------------------------------------------------------------------------------- serving

    def serve(self) -> None:
        while True:
            request = read_frame(self.request_fd)
            if request is None:
                return
            self.send(self.handle(request))

    def send(self, message: dict[str, Any]) -> None:
        what = message.pop("what", "the value")
        try:
            frame = encode_frame(message)
        except EncodeError as exc:
            frame = encode_frame({
                "id": message.get("id"), "ok": False, "stdout": message.get("stdout", ""),
                "error": {"kind": "too_large", "exc_message": f"{what} could not be sent back: {exc}"},
            })
        view = memoryview(frame)
        while view:
            view = view[os.write(self.reply_fd, view):]

    def event(self, name: str, module: str) -> None:
        self.send({"event": name, "module": module})

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        capture = Capture(CAPTURE_LIMIT)
        real = sys.__stdout__, sys.__stderr__
        op, target = str(request.get("op")), str(request.get("function") or request.get("name") or "")
        module = str(request.get("module") or "")
        reply: dict[str, Any] = {"id": request.get("id"), "what": f"the value returned by {target}"}
        sys.stdout, sys.stderr = capture.stream(real[0]), capture.stream(real[1])
        try:
            if self.drivers is not None:
                self.drivers.restore()
            seed_everything(int(self.config["seed"]))
            try:
                args = decode_value(request.get("args", []), model_decoder=self.pool.take)
                kwargs = decode_value(request.get("kwargs", {}), model_decoder=self.pool.take)
            except Exception as exc:
                raise _Internal(f"the grader's arguments could not be rebuilt: {exc}") from None
            value, seconds = self.dispatch(op, module, target, list(args), dict(kwargs))
            reply.update(ok=True, seconds=seconds,
                         value=encode_value(value, opaque=True, model_encoder=model_to_spec))
        except ImportFailed as failed:
            reply.update(ok=False, error=failed.record)
        except _Internal as exc:
            reply.update(ok=False, error={"kind": "internal", "exc_message": str(exc)})
        except BaseException as exc:  # noqa: B036  (student code may raise SystemExit & co.)
            reply.update(ok=False, error=describe(exc, "call", module if op == "call" else "", self.workdir,
                                                  target))
        finally:
            if os.getpid() != self.pid:
                os._exit(0)  # a process the student forked came back here: it must never reply
            for stream in (sys.stdout, sys.stderr):
                _flush_quietly(stream)
            sys.stdout, sys.stderr = real
            self.pool.give_back()
        reply["stdout"] = capture.text()
        return reply

    def dispatch(self, op: str, module: str, target: str, args: list[Any], kwargs: dict[str, Any]
                 ) -> tuple[Any, float]:
        assert self.modules is not None
        load = self.modules.load
        if op == "call":
            function = getattr(load(module), target)
            if not callable(function):
                raise TypeError(f"{module}.{target} is not a function (it is a {type(function).__name__})")
            return timed(lambda: function(*args, **kwargs))
        if op == "attr":
            return getattr(load(module), target), 0.0
        if op == "has":
            try:
                return hasattr(load(module), target), 0.0
            except ImportFailed as failed:
                if failed.record.get("kind") == "missing":
                    return False, 0.0
                raise
        if op == "drive":
            driver = self.drivers.drivers.get(target) if self.drivers is not None else None
            if driver is None:
                raise _Internal(f"the sandbox has no driver named {target!r}")
            return timed(lambda: driver(load, *args, **kwargs))
        if op == "ping":
            return "pong", 0.0
        raise _Internal(f"unknown request {op!r}")


def _flush_quietly(stream: Any) -> None:
    try:
        stream.flush()
    except Exception:
        pass


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _exit_when_client_gone(request_fd: int) -> None:
    """If the judge dies (even mid-call), its end of the request pipe closes: stop at once."""
    poller = select.poll()
    poller.register(request_fd, 0)  # hang-up and errors only, never readable data
    while True:
        for _, events in poller.poll():
            if events & (select.POLLHUP | select.POLLERR):
                os._exit(0)


def _split_off_reaper(status_fd: int) -> None:
    """As pid 1 of the namespace: fork; the child serves, the parent reaps orphans and reports how the
    server ended. When pid 1 exits, the kernel kills every process left in the namespace."""
    server = os.fork()
    if server == 0:
        return
    os.closerange(0, status_fd)
    os.closerange(status_fd + 1, 1 << 16)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == server:
            try:
                os.write(status_fd, encode_frame({"status": os.waitstatus_to_exitcode(status)}))
            except OSError:
                pass
            os._exit(0)


def _import_early(names: list[str]) -> str:
    """A spare sandbox imports the heavy libraries before it knows its submission (see client.py).
    Returns what went wrong (with the start-up log), or "" when all went well."""
    log = _StartupLog()
    try:
        with log:
            for name in names:
                importlib.import_module(name)
    except BaseException as exc:  # noqa: B036 - reported once the configuration has come
        return f"{type(exc).__name__}: {exc}\n{log.text}"
    return ""


def main() -> None:
    request_fd, reply_fd, status_fd = (int(arg) for arg in sys.argv[1:4])
    early = sys.argv[4] if len(sys.argv) > 4 else None  # "[reaper];name,name": a spare's start
    problem = ""
    if early is not None:
        reaper, _, names = early.partition(";")
        if reaper == "reaper" and os.getpid() == 1:
            _split_off_reaper(status_fd)
        os.close(status_fd)
        problem = _import_early([name for name in names.split(",") if name])
    config = read_frame(request_fd)
    if not isinstance(config, dict):
        os._exit(2)
    if early is None:
        if config.get("reaper") and os.getpid() == 1:
            _split_off_reaper(status_fd)
        os.close(status_fd)
    server = Server(config, request_fd, reply_fd)
    try:
        if problem:
            raise RuntimeError(problem)
        server.prepare()
    except BaseException as exc:  # noqa: B036
        log = server.startup_log.text if server.startup_log else ""
        server.send({"event": "startup_failed", "message": f"{type(exc).__name__}: {exc}\n{log}"})
        os._exit(3)
    server.send({"event": "ready", "uid": os.getuid(), "pid": os.getpid()})
    try:
        server.serve()
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
