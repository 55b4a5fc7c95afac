"""The hashmap state backend: keyed state in Python dicts, on the heap of the task process.

This is the default backend and the one on the per-record path of most jobs, so it stores
state the cheapest way Python allows: ``tables[state_name][namespace][key] = value``. A state
handle keeps a direct reference to the dict of its current namespace, so an access is one
attribute read of the backend's ``current_key`` and one dict operation. Key groups are only
computed when a snapshot is taken, never per record. States with a TTL are separate classes
(``ttl.py``), so TTL costs nothing to states without one.
"""

from __future__ import annotations

import gc
import struct
import time
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any, BinaryIO, Final, overload

from flinklet._private.state.backend import (
    NO_KEY,
    VOID_NAMESPACE,
    KeyedStateSnapshot,
    StateKind,
    StateMetaInfo,
    check_restore_max_parallelism,
    checked_list,
    kind_of,
    merge_state_meta,
    namespace_from_bytes,
    namespace_to_bytes,
    no_key_error,
)
from flinklet._private.state.heap_snapshots import (
    SNAPSHOT_MODES,
    EncodedKeyedState,
    ReadySnapshot,
    dump_heap_state,
    encode_heap_state,
    fork_available,
    fork_snapshot,
)
from flinklet._private.state.keygroups import (
    KeyGroupRange,
    assign_to_key_group,
    check_max_parallelism,
)
from flinklet._private.state.layout import decode_state_key, encode_state_key
from flinklet._private.state.serializers import (
    decode_varint,
    deserialize,
    deserialize_key,
    serialize,
    serialize_key,
)
from flinklet._private.state.snapshot_decoding import INT_LAYOUT_HEAD, INT_VALUE_HEAD
from flinklet.datastream.state import (
    AggregatingState,
    AggregatingStateDescriptor,
    ListState,
    ListStateDescriptor,
    MapState,
    MapStateDescriptor,
    ReducingState,
    ReducingStateDescriptor,
    State,
    StateDescriptor,
    ValueState,
    ValueStateDescriptor,
)
from flinklet.errors import StateError, StateMigrationError

__all__ = [
    "HeapAggregatingState",
    "HeapKeyedStateBackend",
    "HeapListState",
    "HeapMapState",
    "HeapReducingState",
    "HeapState",
    "HeapValueState",
    "wall_clock_ms",
]

_INT64 = struct.Struct(">q")

MISSING: Final[Any] = object()
"""Marks "no entry" where ``None`` could be a stored value."""

NamespaceTable = dict[Any, Any]
"""key -> stored value, for one namespace of one state."""

