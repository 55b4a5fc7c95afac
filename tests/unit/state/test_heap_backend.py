"""The hashmap keyed-state backend: scoping, each state kind, snapshots and rescaling."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from flinklet._private.state.backend import (
    NO_KEY,
    VOID_NAMESPACE,
    KeyedStateBackend,
    KeyedStateSnapshot,
    StateKind,
    StateMetaInfo,
)
from flinklet._private.state.heap import HeapKeyedStateBackend, HeapValueState
from flinklet._private.state.keygroups import (
    KeyGroupRange,
    assign_to_key_group,
    key_group_range_for_operator,
)
from flinklet._private.state.layout import decode_state_key
from flinklet._private.state.serializers import deserialize, deserialize_key
from flinklet.datastream.state import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    State,
    ValueStateDescriptor,
)
from flinklet.errors import StateError, StateMigrationError

MAX_P = 128


class Average:
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: int, accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + value, accumulator[1] + 1)

    def get_result(self, accumulator: tuple[int, int]) -> float:
        return accumulator[0] / accumulator[1]

    def merge(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        return (a[0] + b[0], a[1] + b[1])


class Max:
    def reduce(self, a: int, b: int) -> int:
        return max(a, b)


def new_backend(key_groups: KeyGroupRange | None = None) -> HeapKeyedStateBackend:
    return HeapKeyedStateBackend(MAX_P, key_groups or KeyGroupRange(0, MAX_P - 1))


def test_value_state_is_scoped_per_key() -> None:
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
def test_access_outside_a_keyed_context_raises(descriptor: Any) -> None:
    backend = new_backend()
    state = backend.get_partitioned_state(descriptor)
    with pytest.raises(StateError, match=f"State '{descriptor.name}' accessed outside a keyed"):
        state.clear()
    with pytest.raises(StateError, match="only available on a KeyedStream"):
        READS[descriptor.name](state)
    with pytest.raises(StateError, match="there is no current key"):
        backend.get_current_key()


def test_namespaces_separate_state_of_the_same_key() -> None:
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
    backend.set_current_namespace("buffer", VOID_NAMESPACE)
    assert buffer.get() == ["global"]
    # the emptied window's table is dropped instead of leaking
    assert ("window", 0) not in backend._tables["buffer"]


def test_list_state() -> None:
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
        items.update(None)  # type: ignore[arg-type]
    assert items.get() == []


def test_map_state() -> None:
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


def test_reducing_state() -> None:
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


def test_aggregating_state() -> None:
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


def test_merge_namespaces() -> None:
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
    assert sorted(items.get()) == ["w1", "w2", "w3"]
    assert total.get() == 6
    assert average.get() == 2.0
    for state in merging:
        state.set_current_namespace("w1")
    assert items.get() == [] and total.get() is None and average.get() is None


def test_state_is_cached_by_name_and_kinds_cannot_change() -> None:
    backend = new_backend()
    first = backend.get_partitioned_state(ValueStateDescriptor("s", None))
    assert backend.get_partitioned_state(ValueStateDescriptor("s", "other type info")) is first
    with pytest.raises(StateError, match="already registered as a ValueState; it cannot also be a"):
        backend.get_partitioned_state(ListStateDescriptor("s", None))


def test_internal_value_table_is_the_raw_dict() -> None:
    backend = new_backend()
    backend.register_internal_value_state("_reduce")
    table = backend.value_table("_reduce")
    assert isinstance(table, dict)
    table["a"] = 1
    table["b"] = 2
    assert backend.value_table("_reduce") is table
    assert sorted(backend.keys("_reduce")) == ["a", "b"]
    snapshot = backend.snapshot()
    restored = new_backend()
    restored.register_internal_value_state("_reduce")
    restored_table = restored.value_table("_reduce")
    restored.restore([snapshot])
    assert restored.value_table("_reduce") is restored_table
    assert restored_table == {"a": 1, "b": 2}
    with pytest.raises(StateError, match="call register_internal_value_state"):
        backend.value_table("unknown")
    with pytest.raises(StateError, match="reserved by the engine"):
        backend.get_partitioned_state(ValueStateDescriptor("_reduce", None))


def test_apply_to_all_keys_visits_each_key_with_its_state() -> None:
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


def fill(backend: HeapKeyedStateBackend, keys: range) -> None:
    count = backend.get_partitioned_state(ValueStateDescriptor("count", None))
    items = backend.get_partitioned_state(ListStateDescriptor("items", None))
    seen = backend.get_partitioned_state(MapStateDescriptor("seen", None, None))
    for i in keys:
        backend.current_key = f"key-{i}"
        count.update(i)
        items.add_all([i, i + 1])
        seen.put(i % 3, str(i))
        items.set_current_namespace(("w", i % 2))  # type: ignore[attr-defined]
        items.add(-i)
        items.set_current_namespace(VOID_NAMESPACE)  # type: ignore[attr-defined]


def contents(backends: list[HeapKeyedStateBackend]) -> dict[tuple[str, Any, Any], Any]:
    """Every (state, namespace, key) -> value across ``backends``; no entry may repeat."""
    result: dict[tuple[str, Any, Any], Any] = {}
    for backend in backends:
        for name, table in backend._tables.items():
            for namespace, ns_table in table.items():
                for key, value in ns_table.items():
                    entry = (name, namespace, key)
                    assert entry not in result, f"{entry} restored twice"
                    result[entry] = value
    return result


def test_snapshot_groups_entries_by_key_group() -> None:
    backend = new_backend()
    fill(backend, range(50))
    snapshot = backend.snapshot()
    assert snapshot.max_parallelism == MAX_P
    assert snapshot.key_group_range == KeyGroupRange(0, MAX_P - 1)
    assert snapshot.states["items"] == StateMetaInfo(StateKind.LIST)
    assert snapshot.entry_count() == 50 * 4
    for key_group, group in snapshot.entries.items():
        for layout_key, value_bytes in group:
            group_in_key, key_bytes, _ns, name = decode_state_key(layout_key)
            key = deserialize_key(key_bytes)
            assert group_in_key == key_group == assign_to_key_group(key, MAX_P)
            if name == "count":
                assert deserialize(value_bytes) == int(key.split("-")[1])


def test_restore_into_1_then_3_then_2_subtasks_keeps_every_entry_once() -> None:
    original = new_backend()
    fill(original, range(300))
    expected = contents([original])
    snapshots = [original.snapshot()]
    for parallelism in (3, 2, 1):
        backends = []
        for index in range(parallelism):
            key_groups = key_group_range_for_operator(MAX_P, parallelism, index)
            backend = new_backend(key_groups)
            backend.restore(snapshots)
            for name, _ns, key in contents([backend]):
                assert assign_to_key_group(key, MAX_P) in key_groups, name
            backends.append(backend)
        assert contents(backends) == expected
        snapshots = [KeyedStateSnapshot.from_bytes(b.snapshot().to_bytes()) for b in backends]


def test_restored_state_is_read_through_handles() -> None:
    original = new_backend()
    fill(original, range(10))
    restored = new_backend()
    restored.restore([original.snapshot()])
    items = restored.get_partitioned_state(ListStateDescriptor("items", None))
    seen = restored.get_partitioned_state(MapStateDescriptor("seen", None, None))
    restored.current_key = "key-4"
    assert items.get() == [4, 5]
    assert seen.get(1) == "4"
    items.set_current_namespace(("w", 0))  # type: ignore[attr-defined]
    assert items.get() == [-4]


def test_restore_rejects_another_max_parallelism() -> None:
    original = HeapKeyedStateBackend(256, KeyGroupRange(0, 255))
    fill(original, range(3))
    with pytest.raises(StateMigrationError, match="max parallelism 256 into an operator with max"):
        new_backend().restore([original.snapshot()])


def test_restore_rejects_a_state_of_another_kind() -> None:
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


def test_unregistered_restored_state_survives_the_next_snapshot() -> None:
    original = new_backend()
    fill(original, range(5))
    restored = new_backend()
    restored.restore([original.snapshot()])
    assert contents([restored]) == contents([original])
    again = new_backend()
    again.restore([restored.snapshot()])
    assert contents([again]) == contents([original])


def test_snapshot_carries_extra_sections_and_survives_bytes() -> None:
    backend = new_backend()
    fill(backend, range(2))
    snapshot = backend.snapshot(extra={"timers": b"\x00raw"})
    decoded = KeyedStateSnapshot.from_bytes(snapshot.to_bytes())
    assert decoded == snapshot
    assert decoded.extra == {"timers": b"\x00raw"}


def test_snapshot_rejects_keys_outside_the_key_group_range() -> None:
    backend = new_backend(KeyGroupRange(0, 0))
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    key = next(f"k{i}" for i in range(1000) if assign_to_key_group(f"k{i}", MAX_P) != 0)
    backend.current_key = key
    state.update(1)
    with pytest.raises(StateError, match="outside this subtask's"):
        backend.snapshot()


def test_plain_states_are_not_ttl_states() -> None:
    backend = new_backend()
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    assert type(state) is HeapValueState


def test_dispose_forgets_everything() -> None:
    backend = new_backend()
    fill(backend, range(3))
    backend.dispose()
    assert backend.current_key is NO_KEY
    assert backend.snapshot().entries == {}


def test_heap_backend_implements_the_backend_protocol() -> None:
    backend: KeyedStateBackend = new_backend()  # checked by mypy
    backend.current_key = "k"
    assert backend.get_current_key() == "k"


def test_sentinels_survive_pickling() -> None:
    assert pickle.loads(pickle.dumps(VOID_NAMESPACE)) is VOID_NAMESPACE
    assert pickle.loads(pickle.dumps(NO_KEY)) is NO_KEY
