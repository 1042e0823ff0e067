"""Broken and runaway submissions, end to end through the judge and the CLI.

Every case is a copy of the reference solution with a few modules replaced by those of a folder under
tests/fixtures/broken/ (or a notebook written here). What must hold: the grading finishes, the checks the
problem touches fail with a message that names it, and every other exercise keeps the reference's score.
Independent problems share one submission (one grade), asserted exercise by exercise.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.judge.grading import GradeOptions, grade
from grader.results import CheckResult, SubmissionResult
from grader.sandbox import Limits
from grader.suites.convolutions import ASSIGNMENT

EXERCISES = ASSIGNMENT.modules

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions" / "convolutions"
BROKEN = Path(__file__).resolve().parent / "fixtures" / "broken"
GiB = 1024**3
TIMEOUT = 20.0  # short, but 4x TensorFlow's first fits on a slow 2-core machine running two tests
QUICK = GradeOptions(skip_training=True, run_hidden=True, limits=Limits(timeout=TIMEOUT, memory=2 * GiB))


# ----------------------------------------------------------------------------------------------- helpers


def overlay(fixture: str, target: Path) -> Path:
    """The reference solution with the modules of tests/fixtures/broken/<fixture>/ in place of its own."""
    shutil.copytree(SOLUTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    for module in (BROKEN / fixture).glob("*.py"):
        shutil.copyfile(module, target / module.name)
    return target


def checks_of(result: SubmissionResult, exercise: str, function: str = "") -> list[CheckResult]:
    """The checks of an exercise; with `function`, those whose id names it (e.g. 'max_pool2d')."""
    found = [c for c in result.checks if c.exercise == exercise and function in c.id]
    assert found, f"no checks of {exercise} {function}"
    return found


def assert_costs_only(result: SubmissionResult, reference: SubmissionResult, losing: set[str]) -> None:
    """`losing` lose points; every other exercise scores exactly as the reference does; every failed check
    says why (not 'not run', not an internal error of the grader)."""
    assert result.status == "graded", result.messages
    ours, theirs = result.by_exercise(), reference.by_exercise()
    assert set(ours) == set(theirs) <= set(EXERCISES)
    for exercise in ours:
        if exercise in losing:
            assert ours[exercise][0] < ours[exercise][1], f"{exercise} lost nothing: {ours[exercise]}"
        else:
            failed = [f"{c.id}: {c.output}" for c in checks_of(result, exercise) if c.status != "passed"]
            assert ours[exercise] == theirs[exercise], f"{exercise} lost points:\n" + "\n".join(failed)
    for check in result.checks:
        assert check.status != "error", f"{check.id}: {check.output}"  # a grader fault, not the submission's
        if check.status == "failed":
            assert check.output.strip() and check.output != "not run", check.id


def skipped_for_dependency(check: CheckResult) -> bool:
    return check.output.startswith("not graded: this check needs")


def tree_digest(folder: Path) -> dict[str, str]:
    """Every path under `folder` with the hash of its content ('dir' for folders)."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        digest[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


@pytest.fixture(scope="module")
def reference() -> SubmissionResult:
    result = grade(SOLUTIONS, QUICK)
    assert result.score == result.max_score > 0, [c.output for c in result.checks if c.status != "passed"]
    return result


# ------------------------------------------------------------------- broken modules (one grade for five)


