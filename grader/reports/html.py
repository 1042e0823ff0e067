"""One self-contained HTML page per submission: inline CSS, images as data: URIs, no scripts.

Everything that comes from a submission (names, feedback, messages, ids) is escaped; images that
come in the result (activation maps) are decoded and re-encoded only if they really are PNGs.
"""

from __future__ import annotations

import base64
import binascii
import html
import math
from importlib import resources
from typing import Any

from grader.reports._common import (
    fmt_number,
    fmt_seconds,
    hidden_count,
    is_accuracy_gate,
    shown_view,
    sorted_checks,
)
from grader.results import CheckResult, SubmissionResult
from grader.textcap import REPORT_BUDGET, REPORT_CHECK_LIMIT, Budget, clip_messages

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def to_html(result: SubmissionResult, show_hidden: bool = False) -> str:
    """The report page. Without `show_hidden`, hidden checks are only counted (the student's view)."""
    shown = shown_view(result, show_hidden)
    hidden = hidden_count(result)
    scope = "all checks" if show_hidden or not hidden else "visible checks only"
    body = [
        "<header>",
        f"<h1>{esc(result.assignment)}: {esc(result.submission)}</h1>",
        f'<p class="meta"><span class="badge {esc(result.status)}">{esc(result.status)}</span> '
        f"graded in {esc(fmt_seconds(result.execution_time))}</p>",
        f'<p class="total">Total ({scope}): <span id="total" data-score="{fmt_number(shown.score)}" '
        f'data-max="{fmt_number(shown.max_score)}">{fmt_number(shown.score)} / '
        f"{fmt_number(shown.max_score)}</span></p>",
    ]
    if hidden and not show_hidden:
        verb = "checks are" if hidden != 1 else "check is"
        body.append(f'<p class="meta" id="hidden-note">{hidden} hidden {verb} not shown.</p>')
    body.append("</header>")
    if result.messages:
        items = "".join(f"<li>{esc(m)}</li>" for m in clip_messages(list(result.messages)))
        body.append(f'<section class="notes" id="notes"><ul>{items}</ul></section>')
    body += _exercises(shown)
    body += _checks(shown)
    body += _learning_curves(shown)
    body += _activation_maps(result)
    body.append(_footer(result))
    title = f"{result.assignment}: {result.submission}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>\n{_css()}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _css() -> str:
    return resources.files("grader.reports").joinpath("report.css").read_text(encoding="utf-8")


def _exercises(shown: SubmissionResult) -> list[str]:
    out = ['<section id="exercises">', "<h2>Exercises</h2>"]
    per_exercise = shown.by_exercise(include_hidden=True)
    if not per_exercise:
        return [*out, '<p class="absent">No checks ran.</p>', "</section>"]
    out.append(
        '<table><thead><tr><th>Exercise</th><th class="num">Score</th><th class="num">Max</th>'
        '<th class="num">Failed checks</th></tr></thead><tbody>'
    )
    for exercise, (score, maximum) in per_exercise.items():
        failed = sum(1 for c in shown.checks if c.exercise == exercise and c.status == "failed")
        full = ' class="full"' if score >= maximum else ""
        out.append(
            f'<tr{full} data-exercise="{esc(exercise)}" data-score="{fmt_number(score)}">'
            f'<td>{esc(exercise)}</td><td class="num">{fmt_number(score)}</td>'
            f'<td class="num">{fmt_number(maximum)}</td><td class="num">{failed}</td></tr>'
        )
    out += ["</tbody></table>", "</section>"]
    return out


