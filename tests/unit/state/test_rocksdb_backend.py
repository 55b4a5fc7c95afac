"""The RocksDB keyed-state backend: the heap backend's behaviour (each test runs on both
backends), the canonical snapshot format shared between them, TTL, the on-disk layout,
errors, the directory it owns, and incremental checkpoints."""

from __future__ import annotations

# Importing flinklet.datastream first avoids an import cycle that importing
# flinklet._private.state.backend on its own runs into (backend -> datastream -> exec).
import flinklet.datastream  # noqa: F401  # isort: skip

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from flinklet._private.state.backend import (
    NO_KEY,
    VOID_NAMESPACE,
    KeyedStateBackend,
    KeyedStateSnapshot,
    StateKind,
    StateMetaInfo,
)
from flinklet._private.state.heap import HeapKeyedStateBackend
from flinklet._private.state.keygroups import (
    KeyGroupRange,
    assign_to_key_group,
    key_group_range_for_operator,
)
from flinklet._private.state.layout import decode_state_key, encode_state_key
from flinklet._private.state.rocksdb import (
    IncrementalKeyedStateSnapshot,
    RocksDBKeyedStateBackend,
    incremental_to_keyed_snapshot,
)
from flinklet._private.state.rocksdb_states import decode_value, encode_value
from flinklet._private.state.serializers import (
    deserialize,
    deserialize_key,
    serialize,
    serialize_key,
)
from flinklet.datastream.state import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    State,
    StateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)
from flinklet.errors import StateError, StateMigrationError

