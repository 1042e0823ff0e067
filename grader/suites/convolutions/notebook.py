"""The lab's notebook: its narrative around one tagged code cell per exercise (`grader.authoring.notebook`
puts the stub code into the exercise cells and a `grader.check(...)` cell under each)."""

from __future__ import annotations

from grader.assignment import Cell

_INTRO = """\
# Improving computer vision accuracy with convolutions

Fashion-MNIST holds 70,000 grayscale photos of clothing, 28x28 pixels each, in ten classes:
0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag,
9 ankle boot. 60,000 are for training and 10,000 for testing. You will first classify them
with a dense network that treats every pixel on its own, then add convolution and pooling
layers that look at small neighbourhoods of pixels, and measure what that changes.

**How your work is graded.** Each exercise is one code cell tagged `exercise:<module>` (JupyterLab
shows a cell's tags in the property inspector, the gear icon on the right). Replace each
`raise NotImplementedError(...)` (and `EDGE_KERNEL = None`) with your code, and keep the tags,
the function names and their arguments. The grader takes from every code cell only the imports,
the function and class definitions and ALL_CAPS constants such as `EDGE_KERNEL`; everything else
(loading data, training, plotting, printing, `!pip`) is not run while grading, so your notebook is
graded in seconds. The other cells load the data and run the experiments for you to learn from;
several train a network for a minute or more.

**Check as you go.** Under each exercise cell, a cell runs `grader.check("<module>")`: it grades that
exercise as this notebook's kernel has it now (run the exercise cell first; there is no need to save),
with the public checks, and shows what passed and, for each failure, what was expected, what your code
gave and a hint. The first check of a session starts the grader (about half a minute); the next ones
take seconds. `grader.check()` at the end checks every exercise, and `grader.check(training=True)`
also trains your two models for the accuracy gates (a few minutes)."""

_SETUP = """\
import keras
import matplotlib.pyplot as plt
import numpy as np

import grader  # grader.check("<module>") below each exercise checks your work
from grader.datasets.fashion_mnist import load_fashion_mnist

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

keras.utils.set_random_seed(0)  # the same initial weights and shuffling on every run
fashion = load_fashion_mnist()  # read from disk, never downloaded
print("training images:", fashion.train_images.shape, fashion.train_images.dtype)
print("test images:    ", fashion.test_images.shape)
print("first test labels:", [CLASS_NAMES[label] for label in fashion.test_labels[:5]])"""

_DATA = """\
## Exercise `data`: prepare the images

The pixels are integers from 0 to 255. Dividing them by 255 puts them between 0 and 1, the
range in which the network's initial weights and the optimizer's step sizes work well.
Convolution layers also expect a channel axis: a colour photo has three channels (red, green,
blue), a grayscale one has a single channel, so each image must become (28, 28, 1).
Write `prepare_images`."""

_PREPARE = """\
train = (prepare_images(fashion.train_images), fashion.train_labels)
test = (prepare_images(fashion.test_images), fashion.test_labels)
print(train[0].shape, train[0].dtype, float(train[0].min()), float(train[0].max()))"""

_MODELS = """\
## Exercise `models`: a dense baseline and a convolutional network

`build_dnn` flattens each image into 784 numbers and feeds them to a hidden layer of 128 ReLU
units and an output layer of 10 softmax units, one probability per class. Every hidden unit is
wired to every pixel, so a shoe shifted by two pixels is, for this network, a different input:
it has to learn each pattern at each position separately.

`build_cnn(filters)` puts one `Conv2D` + `MaxPooling2D` pair per entry of `filters` in front of
the same dense head. A `Conv2D(32, (3, 3))` layer learns 32 small 3x3 filters and slides each
of them over the whole image, so a pattern is found wherever it is, with only
3 * 3 * 32 + 32 = 320 weights. Each pooling layer then halves the feature maps by keeping the
strongest response of every 2x2 block. The `convolution` exercise below computes both by hand.

`compile_model` chooses the Adam optimizer, the sparse categorical cross-entropy loss (the
labels are the integers 0 to 9, not one-hot vectors) and the accuracy metric, and returns the
model so that calls can be chained."""

_TRAINING = """\
## Exercise `training`: train, then test

`train_and_evaluate` fits a compiled model on the training set for some epochs (an epoch is one
pass over all 60,000 images), then measures loss and accuracy on the 10,000 test images, which
the model has never seen. It also returns the per-epoch history, so that you can compare how the
model does on images it learned from with how it does on new ones."""

_DENSE_RUN_TEXT = """\
### The dense baseline

Five epochs take about half a minute on a laptop CPU. Expect a test accuracy near 0.87."""

_DENSE_RUN = """\
dense = compile_model(build_dnn())
dense.summary()
dense_result = train_and_evaluate(dense, train, test, epochs=5)
print(f"dense: training accuracy {dense_result['history']['accuracy'][-1]:.4f}, "
      f"test accuracy {dense_result['test_accuracy']:.4f}")"""