StateTable = dict[Any, NamespaceTable]
"""namespace -> NamespaceTable, for one state."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class HeapState:
    """Scoping shared by every heap state: current key (from the backend) and namespace."""

    __slots__ = ("_backend", "_namespace", "_ns_table", "_table", "descriptor_type", "kind", "name")

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        name: str,
        table: StateTable,
        descriptor: StateDescriptor,
        kind: StateKind,
    ) -> None:
        self._backend = backend
        self.name = name
        self.kind = kind
        self.descriptor_type = type(descriptor)
        self._table = table
        self._namespace: Any = VOID_NAMESPACE
        ns_table = table.get(VOID_NAMESPACE)
        if ns_table is None:
            ns_table = table[VOID_NAMESPACE] = {}
        self._ns_table: NamespaceTable = ns_table

    @property
    def table(self) -> StateTable:
        """The state's ``{namespace: {key: value}}`` table, for operators that batch their
        accesses (the window operator's heap path); entries they empty they must delete."""
        return self._table

    def set_current_namespace(self, namespace: Any) -> None:
        """Scope further accesses to ``namespace`` (a window, or ``VOID_NAMESPACE``)."""
        table = self._table
        old = self._namespace
        if not self._ns_table and old is not VOID_NAMESPACE and table.get(old) is self._ns_table:
            del table[old]  # do not keep an empty dict per finished window
        ns_table = table.get(namespace)
        if ns_table is None:
            ns_table = table[namespace] = {}
        self._namespace = namespace
        self._ns_table = ns_table

    def get_current_namespace(self) -> Any:
        return self._namespace

    def _current_key(self) -> Any:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        return key

    def on_restored(self) -> None:
        """Called after the backend restored entries into this state's table."""

    def snapshot_transform(self) -> Callable[[Any], Any] | None:
        """A filter applied to stored values when snapshotting (TTL states drop expired
        entries here); ``None`` means store values as they are."""
        return None

    # -- merging (list, reducing, aggregating) --------------------------------------------

    def _merge_stored(self, first: Any, second: Any) -> Any:
        raise StateError(f"state '{self.name}' ({self.kind.value}) cannot merge namespaces")

    def _alive(self, stored: Any) -> Any:
        """``stored`` without expired content, or ``None`` if nothing remains."""
        return stored

    def merge_namespaces(self, target: Any, sources: Iterable[Any]) -> None:
        """Fold the current key's state in each namespace of ``sources`` into ``target`` and
        remove it from the sources (session-window merging)."""
        key = self._current_key()
        table = self._table
        merged: Any = MISSING
        for source in sources:
            if source == target:
                continue
            source_table = table.get(source)
            if source_table is None:
                continue
            stored = source_table.pop(key, None)
            if not source_table and source_table is not self._ns_table:
                del table[source]
            if stored is None:
                continue
            stored = self._alive(stored)
            if stored is None:
                continue
            merged = stored if merged is MISSING else self._merge_stored(merged, stored)
        if merged is MISSING:
            return
        target_table = table.get(target)
        if target_table is None:
            target_table = table[target] = {}
        existing = target_table.get(key)
        if existing is not None:
            existing = self._alive(existing)
        target_table[key] = merged if existing is None else self._merge_stored(existing, merged)


class HeapValueState(HeapState, ValueState[Any]):
    """``ValueState`` on the heap: ``ns_table[key] = value``."""

    __slots__ = ()

    def value(self) -> Any:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        return self._ns_table.get(key)

    def update(self, value: Any) -> None:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        if value is None:
            self._ns_table.pop(key, None)
        else:
            self._ns_table[key] = value

    def clear(self) -> None:
        self._ns_table.pop(self._current_key(), None)


class HeapListState(HeapState, ListState[Any]):
    """``ListState`` on the heap: ``ns_table[key] = [elements]`` (no entry when empty)."""

    __slots__ = ()

    def get(self) -> list[Any]:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        items = self._ns_table.get(key)
        return [] if items is None else list(items)

    def add(self, value: Any) -> None:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        if value is None:
            raise StateError(f"You cannot add None to a ListState ('{self.name}').")
        items = self._ns_table.get(key)
        if items is None:
            self._ns_table[key] = [value]
        else:
            items.append(value)

    def add_all(self, values: list[Any]) -> None:
        key = self._current_key()
        new = checked_list(self.name, values)
        if not new:
            return
        items = self._ns_table.get(key)
        if items is None:
            self._ns_table[key] = new
        else:
            items.extend(new)

    def update(self, values: list[Any]) -> None:
        key = self._current_key()
        new = checked_list(self.name, values)
        if new:
            self._ns_table[key] = new
        else:
            self._ns_table.pop(key, None)

    def clear(self) -> None:
        self._ns_table.pop(self._current_key(), None)

    def _merge_stored(self, first: Any, second: Any) -> Any:
        return [*first, *second]


class HeapMapState(HeapState, MapState[Any, Any]):
    """``MapState`` on the heap: ``ns_table[key] = {user_key: value}`` (no entry when empty)."""

    __slots__ = ()

    def _map(self) -> dict[Any, Any] | None:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        result: dict[Any, Any] | None = self._ns_table.get(key)
        return result

    def get(self, key: Any) -> Any:
        mapping = self._map()
        return None if mapping is None else mapping.get(key)

    def put(self, key: Any, value: Any) -> None:
        current = self._backend.current_key
        if current is NO_KEY:
            raise no_key_error(self.name)
        mapping = self._ns_table.get(current)
        if mapping is None:
            self._ns_table[current] = {key: value}
        else:
            mapping[key] = value

    def put_all(self, dict_value: dict[Any, Any]) -> None:
        current = self._current_key()
        if not dict_value:
            return
        mapping = self._ns_table.get(current)
        if mapping is None:
            self._ns_table[current] = dict(dict_value)
        else:
            mapping.update(dict_value)

    def remove(self, key: Any) -> None:
        current = self._current_key()
        mapping = self._ns_table.get(current)
        if mapping is not None:
            mapping.pop(key, None)
            if not mapping:
                del self._ns_table[current]

    def contains(self, key: Any) -> bool:
        mapping = self._map()
        return mapping is not None and key in mapping

    def items(self) -> list[tuple[Any, Any]]:
        mapping = self._map()
        return [] if mapping is None else list(mapping.items())

    def keys(self) -> list[Any]:
        mapping = self._map()
        return [] if mapping is None else list(mapping)

    def values(self) -> list[Any]:
        mapping = self._map()
        return [] if mapping is None else list(mapping.values())

    def is_empty(self) -> bool:
        return not self._map()

    def clear(self) -> None:
        self._ns_table.pop(self._current_key(), None)


class HeapReducingState(HeapState, ReducingState[Any]):
    """``ReducingState`` on the heap: ``ns_table[key] = reduced value``."""

    __slots__ = ("_reduce",)

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        name: str,
        table: StateTable,
        descriptor: ReducingStateDescriptor,
        kind: StateKind,
    ) -> None:
        super().__init__(backend, name, table, descriptor, kind)
        self._reduce = descriptor.reduce_function

    def get(self) -> Any:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        return self._ns_table.get(key)

    def add(self, value: Any) -> None:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        ns_table = self._ns_table
        if value is None:  # as in Flink: adding None clears
            ns_table.pop(key, None)
            return
        previous = ns_table.get(key, MISSING)
        ns_table[key] = value if previous is MISSING else self._reduce(previous, value)

    def clear(self) -> None:
        self._ns_table.pop(self._current_key(), None)

    def _merge_stored(self, first: Any, second: Any) -> Any:
        return self._reduce(first, second)


