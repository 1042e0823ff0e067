"""A callback that stops training once a metric is good enough.

Keras calls a callback's ``on_epoch_end(epoch, logs)`` after every epoch; ``logs`` is a
dict of that epoch's metrics, e.g. ``{"loss": 0.31, "accuracy": 0.89}`` (and
``val_loss``/``val_accuracy`` when there is validation data). Setting
``self.model.stop_training = True`` ends ``fit`` after the current epoch.
"""

import keras


class StopOnThreshold(keras.callbacks.Callback):
    """Stop training when ``metric`` crosses ``threshold``.

    A metric whose name ends with "loss" (``loss``, ``val_loss``) should go down, so
    training stops when its value is strictly below the threshold; any other metric
    (``accuracy``, ``val_accuracy``) should go up, so training stops when its value is
    at or above the threshold. On stopping, print one message such as
    ``"\\nReached loss 0.0091 < 0.01 at epoch 7: stopping training."`` (epochs are
    counted from 1). A metric that is missing from the logs changes nothing.

    Args:
        metric: the name of the metric to watch, as it appears in the logs.
        threshold: the value to reach.
    """

    def __init__(self, metric: str = "loss", threshold: float = 0.01):
        # BEGIN SOLUTION hint: call super().__init__() and keep metric and threshold as attributes
        super().__init__()
        self.metric = metric
        self.threshold = threshold
        # END SOLUTION

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Check the watched metric at the end of an epoch (``epoch`` counts from 0)."""
        # BEGIN SOLUTION hint: read the metric from logs (it may be missing) and compare it with the threshold
        # hint: (below it for a loss, at or above it otherwise); when reached, print the message
        # hint: and set self.model.stop_training = True
        value = (logs or {}).get(self.metric)
        if value is None:
            return
        value = float(value)
        if self.metric.endswith("loss"):
            reached, relation = value < self.threshold, "<"
        else:
            reached, relation = value >= self.threshold, ">="
        if reached:
            print(
                f"\nReached {self.metric} {value:.4f} {relation} {self.threshold:g} "
                f"at epoch {epoch + 1}: stopping training."
            )
            self.model.stop_training = True
        # END SOLUTION
