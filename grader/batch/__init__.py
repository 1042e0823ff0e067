"""Grading a class: every submission in isolation, results written as soon as each is done.

Each submission is graded by a worker process (`python -m grader.batch.worker`), so a submission that
crashes the judge itself costs only its own result: the worker is replaced and the batch goes on.
A submission's folder under --out holds `grader-result.json` (our full record, written last and
atomically: its presence means "done"), `results.json` (Gradescope) and `report.html`. A rerun
with the same --out skips finished submissions; `--force` regrades them.
"""
