"""The two models of the lab: a dense baseline and a convolutional network.

Both models read prepared images of shape (28, 28, 1) and end in a 10-way softmax,
one probability per clothing class. They are Keras ``Sequential`` models that start
with ``keras.Input`` so that they are built (and can be summarised) straight away.
"""

import keras
from keras import layers


def build_dnn() -> keras.Model:
    """The dense baseline: Flatten -> Dense(128, relu) -> Dense(10, softmax).

    ``Flatten`` turns each (28, 28, 1) image into a vector of 784 pixels, so the
    dense layers see every pixel but know nothing about which pixels are neighbours.
    The model has 784*128 + 128 + 128*10 + 10 = 101,770 trainable parameters.
    """
    raise NotImplementedError(
        "a keras.Sequential starting with keras.Input((28, 28, 1)), "
        "then Flatten, Dense(128, relu) and Dense(10, softmax)"
    )


def build_cnn(filters: tuple[int, ...] = (32, 32)) -> keras.Model:
    """A convolutional network: one Conv2D + MaxPooling2D pair per entry of ``filters``.

    Each pair is ``Conv2D(f, (3, 3), activation="relu")`` followed by
    ``MaxPooling2D((2, 2))``; after the last pair come Flatten -> Dense(128, relu)
    -> Dense(10, softmax), exactly as in the dense baseline.

    A 3x3 convolution without padding shrinks each side by 2 and a 2x2 pooling halves
    it (rounding down), so with the default ``(32, 32)`` the feature maps go
    28 -> 26 -> 13 -> 11 -> 5 and Flatten sees 5*5*32 = 800 values.

    Args:
        filters: the number of filters of each convolution, first to last.
    """
    raise NotImplementedError(
        "start from keras.Sequential([keras.Input((28, 28, 1))]); for each f, model.add "
        'a Conv2D(f, (3, 3), activation="relu") and a MaxPooling2D((2, 2)); then add the dense head'
    )


def compile_model(model: keras.Model) -> keras.Model:
    """Compile ``model`` for 10-class classification with integer labels.

    Uses the Adam optimizer, the ``sparse_categorical_crossentropy`` loss (the labels
    are the integers 0..9, not one-hot vectors) and reports ``accuracy``.

    Returns:
        The same model object, so that calls can be chained:
        ``compile_model(build_cnn())``.
    """
    raise NotImplementedError("call model.compile(optimizer=..., loss=..., metrics=[...]) and return the model")
