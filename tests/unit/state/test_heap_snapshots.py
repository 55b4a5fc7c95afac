"""Hashmap snapshots: the one-pass encoder and copy-on-write snapshots in a forked child."""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flinklet._private.state import heap_encoder, heap_snapshots
from flinklet._private.state.backend import NO_KEY, KeyedStateSnapshot
from flinklet._private.state.heap import HeapKeyedStateBackend
from flinklet._private.state.heap_snapshots import (
    ForkedSnapshot,
    ReadySnapshot,
    fork_available,
    fork_snapshot,
)
from flinklet._private.state.keygroups import (
    KeyGroupRange,
    assign_to_key_group,
    key_group_range_for_operator,
)
from flinklet._private.state.layout import decode_state_key
from flinklet._private.state.regions import FileRegion
from flinklet._private.state.serializers import deserialize_key
from flinklet.common import Configuration
from flinklet.common.config_options import HashMapOptions
from flinklet.common.time import Time
from flinklet.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)
from flinklet.datastream.state_backend import HashMapStateBackend
from flinklet.errors import ConfigurationError, StateError

MAX_P = 128
needs_fork = pytest.mark.skipif(not fork_available(), reason="os.fork is not available")


def backend(mode: str = "fork", clock: list[int] | None = None) -> HeapKeyedStateBackend:
    now = clock or [1_000]
    return HeapKeyedStateBackend(
        MAX_P, KeyGroupRange(0, MAX_P - 1), time_provider=lambda: now[0], snapshot_mode=mode
    )


def fill_mixed(b: HeapKeyedStateBackend, ttl: bool = True) -> None:
    """Every kind of state, windows, odd keys and values, and (with ``ttl``) a TTL state
    that drops expired entries from full snapshots."""
    value = b.get_partitioned_state(ValueStateDescriptor("value", None))
    items = b.get_partitioned_state(ListStateDescriptor("items", None))
    mapping = b.get_partitioned_state(MapStateDescriptor("mapping", None, None))
    total = b.get_partitioned_state(ReducingStateDescriptor("total", lambda a, c: a + c, None))
    expiring: Any = None
    if ttl:
        descriptor = ValueStateDescriptor("ttl", None)
        descriptor.enable_time_to_live(
            StateTtlConfig.new_builder(Time.minutes(1)).cleanup_full_snapshot().build()
        )
        expiring = b.get_partitioned_state(descriptor)
    keys: list[Any] = [0, 1, -7, 2**40, -(2**63), 2**63 - 1, 2**70, True, 2.5, "a", "é" * 70]
    keys += [("t", 1), None, b"raw"]
    for i, key in enumerate(keys):
        b.current_key = key
        value.update([i, 1.5, "x" * i, None] if i % 3 else i * 1.25 if i % 2 else i)
        items.add(i)
        items.add(f"item-{i}")
        mapping.put(f"k{i}", {"n": i})
        total.set_current_namespace(("window", i % 3))
        total.add(i)
        if expiring is not None:
            expiring.update(i)
    b.current_key = NO_KEY


def entries_by_key(snapshot: KeyedStateSnapshot) -> dict[tuple[Any, bytes, str], bytes]:
    out = {}
    for group in snapshot.entries.values():
        for layout_key, value in group:
            _kg, key_bytes, namespace_bytes, name = decode_state_key(layout_key)
            out[(deserialize_key(key_bytes), namespace_bytes, name)] = value
    return out


# -- the encoder ----------------------------------------------------------------------


def test_encoded_bytes_are_the_canonical_snapshot_bytes() -> None:
    b = backend()
    fill_mixed(b)
    data, count = b.snapshot_bytes({"timers": b"\x01\x02"})
    canonical = b.snapshot({"timers": b"\x01\x02"})
    assert data == canonical.to_bytes()
    assert count == canonical.entry_count() == 13 * 5  # True and 1 are one key


def test_expired_ttl_entries_are_left_out_as_in_snapshot() -> None:
    clock = [1_000]
    b = backend(clock=clock)
    fill_mixed(b)
    clock[0] += 120_000  # every TTL value expired
    data, count = b.snapshot_bytes()
    assert data == b.snapshot().to_bytes()
    assert count == 13 * 4


