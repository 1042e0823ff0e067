"""Submission loading: folders, notebooks and zips become a folder of plain modules, safely."""

from __future__ import annotations

import os
import shutil
import stat
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from grader.intake.submission import ZIP_MAX_ENTRIES, PreparedSubmission, SubmissionError, prepare_submission
from grader.sandbox import Limits, Sandbox

LOADING = Path(__file__).resolve().parent / "fixtures" / "loading"
EXPECTED = ("data", "models", "callbacks", "training", "convolution", "visualize", "experiments")


@pytest.fixture
def prepared() -> Iterator[list[PreparedSubmission]]:
    made: list[PreparedSubmission] = []
    yield made
    for submission in made:
        submission.cleanup()
        assert not submission.directory.exists()


def prepare(path: Path, made: list[PreparedSubmission]) -> PreparedSubmission:
    submission = prepare_submission(path, EXPECTED)
    made.append(submission)
    return submission


def modules(submission: PreparedSubmission) -> list[str]:
    return sorted(p.name for p in submission.directory.iterdir())


# ------------------------------------------------------------------------------------- folders


def test_folder_copies_modules_and_reports_the_missing(prepared: list[PreparedSubmission]) -> None:
    submission = prepare(LOADING / "folder_flat", prepared)
    assert (submission.name, submission.kind, submission.source) == ("folder_flat", "folder", LOADING / "folder_flat")
    assert modules(submission) == ["Callbacks.py", "convolution.py", "helpers.py", "models.py"]
    assert (submission.directory / "models.py").read_bytes() == (LOADING / "folder_flat" / "models.py").read_bytes()
    assert submission.messages[0] == (
        "the submission has no data.py; the checks of data fail"
    )
    assert ("the submission has no callbacks.py (Callbacks.py was found: names are case-sensitive and exact); "
            "the checks of callbacks fail") in submission.messages
    assert len(submission.messages) == 5  # data, callbacks, training, visualize, experiments


def test_single_sub_folder_is_used(prepared: list[PreparedSubmission]) -> None:
    submission = prepare(LOADING / "folder_nested", prepared)
    assert submission.name == "folder_nested" and modules(submission) == ["models.py"]


def test_folder_without_modules_or_notebook_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    (tmp_path / "utils.py").write_text("X = 1")
    with pytest.raises(SubmissionError, match=r"none of the assignment's modules \(data.py, models.py"):
        prepare_submission(tmp_path, EXPECTED)
    with pytest.raises(SubmissionError, match="does not exist"):
        prepare_submission(tmp_path / "nope", EXPECTED)
    (tmp_path / "report.pdf").write_bytes(b"%PDF")
    with pytest.raises(SubmissionError, match="not a folder, a notebook"):
        prepare_submission(tmp_path / "report.pdf", EXPECTED)


def test_links_big_files_and_caches(tmp_path: Path, prepared: list[PreparedSubmission]) -> None:
    outside = tmp_path / "secret.py"
    outside.write_text("SECRET = 1")
    folder = tmp_path / "bob"
    folder.mkdir()
    (folder / "models.py").write_text("def build_dnn():\n    return 1\n")
    (folder / "data.py").symlink_to(outside)
    (folder / "convolution.py").symlink_to(folder / "models.py")
    (folder / "training.py").write_text("#" * (1024 * 1024 + 1))
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "models.cpython-311.pyc").write_bytes(b"\0")
    submission = prepare(folder, prepared)
    assert modules(submission) == ["convolution.py", "models.py"]
    assert not (submission.directory / "convolution.py").is_symlink()
    assert "data.py is a link to a file outside the submission and was left out" in submission.messages
    assert "training.py is larger than 1 MiB and was left out" in submission.messages


def test_folder_with_only_a_notebook(tmp_path: Path, prepared: list[PreparedSubmission]) -> None:
    shutil.copy(LOADING / "lab_v3.ipynb", tmp_path / "lab.ipynb")
    submission = prepare(tmp_path, prepared)
    assert "_notebook.py" in modules(submission) and "data.py" in modules(submission)
    shutil.copy(LOADING / "lab_v3.ipynb", tmp_path / "lab2.ipynb")
    with pytest.raises(SubmissionError, match="several notebooks"):
        prepare_submission(tmp_path, EXPECTED)


# ----------------------------------------------------------------------------------- notebooks


def test_notebook_becomes_shims_and_definitions(prepared: list[PreparedSubmission]) -> None:
    submission = prepare(LOADING / "lab_v4.ipynb", prepared)
    assert (submission.name, submission.kind) == ("lab_v4", "notebook")
    assert modules(submission) == sorted(["_notebook.py"] + [f"{m}.py" for m in EXPECTED])
    assert "cell 10 of the notebook is not valid Python: invalid syntax (line 1)" in submission.messages


def test_invalid_notebook_is_graded_empty(prepared: list[PreparedSubmission]) -> None:
    submission = prepare(LOADING / "not_json.ipynb", prepared)
    assert submission.messages[0].startswith("the notebook is not valid JSON")
    assert (submission.directory / "_notebook.py").read_text() == ""


