"""What the engine asks of a state backend, and the snapshots backends hand back.

The engine talks to keyed state only through ``KeyedStateBackend`` (one per keyed operator
subtask), so the in-memory hashmap backend and the RocksDB backend are interchangeable; and
both write the same ``KeyedStateSnapshot`` (entries grouped by key group, in the layout of
``layout.py``, values from ``serializers.py``) so a savepoint taken with one restores into the
other, at any parallelism. Operator (non-keyed) state is small and always on the heap:
``OperatorStateBackend`` is concrete and implements Flink's three redistribution schemes.

Record-path contract: the engine assigns ``backend.current_key = key`` (a plain attribute)
before calling the user function; state handles read it on every access. ``NO_KEY`` means
"not in a keyed context" and makes every keyed-state access raise ``StateError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Protocol, overload

from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.serializers import (
    FORMAT_VERSION,
    deserialize,
    deserialize_key,
    serialize,
    serialize_key,
)
from flinklet._private.state.snapshot_decoding import parse_keyed_snapshot
from flinklet.datastream.state import (
    AggregatingState,
    AggregatingStateDescriptor,
    BroadcastState,
    ListState,
    ListStateDescriptor,
    MapState,
    MapStateDescriptor,
    ReadOnlyBroadcastState,
    ReducingState,
    ReducingStateDescriptor,
    State,
    StateDescriptor,
    ValueState,
    ValueStateDescriptor,
)
from flinklet.errors import StateError, StateMigrationError

__all__ = [
    "NO_KEY",
    "VOID_NAMESPACE",
    "InternalKvState",
    "InternalMergingState",
    "KeyedStateBackend",
    "KeyedStateSnapshot",
    "OperatorStateBackend",
    "OperatorStateMode",
    "OperatorStateSnapshot",
    "StateKind",
    "StateMetaInfo",
    "check_restore_max_parallelism",
    "checked_list",
    "kind_of",
    "merge_state_meta",
    "namespace_from_bytes",
    "namespace_to_bytes",
    "no_key_error",
]


class _VoidNamespace:
    """The namespace of state that is not scoped to a window."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "VOID_NAMESPACE"

    def __reduce__(self) -> str:
        return "VOID_NAMESPACE"