def test_inlined_key_groups_agree_with_assign_to_key_group() -> None:
    b = backend()
    state = b.get_partitioned_state(ValueStateDescriptor("v", None))
    keys: list[Any] = [*range(-300, 300), 2**31, 2**32 + 5, -(2**63), "", "key-1", "ü" * 200]
    for key in keys:
        b.current_key = key
        state.update(1)
    decoded = KeyedStateSnapshot.from_bytes(b.snapshot_bytes()[0])
    seen = {}
    for key_group, group in decoded.entries.items():
        for layout_key, _value in group:
            _kg, key_bytes, _ns, _name = decode_state_key(layout_key)
            seen[deserialize_key(key_bytes)] = key_group
    assert seen == {key: assign_to_key_group(key, MAX_P) for key in keys}


def test_a_key_outside_the_key_group_range_is_an_error() -> None:
    b = HeapKeyedStateBackend(MAX_P, KeyGroupRange(0, 0))
    state = b.get_partitioned_state(ValueStateDescriptor("v", None))
    key = next(k for k in range(1000) if assign_to_key_group(k, MAX_P) != 0)
    b.current_key = key
    state.update(1)
    with pytest.raises(StateError, match="outside this subtask's"):
        b.snapshot_bytes()


# -- sync mode and fallback -----------------------------------------------------------


def test_sync_mode_encodes_on_the_calling_thread() -> None:
    b = backend("sync")
    fill_mixed(b)
    encoded = b.snapshot_encoded()
    assert isinstance(encoded, ReadySnapshot)
    assert encoded.result() == b.snapshot().to_bytes()
    assert encoded.has_entries()


def test_fork_mode_falls_back_to_sync_without_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flinklet._private.state.heap.fork_available", lambda: False)
    b = backend("fork")
    fill_mixed(b)
    encoded = b.snapshot_encoded()
    assert isinstance(encoded, ReadySnapshot)
    assert encoded.result() == b.snapshot().to_bytes()


def test_allow_fork_false_and_empty_state_encode_synchronously() -> None:
    b = backend("fork")
    empty = b.snapshot_encoded()
    assert isinstance(empty, ReadySnapshot)
    assert not empty.has_entries()
    fill_mixed(b)
    assert isinstance(b.snapshot_encoded(allow_fork=False), ReadySnapshot)


def test_snapshot_mode_is_validated_and_configurable() -> None:
    with pytest.raises(StateError, match="unknown hashmap snapshot mode 'cow'"):
        backend("cow")
    with pytest.raises(ConfigurationError, match="use 'fork' or 'sync'"):
        HashMapStateBackend(snapshot="cow")
    created = HashMapStateBackend(snapshot="sync").create_keyed_backend(
        MAX_P, KeyGroupRange(0, MAX_P - 1), "scope"
    )
    assert created.snapshot_mode == "sync"
    default = HashMapStateBackend().create_keyed_backend(
        MAX_P, KeyGroupRange(0, MAX_P - 1), "scope"
    )
    assert default.snapshot_mode == "fork"
    assert HashMapOptions.SNAPSHOT.key == "state.backend.hashmap.snapshot"
    assert Configuration().get(HashMapOptions.SNAPSHOT) == "fork"


# -- forked snapshots -----------------------------------------------------------------