MAX_P = 128
TTL = 100
ALL = KeyGroupRange(0, MAX_P - 1)
D = TypeVar("D", bound=StateDescriptor)
Backend = HeapKeyedStateBackend | RocksDBKeyedStateBackend


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class Average:
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: int, accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + value, accumulator[1] + 1)

    def get_result(self, accumulator: tuple[int, int]) -> float:
        return accumulator[0] / accumulator[1]

    def merge(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        return (a[0] + b[0], a[1] + b[1])


class Count:
    def create_accumulator(self) -> int:
        return 0

    def add(self, value: Any, accumulator: int) -> int:
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        return accumulator


class Max:
    def reduce(self, a: int, b: int) -> int:
        return max(a, b)


Factory = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rocks(tmp_path: Path, clock: FakeClock) -> Iterator[Factory]:
    """``rocks(key_groups=ALL, max_parallelism=MAX_P)``: a RocksDB backend in ``tmp_path``."""
    created: list[RocksDBKeyedStateBackend] = []

    def make(
        key_groups: KeyGroupRange = ALL, max_parallelism: int = MAX_P
    ) -> RocksDBKeyedStateBackend:
        backend = RocksDBKeyedStateBackend(
            max_parallelism, key_groups, "job/op/0", tmp_path / "rocks", time_provider=clock
        )
        created.append(backend)
        return backend

    yield make
    for backend in created:
        backend.dispose()


def heap(clock: FakeClock) -> Factory:
    def make(key_groups: KeyGroupRange = ALL, max_parallelism: int = MAX_P) -> Backend:
        return HeapKeyedStateBackend(max_parallelism, key_groups, time_provider=clock)

    return make


@pytest.fixture(params=["heap", "rocksdb"])
def new_backend(request: pytest.FixtureRequest, clock: FakeClock, rocks: Factory) -> Factory:
    """A factory of backends of the parametrized kind."""
    return heap(clock) if request.param == "heap" else rocks


@pytest.fixture(params=["heap", "rocksdb"])
def other_backend(request: pytest.FixtureRequest, clock: FakeClock, rocks: Factory) -> Factory:
    """A second factory, to restore snapshots across backends (all four combinations)."""
    return heap(clock) if request.param == "heap" else rocks


def contents(snapshots: list[KeyedStateSnapshot]) -> dict[tuple[str, Any, Any], Any]:
    """Every (state, namespace, key) -> value in ``snapshots``; no entry may repeat."""
    result: dict[tuple[str, Any, Any], Any] = {}
    for snapshot in snapshots:
        for key_group, group in snapshot.entries.items():
            for layout_key, value_bytes in group:
                group_in_key, key_bytes, ns_bytes, name = decode_state_key(layout_key)
                assert group_in_key == key_group
                namespace = VOID_NAMESPACE if not ns_bytes else deserialize_key(ns_bytes)
                entry = (name, namespace, deserialize_key(key_bytes))
                assert entry not in result, f"{entry} restored twice"
                result[entry] = deserialize(value_bytes)
    return result


def with_ttl(descriptor: D, config: StateTtlConfig) -> D:
    descriptor.enable_time_to_live(config)
    return descriptor


def ttl_builder() -> StateTtlConfig.Builder:
    return StateTtlConfig.new_builder(TTL).disable_cleanup_in_background()


# ---------------------------------------------------------------------------------------------
# The heap backend's behaviour, on both backends
# ---------------------------------------------------------------------------------------------


def test_value_state_is_scoped_per_key(new_backend: Factory) -> None:
    backend = new_backend()
    count = backend.get_partitioned_state(ValueStateDescriptor("count", None))
    backend.current_key = "a"
    assert count.value() is None
    count.update(1)
    backend.set_current_key("b")
    assert count.value() is None
    count.update(10)
    backend.current_key = "a"
    assert count.value() == 1
    assert backend.get_current_key() == "a"
    count.update(None)
    assert count.value() is None
    backend.current_key = "b"
    count.clear()
    assert count.value() is None
    assert backend.keys("count") == []


READS: dict[str, Any] = {
    "v": lambda state: state.value(),
    "l": lambda state: state.get(),
    "m": lambda state: state.get("user key"),
    "r": lambda state: state.get(),
    "g": lambda state: state.add(1),
}


@pytest.mark.parametrize(
    "descriptor",
    [
        ValueStateDescriptor("v", None),
        ListStateDescriptor("l", None),
        MapStateDescriptor("m", None, None),
        ReducingStateDescriptor("r", lambda a, b: a + b, None),
        AggregatingStateDescriptor("g", Average(), None),
    ],
    ids=lambda d: type(d).__name__,
)
def test_access_outside_a_keyed_context_raises(new_backend: Factory, descriptor: Any) -> None:
    backend = new_backend()
    state = backend.get_partitioned_state(descriptor)
    with pytest.raises(StateError, match=f"State '{descriptor.name}' accessed outside a keyed"):
        state.clear()
    with pytest.raises(StateError, match="only available on a KeyedStream"):
        READS[descriptor.name](state)
    with pytest.raises(StateError, match="there is no current key"):
        backend.get_current_key()


def test_namespaces_separate_state_of_the_same_key(new_backend: Factory) -> None:
    backend = new_backend()
    buffer = backend.get_partitioned_state(ListStateDescriptor("buffer", None))
    backend.current_key = "k"
    buffer.add("global")
    backend.set_current_namespace("buffer", ("window", 0))
    assert buffer.get() == []
    buffer.add("w0")
    backend.set_current_namespace("buffer", ("window", 1))
    buffer.add("w1")
    assert buffer.get() == ["w1"]
    backend.set_current_namespace("buffer", ("window", 0))
    assert buffer.get() == ["w0"]
    assert backend.keys("buffer", ("window", 1)) == ["k"]
    buffer.clear()
    assert backend.keys("buffer", ("window", 0)) == []
    backend.set_current_namespace("buffer", VOID_NAMESPACE)
    assert buffer.get() == ["global"]


def test_list_state(new_backend: Factory) -> None:
    backend = new_backend()
    items = backend.get_partitioned_state(ListStateDescriptor("items", None))
    backend.current_key = 1
    assert items.get() == []
    items.add("a")
    items.add_all(["b", "c"])
    got = items.get()
    assert got == ["a", "b", "c"]
    got.append("not stored")
    assert items.get() == ["a", "b", "c"]
    items.update(["x"])
    assert items.get() == ["x"]
    items.update([])
    assert items.get() == []
    assert backend.keys("items") == []
    with pytest.raises(StateError, match="You cannot add None to a ListState"):
        items.add(None)
    with pytest.raises(StateError, match="You cannot add None to a ListState"):
        items.add_all(["ok", None])
    with pytest.raises(StateError, match="cannot be None"):
        items.update(None)
    assert items.get() == []


def test_map_state(new_backend: Factory) -> None:
    backend = new_backend()
    seen = backend.get_partitioned_state(MapStateDescriptor("seen", None, None))
    backend.current_key = "user"
    assert seen.is_empty()
    assert seen.get("x") is None
    seen.put("x", 1)
    seen.put_all({"y": 2, "z": 3})
    seen["w"] = 4
    assert seen.get("x") == 1 and seen["y"] == 2
    assert seen.contains("z") and "w" in seen and not seen.contains("nope")
    assert sorted(seen.keys()) == ["w", "x", "y", "z"]
    assert sorted(seen.values()) == [1, 2, 3, 4]
    assert sorted(seen.items()) == [("w", 4), ("x", 1), ("y", 2), ("z", 3)]
    assert sorted(seen) == ["w", "x", "y", "z"]
    for user_key in seen:  # removing while iterating is allowed
        seen.remove(user_key)
    assert seen.is_empty()
    assert backend.keys("seen") == []
    seen.put("a", None)
    assert seen.contains("a") and seen.get("a") is None
    del seen["a"]
    seen.remove("never there")
    assert seen.is_empty()
    backend.current_key = "other"
    seen.put("q", 1)
    seen.clear()
    assert seen.items() == []


def test_reducing_state(new_backend: Factory) -> None:
    backend = new_backend()
    total = backend.get_partitioned_state(ReducingStateDescriptor("sum", lambda a, b: a + b, None))
    highest = backend.get_partitioned_state(ReducingStateDescriptor("max", Max(), None))
    backend.current_key = "k"
    assert total.get() is None
    for value in (3, 4, 5):
        total.add(value)
        highest.add(value)
    assert total.get() == 12
    assert highest.get() == 5
    total.add(None)  # as in Flink: adding None clears
    assert total.get() is None


def test_aggregating_state(new_backend: Factory) -> None:
    backend = new_backend()
    average = backend.get_partitioned_state(AggregatingStateDescriptor("avg", Average(), None))
    backend.current_key = "k"
    assert average.get() is None
    average.add(2)
    average.add(4)
    assert average.get() == 3.0
    backend.current_key = "j"
    average.add(10)
    assert average.get() == 10.0
    average.clear()
    assert average.get() is None


def test_merge_namespaces(new_backend: Factory) -> None:
    backend = new_backend()
    items = backend.get_partitioned_state(ListStateDescriptor("items", None))
    total = backend.get_partitioned_state(ReducingStateDescriptor("sum", lambda a, b: a + b, None))
    average = backend.get_partitioned_state(AggregatingStateDescriptor("avg", Average(), None))
    merging: list[Any] = [items, total, average]
    backend.current_key = "k"
    for index, namespace in enumerate(("w1", "w2", "w3")):
        for state in merging:
            state.set_current_namespace(namespace)
        items.add(namespace)
        total.add(index + 1)
        average.add(index + 1)
    for state in merging:
        state.merge_namespaces("w3", ["w1", "w2"])
    assert items.get() == ["w3", "w1", "w2"]  # target first, then the sources in order
    assert total.get() == 6
    assert average.get() == 2.0
    for state in merging:
        state.set_current_namespace("w1")
    assert items.get() == [] and total.get() is None and average.get() is None


def test_state_is_cached_by_name_and_kinds_cannot_change(new_backend: Factory) -> None:
    backend = new_backend()
    first = backend.get_partitioned_state(ValueStateDescriptor("s", None))
    assert backend.get_partitioned_state(ValueStateDescriptor("s", "other type info")) is first
    with pytest.raises(StateError, match="already registered as a ValueState; it cannot also be a"):
        backend.get_partitioned_state(ListStateDescriptor("s", None))


def test_internal_value_table_reads_writes_and_restores(new_backend: Factory) -> None:
    backend = new_backend()
    backend.register_internal_value_state("_reduce")
    table = backend.value_table("_reduce")
    table["a"] = 1
    table[("t", 1)] = [2]
    assert table.get("a") == 1 and table.get(("t", 1)) == [2]
    assert table.get("missing", "default") == "default"
    assert backend.value_table("_reduce") is table
    assert sorted(backend.keys("_reduce"), key=repr) == ["a", ("t", 1)]
    assert len(table) == 2
    snapshot = backend.snapshot()
    restored = new_backend()
    restored.register_internal_value_state("_reduce")
    restored_table = restored.value_table("_reduce")
    restored.restore([snapshot])
    assert restored.value_table("_reduce") is restored_table
    assert dict(restored_table.items()) == {"a": 1, ("t", 1): [2]}
    with pytest.raises(StateError, match="call register_internal_value_state"):
        backend.value_table("unknown")
    with pytest.raises(StateError, match="reserved by the engine"):
        backend.get_partitioned_state(ValueStateDescriptor("_reduce", None))


def test_apply_to_all_keys_visits_each_key_with_its_state(new_backend: Factory) -> None:
    backend = new_backend()
    descriptor = ValueStateDescriptor("v", None)
    state = backend.get_partitioned_state(descriptor)
    for key in ("a", "b", "c"):
        backend.current_key = key
        state.update(key.upper())
    backend.current_key = "b"
    seen: dict[Any, Any] = {}

    def visit(key: Any, visited: State) -> None:
        assert backend.current_key == key
        seen[key] = visited.value()  # type: ignore[attr-defined]
        visited.update(visited.value() * 2)  # type: ignore[attr-defined]

    backend.apply_to_all_keys(VOID_NAMESPACE, descriptor, visit)
    assert seen == {"a": "A", "b": "B", "c": "C"}
    assert backend.current_key == "b"
    assert state.value() == "BB"


def fill(backend: Backend, keys: range) -> None:
    count = backend.get_partitioned_state(ValueStateDescriptor("count", None))
    items = backend.get_partitioned_state(ListStateDescriptor("items", None))
    seen = backend.get_partitioned_state(MapStateDescriptor("seen", None, None))
    total = backend.get_partitioned_state(
        ReducingStateDescriptor("total", lambda a, b: a + b, None)
    )
    for i in keys:
        backend.current_key = f"key-{i}"
        count.update(i)
        items.add_all([i, i + 1])
        seen.put(i % 3, str(i))
        total.add(i)
        items.set_current_namespace(("w", i % 2))  # type: ignore[attr-defined]
        items.add(-i)
        items.set_current_namespace(VOID_NAMESPACE)  # type: ignore[attr-defined]


def test_snapshot_groups_entries_by_key_group(new_backend: Factory) -> None:
    backend = new_backend()
    fill(backend, range(50))
    snapshot = backend.snapshot()
    assert snapshot.max_parallelism == MAX_P
    assert snapshot.key_group_range == ALL
    assert snapshot.states["items"] == StateMetaInfo(StateKind.LIST)
    assert snapshot.entry_count() == 50 * 5
    for key_group, group in snapshot.entries.items():
        for layout_key, value_bytes in group:
            group_in_key, key_bytes, _ns, name = decode_state_key(layout_key)
            key = deserialize_key(key_bytes)
            assert group_in_key == key_group == assign_to_key_group(key, MAX_P)
            if name == "count":
                assert deserialize(value_bytes) == int(key.split("-")[1])


def test_both_backends_write_the_same_snapshot(clock: FakeClock, rocks: Factory) -> None:
    on_heap, in_rocks = heap(clock)(), rocks()
    fill(on_heap, range(40))
    fill(in_rocks, range(40))
    heap_snapshot, rocks_snapshot = on_heap.snapshot(), in_rocks.snapshot()
    assert rocks_snapshot.states == heap_snapshot.states
    assert contents([rocks_snapshot]) == contents([heap_snapshot])
    # byte-identical entries (maps hold one user key per state here, so no order question)
    assert {k: sorted(g) for k, g in rocks_snapshot.entries.items()} == {
        k: sorted(g) for k, g in heap_snapshot.entries.items()
    }


def test_restore_into_1_then_3_then_2_subtasks_keeps_every_entry_once(
    new_backend: Factory, other_backend: Factory
) -> None:
    original = new_backend()
    fill(original, range(300))
    snapshots = [original.snapshot()]
    expected = contents(snapshots)
    for round_number, parallelism in enumerate((3, 2, 1)):
        factory = other_backend if round_number % 2 == 0 else new_backend
        backends = []
        for index in range(parallelism):
            key_groups = key_group_range_for_operator(MAX_P, parallelism, index)
            backend = factory(key_groups)
            backend.restore(snapshots)
            backends.append(backend)
        snapshots = [KeyedStateSnapshot.from_bytes(b.snapshot().to_bytes()) for b in backends]
        for snapshot, backend in zip(snapshots, backends, strict=True):
            for _name, _ns, key in contents([snapshot]):
                assert assign_to_key_group(key, MAX_P) in backend.key_group_range
        assert contents(snapshots) == expected


def test_restored_state_is_read_through_handles(
    new_backend: Factory, other_backend: Factory
) -> None:
    original = new_backend()
    fill(original, range(10))
    restored = other_backend()
    restored.restore([original.snapshot()])
    items = restored.get_partitioned_state(ListStateDescriptor("items", None))
    seen = restored.get_partitioned_state(MapStateDescriptor("seen", None, None))
    restored.current_key = "key-4"
    assert items.get() == [4, 5]
    items.add(6)  # appended after the restored elements
    assert items.get() == [4, 5, 6]
    assert seen.get(1) == "4"
    items.set_current_namespace(("w", 0))
    assert items.get() == [-4]


def test_restore_rejects_another_max_parallelism(new_backend: Factory) -> None:
    original = new_backend(KeyGroupRange(0, 255), 256)
    fill(original, range(3))
    with pytest.raises(StateMigrationError, match="max parallelism 256 into an operator with max"):
        new_backend().restore([original.snapshot()])


def test_restore_rejects_a_state_of_another_kind(new_backend: Factory) -> None:
    original = new_backend()
    fill(original, range(3))
    snapshot = original.snapshot()
    restored = new_backend()
    restored.get_partitioned_state(ValueStateDescriptor("items", None))
    with pytest.raises(StateMigrationError, match="restored as a ListState"):
        restored.restore([snapshot])
    later = new_backend()
    later.restore([snapshot])
    with pytest.raises(StateMigrationError, match="restored as a ListState, but the job now"):
        later.get_partitioned_state(ValueStateDescriptor("items", None))


def test_unregistered_restored_state_survives_the_next_snapshot(
    new_backend: Factory, other_backend: Factory
) -> None:
    original = new_backend()
    fill(original, range(5))
    restored = other_backend()
    restored.restore([original.snapshot()])
    again = new_backend()
    again.restore([restored.snapshot()])
    assert contents([again.snapshot()]) == contents([original.snapshot()])


def test_snapshot_carries_extra_sections_and_survives_bytes(new_backend: Factory) -> None:
    backend = new_backend()
    fill(backend, range(2))
    snapshot = backend.snapshot(extra={"timers": b"\x00raw"})
    decoded = KeyedStateSnapshot.from_bytes(snapshot.to_bytes())
    assert decoded == snapshot
    assert decoded.extra == {"timers": b"\x00raw"}


def test_snapshot_rejects_keys_outside_the_key_group_range(new_backend: Factory) -> None:
    backend = new_backend(KeyGroupRange(0, 0))
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    key = next(f"k{i}" for i in range(1000) if assign_to_key_group(f"k{i}", MAX_P) != 0)
    backend.current_key = key
    state.update(1)
    with pytest.raises(StateError, match="outside this subtask's"):
        backend.snapshot()


def test_backends_implement_the_backend_protocol(clock: FakeClock, rocks: Factory) -> None:
    in_rocks: RocksDBKeyedStateBackend = rocks()
    on_heap: HeapKeyedStateBackend = heap(clock)()
    for backend in (on_heap, in_rocks):
        checked: KeyedStateBackend = backend  # checked by mypy
        checked.current_key = "k"
        assert checked.get_current_key() == "k"


# ---------------------------------------------------------------------------------------------
# TTL, on both backends
# ---------------------------------------------------------------------------------------------


def test_value_expires_after_ttl(new_backend: Factory, clock: FakeClock) -> None:
    backend = new_backend()
    backend.current_key = "k"
    state = backend.get_partitioned_state(
        with_ttl(ValueStateDescriptor("v", None), ttl_builder().build())
    )
    state.update("x")
    clock.now = TTL - 1
    assert state.value() == "x"
    clock.now = TTL
    assert state.value() is None
    assert backend.keys("v") == []  # removed on read


def test_on_create_and_write_does_not_extend_on_read(
    new_backend: Factory, clock: FakeClock
) -> None:
    backend = new_backend()
    backend.current_key = "k"
    state = backend.get_partitioned_state(
        with_ttl(ValueStateDescriptor("v", None), ttl_builder().build())
    )
    state.update(1)
    clock.now = 90
    assert state.value() == 1
    clock.now = 150
    assert state.value() is None
    state.update(2)
    clock.now = 249
    assert state.value() == 2


def test_on_read_and_write_extends_on_read(new_backend: Factory, clock: FakeClock) -> None:
    backend = new_backend()
    backend.current_key = "k"
    config = ttl_builder().update_ttl_on_read_and_write().build()
    state = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    state.update(1)
    for now in (90, 180, 270):
        clock.now = now
        assert state.value() == 1
    clock.now = 370
    assert state.value() is None


def test_return_expired_if_not_cleaned_up(new_backend: Factory, clock: FakeClock) -> None:
    backend = new_backend()
    backend.current_key = "k"
    config = ttl_builder().return_expired_if_not_cleaned_up().build()
    state = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    state.update("stale")
    clock.now = 500
    assert state.value() == "stale"  # still there, so returned once ...
    assert state.value() is None  # ... and cleaned up by that read


def test_list_elements_expire_individually(new_backend: Factory, clock: FakeClock) -> None:
    backend = new_backend()
    backend.current_key = "k"
    state = backend.get_partitioned_state(
        with_ttl(ListStateDescriptor("l", None), ttl_builder().build())
    )
    assert state.get() == []
    state.add("old")
    clock.now = 50
    state.add_all(["new1", "new2"])
    assert state.get() == ["old", "new1", "new2"]
    clock.now = 120
    assert state.get() == ["new1", "new2"]
    clock.now = 150
    assert state.get() == []
    assert backend.keys("l") == []
    state.update(["a"])
    with pytest.raises(StateError, match="cannot add None"):
        state.add(None)
    clock.now = 200
    state.update([])
    assert state.get() == []


def test_map_entries_expire_individually(new_backend: Factory, clock: FakeClock) -> None:
    backend = new_backend()
    backend.current_key = "k"
    state = backend.get_partitioned_state(
        with_ttl(MapStateDescriptor("m", None, None), ttl_builder().build())
    )
    state.put("a", 1)
    clock.now = 60
    state.put_all({"b": 2})
    assert sorted(state.items()) == [("a", 1), ("b", 2)]
    clock.now = 100
    assert state.get("a") is None
    assert not state.contains("a")
    assert state.contains("b")
    assert state.keys() == ["b"] and state.values() == [2]
    assert not state.is_empty()
    clock.now = 160
    assert state.is_empty()
    assert backend.keys("m") == []
    state.put("c", 3)
    state.remove("c")
    assert state.get("c") is None


def test_map_entry_read_refreshes_with_on_read_and_write(
    new_backend: Factory, clock: FakeClock
) -> None:
    backend = new_backend()
    backend.current_key = "k"
    config = ttl_builder().update_ttl_on_read_and_write().build()
    state = backend.get_partitioned_state(with_ttl(MapStateDescriptor("m", None, None), config))
    state.put("a", 1)
    state.put("b", 2)
    clock.now = 90
    assert state.get("a") == 1
    clock.now = 150
    assert state.items() == [("a", 1)]


def test_reducing_and_aggregating_restart_after_expiry(
    new_backend: Factory, clock: FakeClock
) -> None:
    backend = new_backend()
    backend.current_key = "k"
    total = backend.get_partitioned_state(
        with_ttl(ReducingStateDescriptor("sum", lambda a, b: a + b, None), ttl_builder().build())
    )
    count = backend.get_partitioned_state(
        with_ttl(AggregatingStateDescriptor("count", Count(), None), ttl_builder().build())
    )
    for value in (1, 2):
        total.add(value)
        count.add(value)
    assert total.get() == 3 and count.get() == 2
    clock.now = 100
    assert total.get() is None and count.get() is None
    total.add(10)
    count.add(10)
    clock.now = 150
    total.add(5)
    count.add(5)
    assert total.get() == 15 and count.get() == 2


def test_merging_ttl_namespaces_drops_expired_content(
    new_backend: Factory, clock: FakeClock
) -> None:
    backend = new_backend()
    backend.current_key = "k"
    items: Any = backend.get_partitioned_state(
        with_ttl(ListStateDescriptor("l", None), ttl_builder().build())
    )
    total: Any = backend.get_partitioned_state(
        with_ttl(ReducingStateDescriptor("r", lambda a, b: a + b, None), ttl_builder().build())
    )
    for state in (items, total):
        state.set_current_namespace("w1")
    items.add("expired")
    total.add(1)
    clock.now = 60
    for state in (items, total):
        state.set_current_namespace("w2")
    items.add("alive")
    total.add(10)
    clock.now = 120
    for state in (items, total):
        state.merge_namespaces("w3", ["w1", "w2"])
        state.set_current_namespace("w3")
    assert items.get() == ["alive"]
    assert total.get() == 10


def test_full_snapshot_cleanup_leaves_expired_entries_out(
    new_backend: Factory, clock: FakeClock
) -> None:
    backend = new_backend()
    backend.current_key = "k"
    cleaned = backend.get_partitioned_state(
        with_ttl(
            ListStateDescriptor("cleaned", None), ttl_builder().cleanup_full_snapshot().build()
        )
    )
    kept = backend.get_partitioned_state(
        with_ttl(ListStateDescriptor("kept", None), ttl_builder().build())
    )
    for state in (cleaned, kept):
        state.add("old")
    clock.now = 60
    for state in (cleaned, kept):
        state.add("new")
    backend.current_key = "other"
    cleaned.add("expired later")
    kept.add("expired later")
    clock.now = 120
    snapshot = backend.snapshot()
    assert snapshot.states["cleaned"] == StateMetaInfo(StateKind.LIST, TTL)
    values: dict[str, list[Any]] = {"cleaned": [], "kept": []}
    for group in snapshot.entries.values():
        for layout_key, value_bytes in group:
            name = decode_state_key(layout_key)[3]
            values[name].extend(element for element, _ts in deserialize(value_bytes))
    assert sorted(values["cleaned"]) == ["expired later", "new"]
    assert sorted(values["kept"]) == ["expired later", "new", "old"]
    backend.current_key = "k"
    clock.now = 0  # the live state still has the old element (no cleanup requested)
    assert kept.get() == ["old", "new"]


def test_ttl_state_restores_with_its_timestamps(
    new_backend: Factory, other_backend: Factory, clock: FakeClock
) -> None:
    backend = new_backend()
    backend.current_key = "k"
    descriptor = with_ttl(ValueStateDescriptor("v", None), ttl_builder().build())
    backend.get_partitioned_state(descriptor).update("x")
    restored = other_backend()
    restored.restore([backend.snapshot()])
    state = restored.get_partitioned_state(descriptor)
    restored.current_key = "k"
    clock.now = 99
    assert state.value() == "x"
    clock.now = 100
    assert state.value() is None


def test_turning_ttl_on_or_off_converts_restored_values(
    new_backend: Factory, other_backend: Factory, clock: FakeClock
) -> None:
    backend = new_backend()
    backend.current_key = "k"
    plain_list = backend.get_partitioned_state(ListStateDescriptor("l", None))
    plain_map = backend.get_partitioned_state(MapStateDescriptor("m", None, None))
    plain_list.add("a")
    plain_map.put("u", 1)
    timed = backend.get_partitioned_state(
        with_ttl(ValueStateDescriptor("v", None), ttl_builder().build())
    )
    timed.update("t")
    snapshot = backend.snapshot()

    first = other_backend()
    # registered before restore
    timed_list = first.get_partitioned_state(
        with_ttl(ListStateDescriptor("l", None), ttl_builder().build())
    )
    first.restore([snapshot])
    # registered after restore
    timed_map = first.get_partitioned_state(
        with_ttl(MapStateDescriptor("m", None, None), ttl_builder().build())
    )
    plain_value = first.get_partitioned_state(ValueStateDescriptor("v", None))
    first.current_key = "k"
    clock.now = 50
    assert timed_list.get() == ["a"]
    assert timed_map.get("u") == 1
    assert plain_value.value() == "t"
    clock.now = 500
    assert plain_value.value() == "t"
    assert timed_list.get() == [] and timed_map.get("u") is None  # restored at now=0


# ---------------------------------------------------------------------------------------------
# RocksDB specifics: layout, value table, TTL cleanup, directory, errors
# ---------------------------------------------------------------------------------------------


def raw_entries(backend: RocksDBKeyedStateBackend) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in backend.db.items() if not k.startswith(b"\xff\xff")]


