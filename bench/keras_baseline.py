"""Plain Keras, the floor a full grade is compared with: train the lab's two models once, nothing else.

`python bench/keras_baseline.py` builds, compiles, fits (5 epochs, batch 32, adam, all 60,000 images)
and evaluates the dense model and the CNN (32, 32), as a student's notebook would, without the grader.
The data is read with grader.datasets.fashion_mnist (never downloaded). Prints one line per model.
"""

from __future__ import annotations

import time

import keras
import numpy as np
from keras import layers

from grader.datasets.fashion_mnist import load_fashion_mnist, prepare


def dense_model() -> keras.Model:
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def cnn_model() -> keras.Model:
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def main() -> None:
    keras.utils.set_random_seed(0)
    fashion = load_fashion_mnist()
    train = (prepare(fashion.train_images), np.asarray(fashion.train_labels))
    test = (prepare(fashion.test_images), np.asarray(fashion.test_labels))
    for name, build in (("dense", dense_model), ("cnn", cnn_model)):
        started = time.perf_counter()
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(*train, epochs=5, batch_size=32, verbose=0)
        loss, accuracy = model.evaluate(*test, batch_size=32, verbose=0)
        print(f"{name}: test accuracy {accuracy:.4f}, {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