@dataclass
class Graded:
    result: SubmissionResult
    seconds: float
    before: dict[str, dict[str, str]]
    after: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graded]:
    """broken/mixed: data.py has a syntax error, callbacks.py an import error, convolution.py no max_pool2d,
    visualize.plot_activations raises, training returns a list. Graded from an empty working directory with an
    empty HOME and a private temp folder, each snapshotted before and after."""
    base = tmp_path_factory.mktemp("mixed")
    submission = overlay("mixed", base / "mixed")
    places = {"submission": submission, "cwd": base / "cwd", "home": base / "home", "tmp": base / "tmp"}
    for folder in places.values():
        folder.mkdir(exist_ok=True)
    # Keras and matplotlib write their own config into HOME the first time they are imported in a process
    # (~/.keras/keras.json, ~/.config/matplotlib): that is the libraries' doing, once per account, not the
    # grading's, so they are imported here before HOME changes.
    importlib.import_module("keras")
    importlib.import_module("matplotlib")
    before = {name: tree_digest(folder) for name, folder in places.items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(places["cwd"])
        patch.setenv("HOME", str(places["home"]))
        patch.setenv("TMPDIR", str(places["tmp"]))
        patch.setattr(tempfile, "tempdir", str(places["tmp"]))
        started = time.perf_counter()
        result = grade(submission, QUICK)
        seconds = time.perf_counter() - started
    after = {name: tree_digest(folder) for name, folder in places.items()}
    yield Graded(result, seconds, before, after)


def test_mixed_breakage_costs_only_the_broken_exercises(mixed: Graded, reference: SubmissionResult) -> None:
    # experiments.py imports training.train_and_evaluate, so training's bug is inherited there
    assert_costs_only(mixed.result, reference, {"data", "callbacks", "convolution", "visualize", "training",
                                                 "experiments"})


def test_syntax_error_is_named_with_its_line(mixed: Graded) -> None:
    for check in checks_of(mixed.result, "data"):
        assert check.status == "failed"
        assert "importing data.py raised SyntaxError" in check.output, check.output
        assert "line 6" in check.output, check.output


def test_import_error_names_the_missing_package(mixed: Graded) -> None:
    checks = checks_of(mixed.result, "callbacks")
    assert all(c.status == "failed" for c in checks)
    direct = [c for c in checks if not skipped_for_dependency(c)]
    assert direct
    for check in direct:
        assert "importing callbacks.py raised ModuleNotFoundError: No module named 'keras_callbacks_extra'" \
            in check.output, check.output


def test_missing_function_fails_only_its_checks(mixed: Graded) -> None:
    for check in checks_of(mixed.result, "convolution", "max_pool2d"):
        assert check.status == "failed"
        assert "convolution.py does not define max_pool2d" in check.output, check.output
    others = [c for c in checks_of(mixed.result, "convolution") if "max_pool2d" not in c.id]
    assert others and all(c.status == "passed" for c in others), [c.output for c in others]


def test_exception_in_a_call_shows_the_students_traceback(mixed: Graded) -> None:
    plot = [c for c in checks_of(mixed.result, "visualize", "plot") if not skipped_for_dependency(c)]
    assert plot
    for check in plot:
        assert check.status == "failed"
        assert "plot_activations raised ZeroDivisionError: division by zero" in check.output, check.output
        assert 'File "visualize.py", line 16, in _figure_size' in check.output, check.output
    activations = [c for c in checks_of(mixed.result, "visualize") if "plot" not in c.id]
    assert activations and all(c.status == "passed" for c in activations), [c.output for c in activations]


def test_wrong_return_type_is_described(mixed: Graded) -> None:
    (check,) = [c for c in checks_of(mixed.result, "training") if c.id.endswith("check_returns_result_dict")]
    assert check.status == "failed"
    assert "must return a dict" in check.output and "got: a list of 4 item(s)" in check.output, check.output


def test_tracebacks_show_only_the_students_frames(mixed: Graded) -> None:
    """'Traceback (your code only)' must not list the import machinery (<frozen importlib._bootstrap>)."""
    tracebacks = [c.output for c in mixed.result.checks if "Traceback (your code only)" in c.output]
    assert tracebacks
    leaking = [text for text in tracebacks if "<frozen" in text]
    assert not leaking, leaking[0]


def test_grading_leaves_nothing_behind(mixed: Graded) -> None:
    """Nothing new in the submission, the working directory, HOME or the temp folder (no .hypothesis/,
    __pycache__, prepared copies or sandbox scratch folders)."""
    assert mixed.after == mixed.before


# ----------------------------------------------------------------------------- models of the wrong kind


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param("models_wrong_types", {
            "check_dnn_builds": ["build_dnn() must return a Keras model", "got: None"],
            "check_compile_settings": ["compile_model(model) must return the compiled model",
                                       "got: a list of 1 item(s)"],
        }, id="none-list-unbuilt"),
        pytest.param("models_rejected", {
            "check_dnn_builds": ["build_dnn() returned a model the grader cannot use", "Lambda layer"],
            "check_cnn_builds": ["build_cnn() returned a model the grader cannot use", "custom object 'Doubler'"],
            "check_compile_settings": ["compile_model(model) must return the compiled model",
                                       "got: a models.Compiled"],
        }, id="lambda-custom-layer-non-keras"),
    ],
)
def test_models_of_the_wrong_kind(fixture: str, expected: dict[str, list[str]], tmp_path: Path,
                                  reference: SubmissionResult) -> None:
    result = grade(overlay(fixture, tmp_path / fixture), QUICK)
    assert_costs_only(result, reference, {"models", "experiments"})  # experiments builds with build_cnn
    by_name = {c.id.split("::")[1]: c for c in checks_of(result, "models")}
    for name, fragments in expected.items():
        assert by_name[name].status == "failed"
        for fragment in fragments:
            assert fragment in by_name[name].output, by_name[name].output
    if fixture == "models_wrong_types":  # an unbuilt but right build_cnn is built by the grader and counts
        cnn = [c for c in checks_of(result, "models", "cnn")]
        assert all(c.status == "passed" for c in cnn), [c.output for c in cnn if c.status != "passed"]


