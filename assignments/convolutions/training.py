"""Train a compiled model and measure it on the test set.

Training data and test data are kept apart: the model learns from ``train`` only, and
``test`` tells how well it does on images it has never seen.
"""

import keras


def train_and_evaluate(
    model: keras.Model,
    train: tuple,
    test: tuple,
    epochs: int = 5,
    callbacks: tuple | list = (),
) -> dict:
    """Fit ``model`` on ``train`` for up to ``epochs`` epochs, then evaluate it on ``test``.

    Args:
        model: a compiled model (see ``compile_model``).
        train: ``(images, labels)`` to learn from.
        test: ``(images, labels)`` to measure on.
        epochs: the most epochs to train; a callback may stop training earlier.
        callbacks: Keras callbacks passed on to ``fit``.

    Returns:
        A dict with
        ``"history"``: the per-epoch metrics, ``{name: [value per epoch]}``
        (``fit(...).history``),
        ``"epochs_run"``: how many epochs actually ran,
        ``"test_loss"`` and ``"test_accuracy"``: floats from ``evaluate`` on ``test``.
    """
    raise NotImplementedError(
        "call model.fit on the training images and labels (with epochs and callbacks), "
        "then model.evaluate on the test set, and build the dict"
    )