class _NoKey:
    """``current_key`` outside a keyed context."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_KEY"

    def __reduce__(self) -> str:
        return "NO_KEY"


VOID_NAMESPACE: Final = _VoidNamespace()
NO_KEY: Final = _NoKey()


def no_key_error(state_name: str) -> StateError:
    return StateError(
        f"State '{state_name}' accessed outside a keyed context: keyed state is only available "
        "on a KeyedStream (after key_by), in process_element/on_timer of a keyed function or in "
        "a keyed window function — not in open() or on a non-keyed stream; use operator state "
        "(CheckpointedFunction) there"
    )


def namespace_to_bytes(namespace: Any) -> bytes:
    """``b""`` for ``VOID_NAMESPACE``, else the key serialization of the namespace."""
    return b"" if namespace is VOID_NAMESPACE else serialize_key(namespace)


def namespace_from_bytes(data: bytes) -> Any:
    return VOID_NAMESPACE if not data else deserialize_key(data)


class StateKind(Enum):
    """The kind of a keyed state; restoring a name as another kind is an error."""

    VALUE = "value"
    LIST = "list"
    MAP = "map"
    REDUCING = "reducing"
    AGGREGATING = "aggregating"


_KIND_NAMES = {
    StateKind.VALUE: "ValueState",
    StateKind.LIST: "ListState",
    StateKind.MAP: "MapState",
    StateKind.REDUCING: "ReducingState",
    StateKind.AGGREGATING: "AggregatingState",
}


def kind_of(descriptor: StateDescriptor) -> StateKind:
    """The state kind a descriptor declares (called at registration, not per record)."""
    if isinstance(descriptor, ValueStateDescriptor):
        return StateKind.VALUE
    if isinstance(descriptor, ListStateDescriptor):
        return StateKind.LIST
    if isinstance(descriptor, MapStateDescriptor):
        return StateKind.MAP
    if isinstance(descriptor, ReducingStateDescriptor):
        return StateKind.REDUCING
    if isinstance(descriptor, AggregatingStateDescriptor):
        return StateKind.AGGREGATING
    raise StateError(
        f"unsupported state descriptor {type(descriptor).__name__}; use ValueStateDescriptor, "
        "ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor or "
        "AggregatingStateDescriptor"
    )


@dataclass(frozen=True)
class StateMetaInfo:
    """What a snapshot records about one keyed state besides its entries.

    ``ttl_ms`` is set when the state was written with TTL: then every stored value carries
    its last-access timestamp (value/reducing/aggregating: ``(value, ts)``; list: a list of
    ``(element, ts)``; map: ``{user_key: (value, ts)}``).
    """

    kind: StateKind
    ttl_ms: int | None = None

    def describe(self) -> str:
        return _KIND_NAMES[self.kind] + (" with TTL" if self.ttl_ms is not None else "")


def merge_state_meta(target: dict[str, StateMetaInfo], incoming: dict[str, StateMetaInfo]) -> None:
    """Add ``incoming`` to ``target``; the same name must have the same kind everywhere."""
    for name, meta in incoming.items():
        known = target.get(name)
        if known is None:
            target[name] = meta
        elif known.kind is not meta.kind:
            raise StateMigrationError(
                f"state '{name}' is a {_KIND_NAMES[known.kind]} in one snapshot and a "
                f"{_KIND_NAMES[meta.kind]} in another; the snapshots do not belong together"
            )


def check_restore_max_parallelism(snapshot_max_parallelism: int, max_parallelism: int) -> None:
    if snapshot_max_parallelism != max_parallelism:
        raise StateMigrationError(
            f"cannot restore keyed state written with max parallelism {snapshot_max_parallelism} "
            f"into an operator with max parallelism {max_parallelism}: keys are assigned to key "
            "groups modulo the max parallelism, so it must not change between runs; set "
            f"set_max_parallelism({snapshot_max_parallelism}) on the operator (or the "
            "environment) to restore this state"
        )


@dataclass(frozen=True)
class KeyedStateSnapshot:
    """The keyed state of one subtask at a checkpoint.

    ``entries`` maps key group -> ``[(layout key, serialized value)]`` (see ``layout.py``);
    ``states`` describes each state by name; ``extra`` carries named raw sections the engine
    adds (timers, for instance) and gets back untouched.
    """

    max_parallelism: int
    key_group_range: KeyGroupRange
    entries: dict[int, list[tuple[bytes, bytes]]]
    states: dict[str, StateMetaInfo]
    extra: dict[str, bytes] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def entry_count(self) -> int:
        return sum(len(group) for group in self.entries.values())

    def to_bytes(self) -> bytes:
        """Canonical, versioned bytes of this snapshot (for checkpoint storage)."""
        return serialize(
            (
                "keyed",
                self.format_version,
                self.max_parallelism,
                self.key_group_range.start,
                self.key_group_range.end,
                self.entries,
                {name: (meta.kind.value, meta.ttl_ms) for name, meta in self.states.items()},
                self.extra,
            )
        )

    @staticmethod
    def from_bytes(data: bytes) -> KeyedStateSnapshot:
        payload = parse_keyed_snapshot(data)
        if payload is None:  # not shaped as expected: the generic decoder says what is wrong
            payload = deserialize(data)
        if not isinstance(payload, tuple) or len(payload) != 8 or payload[0] != "keyed":
            raise StateMigrationError("these bytes are not a Flinklet keyed-state snapshot")
        _, version, max_parallelism, start, end, entries, states, extra = payload
        if version != FORMAT_VERSION:
            raise StateMigrationError(
                f"keyed-state snapshot format version {version} is not readable by this "
                f"Flinklet (it reads version {FORMAT_VERSION})"
            )
        return KeyedStateSnapshot(
            max_parallelism=max_parallelism,
            key_group_range=KeyGroupRange(start, end),
            entries=entries,
            states={
                name: StateMetaInfo(StateKind(kind), ttl_ms)
                for name, (kind, ttl_ms) in states.items()
            },
            extra=extra,
            format_version=version,
        )


class InternalKvState(Protocol):
    """What the engine may do with a keyed state handle besides what users do."""

    def set_current_namespace(self, namespace: Any) -> None:
        """Scope further accesses to ``namespace`` (a window; ``VOID_NAMESPACE`` by default)."""
        ...

    def get_current_namespace(self) -> Any: ...


class InternalMergingState(InternalKvState, Protocol):
    """List, reducing and aggregating states: session windows merge their namespaces."""

    def merge_namespaces(self, target: Any, sources: Iterable[Any]) -> None:
        """Fold the current key's state in each of ``sources`` into ``target``; clear sources."""
        ...


