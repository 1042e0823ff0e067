"""`grader release --gradescope autograder.zip`: Gradescope's autograder package.

The zip holds, AT ITS ROOT (Gradescope unpacks it into /autograder/source and runs the root's setup.sh
once when it builds the image, then /autograder/run_autograder for every submission):

| entry | what |
|---|---|
| setup.sh | installs Python (the minor version the release was tested with) and the grader into a venv |
| run_autograder | grades /autograder/submission; always writes /autograder/results/results.json |
| convgrader-*.whl | the grader with every suite, hidden checks included |
| requirements.txt | the pinned versions installed where the release was built |
| python-version | e.g. 3.11: the Python those pins were resolved for |
| <data set>/ | the assignment's data files and SHA256SUMS (checked by setup.sh) |

Environment variables read by the scripts (for testing the zip outside Gradescope's image):
GRADER_VENV (default /opt/convgrader), GRADER_PYTHON (an interpreter to use instead of python<version>),
GRADER_VENV_OPTIONS (e.g. --system-site-packages), GRADER_AUTOGRADER_ROOT (default /autograder) and
GRADER_AUTOGRADER_SOURCE (default $GRADER_AUTOGRADER_ROOT/source).
"""

from __future__ import annotations

import shlex
import stat
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from grader.assignment import Assignment
from grader.platforms import _package

ROOT_ENTRIES = ("setup.sh", "run_autograder")

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root with network, when it builds the autograder image (Ubuntu 22.04).
# It installs Python {python} (the version the pinned requirements were tested with) and the grader in a venv.
set -euo pipefail
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
venv="${{GRADER_VENV:-/opt/convgrader}}"
want="$(cat "$here/python-version")"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

echo "checking the data set against its SHA-256 sums"
(cd "$here/{data}" && sha256sum --check --quiet {sums})

python="${{GRADER_PYTHON:-$(command -v "python$want" || true)}}"
if [ -z "$python" ] || ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  echo "installing python$want and its venv module with apt"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "python$want" "python$want-venv" ca-certificates
  python="$(command -v "python$want")"
fi
# shellcheck disable=SC2086  # GRADER_VENV_OPTIONS holds options, split on purpose
"$python" -m venv ${{GRADER_VENV_OPTIONS:-}} "$venv"
"$venv/bin/python" -m pip install -q --upgrade-strategy only-if-needed -r "$here/requirements.txt"
"$venv/bin/python" -m pip install -q --no-deps --force-reinstall "$here"/{wheel}
"$venv/bin/grader" --version
echo "the grader is installed in $venv"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission (as root, in /autograder). It grades /autograder/submission,
# hidden checks included, and always leaves /autograder/results/results.json behind, even when the grader
# itself fails (then its output says what went wrong) or runs past GRADER_DEADLINE seconds (default 570: under
# Gradescope's default 10-minute timeout; raise both together in the autograder settings and here).
set -uo pipefail
deadline="${{GRADER_DEADLINE:-570}}"
root="${{GRADER_AUTOGRADER_ROOT:-/autograder}}"
source_dir="${{GRADER_AUTOGRADER_SOURCE:-$root/source}}"
venv="${{GRADER_VENV:-/opt/convgrader}}"
results="$root/results/results.json"
options=({options})
mkdir -p "$root/results"
rm -f "$results"
log="$(mktemp)"
export {data_env}="$source_dir/{data}" TF_CPP_MIN_LOG_LEVEL=2
timeout --kill-after=15 "$deadline" "$venv/bin/grader" autograde --platform gradescope --root "$root" \
  "${{options[@]}}" 2>&1 | tee "$log"
code=${{PIPESTATUS[0]}}
if [ ! -s "$results" ]; then
  echo "the grader exited with $code and wrote no results.json; writing one that says so" >&2
  python3 - "$results" "$code" "$log" "$deadline" <<'PY' || printf '{fallback}\\n' "$code" > "$results"
import json, sys
path, code, deadline = sys.argv[1], int(sys.argv[2]), sys.argv[4]
log = open(sys.argv[3], errors="replace").read()[-4000:]
if code in (124, 137):  # timeout(1): the deadline passed
    why = f"grading did not finish within the autograder's deadline of {{deadline}} s"
else:
    why = "Grader error: `" + (log.strip().splitlines() or ["(no output)"])[-1] + f"` (exit {{code}})"
json.dump({{
    "score": 0.0, "tests": [], "output_format": "md",
    "output": "The grader failed while grading this submission; this is not a problem with your work and 0 "
              "is not your score. Your instructor can see the details and regrade it.\\n\\n" + why + ".",
    "extra_data": {{"status": "grader_error", "exit_code": code, "deadline_s": float(deadline), "log_tail": log}},
}}, open(path, "w"), indent=2)
PY
fi
rm -f "$log"
exit 0
"""

# When even python3 is missing: a fixed results.json (printf fills in the exit code).
_FALLBACK = ('{"score": 0, "tests": [], "output": "The autograder failed (exit %s) and could not say why: '
             'see the autograder output."}')


def write_autograder_zip(root: Path, archive: Path, assignment: Assignment, *, skip_training: bool = False,
                         extra_options: Sequence[str] = ()) -> Path:
    """Write Gradescope's autograder zip for the checkout at `root`; returns the archive's path.

    `skip_training` bakes `--skip-training` into run_autograder (no accuracy gates: seconds, not minutes).
    """
    archive = Path(archive)
    if archive.suffix.lower() != ".zip":
        raise ValueError(f"Received: {archive}, expected a .zip file name (Gradescope uploads a zip)")
    options = ["--assignment", assignment.name, *(["--skip-training"] if skip_training else []), *extra_options]
    with tempfile.TemporaryDirectory(prefix="convgrader-gradescope-") as scratch:
        stage = Path(scratch)
        wheel = _package.build_wheel(root, stage)
        (stage / "requirements.txt").write_text("\n".join(_package.pinned_requirements(wheel)) + "\n", encoding="utf-8")
        (stage / "python-version").write_text(_package.python_version() + "\n", encoding="utf-8")
        fields = {**_package.copy_dataset(stage, assignment), "sums": _package.SUMS,
                  "python": _package.python_version()}
        scripts = {
            "setup.sh": SETUP_SH.format(wheel=wheel.name, **fields),
            "run_autograder": RUN_AUTOGRADER.format(options=" ".join(shlex.quote(o) for o in options),
                                                    fallback=_FALLBACK, **fields),
        }
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(f".{archive.name}.partial")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as out:
            for name, text in scripts.items():
                _add(out, name, text.encode("utf-8"), executable=True)
            for path in sorted(p for p in stage.rglob("*") if p.is_file()):
                name = path.relative_to(stage).as_posix()
                stored = path.suffix in (".gz", ".whl")  # already compressed
                _add(out, name, path.read_bytes(), executable=False, stored=stored)
        partial.replace(archive)
    return archive


def _add(out: zipfile.ZipFile, name: str, data: bytes, *, executable: bool, stored: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    mode = 0o755 if executable else 0o644
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.create_system = 3  # Unix: the permission bits above are read by unzip
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    out.writestr(info, data)