@needs_fork
def test_forked_snapshot_is_the_state_at_the_fork_and_restores_rescaled() -> None:
    b = backend("fork")
    fill_mixed(b)
    counts = b.get_partitioned_state(ValueStateDescriptor("count", None))
    for key in range(5_000):
        b.current_key = key
        counts.update(key * 3)
    expected = b.snapshot()
    encoded = b.snapshot_encoded()
    assert isinstance(encoded, ForkedSnapshot)
    for key in range(5_000):  # the task goes on: later updates are not in the snapshot
        b.current_key = key
        counts.update(-1)
    b.current_key = "new key"
    counts.update(1)
    data = encoded.result()
    assert data == expected.to_bytes()
    assert encoded.done
    with pytest.raises(ChildProcessError):
        os.waitpid(encoded.pid, os.WNOHANG)  # reaped
    assert encoded.closed

    # restore 1 -> 3 through key groups: each subtask gets exactly its keys' entries
    snapshot = KeyedStateSnapshot.from_bytes(data)
    restored: dict[tuple[Any, bytes, str], bytes] = {}
    for index in range(3):
        key_groups = key_group_range_for_operator(MAX_P, 3, index)
        part = HeapKeyedStateBackend(MAX_P, key_groups)
        part.restore([snapshot])
        part_entries = entries_by_key(part.snapshot())
        assert all(assign_to_key_group(k[0], MAX_P) in key_groups for k in part_entries)
        assert not restored.keys() & part_entries.keys()
        restored.update(part_entries)
    assert restored == entries_by_key(expected)
    part = HeapKeyedStateBackend(MAX_P, key_group_range_for_operator(MAX_P, 3, 1))
    part.restore([snapshot])
    count = part.get_partitioned_state(ValueStateDescriptor("count", None))
    for key in [k for k in range(5_000) if assign_to_key_group(k, MAX_P) in part.key_group_range]:
        part.current_key = key
        assert count.value() == key * 3


@needs_fork
def test_cancel_kills_and_reaps_the_child() -> None:
    started = time.monotonic()
    forked = fork_snapshot(lambda: time.sleep(60) or b"", True)  # type: ignore[func-returns-value]
    os.kill(forked.pid, 0)  # running
    forked.cancel()
    assert forked.done
    assert forked._exit_code == -signal.SIGKILL
    with pytest.raises(ChildProcessError):
        os.waitpid(forked.pid, os.WNOHANG)
    assert forked.closed
    forked.cancel()  # idempotent
    with pytest.raises(StateError, match="cancelled"):
        forked.result()
    assert time.monotonic() - started < 10


@needs_fork
def test_a_failing_child_is_a_clear_error() -> None:
    def encode() -> bytes:
        raise ValueError("cannot encode state 'boom'")

    forked = fork_snapshot(encode, True)
    with pytest.raises(StateError) as info:
        forked.result()
    message = str(info.value)
    assert f"the forked snapshot process {forked.pid} failed (exit status 1)" in message
    assert "ValueError: cannot encode state 'boom'" in message
    assert "state.backend.hashmap.snapshot: sync" in message
    assert forked.closed


@needs_fork
def test_the_temp_files_never_show_on_disk(tmp_path: Path) -> None:
    forked = fork_snapshot(lambda: b"x" * 100_000, True, directory=str(tmp_path))
    assert os.listdir(tmp_path) == []  # deleted right away, kept only by descriptors
    assert forked.result() == b"x" * 100_000
    assert forked.closed
    assert os.listdir(tmp_path) == []


@needs_fork
def test_a_child_killed_from_outside_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    forked = fork_snapshot(lambda: time.sleep(60) or b"", True)  # type: ignore[func-returns-value]
    os.kill(forked.pid, signal.SIGTERM)
    with pytest.raises(StateError, match="killed by signal 15"):
        forked.result()


@needs_fork
def test_fork_failure_is_a_state_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(heap_snapshots.os, "fork", no_fork)
    with pytest.raises(StateError, match="could not fork a process for the snapshot"):
        fork_snapshot(lambda: b"", True)


@needs_fork
def test_the_child_yields_the_cores_to_the_task() -> None:
    parent = os.nice(0)
    snapshot = fork_snapshot(lambda: str(os.nice(0)).encode(), True)
    assert int(snapshot.result()) == min(19, parent + 10)


# -- the hand-off to an encoder process -------------------------------------------------


@dataclass
class Reading:
    """Not plain data: the encoder process could not rebuild it, so the child encodes."""

    sensor: str
    value: float


