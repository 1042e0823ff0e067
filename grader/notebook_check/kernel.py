"""The student's code as the running notebook kernel has it: the cells it executed, as a notebook.

IPython keeps the source of every cell it executed in this session (``history_manager.input_hist_raw``,
the ``In`` list), unsaved edits included, in Jupyter and in Colab alike. We write them, in execution order,
one code cell per execution, into a notebook that the usual extraction (grader.intake.notebook) reads: it keeps
imports, definitions and ALL_CAPS constants, so each name ends up with the definition the kernel ran last,
and nothing that trains or loads data is run again. Cell N of that notebook is the execution ``In [N]``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import nbformat

from grader.intake.notebook import defined_names, extract_notebook
from grader.intake.submission import Origin


class NotInNotebook(RuntimeError):
    """grader.check() was called outside an IPython kernel."""


def running_shell() -> Any:
    """The running IPython shell (Jupyter, Colab, terminal IPython), or NotInNotebook."""
    ipython = sys.modules.get("IPython")  # a notebook kernel has imported it; a plain script has not
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        raise NotInNotebook(
            "grader.check() runs inside a notebook (Jupyter, JupyterLab, Colab): it grades the cells that the "
            "notebook's kernel has run. Outside a notebook, check your files with `grader check PATH` instead, "
            "e.g. `grader check my_lab.ipynb --skip-training` or `grader check my_folder/ --skip-training`."
        )
    return shell


def executed_sources(shell: Any) -> list[str]:
    """The source of every execution of this session, In[1] first (unsaved edits included)."""
    history = getattr(shell, "history_manager", None)
    raw = list(getattr(history, "input_hist_raw", None) or shell.user_ns.get("In", None) or [""])
    return [str(source) for source in raw[1:]]  # entry 0 is IPython's empty placeholder


def kernel_notebook(sources: Sequence[str]) -> str:
    """The executions as a notebook (JSON text): code cell N holds In[N]."""
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    )
    notebook.cells = [nbformat.v4.new_code_cell(source, id=f"in-{n}") for n, source in enumerate(sources, 1)]
    return nbformat.writes(notebook, version=4)


def kernel_messages(shell: Any, sources: Sequence[str], exercises: Sequence[str],
                    names: Mapping[str, Sequence[str]]) -> list[str]:
    """What the kernel itself tells about the exercises' names, before any grading: names no cell has defined
    yet, and names the kernel has that no cell's top-level code defines (an import, `%run`, a lambda)."""
    modules = list(names) if not exercises else list(exercises)
    code = extract_notebook(kernel_notebook(sources).encode("utf-8"), list(names))
    kept = defined_names(code.source) or set()
    namespace = shell.user_ns
    messages = []
    for module in modules:
        for name in names.get(module, ()):
            if name not in namespace and name not in kept:
                messages.append(Origin("kernel").undefined(module, name))
            elif name not in kept:
                messages.append(
                    f"{name} exists in this kernel, but no cell defines it at its top level (the grader takes a "
                    "cell's imports, `def`s, classes and ALL_CAPS constants only; an import from a file, `%run` or "
                    f"an assignment such as `{name} = ...` does not count): define it in the cell of exercise "
                    f"`{module}` and run that cell."
                )
    return messages


_CELL = re.compile(r"\bcell (\d+)( of the notebook)?\b")


def in_kernel_terms(message: str) -> str:
    """A note of the notebook extraction about "cell N", said of the execution In [N] that it comes from."""
    return _CELL.sub(lambda m: f"the cell run as In [{m.group(1)}]", message)
