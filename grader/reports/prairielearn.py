"""PrairieLearn's results.json (external grading): the submission's checks as PrairieLearn tests.

Format (PrairieLearn docs/externalGrading.md): `score` in [0, 1], `gradable`, `format_errors`, `message`,
`output`, `images` [{label, url}] and `tests` [{name, description, points, max_points, message, output,
images}]. The score is the result model's own total over its own maximum; hidden checks count but show
neither their title nor their feedback. Learning curves go with the accuracy gates, the activation maps
with the whole result, all as PNG data URLs, shrunk or left out so that the file stays under
PrairieLearn's 1 MB limit (MAX_BYTES).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from grader.reports._common import fmt_number, fmt_seconds, hidden_count, is_accuracy_gate, one_line
from grader.reports.html import _decode_png, _float, _history, _interval  # the HTML page reads the same fields
from grader.results import CheckResult, SubmissionResult

MAX_BYTES = 1_000_000  # PrairieLearn refuses a larger results.json
_BUDGET = 950_000  # what this module aims for: room for the platform's own additions
_OUTPUT_CAP = 20_000  # characters of one check's feedback kept when text alone is too large

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "gradable": {"type": "boolean"},
        "format_errors": {"type": "array", "items": {"type": "string"}},
        "message": {"type": "string"},
        "output": {"type": "string"},
        "images": {"type": "array", "items": {"$ref": "#/$defs/image"}},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "points": {"type": "number", "minimum": 0},
                    "max_points": {"type": "number", "minimum": 0},
                    "message": {"type": "string"},
                    "output": {"type": "string"},
                    "images": {"type": "array", "items": {"$ref": "#/$defs/image"}},
                },
                "required": ["name", "points", "max_points"],
            },
        },
    },
    "required": ["score"],
    "$defs": {
        "image": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "url": {"type": "string", "pattern": "^data:image/png;base64,"},
            },
            "required": ["url"],
        }
    },
}


def to_prairielearn(result: SubmissionResult, *, images: bool = True, budget: int = _BUDGET) -> dict[str, Any]:
    """The results.json document for one graded submission, at most `budget` bytes once serialised."""
    maximum = result.max_score
    document: dict[str, Any] = {
        "gradable": True,
        "score": min(max(result.score / maximum, 0.0), 1.0) if maximum > 0 else 0.0,
        "message": _message(result),
        "output": "\n".join(result.messages),
        "tests": [_test(check, images) for check in result.checks],
        "images": _activation_images(result) if images else [],
    }
    return _fit(document, budget)


def unusable_submission(reason: str, output: str = "") -> dict[str, Any]:
    """An invalid submission (no modules, an unreadable notebook): PrairieLearn uses no attempt on it."""
    return {
        "gradable": False,
        "score": 0.0,
        "format_errors": [reason],
        "message": f"Nothing could be graded: {reason}",
        "output": output,
    }


def grader_failure(details: str) -> dict[str, Any]:
    """The grader itself failed: not gradable (the student loses no attempt), with the details for the staff."""
    reason = ("The grader failed while grading this submission; this is not a problem with your work. "
              "Your instructor can see the details and regrade it.")
    return {
        "gradable": False,
        "score": 0.0,
        "format_errors": [reason],
        "message": reason,
        "output": details[-_OUTPUT_CAP:],
    }


def validate_prairielearn(data: Any) -> list[str]:
    """Problems that would make PrairieLearn reject `data`; empty when it is valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(data)
    ]
    size = len(json.dumps(data).encode("utf-8"))
    if size > MAX_BYTES:
        problems.append(f"<root>: {size} bytes, over PrairieLearn's limit of {MAX_BYTES}")
    for i, test in enumerate(data.get("tests", []) if isinstance(data, dict) else []):
        if isinstance(test, dict) and test.get("points", 0) > test.get("max_points", 0) + 1e-9:
            problems.append(f"tests/{i}: points {test['points']} exceed max_points {test['max_points']}")
    return problems


