"""A fork server for spare sandboxes: TensorFlow imported once per batch worker, not once per submission.

A spare sandbox (client.keep_spare_sandbox) spends ~4 CPU-seconds importing numpy, TensorFlow and Keras
before it knows its submission. Under ``grade --jobs 1`` that runs on the idle core; under ``--jobs 2``
both cores are busy, and every submission pays it. The zygote is one process per batch worker that
imports those libraries once and forks each spare from itself: a forked spare starts with them already
imported (shared copy-on-write pages), as if it had imported them itself.

What a forked spare is, step by step, and why it is the same sandbox as one started through unshare:

- The zygote holds nothing of any submission: it imported the libraries and nothing else, runs no
  TensorFlow op (its runtime and thread pools start in each sandbox, after the fork), and keeps only
  the socket to its client. It is started with the sandbox's small environment (process.sandbox_env),
  no inherited descriptors, its own session, and it exits when its client's end of the socket closes.
- The client sends the spare's pipes (request, reply, status, stdout, stderr) over the socket. The
  zygote forks a child, which plays unshare's part: new session, the pipes as its only descriptors,
  then ``unshare(2)`` of the same namespaces as ``unshare --mount --net --pid --ipc --uts`` (with
  ``--user --map-root-user`` first, in mode "userns"); then it forks pid 1 of the new pid namespace and
  waits for it (``--fork``). Pid 1 dies with it (``--kill-child``, PR_SET_PDEATHSIG), makes every
  mount private and mounts a fresh /proc (``--mount-proc``), then runs the sandbox server exactly as a
  spare started by process.SandboxProcess does (server.main: reaper, configuration, lock-down).
- The zygote answers with the child's pid and a pidfd for it, which is how the client tells whether it
  still runs (the zygote, not the client, is its parent, and reaps it): process.Forked.
- A student's process never reaches the zygote: it lives in another pid namespace, and the socket was
  closed before the fork of pid 1.

Only for modes "root" and "userns"; mode "none" starts spares as before. Any failure of the zygote
(start, import, fork) falls back to starting the spare as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.sandbox import lockdown, rootfs

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_FDS = 5  # request, reply, status, stdout, stderr
START_TIMEOUT = 120.0


class ZygoteError(Exception):
    """The zygote could not start or fork: the caller starts its spare the usual way."""


class Zygote:
    """Client side: one zygote process, started with `env` and importing `early`."""

    def __init__(self, env: dict[str, str], early: Sequence[str]) -> None:
        self._socket, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        boot = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r}); "
                "from grader.sandbox.zygote import serve; serve()")
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-B", "-c", boot, str(theirs.fileno()), ",".join(early)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()], start_new_session=True, env=env, cwd="/",
            )
        finally:
            theirs.close()
        self._socket.settimeout(START_TIMEOUT)
        self._ready = False  # it imports meanwhile; the first fork waits for its greeting
        self._lock = threading.Lock()  # one fork at a time: a grading's two sandboxes may start together

    def _await_greeting(self) -> None:
        if self._ready:
            return
        try:
            hello = json.loads(self._socket.recv(4096) or b"{}")
        except (OSError, ValueError) as exc:
            raise ZygoteError(f"the zygote did not start: {exc}") from None
        if hello.get("problem") or not hello.get("ready"):
            raise ZygoteError(f"the zygote did not start: {hello.get('problem') or 'it ended'}")
        self._ready = True

    def fork(self, mode: str) -> tuple[int, int, list[int]]:
        """A new spare: its pid, a pidfd for it, and the client's ends of its pipes (request_w, reply_r,
        status_r, stdout_r, stderr_r)."""
        with self._lock:
            return self._fork(mode)

    def _fork(self, mode: str) -> tuple[int, int, list[int]]:
        self._await_greeting()
        pipes = [os.pipe() for _ in range(_FDS)]
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1], pipes[4][1]]
        ours = [pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0], pipes[4][0]]
        try:
            request = json.dumps({"mode": mode, "uid": os.geteuid(), "gid": os.getegid()}).encode()
            socket.send_fds(self._socket, [request], theirs)
            answer, fds, _, _ = socket.recv_fds(self._socket, 4096, 1)
            reply = json.loads(answer or b"{}")
            if not fds or not isinstance(reply.get("pid"), int):
                for fd in fds:
                    os.close(fd)
                raise ZygoteError(f"the zygote could not fork: {reply.get('problem') or 'no answer'}")
        except (OSError, ValueError) as exc:
            for fd in ours:
                os.close(fd)
            raise ZygoteError(f"the zygote could not fork: {exc}") from None
        finally:
            for fd in theirs:
                os.close(fd)
        return reply["pid"], fds[0], ours

    def alive(self) -> bool:
        return self.popen.poll() is None

    def close(self) -> None:
        self._socket.close()
        with contextlib.suppress(OSError):
            self.popen.kill()
        self.popen.wait()


# ----------------------------------------------------------------------------------- zygote side


def serve() -> None:
    """The zygote's main loop (started by Zygote)."""
    from grader.sandbox import server

    channel = socket.socket(fileno=int(sys.argv[1]))
    problem = server._import_early([name for name in sys.argv[2].split(",") if name])
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children; the pidfds still tell
    channel.send(json.dumps({"ready": not problem, "problem": problem}).encode())
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 4096, _FDS)
        except OSError:
            os._exit(0)
        if not message:  # the client is gone
            os._exit(0)
        try:
            request = json.loads(message)
            if len(fds) != _FDS:
                raise ValueError(f"{len(fds)} descriptors came, {_FDS} expected")
            pid = os.fork()
            if pid == 0:
                channel.close()
                _child(request, fds)
            pidfd = os.pidfd_open(pid)
        except (OSError, ValueError) as exc:
            channel.send(json.dumps({"problem": f"{type(exc).__name__}: {exc}"}).encode())
        else:
            socket.send_fds(channel, [json.dumps({"pid": pid}).encode()], [pidfd])
            os.close(pidfd)
        finally:
            for fd in fds:
                os.close(fd)


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """unshare's part: own session and descriptors, new namespaces, pid 1 forked and waited for."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        protocol = _settle_descriptors(fds)
        if request["mode"] == "userns":
            _unshare(CLONE_NEWUSER)
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {int(request['uid'])} 1")
            _write("/proc/self/gid_map", f"0 {int(request['gid'])} 1")
        _unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS)
        first = os.fork()
        if first == 0:
            _pid_one(protocol)
        for fd in (*protocol, 1, 2):  # only pid 1 and its children write to the pipes
            os.close(fd)
        while True:
            try:
                _, wait_status = os.waitpid(first, 0)
                break
            except InterruptedError:
                continue
        status = max(0, os.waitstatus_to_exitcode(wait_status))
    except BaseException:  # noqa: B036 - a child of the zygote never returns into its loop
        _report()
        status = 1
    os._exit(status)


def _pid_one(protocol: tuple[int, int, int]) -> None:
    status = 1
    try:
        # Dies with its parent, which is outside the namespace (so getppid() says 0 and cannot tell).
        lockdown._prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        rootfs.mount(None, "/", None, rootfs.MS_REC | rootfs.MS_PRIVATE)
        rootfs.mount("proc", "/proc", "proc", rootfs.MS_NOSUID | rootfs.MS_NODEV | rootfs.MS_NOEXEC)
        from grader.sandbox import server

        sys.argv = ["grader-sandbox", *map(str, protocol), "reaper;"]  # what a spare's argv says
        server.main()
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: B036
        _report()
        status = 1
    os._exit(status)


def _report() -> None:
    """What failed, to stderr: the client's output tail shows it with the start-up failure."""
    import traceback

    with contextlib.suppress(Exception):
        os.write(2, f"sandbox start-up (forked from the zygote):\n{traceback.format_exc()}".encode())


def _settle_descriptors(fds: list[int]) -> tuple[int, int, int]:
    """stdin from /dev/null, stdout and stderr to the client's pipes, the three protocol pipes kept;
    every other descriptor (the zygote's socket included) closed."""
    request, reply, status, out, err = fds
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    keep = sorted({0, 1, 2, request, reply, status})
    for low, high in zip(keep, [*keep[1:], 1 << 16], strict=True):
        os.closerange(low + 1, high)  # null, out and err among them (all above 2: the zygote's 0-2 are open)
    return request, reply, status


def _unshare(flags: int) -> None:
    if rootfs.LIBC.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), f"unshare({flags:#x}) failed")


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)

