"""Where a grading's time goes: `python bench/phases.py [--full] [--warm] [--student] [--cache DIR] [SUBMISSION]`.

Grades one submission in this process (as a batch worker does: hidden checks included) and prints
the time of each phase: importing the judge, the sandbox's start until it answers (TensorFlow's
import and the lock-down), the suites exercise by exercise with their slowest checks, the judge's
own training or the gates' wait for the background training job, and writing the reports. For the
bench's figures use bench/run.py; this is for finding what to make faster. With --full the accuracy
gates run too (an empty --cache trains both models). With --warm the submission is graded once
unmeasured first, so the figures are those of a batch worker's later submissions: the judge's imports
done and the training cache filled.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _timed(owner: Any, name: str, spans: dict[str, float]) -> None:
    """Wrap owner.name so that the seconds spent in it add up under spans[name]."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spans[name] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submission", nargs="?", type=Path, default=ROOT / "solutions" / "convolutions")
    parser.add_argument("--full", action="store_true", help="run the accuracy gates (the judge trains)")
    parser.add_argument("--cache", type=Path, default=None, help="training cache (default: a new empty one)")
    parser.add_argument("--warm", action="store_true", help="grade once unmeasured first (a batch worker's case)")
    parser.add_argument("--student", action="store_true", help="leave the hidden checks out, as `grader check` does")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    import grader.judge.grading as judge
    import grader.sandbox.client as client
    import grader.training.background as background_training
    import grader.training.cache as training_cache
    import grader.training.fit as training

    scratch = tempfile.TemporaryDirectory(prefix="convgrader-phases-")
    cache = args.cache or Path(scratch.name)
    options = judge.GradeOptions(skip_training=not args.full, run_hidden=not args.student, cache_dir=cache)
    if args.warm:
        judge.grade(args.submission, options)
        started = time.perf_counter()
    imported = time.perf_counter()
    spans: dict[str, float] = collections.defaultdict(float)
    _timed(client.Sandbox, "_await_ready", spans)
    _timed(training, "train_now", spans)
    _timed(background_training, "wait", spans)
    _timed(training_cache.TrainingCache, "get", spans)
    result = judge.grade(args.submission, options)
    graded = time.perf_counter()

    from grader.reports import write_submission_reports

    with tempfile.TemporaryDirectory() as out:
        write_submission_reports(result, Path(out), show_hidden=True)
    reported = time.perf_counter()

    by_exercise: dict[str, float] = collections.defaultdict(float)
    for check in result.checks:
        by_exercise[check.exercise] += check.duration
    checks_total = sum(by_exercise.values())
    print(f"score {result.score:g}/{result.max_score:g}, {len(result.checks)} checks\n")
    print(f"{'import the judge (grader.judge.grading, no TensorFlow yet)':58} {imported - started:7.2f} s")
    print(f"{'grade(): total':58} {graded - imported:7.2f} s")
    print(f"{'  checks, as the plugin timed them':58} {checks_total:7.2f} s")
    for exercise, seconds in sorted(by_exercise.items(), key=lambda item: -item[1]):
        print(f"    {exercise:54} {seconds:7.2f} s")
    print(f"{'    of which the checks waited for the sandbox to start':58} {spans['_await_ready']:7.2f} s")
    print(f"{'    of which the gates waited for the training job':58} {spans['wait']:7.2f} s")
    print(f"{'    of which the judge trained (grader.training.fit.train_now)':58} {spans['train_now']:7.2f} s")
    print(f"{'    of which it read the training cache':58} {spans['get']:7.2f} s")
    rest = graded - imported - checks_total
    print(f"{'  the rest: collecting the suites (the judge imports':58}")
    print(f"{'  TensorFlow there), fixtures, stopping the sandbox':58} {rest:7.2f} s")
    print(f"{'write the reports (HTML, results.json)':58} {reported - graded:7.2f} s")
    print("\nslowest checks:")
    for check in sorted(result.checks, key=lambda c: -c.duration)[:10]:
        print(f"  {check.duration:6.2f} s  {check.id}")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
