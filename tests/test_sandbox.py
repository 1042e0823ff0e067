"""The sandbox, end to end, with real processes: values, failures, limits and isolation.

Most sandboxes here preload only numpy (they start in well under a second); one preloads TensorFlow
like the judge's. The student code is tests/fixtures/sandbox/student/; its drivers module is
tests/fixtures/sandbox/sandbox_drivers.py.
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.sandbox import (
    Limits,
    ModelPayload,
    ModelSpec,
    ModuleMissing,
    Opaque,
    Sandbox,
    SandboxCrashed,
    SandboxError,
    SandboxMemoryError,
    SandboxTimeout,
    StudentError,
    client,
    procs,
    protocol,
)
from grader.sandbox import process as sandbox_process
from grader.sandbox.process import choose_mode
from grader.sandbox.protocol import (
    MAX_FRAME,
    EncodeError,
    FrameReader,
    ProtocolError,
    decode_value,
    encode_frame,
    encode_value,
)
from grader.sandbox.rootfs import python_paths
from grader.sandbox.server import Server

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sandbox"
STUDENT = FIXTURES / "student"
FAST = ("numpy",)
MiB = 1024**2
SMALL = Limits(timeout=20, memory=512 * MiB)

ROOT = choose_mode() == "root"
needs_root = pytest.mark.skipif(not ROOT, reason="checks the root-mode isolation (run as root, as CI does)")


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(folder)}|{info.st_mode}|{info.st_mtime_ns}|{info.st_size}".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module", autouse=True)
def student_folder_unchanged() -> Iterator[None]:
    """Whatever the tests below make the student code do, its source folder stays as it was."""
    before = _digest(STUDENT)
    yield
    assert _digest(STUDENT) == before


@pytest.fixture(scope="module")
def drivers_on_path() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(FIXTURES))
        yield


@pytest.fixture(params=["spawned", "forked"])
def origin(request: pytest.FixtureRequest) -> Iterator[str]:
    """How make_sandbox's sandboxes start: "spawned" (a new process through unshare, as for one
    grading) or "forked" (from the zygote a batch worker keeps: client.keep_spare_sandbox)."""
    if request.param == "forked":
        if not ROOT:
            pytest.skip("checks the root-mode isolation (run as root, as CI does)")
        client.keep_spare_sandbox(True)
    yield request.param
    if request.param == "forked":
        client.keep_spare_sandbox(False)
        client.discard_spares()


@pytest.fixture
def make_sandbox(drivers_on_path: None, origin: str) -> Iterator[Callable[..., Sandbox]]:
    """Sandboxes on the student fixture; every test that uses it runs once per origin."""
    yield from _maker(origin)


@pytest.fixture
def make_spawned(drivers_on_path: None) -> Iterator[Callable[..., Sandbox]]:
    """Sandboxes on the student fixture, started without spares unless the test asks for them."""
    yield from _maker("spawned")


def _maker(origin: str) -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(limits: Limits = SMALL, **options: Any) -> Sandbox:
        if options.get("isolation") is None and not ROOT:
            pytest.skip("checks the root-mode isolation (run as root, as CI does)")
        options.setdefault("preload", FAST)
        options.setdefault("hide", [REPO, Path.home()])
        options.setdefault("drivers", "sandbox_drivers")
        if origin == "forked" and options.get("isolation") != "none":
            _start_zygote(options)
        sandbox = Sandbox(STUDENT, limits, **options)
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        uid = sandbox.info.get("uid")
        sandbox.close()
        if uid:
            assert _processes_of(uid) == [], "close() must leave no process of the sandbox behind"
        forkable = sandbox.seed == 0 and sandbox.preload == FAST and sandbox.isolation != "none"
        if origin == "forked" and sandbox.starts and forkable:
            assert sandbox.spares_used == sandbox.starts, "every start must have been forked"


def _start_zygote(options: dict[str, Any]) -> None:
    """A first sandbox with these options starts the zygote that the next ones fork from."""
    mode = options.get("isolation") or "root"
    if client.spare_state().zygote_mode != mode:
        with Sandbox(STUDENT, SMALL, **options) as first:
            first.start()
    assert client.spare_state().zygote_mode == mode


@pytest.fixture(scope="module")
def shared(drivers_on_path: None) -> Iterator[Sandbox]:
    """One sandbox for the tests that do not break it."""
    if not ROOT:
        pytest.skip("checks the root-mode isolation (run as root, as CI does)")
    with Sandbox(STUDENT, SMALL, hide=[REPO, Path.home()],
                 drivers="sandbox_drivers", preload=FAST) as sandbox:
        yield sandbox


def _processes_of(uid: int) -> list[int]:
    found = []
    for pid in procs.snapshot():
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                found.append(pid)
        except OSError:
            continue
    return found


# ------------------------------------------------------------------------------------ protocol


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (tuple is not list, float32 is not float64)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return (a.dtype == b.dtype and a.shape == b.shape
                and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
            | st.binary(max_size=12))
_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
_values = st.recursive(
    _scalars | _arrays,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=6), inner, max_size=4)
                   | st.dictionaries(st.integers(-5, 5) | st.tuples(st.integers()), inner, max_size=3)),
    max_leaves=10,
)


@given(_values)
def test_values_survive_the_protocol(value: Any) -> None:
    assert same(decode_value(FrameReader().feed(encode_frame(encode_value(value)))[0]), value)


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _tagged(raw: bytes) -> dict[str, str]:
    import base64

    return {"__t__": "ndarray", "npy": base64.b64encode(raw).decode()}


@given(hnp.arrays(dtype=hnp.scalar_dtypes() | hnp.byte_string_dtypes() | hnp.unicode_string_dtypes(),
                  shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)),
       st.sampled_from(["C", "F"]))
def test_arrays_decode_as_np_load_reads_them(array: np.ndarray, order: str) -> None:
    import io

    raw = _npy(np.asarray(array, order=order))  # type: ignore[call-overload]
    decoded = decode_value(_tagged(raw))
    loaded = np.load(io.BytesIO(raw), allow_pickle=False)
    assert type(decoded) is np.ndarray and decoded.dtype == loaded.dtype and decoded.shape == loaded.shape
    assert decoded.tobytes(order="A") == loaded.tobytes(order="A") and decoded.flags.writeable  # NaT != NaT
    assert decoded.flags.f_contiguous == loaded.flags.f_contiguous


def test_arrays_decode_without_building_an_ast() -> None:
    """The judge decodes replies on two threads (grader.judge.prefetch); CPython 3.11.7 may fail two threads that
    build ASTs at once, as np.load does for every header (ast.literal_eval)."""
    import ast

    built: list[str] = []
    original = ast.parse

    def spy(source: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(str(source))
        return original(source, *args, **kwargs)

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    ast.parse = spy  # type: ignore[assignment]
    try:
        decoded = decode_value(encode_value(array))
    finally:
        ast.parse = original
    assert same(decoded, array)
    assert built == []


def test_array_decoding_refuses_anything_np_save_would_not_write() -> None:
    raw = _npy(np.arange(6, dtype=np.int32).reshape(2, 3))
    structured = _npy(np.zeros(2, dtype=[("a", "<f4")]))
    header_end = raw.index(b"\n") + 1
    for bad in (raw[:-1], raw + b"\0", b"\x93NUMPX" + raw[6:], raw[:8] + b"\xff\xff" + raw[10:], structured,
                raw.replace(b"'shape': (2, 3)", b"'shape': (2, -3)"),
                raw.replace(b"'shape': (2, 3)", b"'shape':(2,3)  "),
                raw.replace(b"'<i4'", b"'|O8'"), raw[:header_end]):
        with pytest.raises(ProtocolError, match="ndarray"):
            decode_value(_tagged(bad))


def test_frames_are_strict_bounded_json() -> None:
    reader = FrameReader()
    with pytest.raises(ProtocolError, match="refused"):
        reader.feed((MAX_FRAME + 1).to_bytes(8, "big"))
    with pytest.raises(ProtocolError, match="JSON"):
        FrameReader().feed(len(b"NaN").to_bytes(8, "big") + b"NaN")
    with pytest.raises(ProtocolError, match="JSON"):
        FrameReader().feed(len(b"[[[").to_bytes(8, "big") + b"[[[")
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ProtocolError):
        FrameReader().feed(len(deep).to_bytes(8, "big") + deep)
    frame = encode_frame({"a": (1, 2)})
    halves = FrameReader()
    assert halves.feed(frame[:5]) == [] and halves.feed(frame[5:] + frame) == [{"a": [1, 2]}] * 2


def test_encoding_refuses_what_it_cannot_carry() -> None:
    objects = np.array([1, "a"], dtype=object)
    with pytest.raises(EncodeError, match="dtype=object"):
        encode_value(objects)
    with pytest.raises(EncodeError):
        encode_value({1, 2})
    opaque = decode_value(encode_value([objects, {1, 2}], opaque=True))
    assert [o.type_name for o in opaque] == ["numpy.ndarray", "set"]
    assert opaque[1].repr == "{1, 2}"
    assert same(decode_value(encode_value({"__t__": "tuple", "v": 1})), {"__t__": "tuple", "v": 1})


def test_decoding_never_unpickles_or_guesses() -> None:
    import base64
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    pickled = {"__t__": "ndarray", "npy": base64.b64encode(buffer.getvalue()).decode()}
    with pytest.raises(ProtocolError, match="ndarray"):
        decode_value(pickled)
    for bad in ({"__t__": "exec", "v": "print(1)"}, {"__t__": "tuple"}, {"__t__": "float", "v": "1e400"},
                {"__t__": "dict", "items": [[[1], 2]]}):
        with pytest.raises(ProtocolError):
            decode_value(bad)


def test_oversized_arguments_are_refused_before_sending(shared: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "MAX_FRAME", 1 * MiB)
    with pytest.raises(EncodeError, match="more than the 1 MiB a frame may hold"):
        shared.call("values", "echo", np.zeros(MiB // 8))  # base64 makes it larger than a frame
    assert shared.call("values", "echo", 5) == 5 and shared.starts == 1


def test_oversized_replies_become_an_error_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "MAX_FRAME", 1 * MiB)
    read, write = os.pipe()
    try:
        server = Server({}, -1, write)
        server.send({"id": 7, "ok": True, "value": "x" * MiB, "stdout": "", "what": "the value returned by f"})
        reply = protocol.read_frame(read)
    finally:
        os.close(read)
        os.close(write)
    assert reply["id"] == 7 and reply["ok"] is False and reply["error"]["kind"] == "too_large"
    assert reply["error"]["exc_message"].startswith("the value returned by f could not be sent back")


# -------------------------------------------------------------------------------- values


def test_every_value_type_round_trips_through_student_code(shared: Sandbox) -> None:
    value = {
        "none": None, "bool": True, "int": -(2**65), "float": 0.25, "nan": math.nan, "inf": -math.inf,
        "text": "Grüße 🙂", "bytes": b"\x00\xff", "list": [1, [2.5]], "tuple": (1, (2, "x")),
        "int_keys": {1: "a", (2, 3): "b"}, "tagged_key": {"__t__": "not a tag"},
        "array": np.arange(12, dtype=np.float32).reshape(3, 4), "bools": np.array([True, False]),
        "empty": np.zeros((0, 3), dtype=np.uint8), "scalar_array": np.array(3.5),
    }
    assert same(shared.call("values", "echo", value), value)
    described = shared.call("values", "describe", (np.zeros((2, 2), np.uint8), [1.0]))
    assert described == ["tuple", [["ndarray", "uint8", [2, 2], True], ["list", ["float"]]]]


@given(_values)
def test_any_encodable_value_round_trips_through_the_sandbox(shared: Sandbox, value: Any) -> None:
    assert same(shared.call("values", "echo", value), value)


def test_numpy_scalars_become_python_scalars(shared: Sandbox) -> None:
    assert same(shared.call("values", "numpy_scalars"), [1.5, 7, True, "s"])


def test_values_the_protocol_cannot_carry_come_back_opaque(shared: Sandbox) -> None:
    odd = shared.call("values", "odd_things")
    assert odd["set"] == Opaque("set", "{1, 2}")
    assert odd["object_array"].type_name == "numpy.ndarray"
    assert odd["function"].type_name == "function" and "echo" in odd["function"].repr
    bad = shared.call("values", "bad_repr")
    assert isinstance(bad, Opaque) and bad.type_name == "values.Shouty" and "raised SystemExit" in bad.repr


def test_attr_and_has(shared: Sandbox) -> None:
    kernel = shared.attr("values", "EDGE_KERNEL")
    assert kernel.shape == (3, 3) and kernel[1, 1] == 8 and kernel.sum() == 0
    assert shared.has("values", "EDGE_KERNEL") and not shared.has("values", "MISSING")
    assert not shared.has("no_such_module", "anything")
    with pytest.raises(StudentError) as raised:
        shared.call("values", "NOT_CALLABLE")
    assert raised.value.exc_type == "TypeError" and "not a function" in raised.value.message
    with pytest.raises(StudentError) as raised:
        shared.call("values", "missing_function")
    assert raised.value.exc_type == "AttributeError" and raised.value.phase == "call"


def test_missing_module(shared: Sandbox) -> None:
    with pytest.raises(ModuleMissing) as raised:
        shared.call("no_such_module", "f")
    assert raised.value.phase == "import" and "no no_such_module.py" in raised.value.message


def test_call_full_reports_output_and_time(shared: Sandbox) -> None:
    result = shared.call_full("values", "echo", 1)
    assert result.value == 1 and 0 <= result.seconds < 1
    shout = shared.call_full("behave", "shout", 1)
    assert shout.value == 1
    assert len(shout.stdout) < 17 * 1024 and shout.stdout.endswith("the end\n")
    assert "characters of output left out" in shout.stdout


def test_seeded_before_every_request(shared: Sandbox, make_sandbox: Callable[..., Sandbox]) -> None:
    first = shared.call("values", "random_numbers")
    assert shared.call("values", "random_numbers") == first
    assert make_sandbox(seed=1).call("values", "random_numbers") != first


def test_drivers_run_inside_with_lazy_student_imports(shared: Sandbox) -> None:
    assert shared.drive("doubled", [1, 2.5]) == [2, 5.0]
    assert shared.drive("load_twice", "values") == "values"
    assert "behave.py" in shared.drive("cwd_listing")
    with pytest.raises(StudentError) as raised:
        shared.drive("load_twice", "broken_import")
    assert raised.value.phase == "import" and raised.value.module == "broken_import"
    with pytest.raises(RuntimeError, match="no driver named"):
        shared.drive("_private")


def test_patched_drivers_are_restored_before_every_request(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    pristine = sandbox.drive("own_names")
    assert "planted" in sandbox.call("patcher", "patch")
    assert sandbox.drive("own_names") == pristine
    assert sandbox.drive("doubled", [1, 2]) == [2, 4]
    sandbox.call("patcher", "patch")
    assert "behave.py" in sandbox.drive("cwd_listing")
    sandbox.call("patcher", "patch")
    assert sandbox.drive("load_twice", "values") == "values"


# ------------------------------------------------------------------------------ failures


def test_student_exception_has_a_trimmed_traceback(shared: Sandbox) -> None:
    with pytest.raises(StudentError) as raised:
        shared.call("behave", "nested_failure")
    error = raised.value
    assert (error.exc_type, error.exc_message, error.phase) == ("ZeroDivisionError", "division by zero", "call")
    assert error.module == "behave" and error.function == "nested_failure"
    assert 'File "behave.py"' in error.traceback and 'File "helper.py", line 2, in divide' in error.traceback
    assert "grader" not in error.traceback and "/tmp/work" not in error.traceback
    assert error.message.startswith("nested_failure raised ZeroDivisionError: division by zero")
    with pytest.raises(StudentError) as raised:
        shared.call("behave", "failure_inside_library")  # numpy calls the student's lambda
    trimmed = raised.value.traceback
    assert raised.value.exc_type == "ValueError" and "site-packages" not in trimmed
    assert trimmed.count('File "behave.py"') == 2 and trimmed.rstrip().endswith("shape (5,)")


def test_import_error_is_remembered(shared: Sandbox) -> None:
    errors = []
    for _ in range(2):
        with pytest.raises(StudentError) as raised:
            shared.call("broken_import", "anything")
        errors.append(raised.value)
    assert [e.phase for e in errors] == ["import", "import"]
    assert errors[0].exc_message == errors[1].exc_message == "broken on purpose"
    assert 'File "broken_import.py", line 3' in errors[0].traceback
    assert errors[0].message.startswith("importing broken_import.py raised ValueError")
    with pytest.raises(StudentError):
        shared.attr("broken_import", "VALUE")
    assert shared.output_tail().count("importing broken_import") == 1


@needs_root
def test_syntax_error_at_import(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text("import numpy\n\ndef build_cnn(:\n    pass\n")
    with Sandbox(tmp_path, SMALL, preload=FAST) as sandbox, pytest.raises(StudentError) as raised:
        sandbox.call("models", "build_cnn")
    error = raised.value
    assert (error.exc_type, error.phase, error.module) == ("SyntaxError", "import", "models")
    assert error.traceback.startswith('  File "models.py", line 3\n    def build_cnn(:\n')
    assert error.message.startswith("importing models.py raised SyntaxError: ")


def test_system_exit_at_import(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    for _ in range(2):
        with pytest.raises(SandboxCrashed, match=r"exits_at_import.py exited during import \(SystemExit 3\)"):
            sandbox.call("exits_at_import", "f")
    assert sandbox.output_tail().count("importing exits_at_import") == 1
    assert sandbox.call("behave", "quick", 2) == 4
    with pytest.raises(SandboxCrashed, match=r"raise_system_exit exited \(SystemExit 5\)"):
        sandbox.call("behave", "raise_system_exit", 5)
    assert sandbox.starts == 1


def test_os_exit_at_import(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    with pytest.raises(SandboxCrashed, match=r"dies_at_import.py exited during import \(exit status 4\)"):
        sandbox.call("dies_at_import", "f")
    assert sandbox.call("behave", "quick", 3) == 6
    with pytest.raises(SandboxCrashed, match="not run again"):
        sandbox.has("dies_at_import", "f")
    assert sandbox.starts == 2


def test_os_exit_and_signals_in_a_call(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    with pytest.raises(SandboxCrashed, match="exited with status 7 while running exit_now"):
        sandbox.call("behave", "exit_now", 7)
    with pytest.raises(SandboxCrashed, match=r"signal 11 \(SIGSEGV\) while running segfault"):
        sandbox.call("behave", "segfault")
    with pytest.raises(SandboxCrashed, match="not run again"):
        sandbox.call("behave", "segfault")
    assert sandbox.call("behave", "quick", 1) == 2
    assert sandbox.starts == 3


def test_timeout_in_a_call_is_remembered(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match=r"^sleep_forever did not return within 1 s$") as raised:
        sandbox.call("behave", "sleep_forever", timeout=1)
    assert 1 <= time.monotonic() - started < 5 and raised.value.retried
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match="earlier, so it was not run again") as again:
        sandbox.call("behave", "sleep_forever", timeout=1)
    assert time.monotonic() - started < 0.5 and not again.value.retried
    assert sandbox.call("behave", "quick", 5) == 10


def test_timeout_at_import_poisons_the_module(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(Limits(timeout=1.5))
    with pytest.raises(SandboxTimeout, match=r"importing hangs_at_import.py did not finish within 1.5 s"):
        sandbox.call("hangs_at_import", "f")
    started = time.monotonic()
    for attempt in (lambda: sandbox.call("hangs_at_import", "g"), lambda: sandbox.attr("hangs_at_import", "X")):
        with pytest.raises(SandboxTimeout, match="not run again"):
            attempt()
    assert time.monotonic() - started < 0.5
    with pytest.raises(SandboxTimeout, match="not run again"):
        sandbox.drive("load_twice", "hangs_at_import")  # a driver importing it fails at once too
    assert sandbox.call("behave", "quick", 1) == 2


def test_memory_blow_up_is_stopped_and_the_sandbox_recovers(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    with pytest.raises(SandboxMemoryError,
                       match="ran out of its 512 MiB memory limit while running allocate_in_children"):
        sandbox.call("behave", "allocate_in_children", 700)  # a child process counts too
    assert sandbox.call("behave", "allocate", 256) == 4
    with pytest.raises(StudentError) as raised:
        sandbox.call("behave", "huge_allocation")  # one impossible allocation: a MemoryError inside
    assert raised.value.exc_type == "MemoryError" and "512 MiB" in raised.value.message


def test_output_flood_is_bounded(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(Limits(timeout=60, output_tail=4096))
    started = time.monotonic()
    result = sandbox.call_full("behave", "shout", 100)
    assert result.value == 100 and time.monotonic() - started < 30
    tail = sandbox.output_tail()
    assert tail.endswith("the end\n") and len(tail) < 4096 + 100 and "bytes of earlier output left out" in tail
    assert len(result.stdout) < 17 * 1024


def test_fork_and_thread_bombs_are_contained(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(Limits(timeout=4, nproc=64, memory=512 * MiB))
    forks = sandbox.call("behave", "fork_many", 200)
    assert forks["error"] == "BlockingIOError" and forks["made"] < 64
    threads = sandbox.call("behave", "thread_many", 200)
    assert threads["error"] and threads["made"] < 64
    uid = sandbox.info["uid"]
    assert 0 < len(_processes_of(uid)) <= 64
    with pytest.raises((SandboxTimeout, SandboxMemoryError)):
        sandbox.call("behave", "fork_bomb")
    assert _processes_of(uid) == []
    assert sandbox.call("behave", "quick", 4) == 8


def test_student_cannot_kill_outside_its_sandbox(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox, neighbour = make_sandbox(), make_sandbox()
    assert neighbour.call("behave", "quick", 1) == 2
    with pytest.raises(StudentError, match="PermissionError"):
        sandbox.call("behave", "kill_parent")
    identity = sandbox.call("behave", "identity")
    assert identity["processes"] == [1, identity["pid"]]  # it sees its own namespace only
    assert sandbox.call("behave", "kill_pid", os.getpid()) == "ProcessLookupError"  # not us in there
    with pytest.raises(SandboxCrashed, match="signal 9"):
        sandbox.call("behave", "kill_group")
    with pytest.raises(StudentError, match="ProcessLookupError"):
        sandbox.call("behave", "kill_everyone")  # kill(-1): nobody it may signal but itself
    assert neighbour.call("behave", "quick", 2) == 4 and neighbour.starts == 1
    assert sandbox.call("behave", "quick", 3) == 6


def test_no_network(shared: Sandbox) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        result = shared.call("behave", "connect", "127.0.0.1", server.getsockname()[1])
    assert result.startswith("OSError") and "unreachable" in result
    assert shared.call("behave", "connect", "1.1.1.1", 53).startswith("OSError")
    assert shared.call("behave", "resolve", "pypi.org").startswith("gaierror")


def test_runs_as_an_unprivileged_fresh_user(shared: Sandbox) -> None:
    identity = shared.call("behave", "identity")
    assert identity["uid"] == identity["euid"] == identity["gid"] == shared.info["uid"] >= 60000
    assert identity["groups"] == [] and identity["cwd"] == "/tmp/work"
    assert identity["home"] == "/tmp/work/home"
    assert "behave.py" in identity["files"] and "__pycache__" not in identity["files"]
    assert shared.isolation == "namespaces+uid"
    assert shared.call("behave", "late_import") == "email.mime.text"  # Python still works


@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "process"])
def test_a_spare_started_ahead_serves_the_next_sandbox_alike(make_spawned: Callable[..., Sandbox],
                                                              zygote: bool) -> None:
    """A batch worker keeps a server started ahead (keep_spare_sandbox): a zygote that imported the heavy
    libraries once and forks one per sandbox, or (without the zygote) a process that imports them before it
    knows its submission. Either way the next Sandbox configures it, and isolation and answers are those of
    a server started for that Sandbox: its own fresh uid, the lock-down, the hidden paths."""
    client.keep_spare_sandbox(True, zygote=zygote)
    try:
        first = make_spawned()
        assert first.call("behave", "quick", 3) == 6 and first.spares_used == 0
        assert (client.spare_state().zygote_mode is not None) is zygote
        second, third = make_spawned(), make_spawned()
        identity = second.call("behave", "identity")
        assert third.call("behave", "quick", 1) == 2
        assert second.spares_used == third.spares_used == 1
        assert identity["uid"] == identity["euid"] == second.info["uid"] >= 60000
        assert len({first.info["uid"], second.info["uid"], third.info["uid"]}) == 3
        assert identity["cwd"] == "/tmp/work" and "behave.py" in identity["files"]
        assert identity["processes"] == [1, identity["pid"]]  # its own pid namespace
        assert second.call("behave", "look", str(REPO)) == {"error": "FileNotFoundError"}
        assert second.call("behave", "quick", 5) == 10
        with pytest.raises(StudentError, match="ZeroDivisionError"):  # student errors come back as before
            second.call("behave", "nested_failure")
    finally:
        client.keep_spare_sandbox(False)
        client.discard_spares()
    state = client.spare_state()
    assert not state.spare and state.zygote_mode is None


def test_the_sandbox_holds_no_descriptor_but_its_pipes(make_sandbox: Callable[..., Sandbox]) -> None:
    """Forked or spawned, the server inherits nothing of its starter: stdin from /dev/null, its output and
    protocol pipes, and no socket (the zygote's to its client stays out)."""
    sandbox = make_sandbox()
    found = dict(sandbox.call("behave", "open_descriptors"))
    assert found[0] == "/dev/null" and found[1].startswith("pipe:") and found[2].startswith("pipe:")
    others = [target for fd, target in found.items() if fd > 2]
    assert len(others) == 2 and all(target.startswith("pipe:") for target in others), found


def test_a_failed_zygote_falls_back_to_spare_processes(make_spawned: Callable[..., Sandbox]) -> None:
    """A zygote that died (or could not import) costs nothing but its speed: the sandbox that wanted a
    fork starts the usual way, and this process keeps spares as processes from then on."""
    client.keep_spare_sandbox(True)
    try:
        make_spawned().start()
        pid = client.spare_state().zygote_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        second = make_spawned()
        assert second.call("behave", "quick", 2) == 4 and second.spares_used == 0
        assert client.spare_state().zygote_failed and client.spare_state().zygote_mode is None
        third = make_spawned()
        assert third.call("behave", "quick", 3) == 6 and third.spares_used == 1  # a process spare
    finally:
        client.keep_spare_sandbox(False)
        client.discard_spares(forget_failures=True)


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A world-writable folder outside /tmp, inside a system folder the sandbox sees (its allow-list):
    only the read-only mounts protect it."""
    base = next(p for p in ("/usr/local/share", "/etc") if os.access(p, os.W_OK))
    folder = Path(tempfile.mkdtemp(prefix="convgrader-sandbox-test-", dir=base))
    folder.chmod(0o777)
    victim = folder / "victim.txt"
    victim.write_text("original")
    victim.chmod(0o666)
    yield folder
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def test_writes_stay_inside(shared: Sandbox, tmp_path: Path, outside_dir: Path) -> None:
    token = f"sandbox-write-{os.getpid()}-{time.monotonic_ns()}"
    inside = [token, f"~/{token}", f"/tmp/{token}", f"/var/tmp/{token}", f"/dev/shm/{token}", f"../{token}"]
    outside = [f"/{token}", f"/work/{token}", f"/root/{token}", str(outside_dir / token),
               str(STUDENT / token), str(tmp_path / token), str(REPO / token)]
    results = shared.call("behave", "write_everywhere", inside + outside)
    assert [results[p] for p in inside] == ["ok"] * len(inside)
    assert all(results[p] != "ok" for p in outside), results
    assert results[str(outside_dir / token)] == "OSError"  # EROFS: the folder itself is writable
    for path in inside + outside:
        host = Path(path.replace("~", str(Path.home()))) if not path.startswith("..") else None
        assert host is None or not host.exists()
    assert not (Path("/tmp") / token).exists() and not Path(f"/tmp/work/{token}").exists()
    victim = str(outside_dir / "victim.txt")
    assert shared.call("behave", "delete", victim) == "OSError"
    assert shared.call("behave", "modify", victim) == "OSError"
    assert (outside_dir / "victim.txt").read_text() == "original"


def test_hidden_paths_are_absent_but_python_keeps_working(shared: Sandbox) -> None:
    assert shared.call("behave", "look", str(REPO)) == {"error": "FileNotFoundError"}
    assert shared.call("behave", "look", str(REPO / "pyproject.toml")) == {"error": "FileNotFoundError"}
    prefix = Path(sys.prefix).resolve()
    python_in_home = prefix.is_relative_to(Path.home())
    expected_home = {"listing": [prefix.relative_to(Path.home()).parts[0]]} if python_in_home else \
        {"error": "FileNotFoundError"}
    assert shared.call("behave", "look", str(Path.home())) == expected_home
    inside_tmp = set(shared.call("behave", "look", "/tmp")["listing"])
    assert {".shm", ".tmp", "work"} <= inside_tmp and not inside_tmp & set(os.listdir("/tmp"))
    assert shared.call("behave", "look", str(STUDENT / "behave.py")) == {"error": "FileNotFoundError"}


def test_the_root_holds_only_the_allow_list(shared: Sandbox) -> None:
    """The sandbox's / is built from an allow-list: system folders, /proc, /dev, a fresh /tmp, and the
    Python installation at its own path; the machine's other folders are not there at all."""
    tops = {Path(p).parts[1] for p in python_paths() if len(Path(p).parts) > 1}
    allowed = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "sys", "proc", "dev", "tmp", "var"}
    listing = set(shared.call("behave", "look", "/")["listing"])
    assert {"usr", "etc", "proc", "dev", "tmp"} <= listing and listing <= allowed | tops, listing - allowed
    for absent in ("/srv", "/mnt", "/home", "/opt", "/run", "/var/lib", "/work"):
        if not any(Path(p).is_relative_to(absent) for p in python_paths()):
            assert shared.call("behave", "look", absent) == {"error": "FileNotFoundError"}, absent
    assert set(shared.call("behave", "look", "/var")["listing"]) == {"tmp"}
    assert shared.call("behave", "look", "/usr/share/datasets/fashion-mnist")["listing"]  # read-only data


