"""grader.datasets.fashion_mnist: finding, verifying and parsing Fashion-MNIST offline.

Most tests use small *synthetic* IDX files (made by ``_write_idx``) or links to the real
files in a tmp folder; ``test_real_data`` reads the installed dataset itself.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.datasets import fashion_mnist as data

INSTALL_COMMAND = "sudo apt-get install dataset-fashion-mnist"


def _write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> Path:
    """Write a synthetic gzip-compressed IDX file holding ``array`` (uint8)."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))
    return path


def _fill_synthetic(directory: Path, names: tuple[str, ...] = data.FILES) -> Path:
    """A folder with synthetic stand-ins for the given files (right names, tiny content)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        _write_idx(directory / name, np.zeros((2,), dtype=np.uint8))
    return directory


@pytest.fixture(scope="module")
def real_dir() -> Path:
    """The folder of the installed, genuine Fashion-MNIST files."""
    return data.find_dataset_dir()


def _link_real(real_dir: Path, target: Path, names: tuple[str, ...]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        (target / name).symlink_to(real_dir / name)
    return target


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Point every search location into tmp_path; none exists yet."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    return {"system": tmp_path / "system", "keras": tmp_path / "keras-home" / "datasets" / "fashion-mnist"}


@pytest.mark.parametrize("shape", [(3,), (2, 4, 5), (1, 28, 28), (0, 2)])
def test_read_idx_parses_synthetic_files(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    parsed = data.read_idx(_write_idx(tmp_path / "synthetic.gz", array))
    assert parsed.dtype == np.uint8
    assert parsed.shape == shape
    np.testing.assert_array_equal(parsed, array)


def _raw_file(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload, mtime=0))
    return path


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (bytes([0, 0, 0x0D, 1]) + (2).to_bytes(4, "big") + bytes(8), "bad IDX magic number"),  # float type
        (bytes([1, 0, 0x08, 1]) + (2).to_bytes(4, "big") + bytes(2), "bad IDX magic number"),
        (bytes([0, 0, 0x08, 0]), "bad IDX magic number"),  # zero dimensions
        (b"", "bad IDX magic number"),
        (bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big"), "header truncated"),
        (bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(5), "6 bytes"),
        (bytes([0, 0, 0x08, 1]) + (2).to_bytes(4, "big") + bytes(3), "holds 3 bytes"),
    ],
    ids=["float-type", "bad-prefix", "no-dims", "empty", "short-header", "short-data", "long-data"],
)
def test_read_idx_rejects_malformed_synthetic_files(tmp_path, payload, message):
    with pytest.raises(data.DatasetError, match=message) as raised:
        data.read_idx(_raw_file(tmp_path / "broken-idx1-ubyte.gz", payload))
    assert "broken-idx1-ubyte.gz" in str(raised.value)


def test_read_idx_rejects_a_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "plain-idx1-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(data.DatasetError, match="not a readable gzip file"):
        data.read_idx(path)


@pytest.mark.parametrize(
    ("filled", "expected"),
    [(["system"], "system"), (["keras"], "keras"), (["system", "keras"], "system")],
)
def test_search_order(places, filled, expected):
    for name in filled:
        _fill_synthetic(places[name])
    assert data.find_dataset_dir() == places[expected]


def test_keras_cache_defaults_to_home(places, monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.keras_cache_dir() == tmp_path / "home" / ".keras" / "datasets" / "fashion-mnist"


def test_a_folder_needs_all_four_files(places):
    _fill_synthetic(places["system"], data.FILES[1:])
    _fill_synthetic(places["keras"])
    assert data.find_dataset_dir() == places["keras"]


def test_environment_variable_is_the_only_place_looked_at(places, monkeypatch, tmp_path):
    _fill_synthetic(places["system"])
    override = _fill_synthetic(tmp_path / "mine")
    monkeypatch.setenv(data.ENV_VAR, str(override))
    assert data.find_dataset_dir() == override
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "elsewhere"))
    with pytest.raises(data.DatasetError) as raised:
        data.find_dataset_dir()
    message = str(raised.value)
    assert f"{tmp_path / 'elsewhere'}: no such folder" in message
    assert str(places["system"]) not in message


def test_not_found_lists_every_place_tried(places):
    _fill_synthetic(places["keras"], data.FILES[:3])
    with pytest.raises(data.DatasetError) as raised:
        data.find_dataset_dir()
    message = str(raised.value)
    assert f"{places['system']}: no such folder" in message
    assert f"{places['keras']}: missing {data.FILES[3]}" in message
    assert INSTALL_COMMAND in message
    assert data.ENV_VAR in message


@pytest.mark.parametrize("absent", data.FILES)
def test_missing_file_is_named(real_dir, tmp_path, absent):
    folder = _link_real(real_dir, tmp_path / "partial", tuple(n for n in data.FILES if n != absent))
    with pytest.raises(data.DatasetError) as raised:
        data.load_fashion_mnist(folder)
    message = str(raised.value)
    assert f"lacks {absent}" in message
    assert INSTALL_COMMAND in message


@pytest.mark.parametrize("damaged", ["t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"])
def test_corrupt_file_is_named(real_dir, tmp_path, damaged):
    folder = _link_real(real_dir, tmp_path / "damaged", tuple(n for n in data.FILES if n != damaged))
    content = bytearray((real_dir / damaged).read_bytes())
    content[len(content) // 2] ^= 0xFF
    (folder / damaged).write_bytes(bytes(content))
    with pytest.raises(data.DatasetError) as raised:
        data.load_fashion_mnist(folder)
    message = str(raised.value)
    assert f"{damaged} has SHA-256 {hashlib.sha256(content).hexdigest()}" in message
    assert f"expected {data.SHA256[damaged]}" in message
    assert INSTALL_COMMAND in message
    assert [name for name in data.FILES if name in message] == [damaged]


def test_synthetic_files_fail_verification(places):
    _fill_synthetic(places["system"])
    with pytest.raises(data.DatasetError, match="corrupt file") as raised:
        data.load_fashion_mnist()
    assert all(name in str(raised.value) for name in data.FILES)


def test_real_data(real_dir):
    fashion = data.load_fashion_mnist()
    assert fashion.directory == real_dir.resolve()
    shapes = {"train_images": (60000, 28, 28), "train_labels": (60000,), "test_images": (10000, 28, 28)}
    for name, shape in {**shapes, "test_labels": (10000,)}.items():
        array = getattr(fashion, name)
        assert array.shape == shape, name
        assert array.dtype == np.uint8, name
        assert not array.flags.writeable, name
    assert fashion.test_labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert fashion.test_labels[[0, 23, 28]].tolist() == [9, 9, 9]
    assert np.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert int(fashion.train_images.max()) == 255
    assert fashion.checksum == data.dataset_checksum(data.SHA256)
    assert data.load_fashion_mnist() is fashion  # memoised


def test_environment_variable_loads_the_same_data(real_dir, tmp_path, monkeypatch):
    folder = _link_real(real_dir, tmp_path / "linked", data.FILES)
    monkeypatch.setenv(data.ENV_VAR, str(folder))
    fashion = data.load_fashion_mnist()
    assert fashion.directory == folder.resolve()
    assert fashion.checksum == data.load_fashion_mnist(real_dir).checksum
    np.testing.assert_array_equal(fashion.test_images[:5], data.load_fashion_mnist(real_dir).test_images[:5])
    assert data.load_fashion_mnist(str(folder)) is fashion


def test_a_copied_folder_loads(real_dir, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in data.FILES:
        shutil.copyfile(real_dir / name, folder / name)
    assert data.load_fashion_mnist(folder).test_labels[:3].tolist() == [9, 2, 1]


def test_dataset_checksum_depends_on_every_file():
    base = data.dataset_checksum(data.SHA256)
    for name in data.FILES:
        assert data.dataset_checksum({**data.SHA256, name: "0" * 64}) != base


def test_prepare_scales_and_adds_a_channel():
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    prepared = data.prepare(images)
    assert prepared.dtype == np.float32
    assert prepared.shape == (2, 28, 28, 1)
    # float64 division rounded once to float32 is the correctly rounded float32 quotient
    np.testing.assert_array_equal(prepared[..., 0], (images / 255.0).astype(np.float32))
    assert prepared.min() == 0.0
    assert prepared.max() == 1.0