def test_rocksdb_keys_follow_the_layout(rocks: Factory) -> None:
    backend = rocks()
    value = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    items = backend.get_partitioned_state(ListStateDescriptor("l", None))
    seen = backend.get_partitioned_state(MapStateDescriptor("m", None, None))
    backend.current_key = "sensor-1"
    value.update(1)
    items.set_current_namespace(("w", 3))
    items.add_all(["a", "b"])
    seen.put("user", 2)
    key_group = assign_to_key_group("sensor-1", MAX_P)
    key_bytes = serialize_key("sensor-1")
    layout_v = encode_state_key(key_group, key_bytes, b"", "v")
    layout_l = encode_state_key(key_group, key_bytes, serialize_key(("w", 3)), "l")
    layout_m = encode_state_key(key_group, key_bytes, b"", "m")
    keys = [k for k, _ in raw_entries(backend)]
    assert layout_v in keys
    assert [k for k in keys if k.startswith(layout_l)] == sorted(
        k for k in keys if k.startswith(layout_l + b"\x00")
    )
    assert len([k for k in keys if k.startswith(layout_l + b"\x00")]) == 2
    assert layout_m + b"\x00" + serialize_key("user") in keys
    assert all(k[:2] == key_group.to_bytes(2, "big") for k in keys)


