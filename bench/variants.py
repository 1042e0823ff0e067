"""A class of same-architecture submissions, made from the reference solution by small text rewrites.

Each variant renames local variables, names its layers and models, drops the solution markers and
adds comments of its own, the way real students' copies of the same design differ. None of that
changes what the judge trains (names are not part of the training-cache key), so a batch of them
should train each model once.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

_MARKER = re.compile(r"^\s*# (BEGIN SOLUTION|END SOLUTION|hint:).*\n", re.MULTILINE)

# module -> literal rewrites; "{i}" is the variant's number. Every `old` must occur in the solution,
# so a change to the solution makes this fail loudly instead of producing unchanged copies.
_REWRITES: dict[str, list[tuple[str, str]]] = {
    "models.py": [
        ('layers.Dense(128, activation="relu"),', 'layers.Dense(128, activation="relu", name="hidden_{i}"),'),
        ('layers.Dense(10, activation="softmax"),\n        ]\n    )',
         'layers.Dense(10, activation="softmax", name="probabilities_{i}"),\n'
         '        ],\n        name="dense_net_{i}",\n    )'),
        ("model = keras.Sequential([keras.Input(shape=(28, 28, 1))])",
         'net_{i} = keras.Sequential([keras.Input(shape=(28, 28, 1))], name="conv_net_{i}")'),
        ("for count in filters:", "for width_{i} in filters:  # one conv + pool pair per entry"),
        ('model.add(layers.Conv2D(count, (3, 3), activation="relu"))',
         'net_{i}.add(layers.Conv2D(width_{i}, (3, 3), activation="relu", name=f"conv_{len(net_{i}.layers)}_{i}"))'),
        ("model.add(layers.MaxPooling2D((2, 2)))",
         'net_{i}.add(layers.MaxPooling2D((2, 2), name=f"pool_{len(net_{i}.layers)}_{i}"))'),
        ("model.add(layers.Flatten())", 'net_{i}.add(layers.Flatten(name="flat_{i}"))'),
        ('model.add(layers.Dense(128, activation="relu"))',
         'net_{i}.add(layers.Dense(128, activation="relu", name="head_{i}"))'),
        ('model.add(layers.Dense(10, activation="softmax"))',
         'net_{i}.add(layers.Dense(10, activation="softmax", name="out_{i}"))'),
        ("    return model\n    # END SOLUTION\n\n\ndef compile_model",
         "    return net_{i}\n    # END SOLUTION\n\n\ndef compile_model"),
    ],
    "training.py": [
        ("train_images, train_labels = train", "x_fit_{i}, y_fit_{i} = train"),
        ("test_images, test_labels = test", "x_eval_{i}, y_eval_{i} = test"),
        ("history = model.fit(train_images, train_labels,", "fitted_{i} = model.fit(x_fit_{i}, y_fit_{i},"),
        ("scores = model.evaluate(test_images, test_labels,", "measured_{i} = model.evaluate(x_eval_{i}, y_eval_{i},"),
        ("per_epoch", "curves_{i}"),
        ("history.history.items()", "fitted_{i}.history.items()"),
        ('float(scores["loss"])', 'float(measured_{i}["loss"])'),
        ('float(scores["accuracy"])', 'float(measured_{i}["accuracy"])'),
    ],
    "data.py": [("scaled", "pixels_{i}")],
    "experiments.py": [
        ("rows = []", "table_{i} = []  # one row per filter count"),
        ("rows.append(", "table_{i}.append("),
        ("return rows", "return table_{i}"),
        ("for count in filter_options:", "for f_{i} in filter_options:"),
        ("build_cnn((count, count))", "build_cnn((f_{i}, f_{i}))"),
        ('"filters": count,', '"filters": f_{i},'),
    ],
}


def make_variant(solution: Path, target: Path, number: int) -> Path:
    """Write variant `number` of the solution folder into `target`."""
    shutil.copytree(solution, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for module in sorted(target.glob("*.py")):
        text = module.read_text(encoding="utf-8")
        for old, new in _REWRITES.get(module.name, []):
            if old not in text:
                raise ValueError(f"{module.name}: the solution no longer contains {old!r}; update bench/variants.py")
            text = text.replace(old, new.replace("{i}", str(number)))
        text = _MARKER.sub("", text)
        header = f"# Lab: convolutions. Submitted by student {number:02d}; {module.stem} exercise.\n"
        module.write_text(header + text, encoding="utf-8")
    return target


def make_class(solution: Path, folder: Path, count: int = 10) -> list[Path]:
    """`count` variants under `folder`, named student-01, student-02, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    return [make_variant(solution, folder / f"student-{n:02d}", n) for n in range(1, count + 1)]


if __name__ == "__main__":  # `python bench/variants.py SOLUTION OUT [COUNT]`: look at the variants
    import sys

    made = make_class(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 10)
    print("\n".join(map(str, made)))