def test_hidden_file_reads_empty(make_sandbox: Callable[..., Sandbox], outside_dir: Path) -> None:
    secret = outside_dir / "victim.txt"
    sandbox = make_sandbox(hide=[REPO, secret])
    assert sandbox.call("behave", "look", str(secret)) == {"content": b""}
    assert sandbox.call("behave", "look", str(outside_dir))["listing"] == ["victim.txt"]


@needs_root
@pytest.mark.parametrize("spares", [False, True], ids=["spawned", "forked"])
def test_sandbox_dies_with_its_judge(tmp_path: Path, spares: bool) -> None:
    """A judge killed mid-call (SIGKILL, no clean-up) takes its sandbox with it, and its zygote."""
    script = tmp_path / "judge.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}]
        from grader.sandbox import Sandbox, client
        client.keep_spare_sandbox({spares!r})
        Sandbox({str(STUDENT)!r}, preload=("numpy",)).start()
        sandbox = Sandbox({str(STUDENT)!r}, preload=("numpy",))
        print(sandbox.call("behave", "identity")["uid"], client.spare_state().zygote_pid or 0, flush=True)
        sandbox.call("behave", "sleep_forever", timeout=600)
    """))
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as judge:
        try:
            uid, zygote = map(int, judge.stdout.readline().split())  # type: ignore[union-attr]
            assert _processes_of(uid)
            assert bool(zygote) is spares
        finally:
            judge.kill()
    deadline = time.monotonic() + 10
    while (_processes_of(uid) or zygote and _alive(zygote)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_of(uid) == []
    assert not (zygote and _alive(zygote))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


# ----------------------------------------------------------------------------- TensorFlow


@pytest.fixture(scope="module")
def keras_sandbox(drivers_on_path: None) -> Iterator[Sandbox]:
    if not ROOT:
        pytest.skip("checks the root-mode isolation (run as root, as CI does)")
    with Sandbox(STUDENT, Limits(timeout=120, memory=2 * 1024 * MiB), hide=[REPO, Path.home()]) as sandbox:
        sandbox.start()
        yield sandbox


def test_keras_models_travel_as_data(keras_sandbox: Sandbox) -> None:
    import keras

    spec = keras_sandbox.call("models", "build_cnn", (16,))
    assert isinstance(spec, ModelSpec) and spec.class_name == "Sequential" and spec.compile_config is None
    model = keras.models.model_from_json(spec.json_config)
    assert model.count_params() == 160 + 2704 * 128 + 128 + 1290
    compiled = keras_sandbox.call("models", "compile_model",
                                  ModelPayload(model.to_json(), model.get_weights(), None))
    assert compiled.compile_config["loss"] == "sparse_categorical_crossentropy"
    images = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    payload = ModelPayload(model.to_json(), model.get_weights(), None)
    predicted = keras_sandbox.call("models", "predict", payload, images)
    np.testing.assert_allclose(predicted, model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    assert keras_sandbox.call("values", "tensor").tolist() == [[1.0, 2.0]]
    first = keras_sandbox.call("models", "random_weights")
    assert np.array_equal(keras_sandbox.call("models", "random_weights"), first)  # seeded every time


def test_the_servers_imports_are_frozen_out_of_full_collections(keras_sandbox: Sandbox,
                                                                 shared: Sandbox) -> None:
    """TensorFlow's ~400,000 objects are frozen once imported: the full collections that the student's Keras
    code sets off then walk only what it made itself (each took ~0.7 s)."""
    assert keras_sandbox.call("behave", "garbage_collector")["frozen"] > 100_000
    assert 0 < shared.call("behave", "garbage_collector")["frozen"] < 100_000  # numpy alone: fewer


def test_tensorflow_fits_the_memory_limit(keras_sandbox: Sandbox) -> None:
    keras_sandbox.call("values", "echo", 0)
    in_use = keras_sandbox.memory_in_use()
    print(f"sandbox with TensorFlow and Keras loaded: {in_use / MiB:.0f} MiB resident")
    assert 200 * MiB < in_use < 1200 * MiB
    with pytest.raises(SandboxMemoryError, match="2 GiB"):
        keras_sandbox.call("behave", "allocate_in_children", 2500)


def test_sandbox_error_messages_are_sentences(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    with pytest.raises(SandboxError) as raised:
        sandbox.call("behave", "nested_failure")
    assert raised.value.message == str(raised.value) and raised.value.message[0].isalpha()


# ------------------------------------------------------------------------ weaker isolation


@pytest.mark.parametrize("mode", ["userns", "none"])
def test_reduced_isolation_modes_still_work(make_sandbox: Callable[..., Sandbox], mode: str) -> None:
    if mode == "userns" and choose_mode() == "none":
        pytest.skip("this machine allows no unprivileged user namespace")
    sandbox = make_sandbox(Limits(timeout=1.5, memory=512 * MiB), isolation=mode)
    assert sandbox.isolation in (mode, mode + "+uid")  # none+uid: root with a Python every user can run
    assert sandbox.call("behave", "quick", 21) == 42
    with pytest.raises(StudentError, match="ZeroDivisionError"):
        sandbox.call("behave", "nested_failure")
    with pytest.raises(SandboxTimeout):
        sandbox.call("behave", "sleep_forever")
    with pytest.raises(SandboxMemoryError):
        sandbox.call("behave", "allocate_in_children", 700, timeout=30)
    assert sandbox.call("behave", "quick", 1) == 2
    if mode == "userns":
        assert sandbox.call("behave", "look", str(REPO)) == {"error": "FileNotFoundError"}
        assert sandbox.call("behave", "connect", "1.1.1.1", 53).startswith("OSError")
        assert sandbox.call("behave", "identity")["processes"][0] == 1


def test_a_forked_sandboxs_end_is_seen_by_two_threads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory watchdog's thread and the caller both poll a forked sandbox when it is killed for its
    memory (seen: both closed its pidfd, and the second close failed with EBADF)."""
    import threading

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    read_out, write_out = os.pipe()
    read_err, write_err = os.pipe()
    os.close(write_out)
    os.close(write_err)
    pidfd = os.pidfd_open(os.getpid())  # a pidfd to close; slow_ready below says that it has ended
    forked = sandbox_process.Forked(child.pid, pidfd, read_out, read_err)
    ready = sandbox_process._ready

    def slow_ready(fd: int, events: int, timeout: float) -> bool:
        time.sleep(0.05)  # both threads get past the returncode check before either sets it
        return True  # it has ended

    monkeypatch.setattr(sandbox_process, "_ready", slow_ready)
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            forked.poll()
            forked.wait(1)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.setattr(sandbox_process, "_ready", ready)
    forked.close()
    forked.close()
    assert errors == [] and forked.poll() == 0
    forked.stdout.close()
    forked.stderr.close()


def _wait_gone(pid: int) -> None:
    """Until the killed zygote is reaped (it is this process' child)."""
    for _ in range(200):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.05)
