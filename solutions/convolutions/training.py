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
    # BEGIN SOLUTION hint: call model.fit on the training images and labels (with epochs and callbacks),
    # hint: then model.evaluate on the test set, and build the dict
    train_images, train_labels = train
    test_images, test_labels = test
    history = model.fit(train_images, train_labels, epochs=epochs, callbacks=list(callbacks), verbose=0)
    scores = model.evaluate(test_images, test_labels, verbose=0, return_dict=True)
    per_epoch = {name: [float(v) for v in values] for name, values in history.history.items()}
    return {
        "history": per_epoch,
        "epochs_run": len(per_epoch["loss"]),
        "test_loss": float(scores["loss"]),
        "test_accuracy": float(scores["accuracy"]),
    }
    # END SOLUTION
