"""Experiment with the number of convolution filters.

More filters let a layer detect more kinds of patterns, but they cost parameters and
training time. This experiment trains the same architecture with different filter
counts and records, for each, the size, the time and the test accuracy.
"""

import time

from models import build_cnn, compile_model
from training import train_and_evaluate


def filter_experiment(filter_options, train: tuple, test: tuple, epochs: int = 5) -> list[dict]:
    """Train ``build_cnn((f, f))`` for each ``f`` in ``filter_options`` and report on it.

    Args:
        filter_options: filter counts to try, e.g. ``(16, 32, 64)``.
        train: ``(images, labels)`` to learn from.
        test: ``(images, labels)`` to measure on.
        epochs: epochs of training for every model.

    Returns:
        One dict per filter count, in the given order, with the keys
        ``"filters"`` (the count f), ``"params"`` (the model's parameter count),
        ``"seconds"`` (the wall-clock time of training and evaluation) and
        ``"test_accuracy"``.
    """
    # BEGIN SOLUTION hint: for each f, compile a build_cnn((f, f)) model, time train_and_evaluate
    # hint: with time.perf_counter() and collect the four values in a dict
    rows = []
    for count in filter_options:
        model = compile_model(build_cnn((count, count)))
        start = time.perf_counter()
        result = train_and_evaluate(model, train, test, epochs=epochs)
        rows.append(
            {
                "filters": count,
                "params": model.count_params(),
                "seconds": time.perf_counter() - start,
                "test_accuracy": result["test_accuracy"],
            }
        )
    return rows
    # END SOLUTION