class HeapAggregatingState(HeapState, AggregatingState[Any, Any]):
    """``AggregatingState`` on the heap: ``ns_table[key] = accumulator``."""

    __slots__ = ("_function",)

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        name: str,
        table: StateTable,
        descriptor: AggregatingStateDescriptor,
        kind: StateKind,
    ) -> None:
        super().__init__(backend, name, table, descriptor, kind)
        self._function = descriptor.agg_function

    def get(self) -> Any:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        accumulator = self._ns_table.get(key, MISSING)
        return None if accumulator is MISSING else self._function.get_result(accumulator)

    def add(self, value: Any) -> None:
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        ns_table = self._ns_table
        if value is None:  # as in Flink: adding None clears
            ns_table.pop(key, None)
            return
        accumulator = ns_table.get(key, MISSING)
        if accumulator is MISSING:
            accumulator = self._function.create_accumulator()
        ns_table[key] = self._function.add(value, accumulator)

    def clear(self) -> None:
        self._ns_table.pop(self._current_key(), None)

    def _merge_stored(self, first: Any, second: Any) -> Any:
        merge = getattr(self._function, "merge", None)
        if not callable(merge):
            raise StateError(
                f"state '{self.name}': the AggregateFunction has no merge(); it is needed to "
                "merge session windows"
            )
        return merge(first, second)


_PLAIN_STATES: dict[StateKind, type[HeapState]] = {
    StateKind.VALUE: HeapValueState,
    StateKind.LIST: HeapListState,
    StateKind.MAP: HeapMapState,
    StateKind.REDUCING: HeapReducingState,
    StateKind.AGGREGATING: HeapAggregatingState,
}


