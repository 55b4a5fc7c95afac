"""The fast keyed-snapshot decoder and the heap backend's restore that uses it."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.state.test_heap_snapshots import MAX_P, backend, fill_mixed

from flinklet._private.state.backend import NO_KEY, VOID_NAMESPACE, KeyedStateSnapshot
from flinklet._private.state.heap import HeapKeyedStateBackend
from flinklet._private.state.keygroups import KeyGroupRange, assign_to_key_group
from flinklet._private.state.serializers import deserialize, serialize
from flinklet._private.state.snapshot_decoding import parse_keyed_snapshot
from flinklet.datastream.state import ListStateDescriptor, ValueStateDescriptor
from flinklet.errors import StateError


def filled(clock: list[int] | None = None) -> HeapKeyedStateBackend:
    """``fill_mixed`` plus entries whose lengths need two-byte varints."""
    b = backend("sync", clock)
    fill_mixed(b)
    long_values = b.get_partitioned_state(ValueStateDescriptor("long", None))
    for key in ("k" * 300, 5, ("tuple", "ü" * 100)):
        b.current_key = key
        long_values.update("v" * 500)
    b.current_key = NO_KEY
    return b


def tables(b: HeapKeyedStateBackend) -> dict[str, dict[Any, dict[Any, Any]]]:
    return {
        name: {ns: dict(t) for ns, t in table.items() if t} for name, table in b._tables.items()
    }


def test_the_fast_parse_equals_the_generic_decoder() -> None:
    data = filled().snapshot_bytes({"timers": b"\x00" * 300, "other": b""})[0]
    parsed = parse_keyed_snapshot(data)
    assert parsed is not None
    assert parsed == deserialize(data)
    assert len(parsed[5]) > 1  # several key groups
    assert sum(len(group) for group in parsed[5].values()) == 13 * 5 + 3


def test_restore_gives_back_every_state_key_namespace_and_value() -> None:
    clock = [1_000]
    original = filled(clock)
    data = original.snapshot_bytes({"timers": b"\x01"})[0]
    restored = backend("sync", clock)
    snapshot = KeyedStateSnapshot.from_bytes(data)
    assert snapshot.extra == {"timers": b"\x01"}
    restored.restore([snapshot])
    assert tables(restored) == tables(original)
    # and it snapshots to the very same bytes
    assert restored.snapshot_bytes({"timers": b"\x01"})[0] == data


def test_a_rescaled_restore_keeps_only_its_key_groups() -> None:
    original = backend("sync")
    state = original.get_partitioned_state(ValueStateDescriptor("v", None))
    keys: list[Any] = [*range(-500, 500), *(f"key-{i}" for i in range(200)), 2**70]
    for key in keys:
        original.current_key = key
        state.update(key if isinstance(key, int) else len(key))
    data = original.snapshot_bytes()[0]
    half = KeyGroupRange(0, MAX_P // 2 - 1)
    restored = HeapKeyedStateBackend(MAX_P, half, snapshot_mode="sync")
    restored.restore([KeyedStateSnapshot.from_bytes(data)])
    expected = {
        k: (k if isinstance(k, int) else len(k))
        for k in keys
        if assign_to_key_group(k, MAX_P) in half
    }
    assert restored._tables["v"][VOID_NAMESPACE] == expected
    assert 0 < len(expected) < len(keys)


def test_list_state_and_non_int_values_take_the_generic_value_path() -> None:
    original = backend("sync")
    items = original.get_partitioned_state(ListStateDescriptor("items", None))
    for key in range(50):
        original.current_key = key
        items.add(key)
        items.add(float(key))
    restored = backend("sync")
    restored.restore([KeyedStateSnapshot.from_bytes(original.snapshot_bytes()[0])])
    assert restored._tables["items"][VOID_NAMESPACE] == {k: [k, float(k)] for k in range(50)}


@pytest.mark.parametrize("cut", [1, 3, 10, 40, 200, -300, -2, -1])
def test_truncated_bytes_fall_back_to_the_generic_error(cut: int) -> None:
    data = filled().snapshot_bytes()[0]
    broken = data[:cut]
    assert parse_keyed_snapshot(broken) is None
    with pytest.raises(StateError, match=r"corrupt|too short|not a Flinklet"):
        KeyedStateSnapshot.from_bytes(broken)


def test_trailing_or_altered_bytes_are_not_parsed_as_a_snapshot() -> None:
    data = filled().snapshot_bytes()[0]
    assert parse_keyed_snapshot(data + b"\x00") is None
    with pytest.raises(StateError, match="trailing"):
        KeyedStateSnapshot.from_bytes(data + b"\x00")
    # an entry that is not a (bytes, bytes) pair: the generic decoder reads it, and the
    # payload is still checked as usual
    other = serialize(("keyed", 1, MAX_P, 0, MAX_P - 1, {3: [("a", "b")]}, {}, {}))
    assert parse_keyed_snapshot(other) is None
    assert deserialize(other)[5] == {3: [("a", "b")]}
    assert parse_keyed_snapshot(serialize(("not", "a", "snapshot"))) is None
