"""Entry point of a grading worker: `python -m grader.batch.worker FD OUT_DIR OPTIONS_JSON`.

Reads tasks ({"id", "source"}) as JSON lines on stdin, grades each with grader.batch.common.grade_to_folder,
and answers on file descriptor FD (stdout is left to TensorFlow's chatter and goes to the log).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from grader.batch.common import BatchOptions, error_result, grade_to_folder, row_of, save_result
from grader.sandbox.client import keep_spare_sandbox


def main(argv: list[str]) -> int:
    channel = os.fdopen(int(argv[0]), "w", buffering=1)
    out_dir = Path(argv[1])
    options = BatchOptions.from_json(json.loads(argv[2]))

    def send(message: dict[str, object]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        submission_id, source = task["id"], Path(task["source"])
        # While this submission is graded, the next one's sandbox imports TensorFlow (see sandbox.client).
        keep_spare_sandbox(bool(task.get("more")))
        folder = out_dir / submission_id

        def progress(epoch: int, epochs: int, logs: dict[str, float], _id: str = submission_id) -> None:
            send({"progress": {"id": _id, "epoch": epoch, "epochs": epochs}})

        try:
            row = grade_to_folder(source, folder, options, submission_id, progress=progress)
        except Exception as exc:  # a judge failure on this submission must not end the batch
            result = error_result(submission_id, f"the grader failed on this submission: {type(exc).__name__}: {exc}")
            folder.mkdir(parents=True, exist_ok=True)
            save_result(result, folder / "grader-result.json")
            row = row_of(result, str(source))
        send({"row": row.__dict__})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