def test_rocksdb_rejects_nul_in_state_names(rocks: Factory) -> None:
    with pytest.raises(StateError, match="NUL"):
        rocks().get_partitioned_state(ValueStateDescriptor("a\x00b", None))


def test_value_table_returns_copies_and_writes_through(rocks: Factory) -> None:
    backend = rocks()
    backend.register_internal_value_state("_reduce")
    table = backend.value_table("_reduce")
    table["k"] = [1]
    got = table.get("k")
    got.append("mutated after reading")
    assert table["k"] == [1]
    for i in range(100):
        table[i] = table.get(i, 0) + i
        table[i] = table.get(i, 0) + 1
    snapshot = contents([backend.snapshot()])
    assert snapshot[("_reduce", VOID_NAMESPACE, 99)] == 100
    assert snapshot[("_reduce", VOID_NAMESPACE, "k")] == [1]
    del table["k"]
    assert "k" not in table and table.get("k") is None
    with pytest.raises(KeyError):
        del table["k"]
    assert len(table) == 100


def test_value_table_sees_restored_values_after_caching(rocks: Factory) -> None:
    backend = rocks()
    backend.register_internal_value_state("_reduce")
    table = backend.value_table("_reduce")
    assert table.get("a") is None  # cached as absent
    table["b"] = 1
    source = rocks()
    source.register_internal_value_state("_reduce")
    source.value_table("_reduce")["a"] = 5
    source.value_table("_reduce")["b"] = 6
    backend.restore([source.snapshot()])
    assert table.get("a") == 5 and table.get("b") == 6


