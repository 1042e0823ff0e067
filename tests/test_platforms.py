"""Gradescope and PrairieLearn, in their own layouts: the zip and the release folder are built from this
checkout, installed in a throwaway venv (setup.sh), and their scripts grade submissions as the platforms
would run them (run_autograder, the PrairieLearn entrypoint). The grader runs with --skip-training baked
in; the training run with its time and memory is measured once by hand (docs/platforms.md)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from grader.datasets.fashion_mnist import SHA256
from grader.judge.grading import GradeOptions
from grader.platforms.autograde import autograde, find_submission, layout
from grader.platforms.gradescope import write_autograder_zip
from grader.platforms.prairielearn import MAX_TIMEOUT, write_prairielearn
from grader.reports.gradescope import validate_gradescope
from grader.reports.prairielearn import validate_prairielearn
from grader.suites.convolutions import ASSIGNMENT as CONVOLUTIONS

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("data", "models", "callbacks", "training", "convolution", "visualize", "experiments")


# ------------------------------------------------------------------------------------------ helpers


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a platform's container: no PYTHONPATH pointing at this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRADER_AUTOGRADER_ROOT", "GRADER_PL_ROOT")}
    env.update(extra)
    return env


def _notebook(solutions: Path, target: Path) -> Path:
    cells = [nbformat.v4.new_markdown_cell("# Improving Computer Vision Accuracy using Convolutions")]
    cells += [nbformat.v4.new_code_cell((solutions / f"{m}.py").read_text(encoding="utf-8")) for m in MODULES]
    cells.append(nbformat.v4.new_code_cell("print('done')"))
    path = target / "lab.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(path))
    return path


def _broken_grader(tmp: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes `import grader` fail: the grader itself is broken."""
    package = tmp / "broken-grader" / "grader"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the grader package is damaged (test)')\n")
    return package.parent


def _lost_exercises(scores: dict[str, float], reference: dict[str, float]) -> set[str]:
    return {exercise for exercise, score in scores.items() if score < reference[exercise] - 1e-9}


# ---------------------------------------------------------------------------------------- Gradescope


