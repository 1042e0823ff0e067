"""The sandbox's root filesystem, built from an allow-list (modes "root" and "userns").

Inside its own mount namespace the sandbox gets a new, empty root (a small tmpfs) and sees in it only:

- the system's programs and libraries, read-only: /usr, /bin, /sbin, /lib*, /etc (symbolic links such as
  /bin -> usr/bin are recreated as links);
- /proc (the sandbox's own, pid namespace) and /sys, read-only; a /dev of a few device files
  (null, zero, full, random, urandom, tty);
- the Python installation wherever it lies (``python_paths``: prefixes, the standard library,
  site-packages, the user site), read-only, at its real path and at the path Python knows it by, also
  under /tmp, /var/tmp or /dev/shm, in HOME or inside a checkout;
- a fresh tmpfs as /tmp, with /var/tmp and /dev/shm as folders of it: the only writable places; the
  submission's copy lives there.

Everything else of the machine (HOME, /root, /home, /opt, /srv, /work, /mnt, other checkouts, other
submissions, the grader's caches and outputs) is simply not there. A ``hide`` path that lies inside an
allowed folder (the grader's own package inside site-packages, say) is covered by an empty read-only tmpfs.

The switch is pivot_root(2) (the old root is detached, not only covered); where that is refused, the new
root is moved onto / and entered with chroot(2), and the caller drops the capability to leave it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import site
import stat
import sys
import sysconfig
from collections.abc import Sequence

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 2
_OPTION_FLAGS = {
    "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
}
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
SCRATCH = ("/var/tmp", "/dev/shm")  # become folders of the sandbox's /tmp
_STAGE = "/tmp"  # where the new root is assembled (a mount point in every system; covered only here)
LIBC = ctypes.CDLL(None, use_errno=True)


class LockdownError(Exception):
    """A step of the lockdown failed: the sandbox must not run student code."""


def python_paths() -> list[str]:
    """Folders the interpreter needs at run time (prefixes, the standard library, site-packages, the
    user site), each by its real path and by the path Python knows it by; none inside another."""
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *site.getsitepackages()}
    paths.update(value for key, value in sysconfig.get_paths().items() if key in ("stdlib", "platstdlib",
                                                                                "purelib", "platlib"))
    paths.update(p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages"))
    if site.ENABLE_USER_SITE and site.getusersitepackages() in sys.path:
        paths.add(site.getusersitepackages())
    found = {p for p in paths if p and os.path.isdir(p)}
    every = {os.path.abspath(p) for p in found} | {os.path.realpath(p) for p in found}
    return _outermost(every - {"/"})


def build_root(tmp_size: int, hide: list[str], imports: Sequence[str] = ()) -> set[str]:
    """Switch this process (in its own mount namespace) to a root built from the allow-list above, plus
    `imports` (more folders Python imports from). Returns the writable mount points (/tmp and its
    scratch folders)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    every = set(python_paths()) | {os.path.abspath(p) for p in imports} | {os.path.realpath(p) for p in imports}
    python = [p for p in _outermost(every - {"/"}) if not any(_inside(p, s) for s in SYSTEM)]
    sources = {p: _open_path(os.path.realpath(p)) for p in [*SYSTEM, "/proc"] + python
               if os.path.lexists(p) and not os.path.islink(p)}
    devices = {name: _open_path(f"/dev/{name}", folder=False) for name in DEVICES if os.path.exists(f"/dev/{name}")}
    links = {p: os.readlink(p) for p in SYSTEM if os.path.islink(p)}
    try:
        mount("tmpfs", _STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
        new = lambda path: _STAGE + path  # noqa: E731
        os.makedirs(new("/tmp"), mode=0o755)
        mount("tmpfs", new("/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_size},mode=1777")
        for target, name in zip(SCRATCH, (".tmp", ".shm"), strict=True):
            inner = new("/tmp/" + name)
            os.mkdir(inner)
            os.chmod(inner, 0o1777)
            os.makedirs(new(target), mode=0o755)
            mount(inner, new(target), None, MS_BIND)
        for path, target in links.items():
            os.symlink(target, new(path))
        for path in sorted(sources, key=lambda p: (p.count("/"), p)):  # outer folders first
            os.makedirs(new(path), mode=0o755, exist_ok=True)
            mount(f"/proc/self/fd/{sources[path]}", new(path), None, MS_BIND | MS_REC)
        for name, fd in devices.items():
            with open(new(f"/dev/{name}"), "x"):
                pass
            mount(f"/proc/self/fd/{fd}", new(f"/dev/{name}"), None, MS_BIND)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, new(f"/dev/{name}"))
    finally:
        for fd in [*sources.values(), *devices.values()]:
            os.close(fd)
    _enter(_STAGE)
    _cover([h for h in hide if any(_inside(h, p) and h != p for p in sources)], python)
    writable = {"/tmp", *SCRATCH}
    _remount_read_only(writable)
    return writable


def _outermost(paths: set[str]) -> list[str]:
    ordered = sorted(paths)
    return [p for p in ordered if not any(_inside(p, other) and p != other for other in ordered)]


def _open_path(path: str, folder: bool = True) -> int:
    return os.open(path, os.O_PATH | (os.O_DIRECTORY if folder else 0))


def _enter(root: str) -> None:
    """Make `root` the root of this mount namespace, the old one detached."""
    os.chdir(root)
    number = _PIVOT_ROOT.get(platform.machine())
    if number is not None and LIBC.syscall(number, b".", b".") == 0:
        if LIBC.umount2(b".", MNT_DETACH) != 0:
            raise LockdownError(f"detaching the old root failed: {os.strerror(ctypes.get_errno())}")
    else:  # e.g. the machine's root is an initramfs, where pivot_root is refused
        mount(".", "/", None, MS_MOVE)
        if LIBC.chroot(b".") != 0:
            raise LockdownError(f"chroot failed: {os.strerror(ctypes.get_errno())}")
    os.chdir("/")


def _cover(hide: list[str], keep: list[str]) -> None:
    """Cover each hidden path with an empty read-only tmpfs (folders) or /dev/null (files), putting back
    any part of the Python installation that lies inside it."""
    covered: list[str] = []
    for path in sorted(set(hide), key=lambda p: (p.count("/"), p)):
        if any(_inside(path, c) for c in covered) or not os.path.lexists(path) or os.path.islink(path):
            continue
        covered.append(path)
        if not stat.S_ISDIR(os.stat(path).st_mode):
            mount("/dev/null", path, None, MS_BIND)
            continue
        inner = [(k, _open_path(k)) for k in keep if _inside(k, path) and k != path and os.path.isdir(k)]
        try:
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
            for kept, fd in inner:
                os.makedirs(kept, mode=0o755, exist_ok=True)
                mount(f"/proc/self/fd/{fd}", kept, None, MS_BIND | MS_REC)
        finally:
            for _, fd in inner:
                os.close(fd)
        mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _remount_read_only(exempt: set[str]) -> None:
    """Every other mount becomes read-only and nosuid in this namespace (the host keeps its own)."""
    for point, options in mounts():
        if point in exempt or point == "/proc" or point.startswith("/proc/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for option in options.split(","):
            flags |= _OPTION_FLAGS.get(option, 0)
        try:
            mount(None, point, None, flags)
        except LockdownError:
            if point == "/":
                raise
            # shadowed by a later mount (e.g. under a hidden folder) or not ours to change: skip


def mounts() -> list[tuple[str, str]]:
    """(mount point, options) of this process's mount namespace, as its root sees them."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
        rows = [line.split() for line in handle]
    return [(_unescape(row[4]), row[5]) for row in rows if len(row) > 5]


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    if LIBC.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        raise LockdownError(f"mount {source} on {target} failed: {os.strerror(errno)}")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")