# ----------------------------------------------------------------------------------------------- notebooks


def _module_cells() -> list[str]:
    return [(SOLUTIONS / f"{module}.py").read_text(encoding="utf-8") for module in ASSIGNMENT.modules]


def _v4_without_ids(cells: list[str]) -> dict[str, object]:
    """nbformat 4.4: cells without the `id` field that 4.5 added."""
    def code(source: str) -> dict[str, object]:
        return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                "source": source.splitlines(keepends=True)}

    return {
        "nbformat": 4, "nbformat_minor": 4, "metadata": {},
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Données / Convolutions"]}]
        + [code(source) for source in cells],
    }


def _v3(cells: list[str]) -> dict[str, object]:
    return {
        "nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "lab"},
        "worksheets": [{"metadata": {}, "cells": [
            {"cell_type": "heading", "level": 1, "metadata": {}, "source": ["Convolutions"]},
            *({"cell_type": "code", "collapsed": False, "input": source.splitlines(keepends=True),
               "language": "python", "metadata": {}, "outputs": []} for source in cells),
        ]}],
    }


# The notebook tests grade three exercises (those whose cells they break, and data): a notebook's cells become
# the submission's modules before any check runs (tests/test_notebook_extract.py), and a whole notebook graded
# like the folder is tests/test_judge.py's.
NOTEBOOK_EXERCISES = ("data", "convolution", "visualize")
NOTEBOOK = replace(QUICK, exercises=NOTEBOOK_EXERCISES)


def _only(result: SubmissionResult, exercises: tuple[str, ...] = NOTEBOOK_EXERCISES) -> SubmissionResult:
    return replace(result, checks=[c for c in result.checks if c.exercise in exercises])


def test_notebook_that_is_not_json_fails_every_check_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "lab.ipynb"
    path.write_text('{"cells": [{"cell_type": "code", "source": "import numpy as np"', encoding="utf-8")
    result = grade(path, NOTEBOOK)
    assert result.status == "graded" and result.score == 0 and result.checks
    assert any("the notebook is not valid JSON" in m for m in result.messages), result.messages
    for check in result.checks:
        assert check.status == "failed" and check.output.strip(), check.id
        assert "internal error" not in check.output, check.output


def test_old_nbformat_v3_notebook_grades_like_the_folder(tmp_path: Path, reference: SubmissionResult) -> None:
    path = tmp_path / "lab_v3.ipynb"
    path.write_text(json.dumps(_v3(_module_cells())), encoding="utf-8")
    result = grade(path, NOTEBOOK)
    assert result.extra["kind"] == "notebook" and not result.messages, result.messages
    assert [(c.id, c.status, c.score) for c in result.checks] == [
        (c.id, c.status, c.score) for c in _only(reference).checks
    ], [c.output for c in result.checks if c.status != "passed"]


