"""Fashion-MNIST, offline: find the four original IDX files, verify them, parse them with NumPy.

Nothing here downloads anything. The files are looked for, in order, in

1. ``$FASHION_MNIST_DIR`` (when set, the only place looked at),
2. ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package ``dataset-fashion-mnist``),
3. the Keras cache ``$KERAS_HOME/datasets/fashion-mnist`` (``~/.keras/datasets/fashion-mnist``
   when ``KERAS_HOME`` is not set), where ``keras.datasets.fashion_mnist.load_data()`` keeps them.

A folder counts only when it holds all four files. Each file's SHA-256 must match the
published original, so every loaded copy is the same data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from grader.faults import GraderFault

ENV_VAR = "FASHION_MNIST_DIR"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = (
    "Install the data with `sudo apt-get install dataset-fashion-mnist`, "
    f"or set {ENV_VAR} to a folder holding the four original .gz files."
)

# file name -> SHA-256 of the original file (as published by Zalando Research).
SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
}
FILES = tuple(sorted(SHA256))

# field of FashionMNIST -> (file name, expected shape)
_LAYOUT: dict[str, tuple[str, tuple[int, ...]]] = {
    "train_images": ("train-images-idx3-ubyte.gz", (60000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte.gz", (60000,)),
    "test_images": ("t10k-images-idx3-ubyte.gz", (10000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", (10000,)),
}

_IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one Fashion-MNIST uses


class DatasetError(GraderFault):
    """The data cannot be found, or a file is missing, corrupt or malformed: a fault of the grader's machine."""

    fix = INSTALL_HINT


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to a bool; identity is enough
class FashionMNIST:
    """The four arrays of Fashion-MNIST (read-only) and where they came from."""

    train_images: np.ndarray = field(repr=False)  # (60000, 28, 28) uint8
    train_labels: np.ndarray = field(repr=False)  # (60000,) uint8
    test_images: np.ndarray = field(repr=False)  # (10000, 28, 28) uint8
    test_labels: np.ndarray = field(repr=False)  # (10000,) uint8
    directory: Path
    checksum: str  # see dataset_checksum(): identifies the data, not the folder

    @staticmethod
    def prepare(images: np.ndarray) -> np.ndarray:
        """The judge's own scaling of these images for a model (see prepare() below)."""
        return prepare(images)


def keras_cache_dir() -> Path:
    """Where Keras keeps its downloaded copy of Fashion-MNIST."""
    keras_home = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    return Path(keras_home) / "datasets" / "fashion-mnist"


def search_dirs() -> list[Path]:
    """The folders looked at, in order: only ``$FASHION_MNIST_DIR`` when it is set."""
    override = os.environ.get(ENV_VAR)
    if override:
        return [Path(override).expanduser()]
    return [SYSTEM_DIR, keras_cache_dir()]


def _missing_files(directory: Path) -> list[str]:
    return [name for name in FILES if not (directory / name).is_file()]


def find_dataset_dir() -> Path:
    """The first folder of ``search_dirs()`` that holds all four files.

    Raises:
        DatasetError: listing every folder tried and what it lacks.
    """
    tried = []
    for directory in search_dirs():
        missing = _missing_files(directory)
        if not missing:
            return directory
        if not directory.is_dir():
            tried.append(f"  {directory}: no such folder")
        else:
            tried.append(f"  {directory}: missing {', '.join(missing)}")
    source = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "any of the usual places"
    raise DatasetError(f"Fashion-MNIST was not found in {source}. Tried:\n" + "\n".join(tried) + f"\n{INSTALL_HINT}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_checksum(file_hashes: dict[str, str]) -> str:
    """SHA-256 (hex) of the four files' SHA-256 hex digests concatenated in file-name order."""
    joined = "".join(file_hashes[name] for name in sorted(file_hashes))
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Parse one gzip-compressed IDX file of unsigned bytes into a NumPy array.

    The IDX format: two zero bytes, a type code (0x08 = unsigned byte), the number of
    dimensions, then each dimension as a big-endian 32-bit integer, then the data.

    Raises:
        DatasetError: when the file is not valid gzip or not a well-formed IDX file.
    """
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise DatasetError(f"{path.name}: not a readable gzip file ({error}). {INSTALL_HINT}") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] == 0:
        raise DatasetError(f"{path.name}: bad IDX magic number {raw[:4].hex() or '(empty)'}. {INSTALL_HINT}")
    ndim = raw[3]
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise DatasetError(f"{path.name}: IDX header truncated. {INSTALL_HINT}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_size = int(np.prod(shape))
    if len(raw) - header_end != expected_size:
        raise DatasetError(
            f"{path.name}: IDX header says shape {shape} ({expected_size} bytes) "
            f"but the file holds {len(raw) - header_end} bytes of data. {INSTALL_HINT}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(shape)


def _verify(directory: Path) -> dict[str, str]:
    """Check that the four files are there and are the originals; return their hashes."""
    missing = _missing_files(directory)
    if missing:
        raise DatasetError(f"Fashion-MNIST in {directory} lacks {', '.join(missing)}. {INSTALL_HINT}")
    hashes = {name: _sha256(directory / name) for name in FILES}
    corrupt = [name for name in FILES if hashes[name] != SHA256[name]]
    if corrupt:
        details = "; ".join(f"{name} has SHA-256 {hashes[name]}, expected {SHA256[name]}" for name in corrupt)
        raise DatasetError(f"Fashion-MNIST in {directory}: corrupt file(s): {details}. {INSTALL_HINT}")
    return hashes


@cache
def _load_resolved(directory: Path) -> FashionMNIST:
    hashes = _verify(directory)
    arrays = {}
    for key, (name, shape) in _LAYOUT.items():
        array = read_idx(directory / name)
        if array.shape != shape:
            raise DatasetError(f"{name}: shape {array.shape}, expected {shape}. {INSTALL_HINT}")
        array.setflags(write=False)  # the memoised arrays are shared: nobody may change them
        arrays[key] = array
    return FashionMNIST(**arrays, directory=directory, checksum=dataset_checksum(hashes))


def load_fashion_mnist(directory: Path | str | None = None) -> FashionMNIST:
    """Load and verify Fashion-MNIST from ``directory`` or the first folder that has it.

    The result is memoised per resolved folder, so only the first call of a process pays
    for reading and hashing the ~30 MB of files. The arrays are read-only; copy before changing.

    Raises:
        DatasetError: the data is not found, or a file is missing, corrupt or malformed.
    """
    folder = find_dataset_dir() if directory is None else Path(directory).expanduser()
    return _load_resolved(folder.resolve())


def prepare(images: np.ndarray) -> np.ndarray:
    """The judge's own reference scaling: uint8 (n, 28, 28) -> float32 (n, 28, 28, 1) in [0, 1]."""
    images = np.asarray(images)
    return (images.astype(np.float32) / np.float32(255))[..., np.newaxis]


NAME = "fashion-mnist"  # the folder a platform package keeps the files in
load = load_fashion_mnist  # what grader.assignment.Assignment.load_dataset calls