def test_equal_keys_of_different_types_stay_apart_like_their_bytes(rocks: Factory) -> None:
    backend = rocks()
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    backend.current_key = 1
    state.update("int")
    backend.current_key = 1.0
    assert state.value() is None  # RocksDB compares serialized keys: 1 and 1.0 differ
    backend.current_key = 1
    assert state.value() == "int"


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**63,
        "",
        "abc",
        "é" * 63,
        "x" * 127,
        "x" * 128,
        1.5,
        None,
        (1, "a"),
        ("sensor", -5, "é"),
        (),
        ((1,),),
        (1, 2.5),
        ("x" * 128, 1),
        (2**63, "a"),
        [1],
        {"k": 2},
        b"\x00",
    ],
    ids=repr,
)
def test_fast_value_codec_is_byte_identical_to_the_serializer(value: Any) -> None:
    assert encode_value(value) == serialize(value)
    decoded = decode_value(serialize(value))
    assert decoded == value and type(decoded) is type(value)


def test_fast_value_codec_leaves_malformed_bytes_to_the_serializer() -> None:
    with pytest.raises(StateError, match="trailing bytes"):
        decode_value(serialize(("a", 1)) + b"x")
    with pytest.raises(StateError, match="corrupt"):
        decode_value(serialize(("a", 1))[:-3])


