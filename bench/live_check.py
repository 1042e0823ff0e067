"""How fast grader.check() answers in a notebook: the first check of a kernel, and the next ones.

    python bench/live_check.py [--repeat N]

Starts a real notebook kernel (nbclient, kernel "python3") with this checkout first on its path, runs the
reference solutions as the generated notebook's exercise cells, then times, inside the kernel,
`grader.check("models")` a first time (it starts the judge process: Python, TensorFlow, the suites, a
sandbox), a second time (the judge is up and a spare sandbox is ready: what every later check costs), and
`grader.check()` of every exercise. Prints a Markdown table and the first/second ratio; writes nothing.
HOME and the caches point into a temporary folder, as in bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions" / "convolutions"
NOTEBOOK = ROOT / "assignments" / "convolutions" / "convolutions.ipynb"

TIMED = """\
import json, time
_started = time.perf_counter()
_report = {call}
print(json.dumps({{"seconds": time.perf_counter() - _started, "score": _report.score, "max": _report.max_score}}))"""


def _exercise_cells() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from grader.authoring.release import _without_local_imports

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    solutions = {path.stem: path.read_text(encoding="utf-8") for path in SOLUTIONS.glob("*.py")}
    cells = ["import grader"]
    for cell in notebook.cells:
        for tag in cell.metadata.get("tags", []):
            if tag.startswith("exercise:"):
                cells.append(_without_local_imports(solutions[tag.split(":", 1)[1]], set(solutions)))
    return cells


def _timed(client: NotebookClient, call: str) -> dict[str, float]:
    cell = nbformat.v4.new_code_cell(TIMED.format(call=call))
    client.nb.cells.append(cell)
    client.execute_cell(cell, len(client.nb.cells) - 1)
    text = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    answer = json.loads(text.strip().splitlines()[-1])
    if answer["score"] < answer["max"]:
        print(f"  WARNING: {call} gave {answer['score']} / {answer['max']} on the reference", file=sys.stderr)
    return answer


def measure(folder: Path) -> list[tuple[str, float]]:
    env = dict(os.environ)
    for name, sub in (("HOME", "home"), ("XDG_CACHE_HOME", "xdg-cache"), ("KERAS_HOME", "keras"),
                      ("MPLCONFIGDIR", "matplotlib"), ("IPYTHONDIR", "ipython")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(folder / sub)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in _exercise_cells()]
    client = NotebookClient(notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(folder)}})
    rows = []
    with client.setup_kernel(env=env):
        for index, cell in enumerate(list(notebook.cells)):
            client.execute_cell(cell, index)
        for label, call in (("first grader.check(\"models\")", 'grader.check("models")'),
                            ("second grader.check(\"models\")", 'grader.check("models")'),
                            ("third grader.check(\"models\")", 'grader.check("models")'),
                            ("grader.check() of all exercises", "grader.check()")):
            print(f"  running {label} ...", file=sys.stderr, flush=True)
            rows.append((label, _timed(client, call)["seconds"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="kernels to start, each measured afresh (median)")
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="convgrader-bench-live-") as folder:
            runs.append(measure(Path(folder)))
    labels = [label for label, _ in runs[0]]
    seconds = {label: statistics.median(run[i][1] for run in runs) for i, label in enumerate(labels)}
    print("| in a notebook kernel | seconds |\n|---|---|")
    for label in labels:
        print(f"| `{label}` | {seconds[label]:.1f} |")
    first, second = seconds[labels[0]], seconds[labels[1]]
    print(f"\nfirst / second check: {first:.1f} s / {second:.1f} s = {first / second:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
