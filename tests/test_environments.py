"""The grader grades right wherever it is installed and whoever runs it (issue: never charge a student for
the grader's own failure).

Each environment grades the reference with `grader grade` in a real subprocess (quick profile): full marks. The
weakest mode (an ordinary user without isolation on a machine without Linux calls) also grades one buggy variant,
which must lose exactly the checks it loses in the default set-up (root, this interpreter, the strongest
isolation).

- a virtual environment under /tmp whose packages (numpy, TensorFlow, Keras, ...) lie under /tmp too:
  the sandbox's fresh /tmp used to cover it, and every lazy import failed as the student's fault;
- a virtual environment inside a checkout (a folder the sandbox must not show) in a closed HOME;
- an ordinary user (created here; CI runs as root) in a user namespace and with no isolation at all.

The venvs hard-link this interpreter's site-packages (a real install's files, under /tmp, in a second).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from grader.batch.common import RECORD
from grader.results import SubmissionResult, load_result

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions" / "convolutions"
USER = "convgrader-test"
VARIANT = "wrong_scaling"  # loses in `data` only
is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="creates a user and runs as it (run as root, as CI does)")


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    """A folder under /tmp that every user may read."""
    folder = Path(tempfile.mkdtemp(prefix="convgrader-env-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def small_class(workspace: Path, apply_variant: Callable[[str, Path], dict[str, Any]]) -> list[Path]:
    folder = workspace / "class"
    reference, buggy = folder / "reference", folder / VARIANT
    for target in (reference, buggy):
        shutil.copytree(SOLUTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    apply_variant(VARIANT, buggy)
    _open_to_all(folder)
    return [reference, buggy]


def _open_to_all(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)


def _interpreter_for(user: str | None) -> str:
    """An interpreter of this Python version that `user` can execute (pyenv's may sit in /root, mode 700)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    for candidate in candidates:
        if not os.path.exists(candidate):
            continue
        command = ["runuser", "-u", user, "--", candidate, "-c", "pass"] if user else [candidate, "-c", "pass"]
        if subprocess.run(command, capture_output=True).returncode == 0:
            return candidate
    raise AssertionError(f"no {version} that {user} can run among {candidates}: install Debian's {version}")


def make_venv(target: Path, user: str | None = None) -> Path:
    """A venv at `target` holding this interpreter's packages as files of its own (hard links)."""
    python = _interpreter_for(user)
    subprocess.run([python, "-m", "venv", "--without-pip", str(target)], check=True)
    ours = Path(site.getsitepackages()[0])
    theirs = target / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    linked = subprocess.run(["cp", "-al", f"{ours}/.", f"{theirs}/"], capture_output=True)
    if linked.returncode != 0:  # another filesystem: copy
        subprocess.run(["cp", "-a", f"{ours}/.", f"{theirs}/"], check=True)
    for hook in set(theirs.glob("__editable__*convgrader*")):
        hook.unlink()  # the grader itself installed as a package of this venv, not a link to this checkout
    shutil.rmtree(theirs / "grader", ignore_errors=True)
    shutil.copytree(ROOT / "grader", theirs / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    return target / "bin" / "python"


@pytest.fixture(scope="module")
def tmp_venv(workspace: Path) -> Path:
    return make_venv(workspace / "venv", USER if is_root and _make_user() else None)


def _make_user() -> bool:
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    return True


def grade_class(python: Path | str, submissions: list[Path], out: Path, *, user: str | None = None,
                isolation: str = "auto", cwd: Path | None = None,
                extra_env: dict[str, str] | None = None) -> dict[str, SubmissionResult]:
    """`grader grade` as a real subprocess of `python`, as `user`; the records by submission."""
    out.mkdir(parents=True)
    home = out / "home"
    home.mkdir()
    if user:
        shutil.chown(out, user)
        shutil.chown(home, user)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), MPLCONFIGDIR=str(home / ".mpl"),
               TF_CPP_MIN_LOG_LEVEL="2")
    env.update(extra_env or {})
    command = [str(python), "-m", "grader.cli", "grade", *map(str, submissions), "--out", str(out / "results"),
               "--skip-training", "--isolation", isolation, "-q"]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd or out, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {s.name: load_result(out / "results" / s.name / RECORD) for s in submissions}


def failed_checks(result: SubmissionResult) -> set[str]:
    return {c.id for c in result.checks if c.status != "passed"}


@pytest.fixture(scope="module")
def baseline(small_class: list[Path], workspace: Path) -> dict[str, SubmissionResult]:
    records = grade_class(sys.executable, small_class, workspace / "baseline")
    reference, buggy = records["reference"], records[VARIANT]
    assert reference.status == "graded" and reference.score == reference.max_score > 0
    lost = {c.exercise for c in buggy.checks if c.status != "passed"}
    assert lost == {"data"}, lost  # the variant loses in its own exercise only
    return records


def assert_same_grades(records: dict[str, SubmissionResult], baseline: dict[str, SubmissionResult],
                       isolation: str) -> None:
    reference = records["reference"]
    assert reference.status == "graded", reference.messages
    assert reference.score == reference.max_score == baseline["reference"].max_score, failed_checks(reference)
    if VARIANT in records:
        buggy = records[VARIANT]
        assert failed_checks(buggy) == failed_checks(baseline[VARIANT])
        assert buggy.score == baseline[VARIANT].score
    assert reference.extra["sandbox_isolation"] == isolation


