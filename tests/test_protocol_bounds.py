"""The judge decodes reply frames within a stated multiple of their size: dense or deep JSON is refused first."""

from __future__ import annotations

import json
import resource
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.sandbox import protocol
from grader.sandbox.protocol import HEADER, FrameReader, ProtocolError, decode_payload, decode_value, encode_value

# Pieces a hostile sandbox might repeat: the densest JSON per byte Python can be made to allocate for.
_UNITS = [b"[]", b"{}", b"[[]]", b'{"a":[]}', b'{"a":[],"b":{}}', b'"ab"', b"1000", b"1e5", b"0", b"-1.5e300",
          b'{"__t__":"tuple","v":[]}', b'{"__t__":"dict","items":[]}', b'{"__t__":"dict","items":[[1,[]]]}',
          b'{"__t__":"float","v":"nan"}', b'{"__t__":"bytes","b64":"AAAA"}', b'"\xf0\x9f\x98\x80a"',
          b'"\\ud83d\\ude00"', b"true", b"null", b'"\\u0000"', b"[", b"]", b"{", b"}", b",", b":", b'"', b" " * 29]


def _decode(frame: bytes) -> Any:
    return decode_value(decode_payload(frame))


def _peak(frame: bytes) -> tuple[int, str]:
    tracemalloc.start()
    try:
        try:
            _decode(frame)
            outcome = "decoded"
        except ProtocolError:
            outcome = "refused"
        return tracemalloc.get_traced_memory()[1], outcome
    finally:
        tracemalloc.stop()


def _bound(frame: bytes) -> int:
    return protocol.DECODE_FACTOR * len(frame) + protocol.DECODE_SLACK


@st.composite
def _frames(draw: st.DrawFn) -> bytes:
    unit = draw(st.sampled_from(_UNITS))
    count = draw(st.sampled_from([1, 10, 1000, 50_000, 200_000, 1_000_000]))
    separator = draw(st.sampled_from([b",", b"", b" " * 29 + b","]))
    shape = draw(st.sampled_from(["list", "object", "nested", "raw"]))
    body = separator.join([unit] * count)
    if shape == "list":
        return b"[" + body + b"]"
    if shape == "object":
        return b'{"k":[' + body + b"]}"
    if shape == "nested":
        depth = draw(st.integers(1, 3000))
        return b"[" * depth + body + b"]" * depth
    return body + draw(st.binary(max_size=64))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_frames())
def test_random_frames_allocate_within_a_small_multiple_of_their_size(frame: bytes) -> None:
    peak, _ = _peak(frame)  # any error but ProtocolError fails the test
    assert peak <= _bound(frame), f"{peak:,} bytes allocated for a frame of {len(frame):,}"


@pytest.mark.parametrize("unit", [b"[]", b"{}", b"[[]]", b'{"a":[],"b":{}}', b'{"__t__":"tuple","v":[]}'])
def test_the_densest_frames_just_under_the_limit_stay_within_the_bound(unit: bytes) -> None:
    """Padded to sit at the value limit (the worst case that is decoded, not refused)."""
    values = unit.count(b"[") + unit.count(b"{") + unit.count(b":") + 1
    count = 400_000 // values
    pad = b" " * (protocol.BYTES_PER_VALUE * values - len(unit) - 1)
    frame = b"[" + b",".join([unit + pad] * count) + b"]"
    peak, outcome = _peak(frame)
    assert outcome == "decoded"
    assert peak <= _bound(frame)


def test_the_red_team_frame_is_refused_without_parsing_it() -> None:
    """96 MiB of `[],`: +2.5 GB in the judge before; now refused after counting, at no cost beyond the frame."""
    frame = b"[" + b"[]," * (32 * 1024**2) + b"0]"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak, outcome = _peak(frame)
    assert outcome == "refused" and peak < 1024**2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB
    reader = FrameReader()
    with pytest.raises(ProtocolError, match="JSON values"):
        reader.feed(HEADER.pack(len(frame)) + frame)


def test_deep_nesting_is_refused_before_parsing() -> None:
    depth = protocol.MAX_DEPTH + 5
    with pytest.raises(ProtocolError, match="levels deep"):
        decode_payload(b"[" * depth + b"]" * depth)
    decode_payload(b"[" * (depth - 1) + b"]" * (depth - 1))
    brackets_in_a_string = json.dumps(["[" * 10_000]).encode()  # strings are skipped whole
    assert decode_payload(brackets_in_a_string) == ["[" * 10_000]


def test_large_frames_must_be_ascii() -> None:
    text = "\U0001f600" + "a" * (2 * 1024**2)
    with pytest.raises(ProtocolError, match="ASCII"):
        decode_payload(json.dumps(text, ensure_ascii=False).encode())
    frame = protocol.encode_frame(encode_value(text))  # what an honest encoder writes: ASCII, decoded as before
    assert frame[HEADER.size:].isascii()
    assert FrameReader().feed(frame) == [text]


def test_ordinary_replies_still_decode() -> None:
    history = {"loss": [0.5 - i / 1000 for i in range(500)], "accuracy": [i / 1000 for i in range(500)]}
    value = {"history": history, "images": np.zeros((2000, 28, 28, 1), np.float32), "labels": list(range(60_000)),
             "text": "é" * 1000, "nested": [[[1, 2], (3, 4)]] * 1000}
    frame = protocol.encode_frame(encode_value(value))
    (decoded,) = FrameReader().feed(frame)
    out = decode_value(decoded)
    assert out["history"] == history and out["labels"] == list(range(60_000)) and out["text"] == "é" * 1000
    assert out["images"].shape == (2000, 28, 28, 1) and out["nested"][0][1] == (3, 4)
