"""Full RocksDB snapshots encoded by an export process from a RocksDB checkpoint."""

from __future__ import annotations

# Importing flinklet.datastream first avoids an import cycle (as in test_rocksdb_backend).
import flinklet.datastream  # noqa: F401  # isort: skip

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flinklet._private.state import rocksdb_export
from flinklet._private.state.backend import NO_KEY, KeyedStateSnapshot
from flinklet._private.state.heap import HeapKeyedStateBackend
from flinklet._private.state.heap_snapshots import ReadySnapshot
from flinklet._private.state.keygroups import (
    KeyGroupRange,
    assign_to_key_group,
    key_group_range_for_operator,
)
from flinklet._private.state.regions import FileRegion
from flinklet._private.state.rocksdb import RocksDBKeyedStateBackend
from flinklet._private.state.rocksdb_export import ExportedSnapshot
from flinklet.common.time import Time
from flinklet.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)
from flinklet.errors import StateError

MAX_P = 128


@pytest.fixture
def rocks(tmp_path: Path) -> Iterator[RocksDBKeyedStateBackend]:
    backend = RocksDBKeyedStateBackend(MAX_P, KeyGroupRange(0, MAX_P - 1), "t", tmp_path)
    yield backend
    backend.dispose()


def fill(b: Any, keys: int = 2_000) -> None:
    value = b.get_partitioned_state(ValueStateDescriptor("value", None))
    items = b.get_partitioned_state(ListStateDescriptor("items", None))
    mapping = b.get_partitioned_state(MapStateDescriptor("mapping", None, None))
    for key in range(keys):
        b.current_key = key
        value.update(key * 2)
        if key % 5 == 0:
            items.add(f"a{key}")
            items.add(key)
            mapping.put("n", key)
            mapping.put(("t", key), [key])
    b.current_key = NO_KEY


def test_exported_snapshot_is_the_canonical_snapshot(rocks: RocksDBKeyedStateBackend) -> None:
    fill(rocks)
    expected = rocks.snapshot({"timers": b"t"}).to_bytes()
    encoded = rocks.snapshot_encoded(extra={"timers": b"t"})
    assert isinstance(encoded, ExportedSnapshot)
    value = rocks.get_partitioned_state(ValueStateDescriptor("value", None))
    for key in range(2_000):  # the task goes on while the process encodes
        rocks.current_key = key
        value.update(-1)
    assert encoded.result() == expected
    assert encoded.process.returncode == 0
    assert not encoded.checkpoint_dir.exists()
    assert not encoded.output.exists()


def test_exported_snapshot_can_be_streamed_from_its_file(rocks: RocksDBKeyedStateBackend) -> None:
    fill(rocks)
    expected = rocks.snapshot().to_bytes()
    encoded = rocks.snapshot_encoded()
    assert isinstance(encoded, ExportedSnapshot)
    region = encoded.result_region()
    assert isinstance(region, FileRegion) and region.offset == 0
    assert region.read() == expected
    encoded.cancel()  # releases the file
    assert encoded._fd == -1
    assert not encoded.checkpoint_dir.exists()
    assert not encoded.output.exists()


def test_a_cancel_from_another_thread_leaves_the_writers_file_to_the_writer(
    rocks: RocksDBKeyedStateBackend,
) -> None:
    """The scheduler aborts the checkpoint while the writer thread streams the exported
    file: the writer reads it to the end (the storage discards the aborted checkpoint's
    files), and the release after the write removes it."""
    fill(rocks)
    expected = rocks.snapshot().to_bytes()
    encoded = rocks.snapshot_encoded()
    assert isinstance(encoded, ExportedSnapshot)
    region = encoded.result_region()
    canceller = threading.Thread(target=encoded.cancel)
    canceller.start()
    canceller.join(10)
    assert not canceller.is_alive()
    assert encoded._fd == region.fd >= 0 and encoded.output.exists()
    assert region.read() == expected
    encoded.cancel()  # the writer's release
    assert encoded._fd == -1
    assert not encoded.checkpoint_dir.exists()
    assert not encoded.output.exists()


def test_exported_snapshot_restores_rescaled_into_the_heap_backend(
    rocks: RocksDBKeyedStateBackend,
) -> None:
    fill(rocks)
    snapshot = KeyedStateSnapshot.from_bytes(rocks.snapshot_encoded().result())
    found = {}
    for index in range(3):
        key_groups = key_group_range_for_operator(MAX_P, 3, index)
        heap = HeapKeyedStateBackend(MAX_P, key_groups)
        heap.restore([snapshot])
        value = heap.get_partitioned_state(ValueStateDescriptor("value", None))
        items = heap.get_partitioned_state(ListStateDescriptor("items", None))
        for key in heap.keys("value"):
            assert assign_to_key_group(key, MAX_P) in key_groups
            heap.current_key = key
            found[key] = (value.value(), items.get())
    assert found == {k: (k * 2, [f"a{k}", k] if k % 5 == 0 else []) for k in range(2_000)}


def test_ttl_states_and_sync_mode_snapshot_on_the_calling_thread(
    rocks: RocksDBKeyedStateBackend, tmp_path: Path
) -> None:
    fill(rocks, 50)
    assert isinstance(rocks.snapshot_encoded(allow_fork=False), ReadySnapshot)
    ttl = ValueStateDescriptor("ttl", None)
    ttl.enable_time_to_live(StateTtlConfig.new_builder(Time.minutes(1)).build())
    rocks.get_partitioned_state(ttl)
    encoded = rocks.snapshot_encoded()
    assert isinstance(encoded, ReadySnapshot)
    assert encoded.result() == rocks.snapshot().to_bytes()
    sync = RocksDBKeyedStateBackend(
        MAX_P, KeyGroupRange(0, MAX_P - 1), "s", tmp_path, full_snapshot="sync"
    )
    try:
        fill(sync, 50)
        assert isinstance(sync.snapshot_encoded(), ReadySnapshot)
    finally:
        sync.dispose()
    with pytest.raises(StateError, match="unknown RocksDB full snapshot mode 'fork'"):
        RocksDBKeyedStateBackend(MAX_P, KeyGroupRange(0, 0), "x", tmp_path, full_snapshot="fork")


def test_an_empty_database_snapshots_synchronously(rocks: RocksDBKeyedStateBackend) -> None:
    rocks.get_partitioned_state(ValueStateDescriptor("value", None))
    encoded = rocks.snapshot_encoded()
    assert isinstance(encoded, ReadySnapshot)
    assert not encoded.has_entries()  # left out of checkpoints, as before


def test_cancel_kills_the_export_process(rocks: RocksDBKeyedStateBackend) -> None:
    fill(rocks, 50)
    encoded = rocks.snapshot_encoded()
    assert isinstance(encoded, ExportedSnapshot)
    started = time.monotonic()
    encoded.cancel()
    assert encoded.process.returncode is not None  # reaped
    assert not encoded.checkpoint_dir.exists()
    with pytest.raises(StateError, match="cancelled"):
        encoded.result()
    assert time.monotonic() - started < 10


def test_a_failing_export_is_a_clear_error(
    rocks: RocksDBKeyedStateBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(rocks, 50)
    monkeypatch.setattr(rocksdb_export, "serialize", lambda _params: b"\x01garbage")
    encoded = rocks.snapshot_encoded()
    assert isinstance(encoded, ExportedSnapshot)
    with pytest.raises(StateError) as info:
        encoded.result()
    message = str(info.value)
    assert f"the RocksDB snapshot export process {encoded.process.pid} failed" in message
    assert "corrupt state bytes" in message
    assert not encoded.checkpoint_dir.exists()
