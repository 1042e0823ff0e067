"""Hostile submissions: one real batch (`grader grade` as a subprocess, two workers) of every hostile fixture
beside the reference solution, then a look at everything they tried to reach.

tests/fixtures/hostile/ holds the modules that differ from the reference in each submission:
- escape: forges result files everywhere (data.py), plants a bonus check into the grader's suites and a .pth
  into site-packages (callbacks.py), deletes files outside its folder (visualize.py), opens network
  connections (convolution.py); every function is right, so it must score exactly like the reference;
- killers: os._exit and sys.exit at import, kill(getppid()), killpg(0), `kill -9 -1`, kill(host pids);
- patcher: patches the judge's drivers, pytest and the grader's modules inside the sandbox to hide that its
  training drops the callbacks and its experiment trains nothing (patcher_control: the same without patches);
- spyforger: the same two bugs, hidden instead by rewriting, while the judge's driver runs it, the counters of
  the spies the driver handed it (the callback objects, the closure of the spy on keras.Model.fit);
- reader: reads the hidden suites and the solutions and sends the text back in errors and values.
The test adds hostile_targets.py to each, naming the host's real folders, ports and pids to attack. The
batch also gets archives with `../` and absolute names, a symlink and a zip bomb, and a folder whose module is
a symlink out of it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import grader
from grader.cli import main
from grader.results import SubmissionResult, load_result
from grader.suites.convolutions import ASSIGNMENT as CONVOLUTIONS

EXERCISES = CONVOLUTIONS.modules

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions" / "convolutions"
PACKAGE = Path(grader.__file__).resolve().parent
SUITES = PACKAGE / "suites" / "convolutions"
HOSTILE = Path(__file__).resolve().parent / "fixtures" / "hostile"
TIMEOUT = "30"  # long enough for the first fits on a slow, busy 2-core machine
FORGED = "FORGED-BY-SUBMISSION"
PLANTED = "PLANTED-BY-SUBMISSION"
RESULT_NAMES = ("results.json", "grader-result.json", "gradebook.csv", "junit.xml", "report.html")
PLANTED_NAMES = ("test_zzz_planted.py", "zzz_planted_conftest.py", "zzz_planted.pth")
ARCHIVES = {  # id: what the message must say
    "dotdot": "has an entry that points outside it (../escaped.py)",
    "absolute": "has an entry with an absolute path (/tmp/convgrader-escaped.py)",
    "zipsymlink": "has a symbolic link (models.py)",
    "bomb": "unpacks to more than",
}


# ------------------------------------------------------------------------------------------ building the class


def _copy_reference(target: Path) -> Path:
    shutil.copytree(SOLUTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _overlay(fixture: str, target: Path, targets: dict[str, Any]) -> Path:
    _copy_reference(target)
    for module in (HOSTILE / fixture).glob("*.py"):
        shutil.copyfile(module, target / module.name)
    (target / "hostile_targets.py").write_text(f"TARGETS = {targets!r}\n", encoding="utf-8")
    return target


def _reference_modules() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(SOLUTIONS.glob("*.py"))]


def make_archive(kind: str, path: Path) -> Path:
    """A zip of the reference modules plus one entry that makes it unusable."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in _reference_modules():
            if kind == "zipsymlink" and name == "models.py":
                link = zipfile.ZipInfo("models.py")
                link.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(link, str(SOLUTIONS / "models.py"))
            elif kind == "bomb" and name == "data.py":
                with archive.open("data.py", "w") as handle:
                    for _ in range(120):
                        handle.write(b"#" * 1024 * 1024)
            else:
                archive.writestr(name, data)
        if kind == "dotdot":
            archive.writestr("../escaped.py", "ESCAPED = True\n")
        elif kind == "absolute":
            archive.writestr(zipfile.ZipInfo("/tmp/convgrader-escaped.py"), "ESCAPED = True\n")
    return path


def readable_sources() -> list[str]:
    """The suites' and the solutions' non-empty source files: what a reader would want."""
    files = sorted(SUITES.glob("*.py")) + sorted(SOLUTIONS.glob("*.py"))
    return [str(p) for p in files if p.stat().st_size > 0]


