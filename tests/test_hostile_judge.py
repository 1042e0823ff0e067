"""Submissions hostile to the judge itself (tests/fixtures/hostile_judge/), each graded (quick profile, hidden
checks included, as a batch worker grades) in one judge process after the reference: each loses points only in
its own exercise, the judge's peak RSS stays within a stated bound of what grading the reference took, and every
report file stays under its cap.

- float16: the lab CNN with a float16 last layer (its cache key differs: tests/test_cache_key.py trains it);
- meaniou: compile_model's model says its compile config has MeanIoU(num_classes=6000) (models);
- bigdense: build_dnn's model says it has Dense(300000) (models);
- privatemodule: build_dnn's config says "keras.src.layers" and adds GaussianNoise and StringLookup (models);
- conv1000: the first fits the judge re-evaluates are of a Conv2D(1000) model (experiments);
- forgedrecords: filter_experiment never trains and forges the spies' records, "before" weights x20 (experiments);
- forgedinits: the same with two fresh initialisations, the worse as "before", the better as "after" (experiments);
- forgedcalls: filter_experiment never trains and records only calls of train_and_evaluate (experiments);
- nevertrains: train_and_evaluate never calls fit and invents its history and accuracy (training);
- bigdict: train_and_evaluate's dict also holds 20,000 keys of 100 characters (training; reports stay small);
- framebomb: plot_activations writes a 96 MiB frame of `[],` to the sandbox's reply pipe (visualize).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions" / "convolutions"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hostile_judge"
LOSES = {"float16": set(), "meaniou": {"models"}, "bigdense": {"models"}, "privatemodule": {"models"},
         "conv1000": {"experiments"}, "forgedrecords": {"experiments"}, "forgedinits": {"experiments"},
         "forgedcalls": {"experiments"},
         "nevertrains": {"training"}, "bigdict": {"training"}, "framebomb": {"visualize"}}
JUDGE_GROWTH_MB = 400  # the judge's peak RSS over all of them, beyond its peak grading the reference
MB = 1024**2

_DRIVER = """
import json, resource, sys, time
from pathlib import Path
from grader.judge.grading import GradeOptions, grade
from grader.reports import to_junit_xml, write_submission_reports
from grader.results import save_result, write_atomic
from grader.sandbox.client import keep_spare_sandbox
keep_spare_sandbox(True)  # as a batch worker does: each next sandbox is forked ready from a zygote
for folder in map(Path, sys.argv[1:]):
    started = time.perf_counter()
    result = grade(folder, GradeOptions(skip_training=True, run_hidden=True))  # what a batch worker runs
    save_result(result, folder / "grader-result.json")
    write_submission_reports(result, folder, show_hidden=True)
    write_atomic(folder / "junit.xml", to_junit_xml([result], include_hidden=True))
    print(json.dumps({"folder": str(folder), "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "seconds": round(time.perf_counter() - started, 1)}), flush=True)
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("hostile_judge")
    folders = []
    for name in ["reference", *LOSES]:
        target = base / name
        shutil.copytree(SOLUTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
        for module in (FIXTURES / name).glob("*.py"):
            shutil.copyfile(module, target / module.name)
        folders.append(str(target))
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", HOME=str(base),
               XDG_CACHE_HOME=str(base / "cache"))
    completed = subprocess.run([sys.executable, "-c", _DRIVER, *folders], env=env, capture_output=True, text=True,
                               timeout=1500, cwd=base)
    peaks = {Path(line["folder"]).name: line["peak_kb"] / 1024 for line in map(json.loads, (
        text for text in completed.stdout.splitlines() if text.startswith("{")))}
    return {"base": base, "peaks": peaks, "completed": completed}


def _by_exercise(base: Path, name: str) -> dict[str, tuple[float, float]]:
    data = json.loads((base / name / "results.json").read_text(encoding="utf-8"))
    totals: dict[str, list[float]] = {}
    for test in data["tests"]:
        entry = totals.setdefault(test["extra_data"]["exercise"], [0.0, 0.0])
        entry[0] += test["score"]
        entry[1] += test["max_score"]
    return {k: (round(v[0], 4), round(v[1], 4)) for k, v in totals.items()}


@pytest.mark.slow
def test_every_submission_was_graded(graded: dict[str, Any]) -> None:
    assert set(graded["peaks"]) == {"reference", *LOSES}, graded["completed"].stderr[-3000:]


@pytest.mark.slow
def test_the_reference_keeps_full_marks(graded: dict[str, Any]) -> None:
    totals = _by_exercise(graded["base"], "reference")
    assert all(score == maximum for score, maximum in totals.values()), totals


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOSES))
def test_each_loses_only_in_its_own_exercise(graded: dict[str, Any], name: str) -> None:
    totals = _by_exercise(graded["base"], name)
    lost = {exercise for exercise, (score, maximum) in totals.items() if score < maximum}
    assert lost == LOSES[name], totals


@pytest.mark.slow
def test_the_judge_stays_within_its_bound(graded: dict[str, Any]) -> None:
    peaks = graded["peaks"]
    assert max(peaks.values()) - peaks["reference"] < JUDGE_GROWTH_MB, peaks


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reference", *LOSES])
def test_every_report_stays_under_its_cap(graded: dict[str, Any], name: str) -> None:
    folder = graded["base"] / name
    assert (folder / "results.json").stat().st_size < 1 * MB
    assert (folder / "report.html").stat().st_size < 1 * MB
    assert (folder / "grader-result.json").stat().st_size < 2 * MB
    reference_junit = (graded["base"] / "reference" / "junit.xml").stat().st_size
    assert (folder / "junit.xml").stat().st_size - reference_junit < 8 * 1024