class Gradescope:
    def __init__(self, source: Path, venv: Path) -> None:
        self.source, self.venv = source, venv

    def run(self, root: Path, fill: Callable[[Path], Any] | None, **env: str) -> tuple[dict[str, Any], str]:
        """Lay out `root` as Gradescope does, fill its submission folder, run run_autograder there."""
        (root / "submission").mkdir(parents=True, exist_ok=True)
        if fill is not None:
            fill(root / "submission")
        shutil.copy2(self.source / "run_autograder", root / "run_autograder")
        default_root = root == Path("/autograder")
        settings = {"GRADER_VENV": str(self.venv), "GRADER_AUTOGRADER_SOURCE": str(self.source), **env}
        if not default_root:
            settings["GRADER_AUTOGRADER_ROOT"] = str(root)
        done = subprocess.run([str(root / "run_autograder")], cwd=root, env=_clean_env(**settings),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
        assert validate_gradescope(results) == [], results
        return results, done.stdout + done.stderr


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_autograder_zip(ROOT, tmp_path_factory.mktemp("release") / "autograder.zip", CONVOLUTIONS,
                                skip_training=True)


@pytest.fixture(scope="module")
def gradescope(zip_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Gradescope:
    """The zip unpacked like /autograder/source, and setup.sh run to completion (in a venv that reuses what is
    installed here: Gradescope's image starts bare and downloads the pinned versions)."""
    base = tmp_path_factory.mktemp("gradescope")
    source, venv = base / "source", base / "venv"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(source)
    for name in ("setup.sh", "run_autograder"):  # extractall drops the permission bits: restore them as unzip does
        (source / name).chmod(0o755)
    done = subprocess.run(["bash", str(source / "setup.sh")], cwd=source, capture_output=True, text=True, timeout=900,
                          env=_clean_env(GRADER_VENV=str(venv), GRADER_PYTHON=sys.executable,
                                         GRADER_VENV_OPTIONS="--system-site-packages"))
    assert done.returncode == 0, done.stdout + done.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import grader; print(grader.__file__)"],
                           capture_output=True, text=True, env=_clean_env(), check=True, cwd=base).stdout
    assert where.startswith(str(venv)), where  # the wheel, not this checkout
    return Gradescope(source, venv)


@pytest.fixture(scope="module")
def gs_reference(gradescope: Gradescope, tmp_path_factory: pytest.TempPathFactory,
                 solutions_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("gs-reference")

    def fill(folder: Path) -> None:
        for module in solutions_dir.glob("*.py"):
            shutil.copy2(module, folder / module.name)
        (folder / "README.txt").write_text("Gradescope also keeps other files here\n")
        (root / "submission_metadata.json").write_text(json.dumps({
            "id": 4242, "created_at": "2026-12-04T10:00:00Z", "assignment": {"id": 7, "title": "Convolutions"},
            "users": [{"id": 31, "email": "student@example.edu", "name": "A Student"}], "previous_submissions": [],
        }))

    results, _ = gradescope.run(root, fill)
    return results


def _gs_by_exercise(results: dict[str, Any]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for test in results["tests"]:
        exercise = test["extra_data"]["exercise"]
        totals[exercise] = totals.get(exercise, 0.0) + test["score"]
    return totals


def test_zip_has_setup_and_run_autograder_at_its_root(zip_path: Path) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        requirements = archive.read("requirements.txt").decode().split()
        sums = archive.read("fashion-mnist/SHA256SUMS").decode()
        wheel_name = next(n for n in infos if n.endswith(".whl"))
        with zipfile.ZipFile(archive.open(wheel_name)) as wheel:
            suites = {n: wheel.read(n).decode() for n in wheel.namelist() if "/suites/convolutions/test_" in n}
    for name in ("setup.sh", "run_autograder"):
        assert name in infos, sorted(infos)
        assert (infos[name].external_attr >> 16) & stat.S_IXUSR, f"{name} is not executable"
    assert "/" not in wheel_name
    assert all(len(r.split("==")) == 2 for r in requirements), requirements
    assert any(r.lower().startswith(("tensorflow", "tensorflow_cpu")) for r in requirements)
    for name, digest in SHA256.items():
        assert f"{digest}  {name}" in sums
        assert f"fashion-mnist/{name}" in infos
    assert any("hidden=True" in source for source in suites.values()), "the wheel's suites lost their hidden checks"


def test_reference_gets_full_marks_with_hidden_checks(gs_reference: dict[str, Any]) -> None:
    tests = gs_reference["tests"]
    assert gs_reference["score"] == sum(t["max_score"] for t in tests) > 0
    # hidden checks wait for the published grades: "hidden" would let the total reveal their points
    assert {t["visibility"] for t in tests} == {"visible", "after_published"}
    extra = gs_reference["extra_data"]
    assert extra["hidden_checks_run"] is True
    assert extra["sandbox_isolation"] in ("namespaces+uid", "userns", "none")
    assert extra["submission_metadata"] == {"id": 4242, "created_at": "2026-12-04T10:00:00Z",
                                            "assignment": {"id": 7, "title": "Convolutions"}, "user_ids": [31],
                                            "previous_submissions": 0}
    assert "student@example.edu" not in json.dumps(gs_reference)


def _buggy_copy(solutions: Path, target: Path, variant: str,
                apply_variant: Callable[[str, Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    shutil.copytree(solutions, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target, apply_variant(variant, target)


def test_a_buggy_notebook_at_the_real_autograder_path(
    gradescope: Gradescope, gs_reference: dict[str, Any], tmp_path: Path, solutions_dir: Path,
    apply_variant: Callable[[str, Path], dict[str, Any]],
) -> None:
    """Once in the real layout: /autograder (created here, removed afterwards), a notebook with a bug: it loses
    points in the bug's exercise only."""
    buggy, bug = _buggy_copy(solutions_dir, tmp_path / "buggy", "flipped_kernel", apply_variant)
    real = Path("/autograder")
    if real.exists():
        pytest.fail(f"{real} exists on this machine; this test creates and removes it, so it must not be there")
    try:
        real.mkdir()
        shutil.copytree(gradescope.source, real / "source")
        results, _ = gradescope.run(real, lambda folder: _notebook(buggy, folder))
    finally:
        shutil.rmtree(real, ignore_errors=True)
    assert results["extra_data"]["kind"] == "notebook"
    lost = _lost_exercises(_gs_by_exercise(results), _gs_by_exercise(gs_reference))
    assert lost == set(bug["loses"])
    assert results["score"] < gs_reference["score"]


def test_empty_submission_scores_zero_and_says_why(gradescope: Gradescope, tmp_path: Path) -> None:
    results, _ = gradescope.run(tmp_path / "autograder", None)
    assert results["score"] == 0 and results["tests"] == []
    assert "Nothing could be graded" in results["output"]
    assert "holds none of the assignment's modules" in results["output"]


def test_a_broken_grader_still_writes_results_json(gradescope: Gradescope, tmp_path: Path,
                                                   solutions_dir: Path) -> None:
    broken = _broken_grader(tmp_path)
    results, output = gradescope.run(tmp_path / "autograder", lambda f: shutil.copytree(solutions_dir, f,
                                     dirs_exist_ok=True), PYTHONPATH=str(broken))
    assert results["score"] == 0
    assert "not a problem with your work" in results["output"]
    assert "the grader package is damaged (test)" in results["output"]
    assert results["extra_data"]["status"] == "grader_error" and results["extra_data"]["exit_code"] != 0
    assert "wrote no results.json" in output


def test_a_grading_past_the_deadline_still_writes_results_json(gradescope: Gradescope, tmp_path: Path,
                                                               solutions_dir: Path) -> None:
    results, _ = gradescope.run(tmp_path / "autograder", lambda f: shutil.copytree(solutions_dir, f,
                                dirs_exist_ok=True), GRADER_DEADLINE="3")
    assert results["score"] == 0 and results["extra_data"]["exit_code"] == 124
    assert "did not finish within the autograder's deadline of 3 s" in results["output"]


# -------------------------------------------------------------------------------------- PrairieLearn


class PrairieLearn:
    def __init__(self, release: Path, venv: Path) -> None:
        self.release, self.venv = release, venv

    def run(self, root: Path, fill: Callable[[Path], Any] | None, **env: str) -> dict[str, Any]:
        (root / "student").mkdir(parents=True, exist_ok=True)
        if fill is not None:
            fill(root / "student")
        settings = {"PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
                    "FASHION_MNIST_DIR": str(self.release / "fashion-mnist"), **env}  # the Dockerfile's ENV
        if root != Path("/grade"):
            settings["GRADER_PL_ROOT"] = str(root)
        done = subprocess.run([str(self.release / "entrypoint")], cwd=root, env=_clean_env(**settings),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
        assert validate_prairielearn(results) == [], results
        return results


@pytest.fixture(scope="module")
def prairielearn(gradescope: Gradescope, tmp_path_factory: pytest.TempPathFactory) -> PrairieLearn:
    """The release folder; its image's Python environment is the venv setup.sh made from the same wheel."""
    release = write_prairielearn(ROOT, tmp_path_factory.mktemp("pl") / "release", CONVOLUTIONS, skip_training=True)
    return PrairieLearn(release, gradescope.venv)


@pytest.fixture(scope="module")
def pl_reference(prairielearn: PrairieLearn, tmp_path_factory: pytest.TempPathFactory,
                 solutions_dir: Path) -> dict[str, Any]:
    return prairielearn.run(tmp_path_factory.mktemp("pl-reference"),
                            lambda f: shutil.copytree(solutions_dir, f, dirs_exist_ok=True))


def _pl_by_exercise(results: dict[str, Any]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for test in results["tests"]:
        exercise = test["description"].split()[1].rstrip(":")
        totals[exercise] = totals.get(exercise, 0.0) + test["points"]
    return totals


def test_release_folder_holds_image_recipe_entrypoint_and_info(prairielearn: PrairieLearn) -> None:
    release = prairielearn.release
    dockerfile = (release / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and f"FROM python:{sys.version_info.major}.{sys.version_info.minor}-slim" \
        in dockerfile
    assert "COPY fashion-mnist/" in dockerfile and "sha256sum --check" in dockerfile
    assert os.access(release / "entrypoint", os.X_OK)
    options = json.loads((release / "info.json").read_text())["externalGradingOptions"]
    assert options["enabled"] is True and options["enableNetworking"] is False
    assert 0 < options["timeout"] <= MAX_TIMEOUT
    assert f'deadline="${{GRADER_DEADLINE:-{options["timeout"] - 30}}}"' in (release / "entrypoint").read_text()
    assert options["entrypoint"] in dockerfile


def test_pl_reference_scores_one(pl_reference: dict[str, Any]) -> None:
    assert pl_reference["gradable"] is True
    assert pl_reference["score"] == 1.0
    assert all(t["points"] == t["max_points"] for t in pl_reference["tests"])
    hidden = [t for t in pl_reference["tests"] if t["name"].endswith("hidden check")]
    assert hidden and all(t["output"] == "" for t in hidden)


def test_pl_buggy_notebook_at_the_real_grade_path(
    prairielearn: PrairieLearn, pl_reference: dict[str, Any], tmp_path: Path, solutions_dir: Path,
    apply_variant: Callable[[str, Path], dict[str, Any]],
) -> None:
    """Once in the real layout: /grade (created here, removed afterwards; the results folder is made), a notebook
    with a bug: it loses points in the bug's exercise only."""
    buggy, bug = _buggy_copy(solutions_dir, tmp_path / "buggy", "no_softmax", apply_variant)
    real = Path("/grade")
    if real.exists():
        pytest.fail(f"{real} exists on this machine; this test creates and removes it, so it must not be there")
    try:
        results = prairielearn.run(real, lambda folder: _notebook(buggy, folder))
    finally:
        shutil.rmtree(real, ignore_errors=True)
    assert results["gradable"] is True and 0 < results["score"] < 1
    assert _lost_exercises(_pl_by_exercise(results), _pl_by_exercise(pl_reference)) == set(bug["loses"])


def test_pl_empty_submission_is_not_gradable(prairielearn: PrairieLearn, tmp_path: Path) -> None:
    results = prairielearn.run(tmp_path / "grade", None)
    assert results["gradable"] is False
    assert any("holds none of the assignment's modules" in e for e in results["format_errors"])


def test_pl_broken_grader_still_writes_results_json(prairielearn: PrairieLearn, tmp_path: Path,
                                                    solutions_dir: Path) -> None:
    results = prairielearn.run(tmp_path / "grade", lambda f: shutil.copytree(solutions_dir, f, dirs_exist_ok=True),
                               PYTHONPATH=str(_broken_grader(tmp_path)))
    assert results["gradable"] is False
    assert "not a problem with your work" in results["format_errors"][0]


def test_pl_grading_past_the_deadline_is_not_gradable(prairielearn: PrairieLearn, tmp_path: Path,
                                                      solutions_dir: Path) -> None:
    results = prairielearn.run(tmp_path / "grade", lambda f: shutil.copytree(solutions_dir, f, dirs_exist_ok=True),
                               GRADER_DEADLINE="3")
    assert results["gradable"] is False and "exit 124" in results["format_errors"][0]


# --------------------------------------------------------------------------- the library, in process


@pytest.fixture
def failing_judge(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import grader.judge.grading

    def fail(path: Path, options: Any = None) -> Any:
        raise RuntimeError("the training cache is corrupt (test)")

    monkeypatch.setattr(grader.judge.grading, "grade", fail)
    yield


@pytest.mark.parametrize("platform", ["gradescope", "prairielearn"])
def test_a_grader_fault_inside_grading_is_written(platform: str, tmp_path: Path, solutions_dir: Path,
                                                  failing_judge: None) -> None:
    where = layout(platform, tmp_path)  # type: ignore[arg-type]
    shutil.copytree(solutions_dir, where.submission)
    outcome = autograde(platform, tmp_path)  # type: ignore[arg-type]
    document = json.loads(where.results.read_text())
    assert outcome.kind == "fault" and "RuntimeError: the training cache is corrupt (test)" in outcome.details
    if platform == "gradescope":
        assert validate_gradescope(document) == []
        assert document["score"] == 0 and "the training cache is corrupt (test)" in document["output"]
        assert "Traceback" in document["extra_data"]["traceback"] and "Traceback" not in document["output"]
    else:
        assert validate_prairielearn(document) == []
        assert document["gradable"] is False and "the training cache is corrupt" in document["output"]


def test_a_sandbox_that_cannot_use_python_is_a_fault_not_a_score(tmp_path: Path, solutions_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The grader's own environment broken inside grading (the sandbox cannot read numpy): Gradescope gets the
    fault for the staff, not a 0 for the student."""
    import numpy

    monkeypatch.setenv("GRADER_HIDE", str(Path(numpy.__file__).resolve().parent))
    where = layout("gradescope", tmp_path)
    shutil.copytree(solutions_dir, where.submission)
    outcome = autograde("gradescope", tmp_path, options=GradeOptions(skip_training=True))
    document = json.loads(where.results.read_text())
    assert outcome.kind == "fault" and "cannot read" in outcome.details and "numpy" in outcome.details
    assert validate_gradescope(document) == [] and document["extra_data"]["status"] == "grader_error"
    assert not document.get("tests"), document.get("tests")  # no check charged to the student


def test_roots_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert layout("gradescope", None).results == Path("/autograder/results/results.json")
    assert layout("prairielearn", None).submission == Path("/grade/student")
    monkeypatch.setenv("GRADER_AUTOGRADER_ROOT", str(tmp_path))
    monkeypatch.setenv("GRADER_PL_ROOT", str(tmp_path / "pl"))
    assert layout("gradescope", None).submission == tmp_path / "submission"
    assert layout("prairielearn", None).results == tmp_path / "pl" / "results" / "results.json"
    with pytest.raises(ValueError, match="expected one of gradescope, prairielearn"):
        layout("codegrade", None)  # type: ignore[arg-type]


def test_find_submission_takes_a_lone_zip_and_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert find_submission(tmp_path) == tmp_path
    (tmp_path / "work.zip").write_bytes(b"PK")
    assert find_submission(tmp_path) == tmp_path / "work.zip"
    (tmp_path / "lab.ipynb").write_text("{}")
    assert find_submission(tmp_path) == tmp_path / "lab.ipynb"  # a notebook before an archive
    (tmp_path / "models.py").write_text("")
    assert find_submission(tmp_path) == tmp_path  # modules win over both


def test_malformed_metadata_is_a_note_not_a_failure(tmp_path: Path, failing_judge: None) -> None:
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission_metadata.json").write_text("{not json")
    outcome = autograde("gradescope", tmp_path)
    assert any("submission_metadata.json could not be read" in n for n in outcome.notes)


# ------------------------------------------------------------------------- the PrairieLearn renderer


def _result_with_figures(rows: int, size: int) -> Any:
    """A result whose CNN gate has a training history and whose extra holds activation maps drawn by the
    reports' own figure code from `rows` images of `size`x`size` noise (noise compresses badly: large PNGs)."""
    import base64

    import numpy as np

    from grader.reports.images import activation_grid_png
    from grader.results import CheckResult, SubmissionResult

    rng = np.random.default_rng(0)
    layers = [rng.random((rows, size, size, 4)) for _ in range(4)]
    png = activation_grid_png(layers, ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D"],
                              [f"image {i}" for i in range(rows)], channel=1)
    history = {"accuracy": [0.80, 0.87, 0.89, 0.90, 0.91], "loss": [0.55, 0.36, 0.31, 0.27, 0.24]}
    checks = [
        CheckResult(id="models::check_cnn_accuracy", name="the CNN reaches 0.88", exercise="models", number="2.9",
                    max_score=5, score=5, status="passed", tags=["accuracy"],
                    extra={"model": "cnn", "test_accuracy": 0.905, "ci95": [0.899, 0.911], "threshold": 0.88,
                           "history": history}),
        CheckResult(id="data::check_scale", name="prepare_images scales to [0, 1]", exercise="data", number="1.1",
                    max_score=3, score=0, status="failed", output="expected max 1.0\ngot 255.0"),
        CheckResult(id="data::check_secret", name="secret", exercise="data", number="1.2", max_score=2, score=2,
                    status="passed", hidden=True, output="secret feedback"),
    ]
    maps = {"images": [0, 23, 28], "student": {"layers": ["Conv2D"], "png": base64.b64encode(png).decode()},
            "reference": {"layers": ["Conv2D"], "png": base64.b64encode(png).decode()}}
    return SubmissionResult(submission="s", checks=checks, extra={"activation_maps": maps}), len(png)


def test_pl_results_carry_learning_curves_and_activation_maps() -> None:
    from grader.reports.prairielearn import to_prairielearn

    result, _ = _result_with_figures(rows=3, size=26)
    document = to_prairielearn(result)
    assert validate_prairielearn(document) == []
    assert document["score"] == pytest.approx(7 / 10)
    gate = document["tests"][0]
    curve = gate["images"][0]
    assert curve["url"].startswith("data:image/png;base64,") and "learning curve" in curve["label"]
    assert [i["label"] for i in document["images"]] == ["activation maps of your CNN",
                                                        "activation maps of the reference CNN"]
    assert document["tests"][1]["message"] == "expected max 1.0" and document["tests"][1]["points"] == 0
    assert "secret" not in json.dumps(document)  # a hidden check shows its points only
    assert len(json.dumps(document).encode()) < 1_000_000


def test_pl_results_stay_under_one_megabyte_with_large_images() -> None:
    from grader.reports.prairielearn import to_prairielearn

    result, png_size = _result_with_figures(rows=12, size=120)
    assert 2 * png_size > 1_000_000  # the two maps alone would break PrairieLearn's limit
    document = to_prairielearn(result)
    assert validate_prairielearn(document) == []
    assert len(json.dumps(document).encode()) <= 1_000_000
    assert document["images"] or "left out to keep the results under 1 MB" in document["message"]
    assert all(len(i["url"]) < png_size for i in document["images"])  # shrunk, not passed through


# ------------------------------------------------------------------------------------------ the CLI


def test_autograde_command_writes_results_and_exits_zero_on_a_fault(tmp_path: Path, failing_judge: None) -> None:
    from click.testing import CliRunner

    from grader.cli import main

    (tmp_path / "submission").mkdir()
    done = CliRunner().invoke(main, ["autograde", "--platform", "gradescope", "--root", str(tmp_path),
                                     "--hidden-visibility", "after_due_date"])
    assert done.exit_code == 0, done.output
    assert f"fault: wrote {tmp_path / 'results' / 'results.json'}" in done.output
    assert "RuntimeError: the training cache is corrupt (test)" in done.output  # the traceback, for the staff log
    assert validate_gradescope(json.loads((tmp_path / "results" / "results.json").read_text())) == []


def test_release_refuses_a_gradescope_name_that_is_not_a_zip(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from grader.cli import main

    done = CliRunner().invoke(main, ["release", "--check", "--root", str(ROOT),
                                     "--gradescope", str(tmp_path / "autograder.tar")])
    assert done.exit_code == 2
    assert "expected a .zip file name" in done.output and not (tmp_path / "autograder.tar").exists()