def test_cached_tuple_keys_never_mix_types(rocks: Factory) -> None:
    backend = rocks()
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    backend.register_internal_value_state("_reduce")
    table = backend.value_table("_reduce")
    for key, label in (((1, "a"), "ints"), ((1.0, "a"), "floats"), ((True, "a"), "bools")):
        backend.current_key = key
        state.update(label)
        table[key] = label
    for key, label in (((1, "a"), "ints"), ((1.0, "a"), "floats"), ((True, "a"), "bools")):
        backend.current_key = key
        assert state.value() == label
        assert table[key] == label


def test_a_disposed_backend_says_so(rocks: Factory) -> None:
    backend = rocks()
    backend.dispose()
    with pytest.raises(StateError, match="was disposed"):
        backend.snapshot()
    with pytest.raises(StateError, match="was disposed"):
        backend.restore([])


def test_background_cleanup_deletes_expired_entries_at_snapshot(
    rocks: Factory, clock: FakeClock
) -> None:
    backend = rocks()
    config = StateTtlConfig.new_builder(TTL).build()  # background cleanup is on by default
    state = backend.get_partitioned_state(with_ttl(MapStateDescriptor("m", None, None), config))
    backend.current_key = "old"
    state.put("x", 1)
    clock.now = 60
    backend.current_key = "new"
    state.put("y", 2)
    clock.now = 120
    snapshot = backend.snapshot()
    assert [key for _, _, key in contents([snapshot])] == ["new"]
    assert backend.keys("m") == ["new"]  # deleted from the database, not only left out


