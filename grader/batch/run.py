"""Grade a class: skip what is finished, check the grader works here, then grade the rest in local workers
(`local.py`) or on a Dask cluster (`cluster.py`), and write the class's files."""

from __future__ import annotations

from pathlib import Path

from grader.batch.cluster import run_on_cluster
from grader.batch.common import RECORD, BatchOptions, BatchRow, finished, log, row_of, submission_ids
from grader.batch.local import run_in_workers
from grader.results import load_result


def run_batch(paths: list[Path], out_dir: Path, options: BatchOptions) -> list[BatchRow]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks, rows = [], {}
    for submission_id, path in submission_ids(paths):
        done = None if options.force else finished(out_dir / submission_id)
        if done is not None:
            rows[submission_id] = row_of(done, str(path), resumed=True)
        else:
            tasks.append((submission_id, path))
    if tasks:
        from grader.judge.grading import preflight

        # A grader that cannot work here must not grade a class of zeros: GraderFault stops the batch.
        isolation = preflight(options.grade_options([out_dir.resolve()]))
        if isolation.startswith("none"):
            log(f"warning: the sandbox runs without namespaces here (isolation {isolation}): submissions can read "
                "the machine's files and other submissions; see the README's isolation modes.", options.quiet)
        if options.scheduler:
            new_rows = run_on_cluster(tasks, out_dir, options)
        else:
            new_rows = run_in_workers(tasks, out_dir, options)
        rows.update({row.id: row for row in new_rows})
    ordered = [rows[i] for i, _ in submission_ids(paths) if i in rows]
    write_batch_files(out_dir)
    return ordered


def write_batch_files(out_dir: Path) -> None:
    """gradebook.csv and junit.xml over every finished submission under out_dir."""
    from grader.reports import write_batch_reports

    results = []
    for record in sorted(out_dir.glob(f"*/{RECORD}")):
        try:
            results.append(load_result(record))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    write_batch_reports(results, out_dir)