def test_a_venv_under_tmp_with_its_packages_under_tmp(tmp_venv: Path, small_class: list[Path], workspace: Path,
                                                      baseline: dict[str, SubmissionResult]) -> None:
    probe = subprocess.run([str(tmp_venv), "-c", "import numpy, keras; print(numpy.__file__, keras.__file__)"],
                           capture_output=True, text=True, check=True)
    assert all(path.startswith(str(workspace)) for path in probe.stdout.split()), probe.stdout
    records = grade_class(tmp_venv, small_class[:1], workspace / "tmp-venv")
    assert_same_grades(records, baseline, baseline["reference"].extra["sandbox_isolation"])


@pytest.mark.parametrize("where", ["checkout-venv-in-home", "user-site"])
def test_python_in_a_closed_home(small_class: list[Path], workspace: Path, where: str,
                                 baseline: dict[str, SubmissionResult]) -> None:
    """HOME (mode 700, like /root) holds the environment: a checkout (solutions/ beside pyproject.toml, a folder
    the sandbox must not show) with its own .venv, graded from inside the checkout; or numpy in the user site
    (~/.local, `pip install --user`), ahead of the interpreter's own. The sandbox hides HOME but not them."""
    home = workspace / f"home-{where}"
    home.mkdir(mode=0o700)
    env = {"HOME": str(home)}
    cwd = home
    if where == "checkout-venv-in-home":
        cwd = home / "course"
        shutil.copytree(SOLUTIONS, cwd / "solutions" / "convolutions")
        (cwd / "pyproject.toml").write_text("[project]\nname = 'course'\n", encoding="utf-8")
        python: Path | str = make_venv(cwd / ".venv")
    else:
        python = sys.executable
        user_site = home / ".local" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
            "site-packages"
        user_site.mkdir(parents=True)
        ours = Path(site.getsitepackages()[0])
        for name in ("numpy", "numpy.libs"):
            if (ours / name).exists():
                subprocess.run(["cp", "-al", str(ours / name), str(user_site / name)], check=True)
    probe = subprocess.run([str(python), "-c", "import numpy; print(numpy.__file__)"], capture_output=True,
                           text=True, check=True, env={**os.environ, **env})
    assert probe.stdout.startswith(str(home)), probe.stdout
    records = grade_class(python, small_class[:1], workspace / where, extra_env=env, cwd=cwd)
    assert_same_grades(records, baseline, baseline["reference"].extra["sandbox_isolation"])


WITHOUT_LINUX = """
import os

for name in ("sched_getaffinity", "sched_setaffinity", "pidfd_open", "unshare", "setns"):
    if hasattr(os, name):
        delattr(os, name)

import grader.sandbox.procs

grader.sandbox.procs.has_proc = lambda: False  # the process table from `ps`, as on macOS
"""


@needs_root
@pytest.mark.parametrize("isolation", ["userns", "none"])
def test_an_ordinary_user(tmp_venv: Path, small_class: list[Path], workspace: Path, isolation: str,
                          baseline: dict[str, SubmissionResult]) -> None:
    """Not root: no fresh uid; a user namespace where the machine allows one, else no isolation at all. Mode none
    is also a student's laptop without Linux namespaces, prctl, pidfd or /proc (macOS): the judge's Linux-only
    calls are taken away (a sitecustomize in the judge and its batch workers), and the buggy variant is graded
    too."""
    graded, extra_env = small_class[:1], None
    if isolation == "none":
        folder = workspace / "without-linux"
        folder.mkdir(mode=0o755)
        (folder / "sitecustomize.py").write_text(WITHOUT_LINUX, encoding="utf-8")
        (folder / "sitecustomize.py").chmod(0o644)
        graded, extra_env = small_class, {"PYTHONPATH": str(folder)}
    records = grade_class(tmp_venv, graded, workspace / f"user-{isolation}", user=USER, isolation=isolation,
                          extra_env=extra_env)
    assert_same_grades(records, baseline, isolation)
    if isolation == "none":
        assert any("reduced isolation (none)" in m for m in records["reference"].messages)


PROBE = """
import os


def who_and_write(path):
    try:
        with open(path, "w") as handle:
            handle.write("written by the submission")
        wrote = "ok"
    except OSError as exc:
        wrote = type(exc).__name__
    return {"uid": os.getuid(), "write": wrote}
"""


@needs_root
def test_root_without_namespaces_runs_the_submission_as_a_fresh_uid(tmp_venv: Path, small_class: list[Path],
                                                                     workspace: Path,
                                                                     baseline: dict[str, SubmissionResult]) -> None:
    """A container that allows no namespaces but runs the grader as root (Gradescope's): mode none still runs
    the submission as an unused uid when any user can use the Python installation, so it cannot write the
    grader's files (the autograder, its results) or anything else of root's."""
    probe_dir = workspace / "probe"
    probe_dir.mkdir()
    (probe_dir / "probe.py").write_text(PROBE, encoding="utf-8")
    target = Path("/usr/local") / f"convgrader-probe-{os.getpid()}"
    script = ("from pathlib import Path; from grader.sandbox import Sandbox\n"
              f"with Sandbox(Path({str(probe_dir)!r}), isolation='none') as sandbox:\n"
              f"    print(sandbox.isolation, sandbox.call('probe', 'who_and_write', {str(target)!r}))\n")
    done = subprocess.run([str(tmp_venv), "-c", script], capture_output=True, text=True, check=True)
    isolation, _, answer = done.stdout.strip().partition(" ")
    assert isolation == "none+uid" and "'write': 'PermissionError'" in answer and not target.exists(), answer
    assert int(answer.split("'uid': ")[1].split(",")[0]) >= 60000
    records = grade_class(tmp_venv, small_class[:1], workspace / "root-none", isolation="none")
    assert_same_grades(records, baseline, "none+uid")