def test_compaction_filter_cleanup_deletes_expired_entries_at_snapshot(
    rocks: Factory, clock: FakeClock
) -> None:
    backend = rocks()
    config = ttl_builder().cleanup_in_rocksdb_compact_filter(1000).build()
    state = backend.get_partitioned_state(with_ttl(ValueStateDescriptor("v", None), config))
    backend.current_key = "old"
    state.update(1)
    clock.now = 150
    backend.snapshot()
    assert backend.keys("v") == []


def test_list_order_survives_restore_and_later_appends(rocks: Factory) -> None:
    backend = rocks()
    items = backend.get_partitioned_state(ListStateDescriptor("l", None))
    backend.current_key = "k"
    for i in range(50):
        items.add(i)
    restored = rocks()
    restored.restore([backend.snapshot()])
    again = restored.get_partitioned_state(ListStateDescriptor("l", None))
    restored.current_key = "k"
    again.add(50)
    assert again.get() == list(range(51))


def test_working_directory_is_named_after_the_scope(tmp_path: Path, clock: FakeClock) -> None:
    backend = RocksDBKeyedStateBackend(MAX_P, ALL, "job 1/my op:uid/3", tmp_path)
    try:
        assert backend.directory.parent == tmp_path
        assert backend.directory.name.startswith("job_1_my_op_uid_3-")
        assert (backend.directory / "db" / "CURRENT").exists()
    finally:
        backend.dispose()


def test_default_directory_is_under_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    backend = RocksDBKeyedStateBackend(MAX_P, ALL, "j/o/0")
    try:
        assert backend.directory.parent == tmp_path / "flinklet-rocksdb"
    finally:
        backend.dispose()


def test_dispose_deletes_only_its_own_directory(tmp_path: Path) -> None:
    neighbour = tmp_path / "neighbour"
    neighbour.mkdir()
    (tmp_path / "file.txt").write_text("keep")
    first = RocksDBKeyedStateBackend(MAX_P, ALL, "a", tmp_path)
    second = RocksDBKeyedStateBackend(MAX_P, ALL, "a", tmp_path)
    assert first.directory != second.directory
    state = first.get_partitioned_state(ValueStateDescriptor("v", None))
    first.current_key = "k"
    state.update(1)
    first.dispose()
    assert not first.directory.exists()
    assert second.directory.exists() and neighbour.exists()
    assert (tmp_path / "file.txt").read_text() == "keep"
    assert first.current_key is NO_KEY
    second.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "neighbour"]


