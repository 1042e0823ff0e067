"""What crosses the sandbox boundary: length-prefixed JSON frames and the values inside them.

A frame is an 8-byte big-endian length followed by that many bytes of JSON, written as ASCII (other
characters escaped) and read as UTF-8. Frames travel on dedicated pipes, never on the sandbox's
stdout/stderr. Values are plain JSON where JSON can say it; everything else is a JSON object tagged
with the key ``"__t__"``:

===============  =====================================================================
tag              meaning
===============  =====================================================================
``tuple``        a tuple (JSON has only lists)
``dict``         a dict whose keys are not all strings, or that uses the key "__t__"
``float``        nan, inf or -inf (frames stay strict JSON)
``bytes``        bytes, base64
``ndarray``      a numpy array as ``.npy`` bytes (``allow_pickle=False``), base64
``model_spec``   a Keras model returned by student code, as data (:class:`ModelSpec`)
``model``        a model sent into the sandbox (:class:`ModelPayload`)
``opaque``       anything else a student returned (:class:`Opaque`)
===============  =====================================================================

Nothing is ever pickled or evaluated: decoding untrusted frames only builds the types above.
numpy is imported lazily so that this module costs nothing where arrays never appear.

Decoding is bounded by the frame's size, before JSON is parsed: a frame of n bytes may hold at most
FREE_VALUES + n / BYTES_PER_VALUE JSON values (counted, conservatively, from its commas, colons and
opening brackets) and nest at most MAX_DEPTH + 4 levels, so that a frame of `[],[],...` (3 bytes for a
64-byte Python list) is refused instead of parsed; a frame over MAX_NON_ASCII must be ASCII (one astral
character would make Python hold the whole text at 4 bytes a character). Large data travels as arrays
and bytes (one base64 string each). Decoding a frame of n bytes then allocates at most about
DECODE_FACTOR * n + DECODE_SLACK bytes (tests/test_protocol_bounds.py measures it on random frames).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_FRAME = 256 * 1024**2
HEADER = struct.Struct(">Q")
TAG = "__t__"
MAX_DEPTH = 64
REPR_LIMIT = 300
FREE_VALUES = 100_000  # any frame may hold this many JSON values (a history, a table of results)
BYTES_PER_VALUE = 32  # beyond them, one value per 32 bytes of frame
MAX_VALUES = 2_000_000
MAX_NON_ASCII = 1024**2  # frames are written as ASCII JSON; a larger one that is not is refused
DECODE_FACTOR, DECODE_SLACK = 12, 48 * 1024**2  # the stated bound on what decoding a frame allocates


class ProtocolError(Exception):
    """A frame or value that breaks the protocol (oversized, not JSON, unknown tag...)."""


class EncodeError(ProtocolError):
    """A value that cannot be encoded (and no opaque fallback was allowed)."""


@dataclass
class ModelSpec:
    """A Keras model returned by student code, as data; the judge rebuilds it itself."""

    json_config: str
    compile_config: dict[str, Any] | None
    class_name: str


@dataclass
class ModelPayload:
    """A model sent into the sandbox; the server rebuilds it (safe mode) and sets its weights."""

    json_config: str
    weights: list[Any]
    compile_config: dict[str, Any] | None


@dataclass
class Opaque:
    """A value the protocol cannot carry: the judge only learns its type and a short repr."""

    type_name: str
    repr: str


# ----------------------------------------------------------------------------------------- frames


def encode_frame(message: Any) -> bytes:
    """Header + JSON bytes of a message that is already plain JSON data (see :func:`encode_value`)."""
    try:
        data = json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise EncodeError(f"the message cannot be written as JSON: {exc}") from None
    if len(data) > MAX_FRAME:
        raise EncodeError(f"the message is {_mib(len(data))}, more than the {_mib(MAX_FRAME)} a frame may hold")
    return HEADER.pack(len(data)) + data


def decode_payload(data: bytes) -> Any:
    """Parse one frame's JSON strictly; anything malformed or too dense is a ProtocolError, never a crash."""
    _check_density(data)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"a frame is not valid JSON: {str(exc)[:200]}") from None