def _host_addresses() -> list[str]:
    addresses = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            addresses.add(probe.getsockname()[0])
    except OSError:
        pass
    try:
        addresses.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET))
    except OSError:
        pass
    return sorted(addresses - {"127.0.0.1", "0.0.0.0"})


def _digest(folders: list[Path]) -> dict[str, str]:
    """The hash of every file (and the mode of every folder and link) under `folders`."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or path.is_dir():
                found[str(path)] = f"{'link' if path.is_symlink() else 'dir'} {path.lstat().st_mode:o}"
            else:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _env_folders(env: dict[str, str]) -> list[str]:
    folders = set()
    for value in env.values():
        folders.update(p for p in value.split(os.pathsep) if os.path.isabs(p) and os.path.isdir(p))
    return sorted(folders)


def _files_with(marker: str, folders: list[str], names: tuple[str, ...]) -> list[Path]:
    found = []
    for folder in folders:
        for name in names:
            path = Path(folder) / name
            try:
                if path.is_file() and marker in path.read_text(encoding="utf-8", errors="replace"):
                    found.append(path)
            except OSError:
                continue
    return found


def _tree_files_with(marker: str, folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and marker.encode() in p.read_bytes()]


@dataclass
class Arena:
    class_dir: Path
    out: Path
    work: Path
    home: Path
    tmp: Path
    targets: dict[str, Any]
    ids: list[str]
    completed: subprocess.CompletedProcess[str]
    seconds: float
    grader_before: dict[str, str]
    grader_after: dict[str, str]
    canary_before: dict[str, str]
    canary_after: dict[str, str]
    reference_before: dict[str, str]
    reference_after: dict[str, str]
    places_before: dict[str, str]
    places_after: dict[str, str]
    forged: list[Path] = field(default_factory=list)
    planted: list[Path] = field(default_factory=list)
    tcp_received: list[str] = field(default_factory=list)
    udp_received: list[str] = field(default_factory=list)

    def record(self, submission_id: str) -> SubmissionResult:
        return load_result(self.out / submission_id / "grader-result.json")

    def gradescope(self, submission_id: str) -> dict[str, Any]:
        return json.loads((self.out / submission_id / "results.json").read_text(encoding="utf-8"))


def _listen() -> tuple[socket.socket, socket.socket]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("0.0.0.0", 0))
    tcp.listen(16)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    return tcp, udp


def _drain(tcp: socket.socket, udp: socket.socket) -> tuple[list[str], list[str]]:
    """Connections and datagrams that arrived (the kernel queues them even though nobody accepted yet)."""
    connections, datagrams = [], []
    tcp.settimeout(0.5)
    udp.settimeout(0.5)
    try:
        while True:
            connection, peer = tcp.accept()
            connection.settimeout(1)
            try:
                connections.append(f"{peer}: {connection.recv(200)!r}")
            except OSError:
                connections.append(f"{peer}: (nothing sent)")
            connection.close()
    except OSError:
        pass
    try:
        while True:
            data, peer = udp.recvfrom(200)
            datagrams.append(f"{peer}: {data!r}")
    except OSError:
        pass
    return connections, datagrams


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    base = tmp_path_factory.mktemp("hostile")
    class_dir, out, work, home, tmp, canary = (base / n for n in ("class", "out", "work", "home", "tmp", "canary"))
    for folder in (class_dir, work, home, tmp, canary):
        folder.mkdir()
    (canary / "precious.txt").write_text("another course's data\n", encoding="utf-8")
    (canary / "nested").mkdir()
    (canary / "nested" / "keep.json").write_text('{"keep": true}\n', encoding="utf-8")
    # An account that has used Keras and matplotlib before: their first-import config files already exist
    (home / ".keras").mkdir()
    (home / ".keras" / "keras.json").write_text(json.dumps(
        {"floatx": "float32", "epsilon": 1e-07, "backend": "tensorflow", "image_data_format": "channels_last"}))
    (home / ".config" / "matplotlib").mkdir(parents=True)
    tcp, udp = _listen()
    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmp), TF_CPP_MIN_LOG_LEVEL="2", PYTHONDONTWRITEBYTECODE="1")
    hostile_ids = ["escape", "killers", "patcher", "patcher_control", "spyforger", "reader"]
    ids = ["reference", *hostile_ids, "linker", *ARCHIVES]
    targets: dict[str, Any] = {
        "folders": sorted({str(work), *map(str, work.parents), str(home), str(Path.home()), str(tmp),
                           tempfile.gettempdir(), str(out), *(str(out / i) for i in ids), str(class_dir),
                           *(str(class_dir / i) for i in ids), str(ROOT), str(PACKAGE), str(SUITES),
                           str(SOLUTIONS), *_env_folders(env)}),
        "plant": [str(PACKAGE), str(SUITES), str(SOLUTIONS), str(ROOT / "tests")],
        "delete": [str(canary), str(class_dir / "reference"), str(out)],
        "read": readable_sources(),
        "hosts": _host_addresses(),
        "tcp_port": tcp.getsockname()[1],
        "udp_port": udp.getsockname()[1],
        "pids": [os.getpid()],
    }
    paths = [_copy_reference(class_dir / "reference")]
    for name in hostile_ids:
        paths.append(_overlay(name.removesuffix("_control"), class_dir / name, targets))
    (class_dir / "patcher_control" / "sneaky.py").write_text('"""The control: patches nothing."""\n')
    linker = _copy_reference(class_dir / "linker")
    (linker / "convolution.py").unlink()
    (linker / "convolution.py").symlink_to(SOLUTIONS / "convolution.py")
    paths.append(linker)
    paths.extend(make_archive(kind, class_dir / f"{kind}.zip") for kind in ARCHIVES)

    watched = [PACKAGE, SOLUTIONS]
    grader_before, canary_before, places_before = _digest(watched), _digest([canary]), _digest([work, home, tmp])
    reference_before = _digest([class_dir / "reference"])
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "grader.cli", "grade", *map(str, paths), "--out", str(out), "--skip-training",
             "--timeout", TIMEOUT, "--memory", "2G", "--jobs", "2", "-q"],
            cwd=work, env=env, capture_output=True, text=True, timeout=1500,
        )
        seconds = time.perf_counter() - started
        tcp_received, udp_received = _drain(tcp, udp)
    finally:
        tcp.close()
        udp.close()
    arena = Arena(
        class_dir=class_dir, out=out, work=work, home=home, tmp=tmp, targets=targets, ids=ids,
        completed=completed, seconds=seconds, grader_before=grader_before, grader_after=_digest(watched),
        canary_before=canary_before, canary_after=_digest([canary]), reference_before=reference_before,
        reference_after=_digest([class_dir / "reference"]), places_before=places_before,
        places_after=_digest([work, home, tmp]), tcp_received=tcp_received, udp_received=udp_received,
    )
    arena.forged = _files_with(FORGED, targets["folders"], RESULT_NAMES) + _tree_files_with(FORGED, out)
    site_packages = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    arena.planted = _files_with(PLANTED, targets["plant"] + site_packages, PLANTED_NAMES) + [
        p for p in PACKAGE.rglob("*planted*")
    ]
    yield arena
    for path in {*arena.forged, *arena.planted}:  # should there be any, they must not outlive the test
        if path.is_file() and not path.is_relative_to(base):
            path.unlink()


def _outputs(result: SubmissionResult, exercise: str, function: str = "") -> list[str]:
    return [c.output for c in result.checks if c.exercise == exercise and function in c.id]


def _failed(result: SubmissionResult, exercise: str) -> list[str]:
    return [f"{c.id}: {c.output}" for c in result.checks if c.exercise == exercise and c.status != "passed"]


# -------------------------------------------------------------------------------------------- the batch itself


@pytest.mark.slow
def test_the_batch_finishes_every_submission(arena: Arena) -> None:
    assert arena.completed.returncode == 0, arena.completed.stderr[-3000:]
    for submission_id in arena.ids:
        record = arena.record(submission_id)
        assert record.status in ("graded", "error"), (submission_id, record.status, record.messages)
        assert arena.gradescope(submission_id)["extra_data"]["status"] == record.status
        assert not any("worker process died" in m for m in record.messages), (submission_id, record.messages)
    with open(arena.out / "gradebook.csv", encoding="utf-8") as handle:
        listed = handle.read()
    assert all(submission_id in listed for submission_id in arena.ids)


@pytest.mark.slow
def test_the_reference_keeps_full_marks(arena: Arena) -> None:
    reference = arena.record("reference")
    assert reference.status == "graded"
    assert reference.score == reference.max_score > 0, [c.output for c in reference.checks if c.status != "passed"]
    assert set(reference.by_exercise()) == set(EXERCISES)


@pytest.mark.slow
def test_the_grader_and_the_solutions_are_byte_identical(arena: Arena) -> None:
    before, after = arena.grader_before, arena.grader_after
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    modified = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    assert not arena.planted, arena.planted
    # (a developer editing the grader while this runs shows up here too)
    assert (added, removed, modified) == ([], [], []), {"added": added, "removed": removed, "modified": modified}


@pytest.mark.slow
def test_planted_checks_never_run(arena: Arena) -> None:
    ids = {c.id for c in arena.record("reference").checks}
    for submission_id in arena.ids:
        record = arena.record(submission_id)
        assert record.status == "error" or {c.id for c in record.checks} == ids, submission_id
        assert record.max_score in (0, arena.record("reference").max_score), submission_id


@pytest.mark.slow
def test_forged_results_never_reach_the_host(arena: Arena) -> None:
    assert not arena.forged, arena.forged
    escape = arena.record("escape")
    reference = arena.record("reference")
    assert escape.by_exercise() == reference.by_exercise(), _failed(escape, "data")
    for submission_id in arena.ids:  # every file of the batch is the judge's
        data = arena.gradescope(submission_id)
        assert data["extra_data"]["submission"] == submission_id
        assert data["score"] == arena.record(submission_id).score <= reference.max_score


@pytest.mark.slow
def test_deleting_outside_files_has_no_effect(arena: Arena) -> None:
    assert arena.canary_after == arena.canary_before
    assert arena.reference_after == arena.reference_before
    escape = arena.record("escape")
    assert not _failed(escape, "visualize"), _failed(escape, "visualize")


@pytest.mark.slow
def test_network_connections_reach_nothing(arena: Arena) -> None:
    assert arena.tcp_received == [] and arena.udp_received == []
    escape = arena.record("escape")
    assert not _failed(escape, "convolution"), _failed(escape, "convolution")


@pytest.mark.slow
def test_grading_leaves_nothing_in_the_working_dir_home_or_tmp(arena: Arena) -> None:
    """The batch ran in `work` with HOME=`home` and TMPDIR=`tmp`: none of them changed."""
    assert arena.places_after == arena.places_before


# ------------------------------------------------------------------------------------------------- the killers


@pytest.mark.slow
def test_exits_and_kills_cost_only_their_functions(arena: Arena) -> None:
    killers, reference = arena.record("killers"), arena.record("reference")
    assert killers.status == "graded"
    ours, theirs = killers.by_exercise(), reference.by_exercise()
    assert ours["data"][0] == ours["models"][0] == ours["experiments"][0] == 0
    assert ours["callbacks"] == theirs["callbacks"] and ours["training"] == theirs["training"]
    assert _outputs(killers, "data")[0] == "data.py exited during import (exit status 5)"
    assert _outputs(killers, "models")[0] == "models.py exited during import (SystemExit 3)"
    checks = {c.id: c for c in killers.checks}
    convolve = [c for i, c in checks.items() if "convolve2d" in i or "edge_kernel" in i]
    assert convolve and all(c.status == "passed" for c in convolve), [c.output for c in convolve]
    pool = _outputs(killers, "convolution", "max_pool2d")
    assert pool[0] == "the sandbox process was killed by signal 9 (SIGKILL) while running max_pool2d", pool[0]
    activations = [c for i, c in checks.items() if c.exercise == "visualize" and "plot" not in i]
    assert activations[0].output == (
        "the sandbox process was killed by signal 9 (SIGKILL) while running layer_activations"
    ), activations[0].output
    plot = [c for i, c in checks.items() if c.exercise == "visualize" and "plot" in i]
    assert plot and all(c.status == "passed" for c in plot), [c.output for c in plot]


# ------------------------------------------------------------------------------------------------- the patcher


@pytest.mark.slow
@pytest.mark.parametrize("submission_id", ["patcher", "spyforger"])
def test_tampering_with_the_judges_code_in_the_sandbox_gains_nothing(arena: Arena, submission_id: str) -> None:
    """Its training drops the callbacks and its experiment trains nothing, like patcher_control's. Patching the
    drivers (and pytest, and the grader's modules) inside the sandbox, or forging the counters of the spies a
    driver hands to student code, must not hide either."""
    tamperer, control = arena.record(submission_id), arena.record("patcher_control")
    status = {c.id: c.status for c in tamperer.checks}
    control_failed = sorted(c.id for c in control.checks if c.status == "failed")
    # the control shows what the checks catch without any tampering
    assert {"training::check_callbacks_reach_fit", "experiments::check_trains_each_model"} <= set(control_failed)
    hidden_by_tampering = [check_id for check_id in control_failed if status[check_id] != "failed"]
    assert not hidden_by_tampering, f"{submission_id} made these checks pass: {hidden_by_tampering}"
    assert tamperer.score <= control.score


# -------------------------------------------------------------------------------------------------- the reader


def _hidden_names(reference: SubmissionResult) -> list[str]:
    """Titles and function names of the hidden checks, leaving out any that a visible check's text contains."""
    visible = " ".join(f"{c.id} {c.name}" for c in reference.checks if not c.hidden)
    names = set()
    for check in reference.checks:
        if check.hidden:
            names.add(check.id.split("::")[1].split("[")[0])
            names.add(check.name.split(" [")[0])
    return sorted(name for name in names if name not in visible)


@pytest.mark.slow
def test_reading_the_hidden_suites_fails_in_the_batch(arena: Arena) -> None:
    reader = arena.record("reader")
    report = f"READER: 0 of {len(arena.targets['read'])} listed files readable"
    assert any(report in text for text in _outputs(reader, "convolution", "convolve2d")), \
        _outputs(reader, "convolution", "convolve2d")[0]


@pytest.mark.slow
def test_grader_check_feedback_never_shows_hidden_checks(arena: Arena, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = CliRunner().invoke(main, ["check", str(arena.class_dir / "reader"), "--skip-training", "--timeout",
                                    TIMEOUT, "--memory", "2G", "--json", str(out), "--verbose"])
    assert run.exit_code == 0, run.output
    text = run.output + out.read_text(encoding="utf-8")
    assert f"READER: 0 of {len(arena.targets['read'])} listed files readable" in text
    hidden = _hidden_names(arena.record("reference"))
    assert len(hidden) >= 10, hidden
    leaked = [name for name in hidden if name in text]
    assert not leaked, leaked


def test_the_reader_does_leak_outside_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: run on the host, the reader's own code reads every listed file and finds hidden checks."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in the fixture folder
    spec = importlib.util.spec_from_file_location("hostile_reader_control", HOSTILE / "reader" / "convolution.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    listed = readable_sources()
    readable, secrets = module.steal(listed)
    assert readable == len(listed)
    assert any("hidden=True" in secret for secret in secrets)


# --------------------------------------------------------------------------------------- archives and links


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_unusable_archive_is_an_error_row(arena: Arena, kind: str) -> None:
    record = arena.record(kind)
    assert record.status == "error" and record.checks == []
    assert any(ARCHIVES[kind] in message for message in record.messages), record.messages


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_unusable_archive_is_refused_by_grader_check(kind: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_archive(kind, tmp_path / f"{kind}.zip")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the loader unpacks
    run = CliRunner().invoke(main, ["check", str(archive), "--skip-training"])
    assert run.exit_code == 2, run.output
    assert ARCHIVES[kind] in run.output, run.output
    assert list(scratch.iterdir()) == []  # nothing unpacked is left, inside or beside the workspace
    assert not Path("/tmp/convgrader-escaped.py").exists()


@pytest.mark.slow
def test_a_module_linked_from_outside_is_left_out(arena: Arena) -> None:
    linker, reference = arena.record("linker"), arena.record("reference")
    assert "convolution.py is a link to a file outside the submission and was left out" in linker.messages
    # the file was found under its exact name and left out: a hint about misspelt names would mislead
    assert not any("case-sensitive" in message for message in linker.messages), linker.messages
    ours, theirs = linker.by_exercise(), reference.by_exercise()
    assert ours["convolution"][0] == 0
    assert all(ours[e] == theirs[e] for e in EXERCISES if e != "convolution"), ours