class HeapKeyedStateBackend:
    """Keyed state of one operator subtask in dicts (the ``hashmap`` state backend)::

    backend = HeapKeyedStateBackend(128, KeyGroupRange(0, 127))
    count = backend.get_partitioned_state(ValueStateDescriptor("count", None))
    backend.current_key = "sensor_1"
    count.update((count.value() or 0) + 1)
    """

    def __init__(
        self,
        max_parallelism: int,
        key_group_range: KeyGroupRange,
        time_provider: Callable[[], int] | None = None,
        snapshot_mode: str = "fork",
    ) -> None:
        check_max_parallelism(max_parallelism)
        if snapshot_mode not in SNAPSHOT_MODES:
            raise StateError(
                f"unknown hashmap snapshot mode {snapshot_mode!r}; use one of "
                f"{', '.join(SNAPSHOT_MODES)} (state.backend.hashmap.snapshot)"
            )
        if not key_group_range.is_empty() and key_group_range.end >= max_parallelism:
            raise StateError(f"{key_group_range!r} does not fit max parallelism {max_parallelism}")
        self.max_parallelism = max_parallelism
        self.key_group_range = key_group_range
        self.current_key: Any = NO_KEY
        self.time_provider: Callable[[], int] = time_provider or wall_clock_ms
        self._tables: dict[str, StateTable] = {}
        self._meta: dict[str, StateMetaInfo] = {}
        self._states: dict[str, HeapState] = {}
        self._internal: set[str] = set()
        self.snapshot_mode = snapshot_mode

    # -- keys -----------------------------------------------------------------------------

    def set_current_key(self, key: Any) -> None:
        self.current_key = key

    def get_current_key(self) -> Any:
        key = self.current_key
        if key is NO_KEY:
            raise StateError(
                "there is no current key: get_current_key() is only available while a keyed "
                "operator processes a record or a timer"
            )
        return key

    # -- registration ---------------------------------------------------------------------

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
    def get_partitioned_state(self, descriptor: StateDescriptor) -> Any:
        """The handle of ``descriptor``'s state, created on first use and cached by name."""
        state = self._states.get(descriptor.name)
        if state is not None and type(descriptor) is state.descriptor_type:
            return state
        return self._register(descriptor)

    def _register(self, descriptor: StateDescriptor) -> HeapState:
        name = descriptor.name
        kind = kind_of(descriptor)
        existing = self._states.get(name)
        if existing is not None:
            if existing.kind is kind:
                return existing
            registered_as = StateMetaInfo(existing.kind).describe()
            raise StateError(
                f"state '{name}' is already registered as a {registered_as}; it cannot also be "
                f"a {StateMetaInfo(kind).describe()} — use another state name"
            )
        if name in self._internal:
            raise StateError(f"state name '{name}' is reserved by the engine; use another name")
        ttl_config = descriptor.ttl_config
        meta = StateMetaInfo(kind, None if ttl_config is None else ttl_config.ttl_milliseconds)
        table = self._adopt_table(name, meta)
        state: HeapState
        if ttl_config is None:
            state = _PLAIN_STATES[kind](self, name, table, descriptor, kind)
        else:
            from flinklet._private.state.ttl import create_ttl_state  # ttl.py imports this module

            state = create_ttl_state(self, name, table, descriptor, kind, ttl_config)
        self._states[name] = state
        return state

    def _adopt_table(self, name: str, meta: StateMetaInfo) -> StateTable:
        """The table of ``name``, made to fit ``meta`` (restored values may have been written
        with or without TTL timestamps)."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = {}
        known = self._meta.get(name)
        if known is not None:
            if known.kind is not meta.kind:
                raise StateMigrationError(
                    f"state '{name}' was restored as a {known.describe()}, but the job now "
                    f"declares it as a {meta.describe()}; keep the kind of a state stable, or "
                    "give the new state another name"
                )
            if (known.ttl_ms is None) != (meta.ttl_ms is None):
                from flinklet._private.state.ttl import convert_table

                convert_table(table, meta.kind, known.ttl_ms is not None, self.time_provider())
        self._meta[name] = meta
        return table

    def register_internal_value_state(self, name: str) -> None:
        """Declare an engine-owned value state, read and written through ``value_table``."""
        if name in self._internal:
            return
        if name in self._states:
            raise StateError(f"state name '{name}' is already used by a user state")
        self._adopt_table(name, StateMetaInfo(StateKind.VALUE))
        self._internal.add(name)

    def value_table(self, name: str, namespace: Any = VOID_NAMESPACE) -> MutableMapping[Any, Any]:
        """The raw ``key -> value`` dict of an internal value state (stable for the backend's
        lifetime for ``VOID_NAMESPACE``; restore fills it in place)."""
        if name not in self._internal:
            raise StateError(
                f"internal state '{name}' is not registered; call "
                "register_internal_value_state() first"
            )
        table = self._tables[name]
        ns_table = table.get(namespace)
        if ns_table is None:
            ns_table = table[namespace] = {}
        return ns_table

    def set_current_namespace(self, state_name: str, namespace: Any) -> None:
        state = self._states.get(state_name)
        if state is None:
            raise StateError(f"state '{state_name}' is not registered")
        state.set_current_namespace(namespace)

    # -- iteration ------------------------------------------------------------------------

    def keys(self, state_name: str, namespace: Any = VOID_NAMESPACE) -> list[Any]:
        """The keys that have ``state_name`` state in ``namespace`` (a copy)."""
        table = self._tables.get(state_name)
        ns_table = None if table is None else table.get(namespace)
        return [] if not ns_table else list(ns_table)

    def apply_to_all_keys(
        self,
        namespace: Any,
        descriptor: StateDescriptor,
        function: Callable[[Any, State], None],
    ) -> None:
        """Call ``function(key, state)`` with the state scoped to each key that has state."""
        state = self._register(descriptor)
        previous_key = self.current_key
        previous_namespace = state.get_current_namespace()
        state.set_current_namespace(namespace)
        try:
            for key in self.keys(descriptor.name, namespace):
                self.current_key = key
                function(key, state)  # type: ignore[arg-type]
        finally:
            self.current_key = previous_key
            state.set_current_namespace(previous_namespace)

    # -- snapshot / restore ---------------------------------------------------------------

    def snapshot(self, extra: dict[str, bytes] | None = None) -> KeyedStateSnapshot:
        """A self-contained copy of all keyed state, grouped by key group."""
        max_parallelism = self.max_parallelism
        key_groups = self.key_group_range
        entries: dict[int, list[tuple[bytes, bytes]]] = {}
        key_info: dict[Any, tuple[int, bytes]] = {}
        for name, table in self._tables.items():
            state = self._states.get(name)
            transform = None if state is None else state.snapshot_transform()
            for namespace, ns_table in table.items():
                if not ns_table:
                    continue
                namespace_bytes = namespace_to_bytes(namespace)
                for key, stored in ns_table.items():
                    if transform is not None:
                        stored = transform(stored)
                        if stored is None:
                            continue
                    info = key_info.get(key)
                    if info is None:
                        key_group = assign_to_key_group(key, max_parallelism)
                        if key_group not in key_groups:
                            raise StateError(
                                f"key {key!r} of state '{name}' belongs to key group {key_group}, "
                                f"outside this subtask's {key_groups!r}: records were routed "
                                "with another max parallelism or key than the state uses"
                            )
                        info = key_info[key] = (key_group, serialize_key(key))
                    layout_key = encode_state_key(info[0], info[1], namespace_bytes, name)
                    group = entries.get(info[0])
                    if group is None:
                        group = entries[info[0]] = []
                    group.append((layout_key, serialize(stored)))
        return KeyedStateSnapshot(
            max_parallelism=max_parallelism,
            key_group_range=key_groups,
            entries=entries,
            states=dict(self._meta),
            extra=dict(extra or {}),
        )

    def snapshot_bytes(self, extra: dict[str, bytes] | None = None) -> tuple[bytes, int]:
        """``(snapshot(extra).to_bytes(), entry count)``, encoded in one pass (several times
        faster than building the snapshot and encoding it)."""
        # the encoder allocates a few objects per entry and frees none: cyclic garbage
        # collections would only re-traverse the heap, many times over for large state
        collecting = gc.isenabled()
        gc.disable()
        try:
            return encode_heap_state(
                self._tables,
                self._states,
                self._meta,
                self.max_parallelism,
                self.key_group_range,
                extra,
            )
        finally:
            if collecting:
                gc.enable()

    def dump_plain(self, out: BinaryIO, extra: dict[str, bytes] | None = None) -> None:
        """Pickle the state for an encoder process (``heap_snapshots.dump_heap_state``)."""
        dump_heap_state(
            out,
            self._tables,
            self._states,
            self._meta,
            self.max_parallelism,
            self.key_group_range,
            extra,
        )

    def snapshot_encoded(
        self, allow_fork: bool = True, extra: dict[str, bytes] | None = None
    ) -> EncodedKeyedState:
        """The snapshot's bytes for a checkpoint. In ``fork`` mode (and with ``allow_fork``)
        a forked child hands a copy-on-write image of the state to an encoder process while
        the task goes on; otherwise they are encoded here, on the calling thread
        (``heap_snapshots.py``)."""
        has_entries = any(
            ns_table for table in self._tables.values() for ns_table in table.values()
        )
        if allow_fork and has_entries and self.snapshot_mode == "fork" and fork_available():
            frozen_extra = dict(extra or {})
            return fork_snapshot(
                lambda: self.snapshot_bytes(frozen_extra)[0],
                has_entries,
                handoff=lambda out: self.dump_plain(out, frozen_extra),
            )
        data, entries = self.snapshot_bytes(extra)
        return ReadySnapshot(data, entries)

    def restore(self, snapshots: Sequence[KeyedStateSnapshot]) -> None:
        """Load the entries of this subtask's key groups from snapshots of any parallelism."""
        for snapshot in snapshots:
            check_restore_max_parallelism(snapshot.max_parallelism, self.max_parallelism)
        incoming: dict[str, StateMetaInfo] = {}
        for snapshot in snapshots:
            merge_state_meta(incoming, snapshot.states)
        for name, meta in incoming.items():
            known = self._meta.get(name)
            if known is None:
                self._meta[name] = meta
                self._tables.setdefault(name, {})
            elif known.kind is not meta.kind:
                raise StateMigrationError(
                    f"state '{name}' was restored as a {meta.describe()}, but the job declares "
                    f"it as a {known.describe()}; keep the kind of a state stable, or give the "
                    "new state another name"
                )
        from flinklet._private.state.ttl import convert_value  # ttl.py imports this module

        now = self.time_provider()
        mine = self.key_group_range
        unpack_int = _INT64.unpack_from
        for snapshot in snapshots:
            if snapshot.key_group_range.intersection(mine).is_empty():
                continue
            # Values written with TTL timestamps into a state without TTL, or the reverse.
            converting = {
                name: (meta.kind, meta.ttl_ms is not None)
                for name, meta in snapshot.states.items()
                if (meta.ttl_ms is None) != (self._meta[name].ttl_ms is None)
            }
            # layout key suffix (namespace + state name) -> (the table, conversion or None)
            targets: dict[bytes, tuple[dict[Any, Any], tuple[StateKind, bool] | None]] = {}
            for key_group, group in snapshot.entries.items():
                if key_group not in mine:
                    continue
                for layout_key, value_bytes in group:
                    if layout_key[2:5] == INT_LAYOUT_HEAD:  # an int64 key: inlined decoding
                        key = unpack_int(layout_key, 5)[0]
                        suffix = layout_key[13:]
                    else:
                        key_len, start = decode_varint(layout_key, 2)
                        key = deserialize_key(layout_key[start : start + key_len])
                        suffix = layout_key[start + key_len :]
                    target = targets.get(suffix)
                    if target is None:
                        target = targets[suffix] = self._restore_target(layout_key, converting)
                    ns_table, conversion = target
                    if len(value_bytes) == 10 and value_bytes[:2] == INT_VALUE_HEAD:
                        value: Any = unpack_int(value_bytes, 2)[0]
                    else:
                        value = deserialize(value_bytes)
                    if conversion is not None:
                        value = convert_value(conversion[0], value, conversion[1], now)
                    ns_table[key] = value
        for state in self._states.values():
            state.on_restored()

    def _restore_target(
        self, layout_key: bytes, converting: dict[str, tuple[StateKind, bool]]
    ) -> tuple[dict[Any, Any], tuple[StateKind, bool] | None]:
        """The namespace table the entries with ``layout_key``'s namespace and state go to,
        and their TTL conversion."""
        _, _, namespace_bytes, name = decode_state_key(layout_key)
        table = self._tables.get(name)
        if table is None:
            raise StateMigrationError(
                f"the snapshot has entries of state '{name}' but no metadata for it"
            )
        namespace = namespace_from_bytes(namespace_bytes)
        ns_table = table.get(namespace)
        if ns_table is None:
            ns_table = table[namespace] = {}
        return ns_table, converting.get(name)

    def dispose(self) -> None:
        self._states.clear()
        self._tables.clear()
        self._meta.clear()
        self._internal.clear()
        self.current_key = NO_KEY