# A JSON string (escapes included) or a bracket: what nesting is counted over, strings skipped whole.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _check_density(data: bytes) -> None:
    """Refuse a frame whose JSON would take many times its size as Python objects, or nests too deep."""
    if len(data) > MAX_NON_ASCII and not data.isascii():  # one astral character makes the text 4 bytes a char
        raise ProtocolError(f"a frame of {_mib(len(data))} is not ASCII JSON (frames over "
                            f"{_mib(MAX_NON_ASCII)} must be)")
    values = data.count(b",") + data.count(b":") + data.count(b"[") + data.count(b"{") + 1
    allowed = min(MAX_VALUES, FREE_VALUES + len(data) // BYTES_PER_VALUE)
    if values > allowed:
        raise ProtocolError(
            f"a frame of {_mib(len(data))} holds up to {values:,} JSON values; at most {allowed:,} for its size "
            "(send large data as numpy arrays)"
        )
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH + 4:
        return
    depth = 0
    for match in _STRUCTURE.finditer(data):
        char = data[match.start()]
        if char in b"[{":
            depth += 1
            if depth > MAX_DEPTH + 4:
                raise ProtocolError(f"a frame nests values more than {MAX_DEPTH + 4} levels deep")
        elif char in b"]}":
            depth -= 1


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


class FrameReader:
    """Incremental frame parser: feed it bytes as they arrive, get whole messages back."""

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > self._limit:
                raise ProtocolError(
                    f"a frame of {_mib(length)} was refused (the limit is {_mib(self._limit)})"
                )
            if len(self._buffer) < HEADER.size + length:
                break
            payload = bytes(self._buffer[HEADER.size : HEADER.size + length])
            del self._buffer[: HEADER.size + length]
            messages.append(decode_payload(payload))
        return messages

    @property
    def pending(self) -> int:
        return len(self._buffer)


def read_frame(fd: int, limit: int = MAX_FRAME) -> Any | None:
    """Blocking read of one message from a file descriptor; None at a clean end of file."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise ProtocolError(f"a frame of {_mib(length)} was refused (the limit is {_mib(limit)})")
    payload = _read_exactly(fd, length)
    if payload is None:
        raise ProtocolError("the stream ended inside a frame")
    return decode_payload(payload)


def write_frame(fd: int, message: Any) -> None:
    """Blocking write of one message."""
    view = memoryview(encode_frame(message))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, min(size - len(chunks), 1 << 20))
        if not chunk:
            if chunks:
                raise ProtocolError("the stream ended inside a frame")
            return None
        chunks += chunk
    return bytes(chunks)


def _mib(size: int) -> str:
    return f"{size / 1024**2:.0f} MiB" if size >= 1024**2 else f"{size} bytes"


# ----------------------------------------------------------------------------------------- values

ModelEncoder = Callable[[Any], "ModelSpec | None"]


def encode_value(value: Any, *, opaque: bool = False, model_encoder: ModelEncoder | None = None) -> Any:
    """Turn a value into JSON data. With ``opaque=True`` (values from student code) anything the
    protocol cannot carry becomes an :class:`Opaque`; otherwise it raises :class:`EncodeError`."""
    return _Encoder(opaque, model_encoder).encode(value, 0)


class _Encoder:
    def __init__(self, opaque: bool, model_encoder: ModelEncoder | None) -> None:
        self.opaque = opaque
        self.model_encoder = model_encoder

    def encode(self, value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            return self.refuse(value, f"nesting deeper than {MAX_DEPTH} levels")
        if value is None or type(value) in (bool, str):
            return value
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int):
            return self.encode_int(value)
        if isinstance(value, float):
            return _encode_float(float(value))
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {TAG: "bytes", "b64": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, (list, tuple)):
            items = [self.encode(item, depth + 1) for item in value]
            return {TAG: "tuple", "v": items} if isinstance(value, tuple) else items
        if isinstance(value, dict):
            return self.encode_dict(value, depth)
        if isinstance(value, (ModelSpec, ModelPayload, Opaque)):
            return self.encode_dataclass(value, depth)
        return self.encode_foreign(value, depth)

    def encode_int(self, value: int) -> Any:
        try:
            str(value)  # very large ints exceed Python's int/str conversion limit
        except ValueError:
            return self.refuse(value, "an integer too large to send")
        return int(value)

    def encode_dict(self, value: dict[Any, Any], depth: int) -> Any:
        if all(type(key) is str for key in value) and TAG not in value:
            return {key: self.encode(item, depth + 1) for key, item in value.items()}
        return {
            TAG: "dict",
            "items": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()],
        }

    def encode_dataclass(self, value: Any, depth: int) -> Any:
        if isinstance(value, ModelSpec):
            return {
                TAG: "model_spec",
                "json_config": str(value.json_config),
                "compile_config": self.encode(value.compile_config, depth + 1),
                "class_name": str(value.class_name),
            }
        if isinstance(value, ModelPayload):
            return {
                TAG: "model",
                "json_config": str(value.json_config),
                "weights": [self.encode(_np().asarray(w), depth + 1) for w in value.weights],
                "compile_config": self.encode(value.compile_config, depth + 1),
            }
        return {TAG: "opaque", "type_name": str(value.type_name)[:REPR_LIMIT], "repr": str(value.repr)[:REPR_LIMIT]}

    def encode_foreign(self, value: Any, depth: int) -> Any:
        np = _np_if_loaded()
        if np is not None:
            if isinstance(value, np.ndarray):
                return self.encode_array(value)
            if isinstance(value, np.generic):
                return self.encode(value.item(), depth)
        if self.model_encoder is not None:
            spec = self.model_encoder(value)
            if spec is not None:
                return self.encode(spec, depth)
        tensor = _tensor_to_array(value)
        if tensor is not None:
            return self.encode_array(tensor)
        return self.refuse(value, f"values of type {type(value).__name__} cannot be sent")

    def encode_array(self, array: Any) -> Any:
        np = _np()
        array = np.asarray(array)
        if array.dtype.hasobject:
            return self.refuse(array, "arrays of Python objects (dtype=object) cannot be sent")
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return {TAG: "ndarray", "npy": base64.b64encode(buffer.getvalue()).decode("ascii")}

    def refuse(self, value: Any, reason: str) -> Any:
        if not self.opaque:
            raise EncodeError(reason)
        return {TAG: "opaque", "type_name": _type_name(value), "repr": safe_repr(value)}


def _encode_float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {TAG: "float", "v": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _tensor_to_array(value: Any) -> Any | None:
    """TensorFlow eager tensors and Keras variables come back as arrays (they hold plain numbers)."""
    module = type(value).__module__ or ""
    if not module.startswith(("tensorflow", "keras")):
        return None
    try:
        array = _np().asarray(value.numpy() if hasattr(value, "numpy") else value)
    except Exception:
        return None
    return None if array.dtype.hasobject else array


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", None) else f"{module}.{kind.__qualname__}"


def safe_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """A repr that cannot raise and is never long (student __repr__ methods run in the sandbox)."""
    try:
        text = repr(value)
    except BaseException as exc:  # a student's __repr__ may raise anything, SystemExit included
        text = f"<{_type_name(value)} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_value(data: Any, *, model_decoder: Callable[[ModelPayload], Any] | None = None) -> Any:
    """Rebuild a value from JSON data produced by :func:`encode_value`; never runs foreign code."""
    return _Decoder(model_decoder).decode(data, 0)


class _Decoder:
    def __init__(self, model_decoder: Callable[[ModelPayload], Any] | None) -> None:
        self.model_decoder = model_decoder

    def decode(self, data: Any, depth: int) -> Any:
        if depth > MAX_DEPTH + 4:
            raise ProtocolError("a value is nested too deeply")
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        if isinstance(data, list):
            return [self.decode(item, depth + 1) for item in data]
        if not isinstance(data, dict):
            raise ProtocolError(f"unexpected JSON value of type {type(data).__name__}")
        if TAG not in data:
            return {key: self.decode(item, depth + 1) for key, item in data.items()}
        return self.decode_tagged(data, depth)

    def decode_tagged(self, data: dict[str, Any], depth: int) -> Any:
        tag = data.get(TAG)
        try:
            if tag == "tuple":
                return tuple(self.decode(item, depth + 1) for item in _list(data["v"]))
            if tag == "dict":
                return {
                    _hashable(self.decode(k, depth + 1)): self.decode(v, depth + 1)
                    for k, v in (_pair(item) for item in _list(data["items"]))
                }
            if tag == "float":
                return float({"nan": "nan", "inf": "inf", "-inf": "-inf"}[data["v"]])
            if tag == "bytes":
                return base64.b64decode(_str(data["b64"]), validate=True)
            if tag == "ndarray":
                return _decode_array(_str(data["npy"]))
            if tag == "model_spec":
                return ModelSpec(
                    json_config=_str(data["json_config"]),
                    compile_config=_dict_or_none(self.decode(data["compile_config"], depth + 1)),
                    class_name=_str(data["class_name"]),
                )
            if tag == "model":
                return self.decode_payload(data, depth)
            if tag == "opaque":
                return Opaque(type_name=_str(data["type_name"])[:REPR_LIMIT], repr=_str(data["repr"])[:REPR_LIMIT])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"a {tag!r} value is malformed: {str(exc)[:200]}") from None
        raise ProtocolError(f"unknown value tag {str(tag)[:40]!r}")

    def decode_payload(self, data: dict[str, Any], depth: int) -> Any:
        weights = [self.decode(w, depth + 1) for w in _list(data["weights"])]
        if not all(isinstance(w, _np().ndarray) for w in weights):
            raise ValueError("model weights must be arrays")
        payload = ModelPayload(
            json_config=_str(data["json_config"]),
            weights=weights,
            compile_config=_dict_or_none(self.decode(data["compile_config"], depth + 1)),
        )
        return self.model_decoder(payload) if self.model_decoder is not None else payload


_NPY_MAGIC = b"\x93NUMPY"
# The header np.save writes: a dict literal with exactly these keys, padded with spaces and a newline.
_NPY_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[<>|=]?[A-Za-z]\d*(?:\[\w+\])?)', 'fortran_order': (?P<fortran>True|False), "
    r"'shape': \((?P<shape>(?:\d+, )*(?:\d+,?)?)\), \} *\n"
)


def _decode_array(text: str) -> Any:
    """An array from .npy bytes, read here rather than by np.load: np.load parses the header with
    ast.literal_eval, and CPython 3.11 before 3.11.8 may fail two threads that build ASTs at once
    (gh-106905, "AST constructor recursion depth mismatch"); the judge decodes replies of two sandboxes
    on two threads (grader.judge.prefetch). Only what np.save writes for a plain dtype is accepted."""
    np = _np()
    raw = base64.b64decode(text, validate=True)
    if not raw.startswith(_NPY_MAGIC) or len(raw) < 10 or raw[6] not in (1, 2, 3):
        raise ValueError("not a valid .npy array: no .npy header")
    start = 10 if raw[6] == 1 else 12  # version 1 counts its header in two bytes, later ones in four
    size = int.from_bytes(raw[8:start], "little")
    try:
        header = raw[start:start + size].decode("utf-8" if raw[6] == 3 else "latin1")
    except UnicodeDecodeError:
        raise ValueError("not a valid .npy array: its header is not text") from None
    match = _NPY_HEADER.fullmatch(header) if start + size <= len(raw) else None
    if match is None:
        raise ValueError("not a valid .npy array: an unexpected header")
    try:
        dtype = np.dtype(match["descr"])
    except TypeError:
        raise ValueError(f"not a valid .npy array: no dtype {match['descr']!r}") from None
    if dtype.hasobject:
        raise ValueError("not a plain numeric array")
    shape = tuple(int(side) for side in match["shape"].replace(",", " ").split())
    body = raw[start + size:]
    if len(body) != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"not a valid .npy array: {len(body)} bytes of data for shape {shape} of {dtype}")
    return np.ndarray(shape, dtype, buffer=bytearray(body), order="F" if match["fortran"] == "True" else "C")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _pair(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise TypeError("expected a [key, value] pair")
    return value[0], value[1]


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise TypeError("expected a dict or null")
    return value


def _hashable(value: Any) -> Any:
    hash(value)  # TypeError for lists/dicts used as keys
    return value


def _np() -> Any:
    import numpy

    return numpy


def _np_if_loaded() -> Any:
    import sys

    return sys.modules.get("numpy")
