"""Inside the sandbox, after the trusted imports and before any student code: take away the world.

Runs in the sandbox server, in the fresh mount namespace that ``unshare`` gave it (modes "root" and
"userns"), or in a plain process (mode "none"). See the design note in client.py.
"""

from __future__ import annotations

import ctypes
import os
import resource
import stat
from dataclasses import dataclass, field

from grader.sandbox.rootfs import LIBC as _libc
from grader.sandbox.rootfs import LockdownError, build_root

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_SECUREBITS_LOCKED_NOROOT = 0x3F  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED and their locks

WORKDIR = "/tmp/work"
_MAX_FILES = 5000


@dataclass
class Plan:
    mode: str  # "root" | "userns" | "none"
    submission: str
    hide: list[str]
    tmp_size: int
    memory: int
    nproc: int
    uid: int = 0
    gid: int = 0
    workdir: str = WORKDIR  # mode "none": a folder the client made
    imports: list[str] = field(default_factory=list)  # more folders Python imports from (canary.import_roots)


def lock_down(plan: Plan) -> str:
    """Apply the plan; returns the working directory that holds the submission's copy."""
    source = os.open(plan.submission, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if plan.mode != "none":
            build_root(plan.tmp_size, [os.path.realpath(p) for p in plan.hide], plan.imports)
        _copy_tree(source, plan.workdir, plan.uid, plan.gid, budget=[plan.tmp_size // 2, _MAX_FILES])
    finally:
        os.close(source)
    home = os.path.join(plan.workdir, "home")
    os.makedirs(home, exist_ok=True)
    if plan.uid:
        os.chown(home, plan.uid, plan.gid)
    os.chdir(plan.workdir)
    _set_limits(plan)
    if plan.uid:  # mode "root", and mode "none" when root can use a fresh uid (client._uid_drop_possible)
        _drop_to_user(plan.uid, plan.gid)
    elif plan.mode == "userns":
        _drop_capabilities()
    return plan.workdir


# ------------------------------------------------------------------------------------- submission


def _copy_tree(source: int, target: str, uid: int, gid: int, budget: list[int]) -> None:
    """Copy regular files and folders from a directory fd; symlinks, devices and caches are skipped."""
    os.makedirs(target, mode=0o755, exist_ok=True)
    if uid:
        os.chown(target, uid, gid)
    with os.scandir(source) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        info = os.stat(name, dir_fd=source, follow_symlinks=False)
        budget[1] -= 1
        if budget[1] < 0:
            raise LockdownError(f"the submission holds more than {_MAX_FILES} files")
        if stat.S_ISDIR(info.st_mode) and name != "__pycache__":
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=source)
            try:
                _copy_tree(inner, os.path.join(target, name), uid, gid, budget)
            finally:
                os.close(inner)
        elif stat.S_ISREG(info.st_mode):
            budget[0] -= info.st_size
            if budget[0] < 0:
                raise LockdownError("the submission is larger than half of the sandbox's /tmp")
            _copy_file(source, name, os.path.join(target, name), uid, gid)


def _copy_file(source: int, name: str, target: str, uid: int, gid: int) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=source)
    with os.fdopen(fd, "rb") as reader, open(target, "xb") as writer:
        while chunk := reader.read(1 << 20):
            writer.write(chunk)
    if uid:
        os.chown(target, uid, gid)


# ------------------------------------------------------------------------------------- privileges


def _set_limits(plan: Plan) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A single huge allocation should fail in the student's code (MemoryError) rather than be
    # killed by the client's watchdog: allow what is mapped now plus the memory limit.
    data = _vm_data() + plan.memory
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard == resource.RLIM_INFINITY or data < hard:
        try:
            resource.setrlimit(resource.RLIMIT_DATA, (data, data))
        except (ValueError, OSError):
            if plan.mode != "none":
                raise
            # a system that refuses it (macOS): the client's memory watchdog remains
    if plan.mode != "none" or plan.uid:  # counted per uid: only with a uid of the sandbox's own
        resource.setrlimit(resource.RLIMIT_NPROC, (plan.nproc, plan.nproc))


def _vm_data() -> int:
    if not os.path.exists("/proc/self/status"):  # macOS: RLIMIT_DATA counts differently; allow the limit
        return 0
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _drop_to_user(uid: int, gid: int) -> None:
    """glibc applies set*id to every thread of the process, TensorFlow's included."""
    _drop_bounding_set()
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
        raise LockdownError("the sandbox could not drop its privileges")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 1)  # keep /proc/self readable by its own (unprivileged) owner


def _drop_capabilities() -> None:
    """User-namespace mode: stay uid 0 of the namespace, but without any capability (this thread and
    the threads it starts; threads that existed before keep theirs: reduced isolation)."""
    _drop_bounding_set()
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    _prctl(PR_SET_SECUREBITS, _SECUREBITS_LOCKED_NOROOT)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()
    if _libc.capset(header, data) != 0:
        raise LockdownError(f"capset failed: {os.strerror(ctypes.get_errno())}")


def _drop_bounding_set() -> None:
    """No capability can come back through execve (on top of no_new_privs and nosuid mounts)."""
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
        last = int(handle.read())
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)


def _prctl(option: int, arg: int, *rest: int) -> None:
    args = [ctypes.c_ulong(a) for a in (arg, *rest, 0, 0, 0)][:4]
    if _libc.prctl(option, *args) != 0:
        raise LockdownError(f"prctl({option}) failed: {os.strerror(ctypes.get_errno())}")
