"""Inside the sandbox, after the trusted imports and before any student code: take away the world.

Runs in the sandbox server, in the fresh mount namespace that ``unshare`` gave it (modes "root" and
"userns"), or in a plain process (mode "none"). See the design note in client.py.
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import site
import stat
import sys
import sysconfig
from dataclasses import dataclass

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
_OPTION_FLAGS = {
    "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
}
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_SECUREBITS_LOCKED_NOROOT = 0x3F  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED and their locks

WORKDIR = "/tmp/work"
_SCRATCH = ("/var/tmp", "/dev/shm")  # become folders of the sandbox's /tmp
_MAX_FILES = 5000
_libc = ctypes.CDLL(None, use_errno=True)


class LockdownError(Exception):
    """A step of the lockdown failed: the sandbox must not run student code."""


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


def lock_down(plan: Plan) -> str:
    """Apply the plan; returns the working directory that holds the submission's copy."""
    source = os.open(plan.submission, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if plan.mode != "none":
            _isolate_filesystem(plan)
        _copy_tree(source, plan.workdir, plan.uid, plan.gid, budget=[plan.tmp_size // 2, _MAX_FILES])
    finally:
        os.close(source)
    home = os.path.join(plan.workdir, "home")
    os.makedirs(home, exist_ok=True)
    if plan.mode == "root":
        os.chown(home, plan.uid, plan.gid)
    os.chdir(plan.workdir)
    _set_limits(plan)
    if plan.mode == "root":
        _drop_to_user(plan.uid, plan.gid)
    elif plan.mode == "userns":
        _drop_capabilities()
    return plan.workdir


def python_paths() -> list[str]:
    """Folders the interpreter needs at run time: prefixes, the standard library, site-packages."""
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *site.getsitepackages()}
    paths.update(value for key, value in sysconfig.get_paths().items() if key in ("stdlib", "platstdlib",
                                                                                "purelib", "platlib"))
    paths.update(p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages"))
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)})
    return [p for p in real if not any(_inside(p, other) and p != other for other in real)]


# ------------------------------------------------------------------------------------------ mounts


def _isolate_filesystem(plan: Plan) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    python = python_paths()
    hide = [os.path.realpath(p) for p in plan.hide]
    if plan.mode == "root":  # e.g. Python in /root/.pyenv with /root mode 700: hide /root, keep Python
        hide += _closed_ancestors(python)
    keep = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in python
            if any(_inside(path, h) for h in hide)]
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={plan.tmp_size},mode=1777")
    exempt = {"/tmp"}
    for target in _SCRATCH:
        if os.path.isdir(target) and not os.path.islink(target):
            inner = "/tmp/." + os.path.basename(target)
            os.mkdir(inner)
            os.chmod(inner, 0o1777)
            _mount(inner, target, None, MS_BIND)
            exempt.add(target)
    exempt |= _hide(hide, keep)
    for _, fd in keep:
        os.close(fd)
    _remount_read_only(exempt)


def _closed_ancestors(paths: list[str]) -> list[str]:
    """The first folder above each path that others may not enter (the sandbox user could not reach
    the path through it)."""
    closed = []
    for path in paths:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            folder = "/" + "/".join(parts[:depth])
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                closed.append(folder)
                break
    return closed


def _hide(hide: list[str], keep: list[tuple[str, int]]) -> set[str]:
    """Cover each hidden path with an empty read-only tmpfs (folders) or /dev/null (files); put the
    Python installation back where it lies inside a hidden folder. Returns the covered folders."""
    covered = set()
    for path in sorted(set(hide), key=lambda p: (p.count("/"), p)):
        if path == "/" or not os.path.lexists(path) or os.path.islink(path):
            continue  # gone already (inside a folder hidden before)
        if any(_inside(path, fresh) for fresh in ("/tmp", *_SCRATCH)):
            continue  # the sandbox's own fresh tmpfs: nothing of the host is there
        if not stat.S_ISDIR(os.stat(path).st_mode):
            _mount("/dev/null", path, None, MS_BIND)
            continue
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
        for kept, fd in keep:
            if _inside(kept, path):
                os.makedirs(kept, mode=0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", kept, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        covered.add(path)
    return covered


def _remount_read_only(exempt: set[str]) -> None:
    """Every other mount becomes read-only and nosuid in this namespace (the host keeps its own)."""
    for point, options in _mounts():
        if point in exempt or point == "/proc" or point.startswith("/proc/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for option in options.split(","):
            flags |= _OPTION_FLAGS.get(option, 0)
        try:
            _mount(None, point, None, flags)
        except LockdownError:
            if point == "/":
                raise
            # shadowed by a later mount (e.g. under a hidden folder) or not ours to change: skip


def _mounts() -> list[tuple[str, str]]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
        rows = [line.split() for line in handle]
    return [(_unescape(row[4]), row[5]) for row in rows if len(row) > 5]


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    if _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        raise LockdownError(f"mount {source} on {target} failed: {os.strerror(errno)}")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


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
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    if plan.mode != "none":
        resource.setrlimit(resource.RLIMIT_NPROC, (plan.nproc, plan.nproc))


def _vm_data() -> int:
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
