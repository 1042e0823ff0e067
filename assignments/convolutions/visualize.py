"""Look inside a trained CNN: the activation maps of its layers.

Every Conv2D and MaxPooling2D layer outputs a stack of feature maps, one per filter.
Showing one filter's map for a few images of the same class (e.g. three ankle boots)
reveals which shapes that filter responds to, and how pooling condenses them.
"""

from pathlib import Path

import keras
import numpy as np
from matplotlib.figure import Figure


def layer_activations(model: keras.Model, images: np.ndarray) -> list[np.ndarray]:
    """The outputs of every Conv2D and MaxPooling2D layer of ``model`` for ``images``.

    Builds a second model that shares the layers of ``model`` (its inputs are
    ``model.inputs``, its outputs the conv/pool layers' outputs) and runs it on the images.

    Args:
        model: a built Keras model (e.g. from ``build_cnn``), trained or not.
        images: prepared images, shape (n, 28, 28, 1).

    Returns:
        One array (n, height, width, channels) per Conv2D/MaxPooling2D layer, in layer order.
    """
    raise NotImplementedError(
        "pick the Conv2D and MaxPooling2D layers of model, build "
        "keras.Model(inputs=model.inputs, outputs=[their outputs]) and predict"
    )


def plot_activations(model: keras.Model, images: np.ndarray, path: str | Path, channel: int = 1) -> Path:
    """Save a PNG grid of activation maps: one row per image, one column per conv/pool layer.

    Each cell shows the feature map of filter number ``channel`` of that layer for that image.

    Args:
        model: as for ``layer_activations``.
        images: prepared images, shape (n, 28, 28, 1).
        path: where to write the PNG.
        channel: which filter's map to show (must exist in every conv/pool layer).

    Returns:
        ``path`` as a ``pathlib.Path``.
    """
    raise NotImplementedError(
        "use layer_activations, then a matplotlib Figure with "
        "subplots(len(images), number of layers); imshow maps[row, :, :, channel] "
        "in each cell and save with figure.savefig"
    )