def _checks(shown: SubmissionResult) -> list[str]:
    if not shown.checks:
        return []
    out = ['<section id="checks">', "<h2>Checks</h2>"]
    budget = Budget(REPORT_BUDGET // 2, REPORT_CHECK_LIMIT)  # escaped, text may grow 6x: the page stays < 2 MB
    current = None
    for check in sorted_checks(shown.checks):
        if check.exercise != current:
            current = check.exercise
            out.append(f"<h3>{esc(current)}</h3>")
        out.append(_check(check, budget))
    out.append("</section>")
    return out


def _check(check: CheckResult, budget: Budget) -> str:
    hidden = ' <span class="badge hidden">hidden</span>' if check.hidden else ""
    head = (
        f'<div class="check-head"><span class="badge {esc(check.status)}">{esc(check.status)}</span>'
        f'<span class="name">{esc(check.number)} {esc(check.name)}{hidden}</span>'
        f'<span class="score">{fmt_number(check.score)} / {fmt_number(check.max_score)}</span></div>'
    )
    feedback = budget.take(check.output.rstrip())
    if check.status == "failed":
        body = f"<pre>{esc(feedback or '(no feedback)')}</pre>"
    elif feedback:
        body = f"<details><summary>output</summary><pre>{esc(feedback)}</pre></details>"
    else:
        body = ""
    return f'<div class="check {esc(check.status)}" data-id="{esc(check.id)}">{head}{body}</div>'


def _learning_curves(shown: SubmissionResult) -> list[str]:
    gates = [c for c in sorted_checks(shown.checks) if is_accuracy_gate(c)]
    if not gates:
        return []
    out = ['<section id="learning-curves">', "<h2>Accuracy gates</h2>"]
    for check in gates:
        out.append(_learning_curve(check))
    out.append("</section>")
    return out


def _learning_curve(check: CheckResult) -> str:
    extra = check.extra if isinstance(check.extra, dict) else {}
    model = esc(extra.get("model", check.exercise))
    accuracy, threshold = _float(extra.get("test_accuracy")), _float(extra.get("threshold"))
    ci95 = _interval(extra.get("ci95"))
    facts = [f"model <b>{model}</b>"]
    if accuracy is not None:
        facts.append(f"test accuracy {accuracy:.4f}")
    if ci95 is not None:
        facts.append(f"95% CI [{ci95[0]:.4f}, {ci95[1]:.4f}]")
    if threshold is not None:
        facts.append(f"threshold {threshold:.4f}")
    caption = f"{esc(check.name)}: " + ", ".join(facts)
    history = _history(extra.get("history"))
    if not history and accuracy is None:
        return f'<p class="absent">{caption}. No training history was recorded for this gate.</p>'
    from grader.reports.images import learning_curve_png  # matplotlib: only when a page needs it

    png = learning_curve_png(history, accuracy, ci95, threshold=threshold)
    alt = f"learning curve of {extra.get('model', check.exercise)}"
    return _figure(_img(png, alt), caption)


def _activation_maps(result: SubmissionResult) -> list[str]:
    out = ['<section id="activation-maps">', "<h2>Activation maps</h2>"]
    maps = result.extra.get("activation_maps")
    if not isinstance(maps, dict):
        return [*out, f'<p class="absent">{esc(_why_no_maps(result))}</p>', "</section>"]
    images = maps.get("images") or []
    if isinstance(images, list) and images:
        out.append(
            f'<p class="meta">Test images {esc(", ".join(str(i) for i in images))}, one per row; '
            "one column per convolution or pooling layer.</p>"
        )
    out.append('<div class="side-by-side">')
    for role in ("student", "reference"):
        out.append(_activation_figure(role, maps.get(role)))
    out += ["</div>", "</section>"]
    return out


def _activation_figure(role: str, entry: Any) -> str:
    title = "Your model" if role == "student" else "Reference model"
    if not isinstance(entry, dict):
        return _figure('<p class="absent">Not available.</p>', title)
    png = _decode_png(entry.get("png"))
    layers = entry.get("layers") or []
    layer_text = ", ".join(str(layer) for layer in layers) if isinstance(layers, list) else ""
    caption = f"{title}" + (f": {esc(layer_text)}" if layer_text else "")
    if png is None:
        return _figure('<p class="absent">The image is not a PNG.</p>', caption)
    return _figure(_img(png, f"activation maps of the {role} model"), caption)


def _figure(content: str, caption: str) -> str:
    return f"<figure>{content}<figcaption>{caption}</figcaption></figure>"


def _why_no_maps(result: SubmissionResult) -> str:
    note = result.extra.get("activation_maps_error")
    if isinstance(note, str) and note.strip():
        return f"No activation maps: {note.strip()}"
    if result.status == "error":
        return "No activation maps: grading stopped before the models could be inspected."
    return (
        "No activation maps: the grader could not compute them for this submission "
        "(see the models and visualize checks above)."
    )


def _footer(result: SubmissionResult) -> str:
    facts = [
        f"{esc(k)}: {esc(v)}"
        for k, v in sorted(result.extra.items())
        if isinstance(v, (str, int, float, bool)) and len(str(v)) < 200
    ]
    return "<footer>" + " · ".join(["convgrader report", *facts]) + "</footer>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _decode_png(data: Any) -> bytes | None:
    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data)
    elif isinstance(data, str):
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        return None
    return raw if raw.startswith(_PNG_SIGNATURE) else None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = _float(value[0]), _float(value[1])
        if lo is not None and hi is not None:
            return (lo, hi)
    return None


def _history(value: Any) -> dict[str, list[float]]:
    if not isinstance(value, dict):
        return {}
    history = {}
    for key, series in value.items():
        if isinstance(series, (list, tuple)):
            numbers = [_float(v) for v in series]
            history[str(key)] = [n if n is not None else math.nan for n in numbers]
    return history
