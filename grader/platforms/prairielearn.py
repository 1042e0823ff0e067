"""`grader release --prairielearn DIR`: what a course needs for an externally graded PrairieLearn question.

DIR receives (PrairieLearn docs/externalGrading.md):

| entry | what |
|---|---|
| Dockerfile | the grading image: a Python base (the version the release was tested with), the grader, the data |
| entrypoint | the script PrairieLearn runs: grades /grade/student, writes /grade/results/results.json |
| convgrader-*.whl, requirements.txt, <data set>/ | what the Dockerfile copies in |
| info.json | the question's `externalGradingOptions` snippet (timeout within the 600 s maximum, no network) |
| README.md | how to build, push and use the image |

The entrypoint reads GRADER_PL_ROOT (default /grade) so that it can be tried outside the container.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from grader.assignment import Assignment
from grader.platforms import _package

MAX_TIMEOUT = 600  # PrairieLearn's limit for an external grading job, in seconds
IMAGE = "YOUR-ORG/convgrader-prairielearn:0.1.0"
ENTRYPOINT_PATH = "/convgrader/entrypoint"

DOCKERFILE = """\
# The grading image for convgrader on PrairieLearn. Build and push it, then name it in info.json:
#   docker build -t {image} . && docker push {image}
FROM python:{python}-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2 \\
    {data_env}=/convgrader/{data}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends util-linux \\
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt {wheel} /convgrader/
RUN pip install -r /convgrader/requirements.txt \\
    && pip install --no-deps /convgrader/{wheel} && grader --version
COPY {data}/ /convgrader/{data}/
RUN cd /convgrader/{data} && sha256sum --check --quiet {sums}
COPY entrypoint {entrypoint}
RUN chmod 755 {entrypoint}
"""

ENTRYPOINT = """\
#!/usr/bin/env bash
# PrairieLearn runs this in the grading container: it grades /grade/student (hidden checks included) and
# always writes /grade/results/results.json, creating the folder (a grader fault is written there too, and so
# is a grading that runs past GRADER_DEADLINE seconds: {deadline} by default, under the question's timeout).
set -uo pipefail
deadline="${{GRADER_DEADLINE:-{deadline}}}"
root="${{GRADER_PL_ROOT:-/grade}}"
results="$root/results/results.json"
options=({options})
mkdir -p "$root/results"
rm -f "$results"
timeout --kill-after=10 "$deadline" grader autograde --platform prairielearn --root "$root" "${{options[@]}}"
code=$?
if [ ! -s "$results" ]; then
  echo "the grader exited with $code and wrote no results.json; writing one that says so" >&2
  printf '{fallback}\\n' "$code" > "$results"
fi
exit 0
"""

# When the grader wrote nothing: a fixed results.json (printf fills in the exit code).
_FALLBACK = ('{"gradable": false, "score": 0, "format_errors": ["The grader failed or ran out of time (exit %s; 124: '
             'the deadline passed); this is not a problem with your work. Your instructor can see the details and '
             'regrade it."], "message": "The grader failed."}')


def write_prairielearn(root: Path, target: Path, assignment: Assignment, *, skip_training: bool = False,
                       timeout: int = MAX_TIMEOUT, image: str = IMAGE, extra_options: Sequence[str] = ()) -> Path:
    """Write the PrairieLearn release folder for the checkout at `root` into `target` (emptied first)."""
    if not 1 <= timeout <= MAX_TIMEOUT:
        raise ValueError(f"Received: timeout={timeout}, expected 1 to {MAX_TIMEOUT} seconds (PrairieLearn's limit)")
    target = Path(target).resolve()
    sources = Path(root).resolve() / "grader"
    if sources.is_relative_to(target) or target.is_relative_to(sources):
        raise ValueError(f"Received: {target}, which would overwrite the grader's sources; choose another folder")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    wheel = _package.build_wheel(root, target)
    (target / "requirements.txt").write_text("\n".join(_package.pinned_requirements(wheel)) + "\n", encoding="utf-8")
    fields = {**_package.copy_dataset(target, assignment), "sums": _package.SUMS, "entrypoint": ENTRYPOINT_PATH}
    options = ["--assignment", assignment.name, *(["--skip-training"] if skip_training else []), *extra_options]
    (target / "Dockerfile").write_text(
        DOCKERFILE.format(python=_package.python_version(), wheel=wheel.name, image=image, **fields), encoding="utf-8")
    entry = target / "entrypoint"
    text = ENTRYPOINT.format(options=" ".join(shlex.quote(o) for o in options), fallback=_FALLBACK,
                             deadline=max(timeout - 30, timeout * 9 // 10))
    entry.write_text(text, encoding="utf-8")
    entry.chmod(0o755)
    (target / "info.json").write_text(json.dumps(info_snippet(image, timeout), indent=2) + "\n", encoding="utf-8")
    readme = _README.format(image=image, timeout=timeout, entrypoint=ENTRYPOINT_PATH)
    (target / "README.md").write_text(readme, encoding="utf-8")
    return target


def info_snippet(image: str = IMAGE, timeout: int = MAX_TIMEOUT) -> dict[str, object]:
    """The part of a question's info.json that turns on external grading with this image."""
    return {
        "gradingMethod": "External",
        "externalGradingOptions": {
            "enabled": True,
            "image": image,
            "entrypoint": ENTRYPOINT_PATH,
            "timeout": timeout,
            "enableNetworking": False,
        },
    }


_README = """\
# convgrader for PrairieLearn (external grading)

1. Build and push the image (from this folder): `docker build -t {image} . && docker push {image}`
   (PrairieLearn pulls public images from Docker Hub; replace YOUR-ORG).
2. Merge `info.json` into the question's own info.json (timeout {timeout} s, networking off).
3. Let students upload their modules (data.py, models.py, ...), the lab notebook or a .zip: PrairieLearn puts
   the files in /grade/student; the entrypoint writes /grade/results/results.json.

Try the image locally in PrairieLearn's layout:
`docker run --rm --network none -v $PWD/job:/grade {image} {entrypoint}` with the submission in job/student/.
"""
