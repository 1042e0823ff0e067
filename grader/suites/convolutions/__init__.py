"""The convolutions lab ("Improving Computer Vision Accuracy using Convolutions"), declared once.

NAMES: what each exercise module must define (the stubs' and the notebook's exercise cells' public names);
tests/test_live_check.py holds it to the reference solutions. The suites are this package's test_*.py.
"""

from grader.assignment import Assignment
from grader.suites.convolutions.notebook import CELLS

NAMES: dict[str, tuple[str, ...]] = {
    "data": ("prepare_images",),
    "models": ("build_dnn", "build_cnn", "compile_model"),
    "callbacks": ("StopOnThreshold",),
    "training": ("train_and_evaluate",),
    "convolution": ("EDGE_KERNEL", "convolve2d", "max_pool2d"),
    "visualize": ("layer_activations", "plot_activations"),
    "experiments": ("filter_experiment",),
}

INPUT_SHAPE = (28, 28, 1)  # Fashion-MNIST's images, with their channel axis

ASSIGNMENT = Assignment(
    name="convolutions",
    title="Improving Computer Vision Accuracy using Convolutions",
    modules=("data", "models", "callbacks", "training", "convolution", "visualize", "experiments"),
    names=NAMES,
    input_shape=INPUT_SHAPE,
    dataset="fashion_mnist",
    drivers=True,
    notebook=CELLS,
)