class KeyedStateBackend(Protocol):
    """Keyed state of one operator subtask, for the key groups in ``key_group_range``."""

    max_parallelism: int
    key_group_range: KeyGroupRange
    current_key: Any

    def set_current_key(self, key: Any) -> None: ...

    def get_current_key(self) -> Any: ...

    @overload
    def get_partitioned_state(self, descriptor: ValueStateDescriptor) -> ValueState[Any]: ...
    @overload
    def get_partitioned_state(self, descriptor: ListStateDescriptor) -> ListState[Any]: ...
    @overload
    def get_partitioned_state(self, descriptor: MapStateDescriptor) -> MapState[Any, Any]: ...
    @overload
    def get_partitioned_state(self, descriptor: ReducingStateDescriptor) -> ReducingState[Any]: ...
    @overload
    def get_partitioned_state(
        self, descriptor: AggregatingStateDescriptor
    ) -> AggregatingState[Any, Any]: ...
    @overload
    def get_partitioned_state(self, descriptor: StateDescriptor) -> State: ...
    def get_partitioned_state(self, descriptor: StateDescriptor) -> State:
        """The handle of ``descriptor``'s state (created once, cached by name); it also
        implements ``InternalKvState``. Raises ``StateError`` when the name is taken by
        another kind of state."""
        ...

    def set_current_namespace(self, state_name: str, namespace: Any) -> None: ...

    def register_internal_value_state(self, name: str) -> None:
        """Declare an engine-owned value state (keyed reduce/sum/min/max) for
        ``value_table``."""
        ...

    def value_table(self, name: str, namespace: Any = VOID_NAMESPACE) -> MutableMapping[Any, Any]:
        """Key -> value of a registered value state, for the engine's own keyed reduce."""
        ...

    def keys(self, state_name: str, namespace: Any = VOID_NAMESPACE) -> Iterable[Any]: ...

    def apply_to_all_keys(
        self,
        namespace: Any,
        descriptor: StateDescriptor,
        function: Callable[[Any, State], None],
    ) -> None: ...

    def snapshot(self, extra: dict[str, bytes] | None = None) -> KeyedStateSnapshot: ...

    def restore(self, snapshots: Sequence[KeyedStateSnapshot]) -> None: ...

    def dispose(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Operator state
# ---------------------------------------------------------------------------------------------


class OperatorStateMode(Enum):
    """How operator list state is redistributed on restore (Flink's three schemes)."""

    SPLIT_DISTRIBUTE = "split_distribute"
    UNION = "union"
    BROADCAST = "broadcast"


@dataclass(frozen=True)
class OperatorStateSnapshot:
    """The operator state of one subtask: list states as serialized elements (so they can be
    redistributed without decoding), broadcast states as serialized ``(key, value)`` pairs."""

    list_states: dict[str, tuple[OperatorStateMode, list[bytes]]]
    broadcast_states: dict[str, list[tuple[bytes, bytes]]]
    format_version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        return serialize(
            (
                "operator",
                self.format_version,
                {name: (mode.value, items) for name, (mode, items) in self.list_states.items()},
                self.broadcast_states,
            )
        )

    @staticmethod
    def from_bytes(data: bytes) -> OperatorStateSnapshot:
        payload = deserialize(data)
        if not isinstance(payload, tuple) or len(payload) != 4 or payload[0] != "operator":
            raise StateMigrationError("these bytes are not a Flinklet operator-state snapshot")
        _, version, lists, broadcasts = payload
        if version != FORMAT_VERSION:
            raise StateMigrationError(
                f"operator-state snapshot format version {version} is not readable by this "
                f"Flinklet (it reads version {FORMAT_VERSION})"
            )
        return OperatorStateSnapshot(
            list_states={
                name: (OperatorStateMode(mode), items) for name, (mode, items) in lists.items()
            },
            broadcast_states=broadcasts,
            format_version=version,
        )


class OperatorListState(ListState[Any]):
    """A plain list per operator subtask (``CheckpointedFunction`` state)."""

    __slots__ = ("_items", "name")

    def __init__(self, name: str, items: list[Any] | None = None) -> None:
        self.name = name
        self._items: list[Any] = items if items is not None else []

    def get(self) -> list[Any]:
        return list(self._items)

    def add(self, value: Any) -> None:
        if value is None:
            raise StateError(f"You cannot add None to a ListState ('{self.name}').")
        self._items.append(value)

    def add_all(self, values: list[Any]) -> None:
        self._items.extend(checked_list(self.name, values))

    def update(self, values: list[Any]) -> None:
        self._items[:] = checked_list(self.name, values)

    def clear(self) -> None:
        self._items.clear()

    def raw(self) -> list[Any]:
        return self._items


def checked_list(state_name: str, values: Any) -> list[Any]:
    """``values`` as a new list; ``None`` (or a ``None`` element) raises, as in Flink."""
    if values is None:
        raise StateError(f"List of values to add to ListState '{state_name}' cannot be None.")
    items = list(values)
    for item in items:
        if item is None:
            raise StateError(f"You cannot add None to a ListState ('{state_name}').")
    return items


class HeapBroadcastState(BroadcastState[Any, Any]):
    """Broadcast state: a dict, the same on every subtask."""

    __slots__ = ("_map", "name")

    def __init__(self, name: str, mapping: dict[Any, Any] | None = None) -> None:
        self.name = name
        self._map: dict[Any, Any] = mapping if mapping is not None else {}

    def get(self, key: Any) -> Any:
        return self._map.get(key)

    def contains(self, key: Any) -> bool:
        return key in self._map

    def items(self) -> list[tuple[Any, Any]]:
        return list(self._map.items())

    def keys(self) -> list[Any]:
        return list(self._map)

    def values(self) -> list[Any]:
        return list(self._map.values())

    def is_empty(self) -> bool:
        return not self._map

    def put(self, key: Any, value: Any) -> None:
        self._map[key] = value

    def put_all(self, dict_value: dict[Any, Any]) -> None:
        self._map.update(dict_value)

    def remove(self, key: Any) -> None:
        self._map.pop(key, None)

    def clear(self) -> None:
        self._map.clear()

    def raw(self) -> dict[Any, Any]:
        return self._map


class ReadOnlyBroadcastStateView(ReadOnlyBroadcastState[Any, Any]):
    """The non-broadcast side's view of a broadcast state: reads only."""

    __slots__ = ("_state",)

    def __init__(self, state: HeapBroadcastState) -> None:
        self._state = state

    def get(self, key: Any) -> Any:
        return self._state.get(key)

    def contains(self, key: Any) -> bool:
        return self._state.contains(key)

    def items(self) -> list[tuple[Any, Any]]:
        return self._state.items()

    def keys(self) -> list[Any]:
        return self._state.keys()

    def values(self) -> list[Any]:
        return self._state.values()

    def is_empty(self) -> bool:
        return self._state.is_empty()


def _even_split(items: list[Any], index: int, parallelism: int) -> list[Any]:
    base, extra = divmod(len(items), parallelism)
    start = index * base + min(index, extra)
    return items[start : start + base + (1 if index < extra else 0)]


class OperatorStateBackend:
    """Operator (non-keyed) state of one subtask: list, union list and broadcast state.

    ``restore()`` (before the function asks for its state) redistributes what all subtasks of
    the previous run wrote: split lists are concatenated in subtask order and cut into
    ``parallelism`` contiguous chunks; union lists go whole to everyone; broadcast state is
    taken from the first snapshot.
    """

    def __init__(self) -> None:
        self._lists: dict[str, tuple[OperatorStateMode, OperatorListState]] = {}
        self._broadcasts: dict[str, HeapBroadcastState] = {}
        self._read_only: dict[str, ReadOnlyBroadcastStateView] = {}
        self._restored_lists: dict[str, tuple[OperatorStateMode, list[Any]]] = {}
        self._restored_broadcasts: dict[str, dict[Any, Any]] = {}

    def get_list_state(self, descriptor: ListStateDescriptor) -> ListState[Any]:
        """This subtask's share of a list state; split evenly among subtasks on restore."""
        return self._list_state(descriptor, OperatorStateMode.SPLIT_DISTRIBUTE)

    def get_union_list_state(self, descriptor: ListStateDescriptor) -> ListState[Any]:
        """A list state of which every subtask gets the union of all subtasks' lists."""
        return self._list_state(descriptor, OperatorStateMode.UNION)

    def _list_state(
        self, descriptor: ListStateDescriptor, mode: OperatorStateMode
    ) -> OperatorListState:
        if not isinstance(descriptor, ListStateDescriptor):
            raise StateError(f"operator list state needs a ListStateDescriptor, got {descriptor!r}")
        name = descriptor.name
        known = self._lists.get(name)
        if known is not None:
            if known[0] is not mode:
                raise StateError(
                    f"operator state '{name}' is already registered as {known[0].value} list "
                    f"state; it cannot also be {mode.value} list state — use another name"
                )
            return known[1]
        if name in self._broadcasts:
            raise StateError(f"operator state '{name}' is already registered as broadcast state")
        restored = self._restored_lists.pop(name, None)
        state = OperatorListState(name, restored[1] if restored is not None else None)
        self._lists[name] = (mode, state)
        return state

    def get_broadcast_state(self, descriptor: MapStateDescriptor) -> BroadcastState[Any, Any]:
        """The writable broadcast state of ``descriptor`` (for ``process_broadcast_element``)."""
        return self._broadcast_state(descriptor)

    def _broadcast_state(self, descriptor: MapStateDescriptor) -> HeapBroadcastState:
        if not isinstance(descriptor, MapStateDescriptor):
            raise StateError(f"broadcast state needs a MapStateDescriptor, got {descriptor!r}")
        name = descriptor.name
        state = self._broadcasts.get(name)
        if state is None:
            if name in self._lists:
                raise StateError(
                    f"operator state '{name}' is already registered as list state; it cannot "
                    "also be broadcast state — use another name"
                )
            state = HeapBroadcastState(name, self._restored_broadcasts.pop(name, None))
            self._broadcasts[name] = state
        return state

    def get_read_only_broadcast_state(
        self, descriptor: MapStateDescriptor
    ) -> ReadOnlyBroadcastState[Any, Any]:
        """The read-only view of a broadcast state (for ``process_element``)."""
        name = descriptor.name
        view = self._read_only.get(name)
        if view is None:
            view = ReadOnlyBroadcastStateView(self._broadcast_state(descriptor))
            self._read_only[name] = view
        return view

    def snapshot(self) -> OperatorStateSnapshot:
        lists: dict[str, tuple[OperatorStateMode, list[bytes]]] = {}
        for name, (mode, restored_items) in self._restored_lists.items():
            lists[name] = (mode, [serialize(item) for item in restored_items])
        for name, (mode, state) in self._lists.items():
            lists[name] = (mode, [serialize(item) for item in state.raw()])
        broadcasts: dict[str, list[tuple[bytes, bytes]]] = {}
        for name, mapping in self._restored_broadcasts.items():
            broadcasts[name] = [(serialize(k), serialize(v)) for k, v in mapping.items()]
        for name, broadcast in self._broadcasts.items():
            broadcasts[name] = [(serialize(k), serialize(v)) for k, v in broadcast.raw().items()]
        return OperatorStateSnapshot(lists, broadcasts)

    def restore(
        self, snapshots: Sequence[OperatorStateSnapshot], subtask_index: int, parallelism: int
    ) -> None:
        """Take this subtask's share of the previous run's operator state (all its subtasks'
        snapshots, in subtask order)."""
        if not 0 <= subtask_index < parallelism:
            raise StateError(
                f"subtask index {subtask_index} is out of range for parallelism {parallelism}"
            )
        gathered: dict[str, tuple[OperatorStateMode, list[bytes]]] = {}
        for snapshot in snapshots:
            for name, (mode, items) in snapshot.list_states.items():
                known = gathered.get(name)
                if known is None:
                    gathered[name] = (mode, list(items))
                elif known[0] is not mode:
                    raise StateMigrationError(
                        f"operator state '{name}' is {known[0].value} list state in one "
                        f"snapshot and {mode.value} in another; the snapshots do not belong "
                        "together"
                    )
                else:
                    known[1].extend(items)
        for name, (mode, items) in gathered.items():
            mine = (
                items
                if mode is OperatorStateMode.UNION
                else _even_split(items, subtask_index, parallelism)
            )
            values = [deserialize(item) for item in mine]
            registered = self._lists.get(name)
            if registered is not None:
                registered[1].raw()[:] = values
            else:
                self._restored_lists[name] = (mode, values)
        taken: set[str] = set()
        for snapshot in snapshots:
            for name, pairs in snapshot.broadcast_states.items():
                if name in taken:
                    continue
                taken.add(name)
                mapping = {deserialize(k): deserialize(v) for k, v in pairs}
                broadcast = self._broadcasts.get(name)
                if broadcast is not None:
                    broadcast.raw().clear()
                    broadcast.raw().update(mapping)
                else:
                    self._restored_broadcasts[name] = mapping

    def dispose(self) -> None:
        self._lists.clear()
        self._broadcasts.clear()
        self._read_only.clear()
        self._restored_lists.clear()
        self._restored_broadcasts.clear()
