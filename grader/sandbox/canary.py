"""Proof, inside the locked-down sandbox and before any student code, that the grader's environment works.

A sandbox whose Python installation vanished at the lock-down (a venv under /tmp covered by the fresh
tmpfs, a folder on PYTHONPATH left out of the new root) would fail every student call with
ModuleNotFoundError, and the student would be blamed. So the server, once locked down, checks that
every module it imported is still readable where it was loaded from, that the folders it imports from
are still listable, and that the preloaded libraries answer a trivial call. Anything else raises
``EnvironmentBroken``, which the client reports as the grader's fault (SandboxStartError).

The grader's own package is left out: it is imported before the lock-down and hidden on purpose.
"""

from __future__ import annotations

import os
import sys


class EnvironmentBroken(Exception):
    """The sandbox cannot use the grader's own Python environment: a fault of the grader's set-up."""


def loaded_files(hidden: list[str]) -> dict[str, str]:
    """module name -> file, for every imported module whose file exists now, but those in `hidden` (the
    grader's own package, which the sandbox must not show)."""
    files = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.isabs(path) and not _within(path, hidden) and os.path.exists(path):
            files[name] = path
    return files


def environment_files(environment: list[str], hidden: list[str]) -> dict[str, str]:
    """The loaded modules that come from the Python environment (the installation and the import roots),
    which the sandbox shows; modules from elsewhere (a checkout's drivers, hidden on purpose) are gone
    after the lock-down by design, once imported."""
    return {name: path for name, path in loaded_files(hidden).items()
            if _within(os.path.realpath(path), environment) or _within(path, environment)}


def import_roots(files: dict[str, str], hidden: list[str]) -> list[str]:
    """The sys.path folders the loaded modules came from (besides the Python installation, e.g. a folder
    on PYTHONPATH), none hidden on purpose nor holding a hidden path (e.g. a checkout, a home folder)."""
    entries = [os.path.abspath(p) for p in sys.path if p and os.path.isdir(p)]
    roots = set()
    for path in files.values():
        entry = max((e for e in entries if _within(path, [e])), key=len, default=None)
        if entry is not None and entry != "/" and not _within(entry, hidden) \
                and not any(_within(h, [entry]) for h in hidden):
            roots.add(entry)
    return sorted(roots)


def verify(files: dict[str, str], folders: list[str], preload: list[str]) -> None:
    """After the lock-down: what was readable before still is, and the libraries answer."""
    gone = [(name, path) for name, path in files.items() if not os.path.exists(path)]
    if gone:
        name, path = sorted(gone, key=lambda item: item[1])[0]
        raise EnvironmentBroken(
            f"the sandbox cannot read {path} (module {name}, {len(gone)} module file(s) in all) after its "
            f"lock-down: the Python environment at {sys.prefix} is not visible inside the sandbox"
        )
    for folder in folders:
        try:
            os.listdir(folder)
        except OSError as exc:
            raise EnvironmentBroken(f"the sandbox cannot list {folder}, a folder Python imports from: "
                                    f"{exc.strerror}") from None
    if "numpy" in preload or "numpy" in sys.modules:
        import numpy

        if float(numpy.arange(4.0).sum()) != 6.0:
            raise EnvironmentBroken("numpy gives wrong answers inside the sandbox")
        import numpy.random  # noqa: F401  (a submodule the lab's code uses)


def _within(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)
