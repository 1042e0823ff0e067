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
    # BEGIN SOLUTION hint: pick the Conv2D and MaxPooling2D layers of model, build
    # hint: keras.Model(inputs=model.inputs, outputs=[their outputs]) and predict
    images = np.asarray(images)
    if not model.built:
        model.build((None, *images.shape[1:]))
    feature_layers = [
        layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D))
    ]
    extractor = keras.Model(inputs=model.inputs, outputs=[layer.output for layer in feature_layers])
    outputs = extractor.predict(images, verbose=0)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(output) for output in outputs]
    # END SOLUTION


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
    # BEGIN SOLUTION hint: use layer_activations, then a matplotlib Figure with
    # hint: subplots(len(images), number of layers); imshow maps[row, :, :, channel]
    # hint: in each cell and save with figure.savefig
    activations = layer_activations(model, images)
    n_rows, n_cols = len(activations[0]), len(activations)
    # A Figure made directly (not through pyplot) needs no GUI backend and no global state.
    figure = Figure(figsize=(2 * n_cols, 2 * n_rows))
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for col, maps in enumerate(activations):
        for row in range(n_rows):
            axes[row, col].imshow(maps[row, :, :, channel], cmap="inferno")
            axes[row, col].set_axis_off()
        axes[0, col].set_title(f"layer {col + 1}", fontsize=9)
    figure.suptitle(f"activations of filter {channel}")
    path = Path(path)
    figure.savefig(path, format="png")
    return path
    # END SOLUTION
