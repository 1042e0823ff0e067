"""Grading speed and memory on this machine, as ratios against the project's targets.

    python bench/run.py [--quick-only] [--repeat N] [--keep] [--quiet-wait SECONDS]

Every measurement is a fresh subprocess (cold: its own interpreter, its own TensorFlow import), run
one after the other, with HOME, XDG_CACHE_HOME, KERAS_HOME and MPLCONFIGDIR pointing into a temporary
folder, so nothing is read from or written to the real home and every training cache starts empty.
The disk cache is warmed once (an unmeasured `import tensorflow`) so that every figure sees the
same warm page cache. Prints the figures as a Markdown table; writes nothing else.

The figures are only as good as the machine is quiet: before each measurement the bench waits (up to
--quiet-wait seconds) for other processes to leave the CPUs idle, and the table's "other load" column
says how many cores other processes used while each figure was taken (see measure.py).

| | measured | compared with | target |
|---|---|---|---|
| (a) | `grader check solutions/convolutions --skip-training` | `python -c "import tensorflow"` | <= 4x |
| (b) | `grader check solutions/convolutions --cache EMPTY` | plain Keras: both models, 5 epochs | <= 1.3x |
| (c) | `grader grade` of 10 same-architecture variants, --jobs 1 | one full grade (b) | <= 2x |
| (c) | the same batch with --jobs 2 | --jobs 1 | <= 1x |
| (d) | the lab notebook (six models) run with nbclient | one full grade (b) | >= 3x |
| (d) | the lab notebook | a submission's share of batch (c), --jobs 1 | >= 20x |
| (e) | peak memory of the process tree of (a) / (b) | | < 2 / < 4 GiB |

A ratio divides two figures taken minutes apart, and this VM's speed drifts by tens of percent within
an hour. So every figure that some ratio divides by is taken twice, once before and once after what it
is compared with, and the ratio uses the mean of the two (the table shows both):

    plain Keras, full grade, plain Keras, batch --jobs 1, notebook, batch --jobs 2, batch --jobs 1, full grade
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Run, run, wait_until_quiet  # noqa: E402
from variants import make_class  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SOLUTION = Path("solutions/convolutions")  # relative to ROOT, as a user types it
GIB = 1024**3
BATCH_SIZE = 10
NOISY_CORES = 0.2  # other processes' CPU use during a measurement above which its figure is suspect


@dataclass
class Row:
    measurement: str
    seconds: float | None = None
    peak_gib: float | None = None
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    other_cores: float | None = None  # CPU the rest of the machine used meanwhile (see measure.py)


class Bench:
    def __init__(self, folder: Path, quiet_wait: float) -> None:
        self.folder = folder
        self.env = _environment(folder)
        self.quiet_wait = quiet_wait

    def run(self, key: str, label: str, command: list[str]) -> Run:
        if self.quiet_wait > 0:
            load = wait_until_quiet(self.quiet_wait, NOISY_CORES)
            if load > NOISY_CORES:
                print(f"  the machine is busy ({load:.2f} cores used by others); measuring anyway",
                      file=sys.stderr, flush=True)
        print(f"  running {label} ...", file=sys.stderr, flush=True)
        result = run(label, command, self.env, ROOT, log=self.folder / f"{key}.log")
        print(f"    {result.seconds:.1f} s, peak {result.peak_bytes / GIB:.2f} GiB, other processes used "
              f"{result.other_cores:.2f} cores meanwhile", file=sys.stderr, flush=True)
        return result

    def median(self, key: str, label: str, command: list[str], repeat: int) -> Run:
        results = [self.run(f"{key}-{n}", label, command) for n in range(repeat)]
        return _merged(results, statistics.median(r.seconds for r in results))


def _environment(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name, sub in (("HOME", "home"), ("XDG_CACHE_HOME", "xdg-cache"), ("KERAS_HOME", "keras"),
                      ("MPLCONFIGDIR", "matplotlib"), ("IPYTHONDIR", "ipython")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(folder / sub)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    return env


def _grader() -> list[str]:
    script = Path(sys.executable).parent / "grader"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "grader.cli"]


def _full_marks(results_json: Path) -> bool:
    data = json.loads(results_json.read_text(encoding="utf-8"))
    tests = data.get("tests", [])
    return bool(tests) and all(t.get("score", 0) >= t.get("max_score", 0) for t in tests)


def _check(condition: bool, message: str) -> None:
    if not condition:
        print(f"  WARNING: {message}", file=sys.stderr, flush=True)


def quick(bench: Bench, repeat: int) -> list[Row]:
    python = sys.executable
    bench.run("warmup", "warm-up import of tensorflow (not measured)", [python, "-c", "import tensorflow"])
    tf = bench.median("import-tf", 'python -c "import tensorflow"', [python, "-c", "import tensorflow"], repeat)
    report = bench.folder / "quick.json"
    check = bench.median("quick", "quick check", [*_grader(), "check", str(SOLUTION), "--skip-training",
                                                  "--json", str(report)], repeat)
    _check(_full_marks(report), "the quick check did not give the reference solution full marks")
    return [
        Row('python -c "import tensorflow"', tf.seconds, tf.peak_bytes / GIB, other_cores=tf.other_cores),
        _ratio("(a) quick check (--skip-training) / TF import", check, tf, "<= 4x", lambda r: r <= 4),
        _memory("(e) quick check peak memory", check, 2),
    ]


def _full_grade(bench: Bench, key: str) -> Run:
    report = bench.folder / f"{key}.json"
    grade = bench.run(key, "full grade, empty cache", [*_grader(), "check", str(SOLUTION), "--cache",
                                                       str(bench.folder / f"cache-{key}"), "--json", str(report)])
    _check(_full_marks(report), "the full grade did not give the reference solution full marks")
    return grade


def _keras(bench: Bench, key: str) -> Run:
    return bench.run(key, "plain Keras: dense + CNN, 5 epochs", [sys.executable, str(BENCH / "keras_baseline.py")])


def _batch(bench: Bench, key: str, submissions: list[Path], jobs: int) -> Run:
    out = bench.folder / f"out-{key}"
    result = bench.run(key, f"batch of {BATCH_SIZE}, --jobs {jobs}", [
        *_grader(), "grade", *map(str, submissions), "--out", str(out), "--cache",
        str(bench.folder / f"cache-{key}"), "--jobs", str(jobs), "-q"])
    _check_batch(out)
    return result


def slow(bench: Bench) -> list[Row]:
    """(b), (c), (d) and the full grade's memory, in the bracketed order of the module's docstring."""
    keras = [_keras(bench, "keras-1")]
    grade = [_full_grade(bench, "full-1")]
    keras.append(_keras(bench, "keras-2"))
    submissions = make_class(ROOT / SOLUTION, bench.folder / "class", BATCH_SIZE)
    batch_j1 = [_batch(bench, "batch-j1-1", submissions, 1)]
    folder = bench.folder / "notebook"
    folder.mkdir()
    lab = bench.run("notebook", "lab notebook with nbclient (six models)",
                    [sys.executable, str(BENCH / "lab_notebook.py"), str(ROOT / SOLUTION), str(folder / "lab.ipynb")])
    batch_j2 = _batch(bench, "batch-j2", submissions, 2)
    batch_j1.append(_batch(bench, "batch-j1-2", submissions, 1))
    grade.append(_full_grade(bench, "full-2"))
    keras_mean, grade_mean, j1_mean = _mean(keras), _mean(grade), _mean(batch_j1)
    return [
        Row(f"plain Keras training (dense + CNN){_both(keras)}", keras_mean.seconds, keras_mean.peak_bytes / GIB,
            other_cores=keras_mean.other_cores),
        _ratio("(b) full grade (empty cache) / plain Keras", grade[0], keras_mean, "<= 1.3x",
               lambda r: r <= 1.3),
        _memory("(e) full grade peak memory", grade_mean, 4),
        _ratio(f"(c) batch of {BATCH_SIZE}, --jobs 1{_both(batch_j1)} / one full grade{_both(grade)}", j1_mean,
               grade_mean, "<= 2x", lambda r: r <= 2),
        _ratio(f"(c) batch of {BATCH_SIZE}, --jobs 2 / --jobs 1", batch_j2, j1_mean, "<= 1x", lambda r: r <= 1),
        _ratio("(d) notebook run / one full grade", lab, grade_mean, ">= 3x", lambda r: r >= 3),
        Row(f"our cost per submission in the batch of {BATCH_SIZE} (--jobs 1)", j1_mean.seconds / BATCH_SIZE,
            other_cores=j1_mean.other_cores),
        _ratio("(d) notebook run / our cost per submission in the batch", lab, j1_mean, ">= 20x",
               lambda r: r >= 20, per=BATCH_SIZE),
    ]


def _mean(runs: list[Run]) -> Run:
    return _merged(runs, statistics.fmean(r.seconds for r in runs))


def _merged(runs: list[Run], seconds: float) -> Run:
    """One figure from runs of the same command: the given time, the highest peak and the worst other load."""
    peak = max(runs, key=lambda r: r.peak_bytes)
    return Run(runs[0].label, seconds, peak.peak_tree_bytes, peak.peak_single_bytes, 0, runs[-1].output_tail,
               max(r.other_cores for r in runs))


def _both(runs: list[Run]) -> str:
    """The separate times of a figure taken more than once, for the table."""
    return "" if len(runs) < 2 else " (" + " and ".join(f"{r.seconds:.1f}" for r in runs) + " s)"


def _check_batch(out: Path) -> None:
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*/grader-result.json"))]
    _check(len(records) == BATCH_SIZE, f"{out.name}: {len(records)} records for {BATCH_SIZE} submissions")
    scores = {(r.get("status"), r.get("score"), r.get("max_score")) for r in records}
    _check(len(scores) == 1 and next(iter(scores))[0] == "graded",
           f"{out.name}: the variants did not all grade alike: {sorted(map(str, scores))}")


def _ratio(name: str, measured: Run, baseline: Run, target: str, ok: Callable[[float], bool], per: int = 1) -> Row:
    """measured / (baseline / per); the other load is the worse of the two runs'."""
    ratio = measured.seconds / (baseline.seconds / per)
    return Row(name, measured.seconds, measured.peak_bytes / GIB, ratio, target, ok(ratio),
               max(measured.other_cores, baseline.other_cores))


