"""The HTML report in a real browser: headless Chromium draws its learning curve and activation maps.

Chromium is a test requirement (Debian: `apt-get install -y chromium`); without it these tests fail
rather than skip, so a CI image that lacks it cannot pass silently.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from grader.reports import to_html
from grader.reports.images import activation_grid_png
from grader.results import CheckResult, SubmissionResult, load_result

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FIXTURES = Path(__file__).parent / "fixtures" / "results"
LAB_IMAGES = [0, 23, 28]  # three ankle boots: the lab's activation-map example
WINDOW = (1200, 2000)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# The probe reports every <img>'s natural size and where it was laid out (the report has no scripts).
PROBE = """<script>
window.addEventListener("load", () => {
  const rows = [...document.images].map((img) => {
    const r = img.getBoundingClientRect();
    return {alt: img.alt, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
            complete: img.complete, x: r.left + window.scrollX, y: r.top + window.scrollY,
            width: r.width, height: r.height};
  });
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(rows);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Chromium is not installed, so the HTML report cannot be checked in a browser. "
        "Install it (Debian/Ubuntu: `apt-get install -y chromium`) and run the tests again."
    )


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a throw-away profile and HOME, no network services, a fixed window."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}  # fmt: skip
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--force-device-scale-factor=1", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", *args,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module", autouse=True)
def browser() -> str:
    """Fail every test of this module at once, with the fix, when Chromium is missing."""
    return chromium()


# ---------------------------------------------------------------- a result with real figures


def _read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")  # fmt: skip
    missing = [n for n in names if not (FASHION_MNIST / n).is_file()]
    if missing:
        pytest.fail(f"Fashion-MNIST is missing {missing}: install the Debian package dataset-fashion-mnist")
    arrays = [_read_idx(FASHION_MNIST / n) for n in names]
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _train_cnn(seed: int, data: tuple[np.ndarray, ...]) -> tuple[Any, dict[str, list[float]], float]:
    """The lab's CNN (32, 32), trained briefly on a slice of the data: real weights, real curves."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D(2, 2),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D(2, 2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fit = model.fit(x_train[:3000], y_train[:3000], epochs=4, batch_size=32, verbose=0,
                    validation_data=(x_test[:1000], y_test[:1000]))  # fmt: skip
    _, accuracy = model.evaluate(x_test[:1000], y_test[:1000], verbose=0)
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    return model, history, float(accuracy)


def _activation_entry(model: Any, images: np.ndarray) -> dict[str, Any]:
    import keras

    layers = [lyr for lyr in model.layers if isinstance(lyr, (keras.layers.Conv2D, keras.layers.MaxPooling2D))]
    probe = keras.Model(model.inputs[0], [lyr.output for lyr in layers])
    activations = [np.asarray(a) for a in probe(images)]
    names = [lyr.name for lyr in layers]
    png = activation_grid_png(activations, names, [str(i) for i in LAB_IMAGES], channel=1)
    return {"layers": names, "png": base64.b64encode(png).decode("ascii")}


@pytest.fixture(scope="module")
def report_result() -> SubmissionResult:
    x_train, y_train, x_test, y_test = _fashion_mnist()
    data = (x_train[..., None] / np.float32(255), y_train, x_test[..., None] / np.float32(255), y_test)
    student, history, accuracy = _train_cnn(1, data)
    reference, _, _ = _train_cnn(2, data)
    images = data[2][LAB_IMAGES]
    half = 1.96 * (accuracy * (1 - accuracy) / 1000) ** 0.5
    gate = CheckResult(
        id="training::test_cnn_accuracy", name="The CNN reaches 0.80 test accuracy", exercise="training",
        number="4.2", max_score=15, score=15 if accuracy >= 0.8 else 0,
        status="passed" if accuracy >= 0.8 else "failed", tags=["training", "accuracy"],
        output=f"test accuracy {accuracy:.4f}",
        extra={"model": "cnn", "test_accuracy": accuracy, "ci95": [accuracy - half, accuracy + half],
               "threshold": 0.8, "history": history},
    )  # fmt: skip
    layer_check = next(c for c in load_result(FIXTURES / "failures.json").checks if c.number == "2.2")
    return SubmissionResult(
        submission="browser <test> & co",
        checks=[layer_check, gate],
        execution_time=12.0,
        extra={"activation_maps": {"images": LAB_IMAGES, "student": _activation_entry(student, images),
                                   "reference": _activation_entry(reference, images)}},
    )  # fmt: skip


@pytest.fixture(scope="module")
def report_file(report_result: SubmissionResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(to_html(report_result), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def layout(report_file: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The <img> elements as Chromium loaded and laid them out (from --dump-dom of a probed copy)."""
    folder = tmp_path_factory.mktemp("probe")
    probed = folder / "probed.html"
    probed.write_text(report_file.read_text(encoding="utf-8").replace("</body>", PROBE + "\n</body>"))
    dom = run_chromium(folder, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()).stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, f"the probe did not run; DOM starts: {dom[:500]}"
    return json.loads(html.unescape(match.group(1)))


# ---------------------------------------------------------------- tests


def test_report_is_self_contained(report_file: Path) -> None:
    page = report_file.read_text(encoding="utf-8")
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert page.count('src="data:image/png;base64,') == 3  # a learning curve, two activation grids


def test_images_load_with_their_natural_size(layout: list[dict[str, Any]]) -> None:
    assert [row["alt"] for row in layout] == [
        "learning curve of cnn",
        "activation maps of the student model",
        "activation maps of the reference model",
    ]
    for row in layout:
        assert row["complete"] and row["naturalWidth"] > 200 and row["naturalHeight"] > 200, row
        assert row["width"] > 100 and row["height"] > 100, row
    student, reference = layout[1], layout[2]
    assert student["y"] == reference["y"] and student["x"] < reference["x"]  # side by side


def test_screenshot_shows_the_figures(report_file: Path, layout: list[dict[str, Any]], tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run_chromium(tmp_path, f"--screenshot={shot}", report_file.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000
    image = Image.open(shot).convert("RGB")
    assert image.size == WINDOW
    pixels = np.asarray(image)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500, "the screenshot is (nearly) blank"
    for row in layout:
        box = [int(row["x"]), int(row["y"]), int(row["x"] + row["width"]), int(row["y"] + row["height"])]
        assert box[3] <= WINDOW[1], f"{row['alt']} is below the screenshot: {box}"
        region = pixels[box[1] : box[3], box[0] : box[2]].reshape(-1, 3)
        assert len(np.unique(region, axis=0)) > 100, f"{row['alt']} was not painted at {box}"
    if os.environ.get("REPORT_SCREENSHOT"):  # keep a copy to look at
        shutil.copy(shot, os.environ["REPORT_SCREENSHOT"])