def test_notebook_without_ids_not_utf8_and_with_a_bad_cell(tmp_path: Path, reference: SubmissionResult) -> None:
    """One notebook, three problems: nbformat 4.4 cells without ids (fine), Latin-1 bytes in a comment (replaced,
    with a note), and the visualize cell with a syntax error (reported by cell number; the other cells count)."""
    cells = _module_cells()
    position = ASSIGNMENT.modules.index("visualize")
    cells[position] = cells[position].replace("def plot_activations(", "def plot_activations(:", 1)
    cells[0] = "# Données: préparer les images (commentaire en Latin-1)\n" + cells[0]
    path = tmp_path / "lab.ipynb"
    path.write_bytes(json.dumps(_v4_without_ids(cells), ensure_ascii=False).encode("latin-1"))
    result = grade(path, NOTEBOOK)
    cell_number = position + 2  # cells count from 1, after the markdown cell
    assert any(m.startswith(f"cell {cell_number} of the notebook is not valid Python") for m in result.messages), \
        result.messages
    assert any("not valid UTF-8" in m for m in result.messages), result.messages
    assert_costs_only(result, _only(reference), {"visualize"})
    assert all(c.status == "failed" for c in checks_of(result, "visualize"))


# ----------------------------------------------------------------------------------------------- runaways


RUNAWAY_LIMITS = Limits(timeout=TIMEOUT, memory=int(1.5 * GiB))


