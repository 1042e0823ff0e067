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
        raise NotImplementedError("call super().__init__() and keep metric and threshold as attributes")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Check the watched metric at the end of an epoch (``epoch`` counts from 0)."""
        raise NotImplementedError(
            "read the metric from logs (it may be missing) and compare it with the threshold "
            "(below it for a loss, at or above it otherwise); when reached, print the message "
            "and set self.model.stop_training = True"
        )
