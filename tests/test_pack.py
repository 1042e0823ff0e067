"""`grader pack`: a small, checked zip that `grader grade` takes as it is."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.intake.pack import PackError, pack
from grader.intake.submission import prepare_submission
from grader.suites.convolutions import ASSIGNMENT


def test_folder_is_packed_with_only_the_modules(solution_copy: Path, tmp_path: Path) -> None:
    (solution_copy / "notes.txt").write_text("private")
    report = pack(solution_copy, tmp_path / "submission.zip", ASSIGNMENT.modules)
    assert report.files == sorted(f"{m}.py" for m in ASSIGNMENT.modules) and not report.warnings
    again = pack(solution_copy, tmp_path / "again.zip", ASSIGNMENT.modules)
    assert report.archive.read_bytes() == again.archive.read_bytes()  # deterministic
    prepared = prepare_submission(report.archive, ASSIGNMENT.modules)
    try:
        assert sorted(p.name for p in prepared.directory.glob("*.py")) == report.files
    finally:
        prepared.cleanup()


def test_missing_module_is_a_warning_and_a_syntax_error_an_error(solution_copy: Path, tmp_path: Path) -> None:
    (solution_copy / "visualize.py").unlink()
    report = pack(solution_copy, tmp_path / "a.zip", ASSIGNMENT.modules)
    assert report.warnings == ["visualize.py is missing: its checks will fail."]
    (solution_copy / "models.py").write_text("def build_dnn(:\n    pass\n")
    with pytest.raises(PackError, match="models.py, line 1"):
        pack(solution_copy, tmp_path / "b.zip", ASSIGNMENT.modules)


def test_notebook_outputs_are_stripped(tmp_path: Path, solutions_dir: Path) -> None:
    cell = nbformat.v4.new_code_cell((solutions_dir / "convolution.py").read_text())
    cell.outputs = [nbformat.v4.new_output("stream", text="x" * 100_000)]
    cell.execution_count = 3
    path = tmp_path / "lab.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), str(path))
    report = pack(path, tmp_path / "out.zip", ASSIGNMENT.modules)
    assert report.size < 10_000
    with zipfile.ZipFile(report.archive) as archive:
        packed = json.loads(archive.read("lab.ipynb"))
    assert packed["cells"][0]["outputs"] == [] and packed["cells"][0]["execution_count"] is None
    assert nbformat.validate(nbformat.reads(json.dumps(packed), as_version=4)) is None


def test_cli_pack_then_check(tmp_path: Path, solutions_dir: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "work"
    shutil.copytree(solutions_dir, folder)
    archive = tmp_path / "submission.zip"
    packed = runner.invoke(main, ["pack", str(folder), "--out", str(archive)])
    assert packed.exit_code == 0, packed.output
    assert "wrote" in packed.output
    bad = runner.invoke(main, ["pack", str(tmp_path / "submission.zip")])
    assert bad.exit_code == 1 and "Pass the folder" in bad.output