def test_an_unusable_local_dir_is_a_state_error_naming_it(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "occupied"
    not_a_dir.write_text("a file where the directory should be")
    with pytest.raises(StateError) as raised:
        RocksDBKeyedStateBackend(MAX_P, ALL, "j/o/0", not_a_dir / "rocks")
    message = str(raised.value)
    assert str(not_a_dir / "rocks") in message
    assert "disk is full or the directory is not writable" in message
    assert "state.backend.rocksdb.localdir" in message


class FullDisk:
    """A database whose every write fails as RocksDB does on a full disk."""

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise Exception("IO error: No space left on device: While appending to file: 000009.sst")

    put = delete = write = _fail

    def get(self, key: bytes, default: Any = None) -> Any:
        return None


def test_a_full_disk_is_a_state_error_saying_what_to_do(rocks: Factory) -> None:
    backend = rocks()
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    backend.register_internal_value_state("_reduce")
    table = backend.value_table("_reduce")
    state.rebind(FullDisk())
    table.rebind(FullDisk())
    backend.current_key = "k"
    writes: list[Callable[[], None]] = [
        lambda: state.update(1),
        lambda: table.__setitem__("k", 1),
    ]
    for write in writes:
        with pytest.raises(StateError) as raised:
            write()
        message = str(raised.value)
        assert str(backend.directory) in message
        assert "No space left on device" in message
        assert "disk is full or the directory is not writable" in message
        assert "state.backend.rocksdb.localdir" in message
        assert isinstance(raised.value.__cause__, Exception)


# ---------------------------------------------------------------------------------------------
# Incremental checkpoints
# ---------------------------------------------------------------------------------------------


class Storage:
    """Checkpoint storage of shared SST files (a dict of bytes) for the tests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def upload(self, new_files: dict[str, Path]) -> None:
        for name, path in new_files.items():
            assert name not in self.files, f"{name} uploaded twice"
            self.files[name] = path.read_bytes()

    def fetch(self, name: str) -> bytes:
        return self.files[name]


def incremental(
    backend: RocksDBKeyedStateBackend, storage: Storage, previous: set[str], checkpoint_id: int
) -> tuple[IncrementalKeyedStateSnapshot, list[str]]:
    manifest, new_files, all_files = backend.snapshot_incremental(previous, checkpoint_id)
    storage.upload(new_files)
    assert set(all_files) == set(manifest.sst_files)
    assert set(new_files) == set(all_files) - previous
    manifest = IncrementalKeyedStateSnapshot.from_bytes(manifest.to_bytes())
    return manifest, all_files


def test_incremental_checkpoints_upload_only_new_sst_files(rocks: Factory) -> None:
    backend = rocks()
    storage = Storage()
    fill(backend, range(100))
    first, first_files = incremental(backend, storage, set(), 1)
    assert first_files and all(name.endswith(".sst") for name in first_files)
    assert "CURRENT" in first.private_files
    fill(backend, range(100, 150))
    second, second_files = incremental(backend, storage, set(first_files), 2)
    assert set(first_files) < set(second_files)  # old files are referenced, not copied
    assert len(storage.files) == len(second_files)
    assert second.states == backend.snapshot().states


def test_local_checkpoint_files_are_dropped_when_a_later_checkpoint_completes(
    rocks: Factory,
) -> None:
    backend = rocks()
    fill(backend, range(10))
    _, first_new, _ = backend.snapshot_incremental(set(), 1)
    _, second_new, _ = backend.snapshot_incremental(set(), 2)
    assert all(path.exists() for path in [*first_new.values(), *second_new.values()])
    backend.notify_checkpoint_complete(2)
    assert not (backend.directory / "chk-1").exists()
    assert all(path.exists() for path in second_new.values())
    backend.notify_checkpoint_aborted(2)
    assert not (backend.directory / "chk-2").exists()


def test_incremental_restore_with_the_same_key_groups_reuses_the_files(rocks: Factory) -> None:
    backend = rocks()
    storage = Storage()
    fill(backend, range(100))
    manifest, files = incremental(backend, storage, set(), 1)
    expected = contents([backend.snapshot()])

    restored = rocks()
    restored.restore_incremental([manifest], storage.fetch)
    assert contents([restored.snapshot()]) == expected
    items = restored.get_partitioned_state(ListStateDescriptor("items", None))
    restored.current_key = "key-7"
    items.add(99)
    assert items.get() == [7, 8, 99]
    # files of the restored checkpoint keep their shared names: nothing is uploaded again
    _, new_files, all_files = restored.snapshot_incremental(set(files), 2)
    assert set(files) <= set(all_files)
    assert not set(new_files) & set(files)


def test_incremental_restore_at_another_parallelism_copies_key_groups(rocks: Factory) -> None:
    storage = Storage()
    manifests = []
    originals = []
    for index in range(2):
        backend = rocks(key_group_range_for_operator(MAX_P, 2, index))
        for i in range(200):
            if assign_to_key_group(f"key-{i}", MAX_P) in backend.key_group_range:
                fill(backend, range(i, i + 1))
        manifests.append(incremental(backend, storage, set(), 1)[0])
        originals.append(backend.snapshot())
    expected = contents(originals)
    rescaled = [rocks(key_group_range_for_operator(MAX_P, 3, i)) for i in range(3)]
    for backend in rescaled:
        backend.restore_incremental(manifests, storage.fetch)
    assert contents([backend.snapshot() for backend in rescaled]) == expected


def test_an_incremental_checkpoint_converts_to_the_canonical_snapshot(
    rocks: Factory, clock: FakeClock, tmp_path: Path
) -> None:
    backend = rocks()
    storage = Storage()
    fill(backend, range(60))
    manifest, _ = incremental(backend, storage, set(), 1)
    canonical = incremental_to_keyed_snapshot(manifest, storage.fetch, tmp_path)
    assert canonical.states == manifest.states
    assert contents([canonical]) == contents([backend.snapshot()])
    on_heap = heap(clock)()
    on_heap.restore([canonical])
    assert contents([on_heap.snapshot()]) == contents([canonical])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("flinklet-rocksdb-")] == []


def test_incremental_restore_from_local_paths_hard_links(rocks: Factory) -> None:
    backend = rocks()
    fill(backend, range(20))
    manifest, new_files, _ = backend.snapshot_incremental(set(), 1)
    restored = rocks()
    restored.restore_incremental([manifest], lambda name: new_files[name])
    assert contents([restored.snapshot()]) == contents([backend.snapshot()])
    local = next(iter(manifest.sst_files.values()))[0]
    assert os.stat(restored.directory / "db" / local).st_nlink >= 2
