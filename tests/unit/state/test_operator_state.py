"""Operator state: list, union list and broadcast state, redistributed 1 -> 3 -> 2."""

from __future__ import annotations

from typing import Any

import pytest

from flinklet._private.state.backend import (
    OperatorStateBackend,
    OperatorStateMode,
    OperatorStateSnapshot,
)
from flinklet.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    ReadOnlyBroadcastState,
    ValueStateDescriptor,
)
from flinklet.errors import StateError, StateMigrationError

OFFSETS = ListStateDescriptor("offsets", None)
SEEN = ListStateDescriptor("seen", None)
RULES = MapStateDescriptor("rules", None, None)


def rescale(
    snapshots: list[OperatorStateSnapshot], parallelism: int, register_first: bool = False
) -> list[OperatorStateBackend]:
    backends = []
    for index in range(parallelism):
        backend = OperatorStateBackend()
        if register_first:
            backend.get_list_state(OFFSETS)
        backend.restore(snapshots, index, parallelism)
        backends.append(backend)
    return backends


def lists(backends: list[OperatorStateBackend], union: bool = False) -> list[list[Any]]:
    if union:
        return [list(b.get_union_list_state(SEEN).get()) for b in backends]
    return [list(b.get_list_state(OFFSETS).get()) for b in backends]


def test_split_list_state_is_cut_into_contiguous_chunks_1_to_3_to_2() -> None:
    single = OperatorStateBackend()
    single.get_list_state(OFFSETS).update(list(range(10)))
    three = rescale([single.snapshot()], 3)
    assert lists(three) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    two = rescale([b.snapshot() for b in three], 2, register_first=True)
    assert lists(two) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_split_with_fewer_elements_than_subtasks() -> None:
    single = OperatorStateBackend()
    single.get_list_state(OFFSETS).add("only")
    assert lists(rescale([single.snapshot()], 3)) == [["only"], [], []]


def test_union_list_state_goes_whole_to_every_subtask_1_to_3_to_2() -> None:
    single = OperatorStateBackend()
    single.get_union_list_state(SEEN).add_all(["a", "b"])
    three = rescale([single.snapshot()], 3)
    assert lists(three, union=True) == [["a", "b"]] * 3
    three[1].get_union_list_state(SEEN).add("c")
    two = rescale([b.snapshot() for b in three], 2)
    expected = ["a", "b", "a", "b", "c", "a", "b"]
    assert lists(two, union=True) == [expected, expected]


def test_broadcast_state_is_copied_to_every_subtask_1_to_3_to_2() -> None:
    single = OperatorStateBackend()
    rules = single.get_broadcast_state(RULES)
    rules.put("r1", {"limit": 5})
    rules.put_all({"r2": None})
    three = rescale([single.snapshot()], 3)
    for backend in three:
        assert dict(backend.get_broadcast_state(RULES).items()) == {
            "r1": {"limit": 5},
            "r2": None,
        }
    three[0].get_broadcast_state(RULES).put("r3", 3)
    three[2].get_broadcast_state(RULES).put("other", 0)
    two = rescale([b.snapshot() for b in three], 2)
    for backend in two:
        assert sorted(backend.get_broadcast_state(RULES).keys()) == ["r1", "r2", "r3"]


def test_broadcast_state_operations_and_read_only_view() -> None:
    backend = OperatorStateBackend()
    state = backend.get_broadcast_state(RULES)
    view = backend.get_read_only_broadcast_state(RULES)
    assert isinstance(view, ReadOnlyBroadcastState)
    assert not hasattr(view, "put") and not hasattr(view, "clear")
    assert view.is_empty()
    state["a"] = 1
    state.put("b", 2)
    assert view.get("a") == 1 and view["b"] == 2 and "a" in view and view.contains("b")
    assert sorted(view) == ["a", "b"] and sorted(view.values()) == [1, 2]
    del state["a"]
    state.remove("missing")
    assert view.keys() == ["b"]
    state.clear()
    assert view.is_empty()
    assert backend.get_read_only_broadcast_state(RULES) is view


def test_list_state_operations() -> None:
    state = OperatorStateBackend().get_list_state(OFFSETS)
    assert state.get() == []
    state.add(1)
    state.add_all([2, 3])
    got = state.get()
    assert got == [1, 2, 3]
    assert isinstance(got, list)
    got.append(99)
    assert state.get() == [1, 2, 3]
    with pytest.raises(StateError, match="cannot add None"):
        state.add(None)
    with pytest.raises(StateError, match="cannot add None"):
        state.update([1, None])
    state.update([])
    assert state.get() == []
    state.add(5)
    state.clear()
    assert state.get() == []


def test_registration_conflicts_are_errors() -> None:
    backend = OperatorStateBackend()
    backend.get_list_state(OFFSETS)
    assert backend.get_list_state(OFFSETS) is backend.get_list_state(OFFSETS)
    with pytest.raises(StateError, match="already registered as split_distribute list state"):
        backend.get_union_list_state(OFFSETS)
    with pytest.raises(StateError, match="already registered as list state"):
        backend.get_broadcast_state(MapStateDescriptor("offsets", None, None))
    with pytest.raises(StateError, match="needs a ListStateDescriptor"):
        backend.get_list_state(ValueStateDescriptor("v", None))  # type: ignore[arg-type]


def test_snapshot_bytes_round_trip() -> None:
    backend = OperatorStateBackend()
    backend.get_list_state(OFFSETS).add_all([1, (2, "x")])
    backend.get_union_list_state(SEEN).add("s")
    backend.get_broadcast_state(RULES).put("k", [1])
    snapshot = backend.snapshot()
    assert snapshot.list_states["seen"][0] is OperatorStateMode.UNION
    decoded = OperatorStateSnapshot.from_bytes(snapshot.to_bytes())
    assert decoded == snapshot
    restored = OperatorStateBackend()
    restored.restore([decoded], 0, 1)
    assert restored.get_list_state(OFFSETS).get() == [1, (2, "x")]
    assert restored.get_broadcast_state(RULES).get("k") == [1]


def test_restored_but_unregistered_state_survives_the_next_snapshot() -> None:
    backend = OperatorStateBackend()
    backend.get_list_state(OFFSETS).add_all([1, 2])
    restored = OperatorStateBackend()
    restored.restore([backend.snapshot()], 0, 1)
    again = OperatorStateBackend()
    again.restore([restored.snapshot()], 0, 1)
    assert again.get_list_state(OFFSETS).get() == [1, 2]


def test_mixed_modes_across_snapshots_are_rejected() -> None:
    split = OperatorStateBackend()
    split.get_list_state(OFFSETS).add(1)
    union = OperatorStateBackend()
    union.get_union_list_state(ListStateDescriptor("offsets", None)).add(2)
    with pytest.raises(StateMigrationError, match="do not belong together"):
        OperatorStateBackend().restore([split.snapshot(), union.snapshot()], 0, 1)
    with pytest.raises(StateError, match="out of range"):
        OperatorStateBackend().restore([], 2, 2)