def test_notebook_runs_in_the_sandbox_without_its_training(prepared: list[PreparedSubmission]) -> None:
    submission = prepare(LOADING / "lab_v4.ipynb", prepared)
    with Sandbox(submission.directory, Limits(timeout=120), hide=[LOADING.parents[1]]) as sandbox:
        images = np.full((2, 28, 28), 255, dtype=np.uint8)
        prepared_images = sandbox.call("data", "prepare_images", images)
        assert prepared_images.shape == (2, 28, 28, 1) and prepared_images.dtype == np.float32
        kernel = sandbox.attr("convolution", "EDGE_KERNEL")
        assert kernel.sum() == 0 and kernel[1, 1] == 8
        image = np.arange(25, dtype=float).reshape(5, 5)
        assert sandbox.call("convolution", "convolve2d", image, kernel).shape == (3, 3)
        assert sandbox.call("convolution", "max_pool2d", image).tolist() == [[6.0, 8.0], [16.0, 18.0]]
        assert sandbox.has("callbacks", "StopOnThreshold") and not sandbox.has("models", "build_cnn")
        tail = sandbox.output_tail()
    assert "TRAINING DATA LOADED" not in tail and "Epoch" not in tail
    assert "`from google.colab import drive` failed (ModuleNotFoundError" in tail


# ---------------------------------------------------------------------------------------- zips


def _zip(path: Path, entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_zip_of_a_folder(tmp_path: Path, prepared: list[PreparedSubmission]) -> None:
    archive = _zip(tmp_path / "carol.zip", {
        "carol/models.py": b"def build_dnn():\n    return 1\n",
        "carol/data.py": b"def prepare_images(x):\n    return x\n",
        "__MACOSX/carol/._models.py": b"\0\0junk",
        "carol/.DS_Store": b"\0",
    })
    submission = prepare(archive, prepared)
    assert (submission.name, submission.kind) == ("carol", "zip")
    assert modules(submission) == ["data.py", "models.py"]


def test_zip_of_a_notebook(tmp_path: Path, prepared: list[PreparedSubmission]) -> None:
    archive = _zip(tmp_path / "dave.zip", {"lab.ipynb": (LOADING / "lab_v3.ipynb").read_bytes()})
    submission = prepare(archive, prepared)
    assert submission.kind == "zip" and "_notebook.py" in modules(submission)


@pytest.mark.parametrize("name, reason", [
    ("../evil.py", "points outside it"),
    ("carol/../../evil.py", "points outside it"),
    ("/etc/evil.py", "absolute path"),
    ("C:/evil.py", "absolute path"),
    ("..\\evil.py", "points outside it"),
])
def test_zip_entries_that_escape_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    archive = _zip(tmp_path / "evil.zip", {"models.py": b"X = 1", name: b"print('escaped')"})
    with pytest.raises(SubmissionError, match=reason):
        prepare_submission(archive, EXPECTED)
    assert not (tmp_path / "evil.py").exists() and not Path("/etc/evil.py").exists()


def test_zip_symlink_entries_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("models.py", b"X = 1")
        link = zipfile.ZipInfo("data.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(link, "/etc/passwd")
    with pytest.raises(SubmissionError, match="symbolic link"):
        prepare_submission(archive, EXPECTED)


def test_zip_bomb_is_stopped_early(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"models.py": b"X = 1", "padding.txt": bytes(200 * 1024**2)})
    assert archive.stat().st_size < 1024**2
    started = time.monotonic()
    with pytest.raises(SubmissionError, match="more than 100 times its size"):
        prepare_submission(archive, EXPECTED)
    assert time.monotonic() - started < 5
    assert not any(Path(p).name.startswith("convgrader-submission-") and _size(Path(p)) > 10 * 1024**2
                   for p in _temp_entries())


def test_zip_too_large_even_when_incompressible(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).bytes(51 * 1000**2)
    archive = _zip(tmp_path / "big.zip", {"models.py": b"X = 1", "noise.bin": noise}, compression=zipfile.ZIP_STORED)
    with pytest.raises(SubmissionError, match="unpacks to more than 50 MB"):
        prepare_submission(archive, EXPECTED)


def test_zip_header_sizes_are_not_trusted(tmp_path: Path) -> None:
    """An entry whose headers claim 10 bytes but which holds far more is still stopped."""
    archive = _zip(tmp_path / "liar.zip", {"models.py": b"X = 1", "payload.txt": bytes(80 * 1024**2)})
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zipped:
        info = zipped.getinfo("payload.txt")
    local = info.header_offset
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")  # local header: uncompressed size
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")  # central directory: same
    archive.write_bytes(bytes(data))
    with pytest.raises(SubmissionError):
        prepare_submission(archive, EXPECTED)


def test_zip_with_too_many_entries(tmp_path: Path) -> None:
    entries = {f"f{i}.txt": b"" for i in range(ZIP_MAX_ENTRIES + 1)} | {"models.py": b"X = 1"}
    with pytest.raises(SubmissionError, match="more than 2000 entries"):
        prepare_submission(_zip(tmp_path / "many.zip", entries), EXPECTED)


def test_broken_zip(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SubmissionError, match="not a valid zip"):
        prepare_submission(broken, EXPECTED)


def test_cleanup_removes_everything(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "erin.zip", {"models.py": b"X = 1"})
    submission = prepare_submission(archive, EXPECTED)
    workspace = submission.directory.parent
    assert workspace.exists() and (workspace / "extracted" / "models.py").exists()
    submission.cleanup()
    submission.cleanup()  # idempotent
    assert not workspace.exists()


def _temp_entries() -> list[str]:
    import tempfile

    base = tempfile.gettempdir()
    return [os.path.join(base, name) for name in os.listdir(base)]


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
