"""The lab as a notebook run top to bottom with nbclient: what a notebook grader pays per submission.

`python bench/lab_notebook.py SOLUTION_DIR NOTEBOOK` writes a notebook in the lab's style (the
solution modules as cells, sharing one namespace, with the experiment cells between them) and runs it
with kernel "python3", the way notebook graders execute every submission. It trains the lab's six
models, 5 epochs each: dense, CNN (32, 32), (16, 16), (64, 64), (32,) and (32, 32, 64).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ORDER = ("data", "models", "training", "convolution", "experiments", "visualize", "callbacks")
SIBLING_IMPORT = re.compile(rf"^from ({'|'.join(ORDER)}) import .*\n", re.MULTILINE)

SETUP = """\
import keras
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from grader.datasets.fashion_mnist import load_fashion_mnist

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
keras.utils.set_random_seed(0)
fashion = load_fashion_mnist()
print("training images:", fashion.train_images.shape)"""

# (after which module's cell, code) - the lab's own experiment cells, six trainings in all.
AFTER = {
    "data": """\
train = (prepare_images(fashion.train_images), fashion.train_labels)
test = (prepare_images(fashion.test_images), fashion.test_labels)
print(train[0].shape, train[0].dtype)""",
    "training": """\
dense = compile_model(build_dnn())
dense.summary()
dense_result = train_and_evaluate(dense, train, test, epochs=5)
print(f"dense: test accuracy {dense_result['test_accuracy']:.4f}")""",
    "convolution": """\
boot = test[0][0, :, :, 0]
edges = convolve2d(boot, EDGE_KERNEL)
pooled = max_pool2d(edges, 2)
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for axis, picture in zip(axes, [boot, edges, pooled]):
    axis.imshow(picture, cmap="gray")
plt.show()

cnn = compile_model(build_cnn((32, 32)))
cnn.summary()
cnn_result = train_and_evaluate(cnn, train, test, epochs=5)
print(f"CNN: test accuracy {cnn_result['test_accuracy']:.4f}")""",
    "experiments": """\
rows = filter_experiment((16, 64), train, test, epochs=5)
for row in rows:
    print(row["filters"], row["params"], f"{row['seconds']:.1f}", f"{row['test_accuracy']:.4f}")

for filters in [(32,), (32, 32, 64)]:
    depth_model = compile_model(build_cnn(filters))
    depth_result = train_and_evaluate(depth_model, train, test, epochs=5)
    print(filters, depth_model.count_params(), f"{depth_result['test_accuracy']:.4f}")""",
    "visualize": """\
activation_png = plot_activations(cnn, test[0][[0, 23, 28]], "activations.png", channel=1)
print(activation_png)""",
}


def build(solution: Path) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [nbformat.v4.new_markdown_cell("# Improving computer vision accuracy with convolutions"),
             nbformat.v4.new_code_cell(SETUP)]
    for module in ORDER:
        source = SIBLING_IMPORT.sub("", (solution / f"{module}.py").read_text(encoding="utf-8")).strip()
        cells.append(nbformat.v4.new_markdown_cell(f"## Exercise `{module}`"))
        cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": [f"exercise:{module}"]}))
        if module in AFTER:
            cells.append(nbformat.v4.new_code_cell(AFTER[module]))
    notebook.cells = cells
    return notebook


def _ensure_kernel() -> None:
    """Kernel "python3" must be findable; install it for this (temporary) HOME only when it is not."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user"], check=True)


def execute(notebook: nbformat.NotebookNode, folder: Path) -> float:
    from nbclient import NotebookClient

    _ensure_kernel()
    started = time.perf_counter()
    resources = {"metadata": {"path": str(folder)}}
    client = NotebookClient(notebook, timeout=None, kernel_name="python3", resources=resources)
    client.execute()
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    solution, target = Path(argv[0]), Path(argv[1])
    notebook = build(solution)
    nbformat.write(notebook, target)
    seconds = execute(notebook, target.parent)
    nbformat.write(notebook, target.with_name(target.stem + ".executed.ipynb"))
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                print(output.get("text", ""), end="")
    print(f"notebook executed in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
