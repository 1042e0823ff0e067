"""`grader.check("models")` in a notebook: check the definitions the kernel has now, without saving.

The cells the kernel ran (kernel.py) become a notebook, graded like `grader check NOTEBOOK` would grade it
(public checks only, the quick profile unless training=True) by a judge process that stays up between
checks (client.py, server.py). The answer is a CheckReport (report.py): an HTML table in a notebook.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.assignment import load as load_assignment
from grader.notebook_check.client import GraderFault, JudgeProcess
from grader.notebook_check.kernel import (
    NotInNotebook,
    executed_sources,
    in_kernel_terms,
    kernel_messages,
    kernel_notebook,
    running_shell,
)
from grader.notebook_check.report import CheckReport

__all__ = ["CheckReport", "GraderFault", "JudgeProcess", "NotInNotebook", "check", "judge"]

judge = JudgeProcess()  # one per kernel: the first check starts it, the next ones reuse it
atexit.register(judge.close)


def check(exercise: str | None = None, *, training: bool = False, seed: int = 0,
          assignment: str = "") -> CheckReport:
    """Check the exercise `exercise` (one of the assignment's modules), or all of them, as this kernel defines
    them now.

    training=True also runs the accuracy gates (they train your models: minutes), with a progress bar.
    assignment: the installed assignment's name; "" for the only one installed.
    """
    shell = running_shell()
    lab = load_assignment(assignment or None)
    names = dict(lab.names)
    if exercise is not None and exercise not in names:
        raise ValueError(f"Received exercise={exercise!r}, expected one of {', '.join(names)}: e.g. "
                         'grader.check("models"), or grader.check() for all of them.')
    exercises = (exercise,) if exercise else ()
    sources = executed_sources(shell)
    notes = kernel_messages(shell, sources, exercises, names)
    status = _Status(training)
    folder = Path(tempfile.mkdtemp(prefix="convgrader-check-"))
    try:
        path = folder / f"{_notebook_name(shell)}.ipynb"
        path.write_text(kernel_notebook(sources), encoding="utf-8")
        status.show("checking" + (" (the first check starts the grader: about half a minute)"
                                  if not judge.running else ""))
        answer = judge.request({"notebook": str(path), "exercises": list(exercises), "training": training,
                                "seed": seed, "assignment": lab.name}, status.progress)
    finally:
        status.clear()
        shutil.rmtree(folder, ignore_errors=True)
    return _report(answer, exercise, notes, lab.name)


def _report(answer: dict[str, Any], exercise: str | None, notes: Sequence[str], assignment: str = "") -> CheckReport:
    from grader.results import SubmissionResult

    if "error" in answer:
        raise GraderFault("the grader failed while checking your notebook. This is not a mistake in your code; "
                          f"please report it with this text:\n{answer['error']}")
    if "unusable" in answer:
        result = SubmissionResult(submission="notebook", assignment=assignment, status="error",
                                  messages=[str(answer["unusable"])])
        return CheckReport(result, exercise)
    result = SubmissionResult.from_dict(answer["result"])
    messages = [in_kernel_terms(m) for m in result.messages]
    none = [m for m in messages if m.startswith("this notebook's kernel defines none")]
    if exercise is not None:  # the lab-wide account is for grader.check(); one exercise gets its own names
        messages = [m for m in messages if m not in none]
    elif none:
        notes = []  # one account, not one line per name
    result.messages = list(dict.fromkeys([*notes, *messages]))
    return CheckReport(result, exercise)


def _notebook_name(shell: Any) -> str:
    """The notebook's name when Jupyter tells it (`__session__`), for the report's title; else "notebook"."""
    session = str(shell.user_ns.get("__session__", "") or "")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(session).stem).strip("._")
    return stem or "notebook"


class _Status:
    """A line under the cell while the check runs ("checking", then a progress bar while models train); in a
    frontend without HTML, nothing."""

    def __init__(self, training: bool) -> None:
        self.training = training
        self.handle: Any = None

    def show(self, text: str) -> None:
        try:
            from IPython.display import HTML, display

            self.handle = display(HTML(f"<i>{text} …</i>"), display_id=True)
        except Exception:  # noqa: BLE001 - no display: the check goes on without a status line
            self.handle = None

    def progress(self, epoch: int, epochs: int) -> None:
        if self.handle is None:
            return
        from IPython.display import HTML

        self.handle.update(HTML(f'<progress value="{epoch}" max="{max(epochs, 1)}"></progress> '
                                f"training your models for the accuracy gates: epoch {epoch} of {epochs}"))

    def clear(self) -> None:
        if self.handle is not None:
            from IPython.display import HTML

            self.handle.update(HTML(""))