def _message(result: SubmissionResult) -> str:
    failed = sum(1 for c in result.checks if c.status == "failed")
    text = (f"{fmt_number(result.score)} / {fmt_number(result.max_score)} points; "
            f"{len(result.checks) - failed} of {len(result.checks)} checks passed "
            f"(graded in {fmt_seconds(result.execution_time)}).")
    hidden = hidden_count(result)
    if hidden:
        verb = "are" if hidden != 1 else "is"
        text += f" {hidden} of them {verb} hidden: their points count, their details are not shown."
    if result.status != "graded":
        text += f" Grading ended early ({result.status})."
    return text


def _test(check: CheckResult, images: bool) -> dict[str, Any]:
    if check.hidden:
        return {
            "name": f"{check.number} hidden check",
            "description": f"exercise {check.exercise}: a hidden check",
            "points": check.score,
            "max_points": check.max_score,
            "message": check.status,
            "output": "",
        }
    test: dict[str, Any] = {
        "name": f"{check.number} {check.name}",
        "description": f"exercise {check.exercise}" + (f" ({', '.join(check.tags)})" if check.tags else ""),
        "points": check.score,
        "max_points": check.max_score,
        "message": one_line(check.output, 300) if check.status == "failed" else check.status,
        "output": check.output,
    }
    if images and is_accuracy_gate(check):
        curve = _learning_curve(check)
        if curve is not None:
            test["images"] = [curve]
    return test


def _learning_curve(check: CheckResult) -> dict[str, str] | None:
    extra = check.extra if isinstance(check.extra, dict) else {}
    history = _history(extra.get("history"))
    accuracy = _float(extra.get("test_accuracy"))
    if not history and accuracy is None:
        return None
    from grader.reports.images import learning_curve_png

    png = learning_curve_png(history, accuracy, _interval(extra.get("ci95")), threshold=_float(extra.get("threshold")))
    return {"label": f"learning curve of the {extra.get('model', check.exercise)} model", "url": _data_url(png)}


def _activation_images(result: SubmissionResult) -> list[dict[str, str]]:
    maps = result.extra.get("activation_maps")
    if not isinstance(maps, dict):
        return []
    out = []
    roles = (("student", "activation maps of your CNN"), ("reference", "activation maps of the reference CNN"))
    for role, label in roles:
        entry = maps.get(role)
        png = _decode_png(entry.get("png")) if isinstance(entry, dict) else None
        if png is not None:
            out.append({"label": label, "url": _data_url(png)})
    return out


def _fit(document: dict[str, Any], budget: int) -> dict[str, Any]:
    """Shrink images (half size, then a quarter), then leave them out, then cut long outputs: under `budget`."""
    originals = [(image, _decode_url(image["url"])) for image in _all_images(document)]
    for scale in (1.0, 0.5, 0.25):
        if scale < 1.0:
            for image, png in originals:
                image["url"] = _data_url(_downscale(png, scale))
        if _size(document) <= budget:
            return document
    dropped = 0
    while _size(document) > budget and _drop_largest_image(document):
        dropped += 1
    if dropped:
        document["message"] += f" {dropped} image(s) were left out to keep the results under 1 MB."
    if _size(document) > budget:
        for test in document["tests"]:
            if len(test.get("output", "")) > _OUTPUT_CAP:
                test["output"] = test["output"][:_OUTPUT_CAP] + "\n… (cut to keep the results under 1 MB)"
        document["output"] = document["output"][-_OUTPUT_CAP:]
    return document


def _all_images(document: dict[str, Any]) -> list[dict[str, str]]:
    return [*document.get("images", []), *(i for t in document.get("tests", []) for i in t.get("images", []))]


def _drop_largest_image(document: dict[str, Any]) -> bool:
    holders = [document, *document.get("tests", [])]
    candidates = [(len(image["url"]), holder, image) for holder in holders for image in holder.get("images", [])]
    if not candidates:
        return False
    _, holder, image = max(candidates, key=lambda c: c[0])
    holder["images"].remove(image)
    return True


def _size(document: dict[str, Any]) -> int:
    return len(json.dumps(document).encode("utf-8"))


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _decode_url(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


def _downscale(png: bytes, scale: float) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        smaller = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    smaller.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