_CONVOLUTION = """\
## Exercise `convolution`: convolution and pooling by hand

A convolution slides a kernel, a small grid of weights, across the image. At each position it
multiplies every weight with the pixel beneath it and adds the products up: that sum is one
pixel of the output, the *feature map*. Keras does not flip the kernel (strictly speaking this
is a cross-correlation) and by default only uses positions where the whole kernel lies inside
the image (`padding="valid"`), so a 3x3 kernel turns 28x28 pixels into 26x26.

The edge kernel shows what one filter can do:

```
-1 -1 -1
-1  8 -1
-1 -1 -1
```

Its weights add up to 0, so on a patch of even brightness the output is 0, while where the
centre pixel differs from its neighbours, at an edge, the output is large. A trained `Conv2D`
layer learns dozens of kernels like this from the data instead of being given them.

Max pooling of size 2 cuts a feature map into 2x2 blocks and keeps the largest value of each. The
map shrinks to half its height and width (an odd last row or column is dropped), the strongest
responses survive, and a feature that moves by one pixel often pools to the same value.

Write `EDGE_KERNEL`, `convolve2d` and `max_pool2d` with NumPy alone."""

_CONVOLUTION_RUN = """\
boot = test[0][0, :, :, 0]  # test image 0 is an ankle boot
edges = convolve2d(boot, EDGE_KERNEL)
pooled = max_pool2d(edges, 2)
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for axis, picture, title in zip(axes, [boot, edges, pooled], ["image", "edges", "edges, pooled"]):
    axis.imshow(picture, cmap="gray")
    axis.set_title(f"{title} {picture.shape[0]}x{picture.shape[1]}")
    axis.axis("off")
plt.show()"""

_CNN_RUN_TEXT = """\
### The convolutional network

Now the default `build_cnn()`: two convolutions of 32 filters, each followed by 2x2 pooling.
In the summary, follow the feature maps shrink from 28x28 to 5x5. The convolutions themselves
are small (320 and 9,248 weights); most weights sit in the first dense layer, which now reads
5 * 5 * 32 = 800 features instead of 784 pixels. Every filter is applied at every position, so
training is slower than for the dense network: count on a minute or so. Expect a test accuracy
near 0.90, clearly above the dense baseline."""

_CNN_RUN = """\
cnn = compile_model(build_cnn((32, 32)))
cnn.summary()
cnn_result = train_and_evaluate(cnn, train, test, epochs=5)
print(f"CNN: training accuracy {cnn_result['history']['accuracy'][-1]:.4f}, "
      f"test accuracy {cnn_result['test_accuracy']:.4f}")"""

_EXPERIMENTS = """\
## Exercise `experiments`: how many filters?

`filter_experiment` trains `build_cnn((f, f))` for each filter count `f` and returns one row per
model with its parameter count, the seconds it took and its test accuracy. Run it with 16, 32
and 64 filters and watch three things:

- **Size.** The second convolution has (3 * 3 * f + 1) * f weights, so doubling `f` roughly
  quadruples it, and the dense layer after `Flatten` grows in proportion to `f`.
- **Time.** The work of the convolutions grows with the number of filters, and so does the time.
- **Accuracy.** More filters tend to help a little, with diminishing returns. Differences of a few
  tenths of a percent are within the noise between two training runs: do not read much into them."""

_EXPERIMENTS_RUN = """\
rows = filter_experiment((16, 32, 64), train, test, epochs=5)
print(f"{'filters':>7} {'params':>9} {'seconds':>8} {'test acc':>8}")
for row in rows:
    print(f"{row['filters']:>7} {row['params']:>9,} {row['seconds']:>8.1f} {row['test_accuracy']:>8.4f}")"""

_DEPTH = """\
### How many convolutions?

`build_cnn` takes one filter count per convolution, so trying other depths is a one-line change:
one convolution, `(32,)`, or three, `(32, 32, 64)`. Follow the side of the feature maps: each 3x3
convolution takes 2 pixels off and each pooling halves what is left, 28 → 26 → 13 → 11 → 5 → 3 → 1.
After three pairs the maps are 1x1, so a fourth 3x3 convolution has nowhere to slide and Keras
refuses to build the model.

What to watch for: with one convolution, `Flatten` passes on 13 * 13 * 32 = 5,408 values and the
first dense layer alone has almost 700,000 weights; such a model learns the training images
quickly without necessarily doing better on the test images. With three, the model is much
smaller, and each of its final features sums up a large part of the image."""

