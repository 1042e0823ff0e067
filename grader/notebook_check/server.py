"""The judge of grader.check(): `python -m grader.notebook_check.server`, a child of the notebook's kernel.

The judge never runs in the student's kernel: that process holds whatever the student's cells did to it
(a Keras dtype policy, a patched NumPy, random seeds), and the checks compare against the judge's own
reference computations. This process grades instead, the way `grader check` does, and stays up between
checks: TensorFlow and the suites are imported once, and a spare sandbox (grader.sandbox.client's
keep_spare_sandbox) is ready for the next check, so the second check answers in a few seconds.

Requests come as JSON lines on stdin: {"notebook": PATH, "exercises": [...], "training": bool, "seed": N}.
Answers go, one JSON line each, to the process's original stdout: {"progress": [epoch, epochs]} while
training, then one of {"result": SubmissionResult dict}, {"unusable": message} (nothing to grade), or
{"error": text} (the grader failed). Everything else the process prints goes to stderr, the log. It exits
when stdin closes, i.e. when the kernel goes away.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO


def main() -> int:
    channel = _answers_channel()
    from grader.intake.submission import SubmissionError
    from grader.judge.grading import GradeOptions, grade
    from grader.sandbox.client import keep_spare_sandbox

    keep_spare_sandbox(True)  # each grading leaves a sandbox ready for the next check

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)

        def progress(epoch: int, epochs: int, logs: dict[str, float]) -> None:
            send({"progress": [int(epoch), int(epochs)]})

        options = GradeOptions(
            skip_training=not request.get("training", False),
            seed=int(request.get("seed", 0)),
            exercises=tuple(request.get("exercises", ())),
            kernel=True,
            progress=progress,
            assignment=str(request.get("assignment", "")),
        )
        try:
            result = grade(Path(request["notebook"]), options)
        except SubmissionError as exc:
            send({"unusable": str(exc)})
        except Exception:  # noqa: BLE001 - a grader failure: the kernel side reports it as one, not as a score
            send({"error": traceback.format_exc(limit=-8)})
        else:
            send({"result": result.to_dict()})
    return 0


def _answers_channel() -> TextIO:
    """The original stdout, for answers only; from here on fd 1 is stderr, so that what TensorFlow, Keras or
    pytest print cannot be mistaken for an answer."""
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    return channel


if __name__ == "__main__":
    sys.exit(main())
