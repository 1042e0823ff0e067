"""Grading where courses grade: the in-container step (autograde) and the instructor's release packages.

| module | what |
|---|---|
| `autograde` | grade the one submission a platform's container holds and always write its results.json |
| `gradescope` | `grader release --gradescope autograder.zip`: setup.sh, run_autograder, wheel, data |
| `prairielearn` | `grader release --prairielearn DIR`: Dockerfile, entrypoint, info.json snippet |
| `_package` | what both packages hold: the grader's wheel, pinned requirements, the data set |
"""