@pytest.fixture
def handoffs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand-offs enabled for the test, and whatever the test does to that undone after."""
    monkeypatch.setattr(heap_snapshots, "_handoff_disabled", None)


@needs_fork
def test_plain_state_is_handed_off_and_encoded_by_a_fresh_process(handoffs_on: None) -> None:
    b = backend("fork")
    fill_mixed(b, ttl=False)
    counts = b.get_partitioned_state(ValueStateDescriptor("count", None))
    for key in range(3_000):
        b.current_key = key
        counts.update(key * 3)
    expected = b.snapshot({"timers": b"\x07"}).to_bytes()
    encoded = b.snapshot_encoded(extra={"timers": b"\x07"})
    assert isinstance(encoded, ForkedSnapshot)
    for key in range(3_000):  # the task goes on: later updates are not in the snapshot
        b.current_key = key
        counts.update(-1)
    region = encoded.result_region()
    assert encoded.handed_off
    assert encoded.encoder is not None and encoded.encoder.returncode == 0
    assert encoded.encoder.pid != encoded.pid  # a fresh process, not the forked child
    assert isinstance(region, FileRegion)
    assert region.fd == encoded.output_fd and region.offset == 0
    assert region.read() == expected
    encoded.cancel()  # releases the files
    assert encoded.closed and encoded.output_fd == -1
    # restoring the handed-off bytes gives the state as it was at the fork
    restored = HeapKeyedStateBackend(MAX_P, KeyGroupRange(0, MAX_P - 1))
    restored.restore([KeyedStateSnapshot.from_bytes(expected)])
    count = restored.get_partitioned_state(ValueStateDescriptor("count", None))
    restored.current_key = 2_999
    assert count.value() == 8_997


@needs_fork
@pytest.mark.parametrize(
    "fill",
    [
        pytest.param(lambda b: fill_mixed(b, ttl=True), id="ttl-clean-up"),
        pytest.param(
            lambda b: b.get_partitioned_state(ValueStateDescriptor("r", None)).update(
                [Reading("s-1", 2.5)]
            ),
            id="user-class",
        ),
    ],
)
def test_state_that_is_not_plain_data_is_encoded_by_the_child(
    handoffs_on: None, fill: Callable[[HeapKeyedStateBackend], None]
) -> None:
    b = backend("fork")
    b.current_key = "k"
    fill(b)
    expected = b.snapshot().to_bytes()
    encoded = b.snapshot_encoded()
    assert isinstance(encoded, ForkedSnapshot)
    assert encoded.result() == expected
    assert not encoded.handed_off and encoded.encoder is None
    assert heap_snapshots._handoff_disabled is None  # not a failure: the next may hand off


@needs_fork
def test_an_encoder_process_that_cannot_run_is_replaced_by_encoding_here(
    handoffs_on: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(parent: int) -> tuple[list[str], dict[str, str]]:
        code = "import sys; sys.stderr.write('ModuleNotFoundError: no flinklet here'); sys.exit(1)"
        return [sys.executable, "-c", code], dict(os.environ)

    monkeypatch.setattr(heap_snapshots, "encoder_command", broken)
    b = backend("fork")
    fill_mixed(b, ttl=False)
    expected = b.snapshot().to_bytes()
    first = b.snapshot_encoded()
    assert isinstance(first, ForkedSnapshot)
    assert first.result() == expected  # encoded in this process after all
    assert first.handed_off
    assert first.closed
    assert "no flinklet here" in (heap_snapshots._handoff_disabled or "")
    assert "the snapshot encoder process failed" in caplog.text
    assert "no flinklet here" in caplog.text
    # from now on the children encode themselves
    second = b.snapshot_encoded()
    assert isinstance(second, ForkedSnapshot)
    assert second.result() == expected
    assert not second.handed_off


@needs_fork
def test_a_key_outside_the_key_groups_fails_the_encoder_process_clearly(
    handoffs_on: None,
) -> None:
    b = HeapKeyedStateBackend(MAX_P, KeyGroupRange(0, 0), snapshot_mode="fork")
    state = b.get_partitioned_state(ValueStateDescriptor("v", None))
    key = next(k for k in range(1000) if assign_to_key_group(k, MAX_P) != 0)
    b.current_key = key
    state.update(1)
    encoded = b.snapshot_encoded()
    assert isinstance(encoded, ForkedSnapshot)
    with pytest.raises(StateError) as info:
        encoded.result()
    message = str(info.value)
    assert "could not encode the keyed state (snapshot encoder process" in message
    assert f"key {key} of state 'v' belongs to key group" in message
    assert encoded.handed_off and encoded.closed
    assert heap_snapshots._handoff_disabled is None  # the data's fault, not the process'


@needs_fork
def test_cancel_kills_and_reaps_the_encoder_process(
    handoffs_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stuck(parent: int) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ)

    monkeypatch.setattr(heap_snapshots, "encoder_command", stuck)
    b = backend("fork")
    b.current_key = 1
    b.get_partitioned_state(ValueStateDescriptor("v", None)).update(1)
    encoded = b.snapshot_encoded()
    assert isinstance(encoded, ForkedSnapshot)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            encoded.result_region()
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=writer)
    thread.start()
    while encoded.encoder is None and time.monotonic() - started < 10:
        time.sleep(0.01)
    assert encoded.encoder is not None
    encoded.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert encoded.encoder.returncode == -signal.SIGKILL
    assert len(errors) == 1 and "cancelled" in str(errors[0])
    assert encoded.closed
    assert time.monotonic() - started < 10


@needs_fork
@pytest.mark.parametrize("window", ["before-the-encoder-command", "before-the-encoder-starts"])
def test_a_cancel_from_another_thread_never_closes_the_files_under_the_writer(
    handoffs_on: None, monkeypatch: pytest.MonkeyPatch, window: str
) -> None:
    """The scheduler aborts the checkpoint (``cancel()`` on its thread) while the writer
    thread is between reaping the child and starting the encoder process. Closing the
    files then handed the encoder a closed descriptor ('could not start it: Bad file
    descriptor', which switched hand-offs off) or -1, which is ``subprocess.PIPE``: an
    encoder reading an empty pipe that never ends, and a writer thread waiting forever."""
    b = backend("fork")
    b.current_key = 1
    b.get_partitioned_state(ValueStateDescriptor("v", None)).update(1)
    encoded = b.snapshot_encoded()
    assert isinstance(encoded, ForkedSnapshot)

    def cancel_elsewhere() -> None:
        thread = threading.Thread(target=encoded.cancel)
        thread.start()
        thread.join(10)
        assert not thread.is_alive()

    if window == "before-the-encoder-command":
        real_command = heap_snapshots.encoder_command

        def command(parent: int) -> tuple[list[str], dict[str, str]]:
            cancel_elsewhere()
            return real_command(parent)

        monkeypatch.setattr(heap_snapshots, "encoder_command", command)
    else:
        real_popen = subprocess.Popen

        def popen(*args: Any, **kwargs: Any) -> Any:
            cancel_elsewhere()
            return real_popen(*args, **kwargs)

        monkeypatch.setattr(heap_snapshots.subprocess, "Popen", popen)
    outcome: list[BaseException] = []

    def writer() -> None:
        try:
            encoded.result_region()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(30)
    hung = thread.is_alive()
    if hung and encoded.encoder is not None:  # do not leave the stuck encoder behind
        encoded.encoder.kill()
    assert not hung
    assert len(outcome) == 1 and isinstance(outcome[0], StateError)
    assert "cancelled" in str(outcome[0])
    assert heap_snapshots._handoff_disabled is None  # a cancel is nobody's failure
    assert encoded.closed and encoded.output_fd == -1  # the writer closed what it owned
    if encoded.encoder is not None:
        assert encoded.encoder.returncode == -signal.SIGKILL


def test_the_encoder_process_turns_a_hand_off_into_snapshot_bytes(tmp_path: Path) -> None:
    b = backend("sync")
    fill_mixed(b, ttl=False)
    handoff = tmp_path / "handoff"
    with handoff.open("wb") as out:
        b.dump_plain(out, {"extra": b"x"})
    argv, env = heap_encoder.encoder_command(os.getpid())
    with handoff.open("rb") as stdin:
        done = subprocess.run(argv, stdin=stdin, capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b.snapshot({"extra": b"x"}).to_bytes()
    # a process whose parent is not the task process leaves at once, writing nothing
    argv, env = heap_encoder.encoder_command(1)
    with handoff.open("rb") as stdin:
        orphan = subprocess.run(argv, stdin=stdin, capture_output=True, env=env, timeout=60)
    assert orphan.returncode == 1 and orphan.stdout == b""


def test_a_hand_off_of_another_kind_is_refused() -> None:
    with pytest.raises(StateError, match="not a hashmap snapshot hand-off"):
        heap_encoder.encode_payload(io.BytesIO(pickle.dumps(("something", 1))))