_DEPTH_RUN = """\
for filters in [(32,), (32, 32, 64)]:
    depth_model = compile_model(build_cnn(filters))
    depth_result = train_and_evaluate(depth_model, train, test, epochs=5)
    print(f"{filters}: {depth_model.count_params():,} parameters, "
          f"test accuracy {depth_result['test_accuracy']:.4f}")

try:
    build_cnn((32, 32, 64, 64))
except ValueError as error:
    print("A fourth convolution does not fit a 28x28 image:", error)"""

_OVERFITTING = """\
### Training longer: overfitting

With more epochs the accuracy on the training images keeps climbing, because the network can
memorise details of the images it sees again and again. The accuracy on new images levels off
after a few epochs and may even drop: the model has started to fit quirks of the training set that
do not carry over. This is *overfitting*, and the gap between the two curves, not the training
accuracy, tells how well a model generalises. Here the test set serves to draw the second curve; in
a real project you would hold out a separate validation set for that, and keep the test set for the
very end. Twenty epochs take several minutes."""

_OVERFITTING_RUN = """\
long_cnn = compile_model(build_cnn((32, 32)))
curves = long_cnn.fit(*train, epochs=20, validation_data=test, verbose=2).history
epochs = range(1, len(curves["accuracy"]) + 1)
fig, axis = plt.subplots(figsize=(6, 4))
axis.plot(epochs, curves["accuracy"], label="training images")
axis.plot(epochs, curves["val_accuracy"], label="test images")
axis.set_xlabel("epoch")
axis.set_ylabel("accuracy")
axis.legend()
plt.show()"""

_VISUALIZE = """\
## Exercise `visualize`: inside the network

What have the filters learned? `layer_activations` returns the output of every convolution and
pooling layer for some images, and `plot_activations` draws one filter's feature maps as a grid:
a row per image, a column per layer. Test images 0, 23 and 28 are all ankle boots. If a filter
responds to something that boots share, a sole or a heel, its maps look alike down each column.
The deeper layers are smaller and more abstract: they say less about *where* something is and
more about *whether* it is there. Try other values of `channel` to meet other filters."""

_VISUALIZE_RUN = """\
from IPython.display import Image

print([CLASS_NAMES[label] for label in test[1][[0, 23, 28]]])
activation_png = plot_activations(cnn, test[0][[0, 23, 28]], "activations.png", channel=1)
Image(filename=str(activation_png))"""

_CALLBACKS = """\
## Exercise `callbacks`: stop when it is good enough

Instead of guessing a number of epochs, let training stop itself. After every epoch Keras calls
each callback's `on_epoch_end(epoch, logs)`, where `logs` holds that epoch's metrics, such as
`{"loss": 0.29, "accuracy": 0.89}`. `StopOnThreshold(metric, threshold)` watches one of them. A
loss has to fall below the threshold; any other metric, such as accuracy, has to reach it. Then the
callback prints a message saying which value was reached at which epoch (counting from 1) and asks
Keras to stop after this epoch. If the metric is not in the logs, say `val_loss` when there is no
validation data, the callback does nothing."""

_CALLBACKS_RUN = """\
stopper = StopOnThreshold("accuracy", 0.90)
early = train_and_evaluate(compile_model(build_cnn()), train, test, epochs=20, callbacks=[stopper])
print(f"training stopped after {early['epochs_run']} of 20 epochs; "
      f"test accuracy {early['test_accuracy']:.4f}")"""

_OUTRO = """\
## Before you hand in

- Your functions rely only on imports, other functions and ALL_CAPS constants: variables such as
  `training_images` that a cell creates by running code do not exist while grading.
- No exercise cell trains a network or loads the data when it runs; it only defines things.
- A fresh *Restart & Run All* works from top to bottom.

The cell below checks every exercise at once, as your kernel has them now."""

CELLS: list[Cell] = [
    ("markdown", _INTRO),
    ("code", _SETUP),
    ("markdown", _DATA),
    ("exercise", "data"),
    ("code", _PREPARE),
    ("markdown", _MODELS),
    ("exercise", "models"),
    ("markdown", _TRAINING),
    ("exercise", "training"),
    ("markdown", _DENSE_RUN_TEXT),
    ("code", _DENSE_RUN),
    ("markdown", _CONVOLUTION),
    ("exercise", "convolution"),
    ("code", _CONVOLUTION_RUN),
    ("markdown", _CNN_RUN_TEXT),
    ("code", _CNN_RUN),
    ("markdown", _EXPERIMENTS),
    ("exercise", "experiments"),
    ("code", _EXPERIMENTS_RUN),
    ("markdown", _DEPTH),
    ("code", _DEPTH_RUN),
    ("markdown", _OVERFITTING),
    ("code", _OVERFITTING_RUN),
    ("markdown", _VISUALIZE),
    ("exercise", "visualize"),
    ("code", _VISUALIZE_RUN),
    ("markdown", _CALLBACKS),
    ("exercise", "callbacks"),
    ("code", _CALLBACKS_RUN),
    ("markdown", _OUTRO),
    ("check", ""),
]