def _memory(name: str, measured: Run, limit_gib: float) -> Row:
    peak = measured.peak_bytes / GIB
    return Row(name, None, peak, None, f"< {limit_gib:g} GiB", peak < limit_gib, measured.other_cores)


def render(rows: list[Row]) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    lines = ["| measurement | seconds | peak GiB | ratio | target | result | other load |",
             "|---|--:|--:|--:|---|---|--:|"]
    for row in rows:
        verdict = "" if row.passed is None else ("PASS" if row.passed else "FAIL")
        lines.append(f"| {row.measurement} | {cell(row.seconds, '.1f')} | {cell(row.peak_gib, '.2f')} | "
                     f"{cell(row.ratio, '.2f')}{'x' if row.ratio is not None else ''} | {row.target} | {verdict} | "
                     f"{cell(row.other_cores, '.2f')} |")
    busy = max((row.other_cores or 0.0) for row in rows)
    if busy > NOISY_CORES:
        lines.append(f"\nother load: cores used by other processes during the measurement. Up to {busy:.2f} of "
                     f"{os.cpu_count()} were busy with other work: figures above {NOISY_CORES} are not trustworthy.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick-only", action="store_true", help="only (a) and its memory (a smoke run)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a), the median counts (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, outputs)")
    parser.add_argument("--quiet-wait", type=float, default=600, metavar="SECONDS",
                        help="before each measurement, wait up to this long for other processes to leave the "
                             "CPUs idle (default 600; 0: do not wait)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="convgrader-bench-"))
    print(f"bench folder: {folder}", file=sys.stderr)
    bench = Bench(folder, args.quiet_wait)
    try:
        rows = quick(bench, args.repeat)
        if not args.quick_only:
            rows += slow(bench)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    print(render(rows))
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
