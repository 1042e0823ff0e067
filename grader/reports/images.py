"""PNG figures for the reports: activation-map grids and learning curves.

Figures are built with matplotlib's object API on an Agg canvas (no pyplot): nothing is registered
globally, no backend is switched and no rcParams change, so callers' own plotting is unaffected.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_DPI = 100
_CURVES_KEPT = 16  # learning-curve figures remembered per process (~30 kB each)
_curves: OrderedDict[str, bytes] = OrderedDict()


def activation_grid_png(
    activations: Sequence[np.ndarray],
    layer_names: Sequence[str],
    row_labels: Sequence[str],
    channel: int = 1,
) -> bytes:
    """A grid of feature maps: one row per image, one column per conv/pool layer, for one channel.

    `activations[j]` has shape (n_images, h, w, channels) for layer `layer_names[j]`.
    """
    if not activations:
        raise ValueError("activation_grid_png needs at least one layer")
    if len(activations) != len(layer_names):
        raise ValueError(f"{len(activations)} activation arrays but {len(layer_names)} layer names")
    arrays = [np.asarray(a) for a in activations]
    for name, array in zip(layer_names, arrays, strict=True):
        if array.ndim != 4:
            raise ValueError(f"layer {name!r}: expected (n, h, w, c) activations, got shape {array.shape}")
        if array.shape[0] != len(row_labels):
            raise ValueError(f"layer {name!r}: {array.shape[0]} images but {len(row_labels)} row labels")
        if not -array.shape[3] <= channel < array.shape[3]:
            raise ValueError(f"layer {name!r} has {array.shape[3]} channels; channel {channel} is out of range")
    rows, cols = len(row_labels), len(arrays)
    figure = Figure(figsize=(1.9 * cols + 0.6, 1.9 * rows + 0.5), dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    for j, (name, array) in enumerate(zip(layer_names, arrays, strict=True)):
        for i, label in enumerate(row_labels):
            ax = axes[i][j]
            ax.imshow(np.nan_to_num(array[i, :, :, channel].astype(float)), cmap="inferno")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{name}\n{array.shape[1]}×{array.shape[2]}", fontsize=8)
            if j == 0:
                ax.set_ylabel(str(label), fontsize=8)
    figure.suptitle(f"channel {channel}", fontsize=9)
    figure.tight_layout()
    return _png(figure)


def learning_curve_png(
    history: dict[str, list[float]],
    test_accuracy: float | None,
    ci95: tuple[float, float] | None,
    threshold: float | None = None,
) -> bytes:
    """Training curves per epoch: accuracy metrics left, losses right; test accuracy with its 95% CI
    and, for an accuracy gate, the threshold it must reach.

    Drawn once per process for the same inputs: a batch worker reports the same curves for every submission
    whose models train alike (the training cache gives them the very same histories), and matplotlib takes
    ~0.2-0.3 s a figure."""
    key = json.dumps([sorted((str(k), np.asarray(v, dtype=float).ravel().tolist()) for k, v in history.items()),
                      None if test_accuracy is None else float(test_accuracy),
                      None if ci95 is None else [float(ci95[0]), float(ci95[1])],
                      None if threshold is None else float(threshold)])
    if key in _curves:
        _curves.move_to_end(key)
        return _curves[key]
    png = _curves[key] = _learning_curve(history, test_accuracy, ci95, threshold)
    while len(_curves) > _CURVES_KEPT:
        _curves.popitem(last=False)
    return png


def _learning_curve(history: dict[str, list[float]], test_accuracy: float | None,
                    ci95: tuple[float, float] | None, threshold: float | None) -> bytes:
    figure = Figure(figsize=(8.0, 3.2), dpi=_DPI)
    FigureCanvasAgg(figure)
    acc_ax, loss_ax = figure.subplots(1, 2)
    plotted = {"acc": False, "loss": False}
    for metric, values in sorted(history.items()):
        series = np.asarray(values, dtype=float).ravel()
        if series.size == 0:
            continue
        epochs = np.arange(1, series.size + 1)
        kind = "loss" if "loss" in metric else "acc"
        ax = loss_ax if kind == "loss" else acc_ax
        ax.plot(epochs, series, marker="o", markersize=3, label=metric)
        plotted[kind] = True
    if test_accuracy is not None:
        acc_ax.axhline(test_accuracy, color="tab:green", linestyle="--", label=f"test {test_accuracy:.3f}")
        plotted["acc"] = True
    if ci95 is not None:
        lo, hi = float(ci95[0]), float(ci95[1])
        acc_ax.axhspan(lo, hi, color="tab:green", alpha=0.15, label=f"95% CI [{lo:.3f}, {hi:.3f}]")
    if threshold is not None:
        acc_ax.axhline(threshold, color="tab:red", linestyle=":", label=f"threshold {threshold:.3f}")
        plotted["acc"] = True
    for ax, kind, title in ((acc_ax, "acc", "accuracy"), (loss_ax, "loss", "loss")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if plotted[kind]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, f"no {title} recorded", ha="center", va="center", transform=ax.transAxes)
    figure.tight_layout()
    return _png(figure)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