@pytest.fixture(scope="module")
def runaway(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    """broken/runaway: data.prepare_images is a fork bomb, callbacks.py floods stdout and stderr with 128 MiB
    while importing, training.train_and_evaluate is a busy loop, convolution.convolve2d allocates without end,
    max_pool2d is a thread bomb, experiments.py never finishes importing. models and visualize are the
    reference's."""
    submission = overlay("runaway", tmp_path_factory.mktemp("runaway") / "runaway")
    started = time.perf_counter()
    result = grade(submission, GradeOptions(skip_training=True, run_hidden=True, limits=RUNAWAY_LIMITS))
    return Graded(result, time.perf_counter() - started, {}, {})


def _first_and_remembered(checks: list[CheckResult], first: str) -> None:
    """The first check that ran the function got `first`; later ones were failed at once with the remembered
    failure (or share the first one's outcome, where several checks look at one run)."""
    ran = [c for c in checks if not skipped_for_dependency(c)]
    assert ran and ran[0].output.startswith(first), ran[0].output
    for check in ran[1:]:
        assert check.output == first or check.output.startswith(f"{first} earlier, so it was not run again"), \
            check.output


@pytest.mark.slow
def test_runaway_code_costs_only_its_exercises(runaway: Graded, reference: SubmissionResult) -> None:
    # visualize, graded right after the thread bomb, has its own test below
    spared = [c for c in runaway.result.checks if c.exercise != "visualize"]
    others = [c for c in reference.checks if c.exercise != "visualize"]
    assert_costs_only(replace(runaway.result, checks=spared), replace(reference, checks=others),
                      {"data", "training", "convolution", "experiments"})


@pytest.mark.slow
def test_fork_bomb_is_stopped_by_the_timeout(runaway: Graded) -> None:
    _first_and_remembered(checks_of(runaway.result, "data"), f"prepare_images did not return within {TIMEOUT:g} s")


@pytest.mark.slow
def test_busy_loop_in_a_call_is_stopped_by_the_timeout(runaway: Graded) -> None:
    _first_and_remembered(checks_of(runaway.result, "training"),
                          f"train_and_evaluate did not return within {TIMEOUT:g} s")


@pytest.mark.slow
def test_memory_growing_without_bound_is_stopped(runaway: Graded) -> None:
    _first_and_remembered(checks_of(runaway.result, "convolution", "convolve2d"),
                          "the sandbox ran out of its 1.5 GiB memory limit while running convolve2d")


@pytest.mark.slow
def test_thread_bomb_fails_its_function(runaway: Graded) -> None:
    for check in checks_of(runaway.result, "convolution", "max_pool2d"):
        assert check.status == "failed"
        assert "max_pool2d raised RuntimeError: can't start new thread" in check.output, check.output


@pytest.mark.slow
def test_thread_bomb_does_not_cost_the_next_exercise(runaway: Graded, reference: SubmissionResult) -> None:
    """visualize is graded right after max_pool2d's thread bomb: its (reference) code must keep full marks."""
    failed = [f"{c.id}: {c.output}" for c in checks_of(runaway.result, "visualize") if c.status != "passed"]
    assert not failed, "\n".join(failed)


@pytest.mark.slow
def test_output_flood_keeps_full_marks_and_bounded_feedback(runaway: Graded) -> None:
    failed = [f"{c.id}: {c.output}" for c in checks_of(runaway.result, "callbacks") if c.status != "passed"]
    assert not failed, "\n".join(failed)
    assert len(json.dumps(runaway.result.to_dict())) < 512 * 1024
    assert all(len(c.output) < 16 * 1024 for c in runaway.result.checks)


@pytest.mark.slow
def test_import_that_never_finishes_is_stopped(runaway: Graded) -> None:
    checks = checks_of(runaway.result, "experiments")
    assert all(c.status == "failed" for c in checks)
    ran = [c for c in checks if not skipped_for_dependency(c)]
    assert ran[0].output.startswith(f"importing experiments.py did not finish within {TIMEOUT:g} s"), ran[0].output


@pytest.mark.slow
def test_each_runaway_function_costs_at_most_one_timeout(runaway: Graded) -> None:
    """Only the first call of a function that hung waited for the timeout; the later checks of that function
    failed at once with the remembered message."""
    waited: dict[str, list[str]] = {}
    for check in runaway.result.checks:
        if "did not return within" in check.output or "did not finish within" in check.output:
            function = check.output.split()[1 if check.output.startswith("importing") else 0]
            if check.duration >= TIMEOUT:
                waited.setdefault(function, []).append(check.id)
            if "earlier, so it was not run again" in check.output:
                assert check.duration < TIMEOUT * 0.9, (check.id, check.duration)  # not a second timeout
    assert sorted(waited) == ["experiments.py", "prepare_images", "train_and_evaluate"], waited
    assert all(len(ids) == 1 for ids in waited.values()), waited


# ------------------------------------------------------------------------------ the CLI's limits, timing


def test_cli_timeout_and_memory_and_a_hang_costs_one_timeout(tmp_path: Path, reference: SubmissionResult) -> None:
    """broken/sleeper: convolve2d sleeps forever, max_pool2d asks for 8 GiB at once. `grader check --timeout 20
    --memory 1536M` names both limits, and the hang costs about one timeout, not one per example."""
    submission = overlay("sleeper", tmp_path / "sleeper")
    out = tmp_path / "results.json"
    started = time.perf_counter()
    run = CliRunner().invoke(main, ["check", str(submission), "--skip-training", "--timeout", "20",
                                    "--memory", "1536M", "--json", str(out)])
    seconds = time.perf_counter() - started
    assert run.exit_code == 0, run.output
    tests = json.loads(out.read_text(encoding="utf-8"))["tests"]
    conv = [t for t in tests if "convolve2d" in t["extra_data"]["id"]]
    pool = [t for t in tests if "max_pool2d" in t["extra_data"]["id"]]
    assert conv and all(t["status"] == "failed" for t in conv)
    assert conv[0]["output"].startswith("convolve2d did not return within 20 s"), conv[0]["output"]
    assert all("convolve2d did not return within 20 s" in t["output"] for t in conv)
    assert pool and all("(the sandbox's memory limit is 1.5 GiB)" in t["output"] for t in pool), pool[0]["output"]
    others = [t for t in tests if t not in conv and t not in pool]
    assert all(t["status"] == "passed" for t in others), [t["output"] for t in others if t["status"] != "passed"]
    # the public convolve2d checks call it 49 times: one timeout each would take minutes
    assert seconds < reference.execution_time + 4 * 20, (seconds, reference.execution_time)


def test_cli_defaults_match_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", readme)
    assert "(`--timeout`, default 60 s)" in text
    assert "(`--memory`, default 4G)" in text
    assert Limits().timeout == 60 and Limits().memory == 4 * GiB
    help_text = CliRunner().invoke(main, ["check", "--help"], terminal_width=200).output
    assert re.search(r"--timeout FLOAT .*\[default: 60\.0\]", re.sub(r"\s+", " ", help_text)), help_text
    assert re.search(r"--memory TEXT .*\[default: 4G\]", re.sub(r"\s+", " ", help_text)), help_text
