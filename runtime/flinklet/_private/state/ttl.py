"""State time-to-live for the heap backend, as Flink defines it.

A state with a ``StateTtlConfig`` stores each value with the processing time (ms) it was last
written (or read, with ``OnReadAndWrite``): value, reducing and aggregating states store
``(value, ts)``, list states a list of ``(element, ts)`` and map states
``{user_key: (value, ts)}``, so list elements and map entries expire one by one. An entry is
expired once ``ts + ttl <= now``. Expired entries are removed when read (lazily), by the
incremental cleanup (``cleanup_size`` more entries of the state checked per access on
average, in sweeps of ``SWEEP_BATCH`` entries that pause while nothing can have expired yet),
and left out of snapshots with ``cleanup_full_snapshot``.

These are separate classes from the plain heap states so that states without TTL pay
nothing for it.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from typing import Any

from flinklet._private.state.backend import NO_KEY, StateKind, checked_list, no_key_error
from flinklet._private.state.heap import (
    HeapKeyedStateBackend,
    HeapState,
    NamespaceTable,
    StateTable,
)
from flinklet.datastream.state import (
    AggregatingState,
    AggregatingStateDescriptor,
    ListState,
    MapState,
    ReducingState,
    ReducingStateDescriptor,
    StateDescriptor,
    StateTtlConfig,
    ValueState,
)
from flinklet.errors import StateError

__all__ = [
    "TtlAggregatingState",
    "TtlListState",
    "TtlMapState",
    "TtlReducingState",
    "TtlState",
    "TtlValueState",
    "add_timestamps",
    "convert_table",
    "convert_value",
    "create_ttl_state",
    "strip_timestamps",
]


def add_timestamps(kind: StateKind, stored: Any, now: int) -> Any:
    """A value stored without TTL, as stored with TTL last accessed at ``now``."""
    if kind is StateKind.LIST:
        return [(element, now) for element in stored]
    if kind is StateKind.MAP:
        return {key: (value, now) for key, value in stored.items()}
    return (stored, now)


def strip_timestamps(kind: StateKind, stored: Any) -> Any:
    """A value stored with TTL, as stored without."""
    if kind is StateKind.LIST:
        return [element for element, _ in stored]
    if kind is StateKind.MAP:
        return {key: value for key, (value, _) in stored.items()}
    return stored[0]


SWEEP_BATCH = 64
"""The incremental cleanup checks ``cleanup_size`` entries per state access on average, in
sweeps of at least this many entries: one sweep is a few C-level passes, where checking a
handful of entries on every access would cost Python-level work on every record."""

_TIMESTAMP = operator.itemgetter(1)


def _oldest_in_list(stored: list[tuple[Any, int]]) -> int:
    return stored[0][1]  # elements are appended in time order


def _oldest_in_map(stored: dict[Any, tuple[Any, int]]) -> int:
    oldest: int = min(map(_TIMESTAMP, stored.values()))
    return oldest


def convert_value(kind: StateKind, stored: Any, had_ttl: bool, now: int) -> Any:
    """A restored value, converted for a state that turned TTL on (or off) since."""
    return strip_timestamps(kind, stored) if had_ttl else add_timestamps(kind, stored, now)


def convert_table(table: StateTable, kind: StateKind, had_ttl: bool, now: int) -> None:
    """Convert every value of a state's table in place (see ``convert_value``)."""
    for ns_table in table.values():
        for key, stored in ns_table.items():
            ns_table[key] = convert_value(kind, stored, had_ttl, now)


class TtlState(HeapState):
    """Expiry checks and cleanup shared by the TTL states."""

    __slots__ = (
        "_budget",
        "_cleanup_size",
        "_cursor_keys",
        "_cursor_pos",
        "_cursor_tables",
        "_full_snapshot",
        "_now",
        "_oldest",
        "_quiet_until",
        "_return_expired",
        "_round_min",
        "_t",
        "_ttl",
        "_update_on_read",
    )

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        name: str,
        table: StateTable,
        descriptor: StateDescriptor,
        kind: StateKind,
        config: StateTtlConfig,
    ) -> None:
        super().__init__(backend, name, table, descriptor, kind)
        self._ttl = config.ttl_milliseconds
        self._now: Callable[[], int] = backend.time_provider
        self._update_on_read = config.update_type is StateTtlConfig.UpdateType.OnReadAndWrite
        self._return_expired = (
            config.state_visibility is StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
        )
        strategies = config.cleanup_strategies
        incremental = strategies.get_incremental_cleanup_strategy()
        self._cleanup_size = 0 if incremental is None else incremental.cleanup_size
        self._full_snapshot = strategies.in_full_snapshot()
        self._oldest: Callable[[Any], int] = _TIMESTAMP
        self._cursor_tables: list[NamespaceTable] = []
        self._cursor_keys: list[Any] = []
        self._cursor_pos = 0
        self._budget = 0
        self._round_min = 0
        self._quiet_until = 0
        self._t = 0

    def _purged(self, stored: Any, now: int) -> Any:
        """``stored`` without its expired content (a new object if anything was dropped), or
        ``None`` if nothing is left. Never mutates ``stored``."""
        return None if stored[1] + self._ttl <= now else stored

    def _alive(self, stored: Any) -> Any:
        return self._purged(stored, self._now())

    def _key_for_access(self) -> Any:
        """The current key; also reads the clock once into ``self._t`` for this access and
        runs the incremental cleanup."""
        key = self._backend.current_key
        if key is NO_KEY:
            raise no_key_error(self.name)
        now = self._t = self._now()
        if self._cleanup_size:
            budget = self._budget + self._cleanup_size
            if budget < SWEEP_BATCH:
                self._budget = budget
            else:
                self._budget = 0
                if now >= self._quiet_until:
                    self._sweep(budget, now)
        return key

    def on_restored(self) -> None:
        self._quiet_until = 0  # restored entries may be older than anything seen so far

    def _sweep(self, budget: int, now: int) -> None:
        """Check the next ``budget`` entries, round-robin over the whole state (at most one
        full round per sweep).

        A round also finds the oldest timestamp in the state; nothing can expire before that
        plus the TTL (later writes only bring newer timestamps), so sweeps pause until then.
        """
        rebuilt = False
        while budget > 0:
            pos = self._cursor_pos
            keys = self._cursor_keys
            if pos >= len(keys):
                if rebuilt:
                    return
                rebuilt = True
                tables: list[NamespaceTable] = []
                keys = []
                for ns_table in self._table.values():
                    keys.extend(ns_table)
                    tables.extend(itertools.repeat(ns_table, len(ns_table)))
                self._cursor_tables = tables
                self._cursor_keys = keys
                self._cursor_pos = pos = 0
                self._round_min = now  # entries added during the round are newer than this
            end = min(pos + budget, len(keys))
            self._cursor_pos = end
            budget -= end - pos
            if end > pos:
                oldest = self._expire(self._cursor_tables[pos:end], keys[pos:end], now)
                if oldest < self._round_min:
                    self._round_min = oldest
            if end >= len(keys):
                self._quiet_until = self._round_min + self._ttl

    def _expire(self, tables: list[NamespaceTable], keys: list[Any], now: int) -> int:
        """Drop what expired among these entries; return their oldest timestamp (before
        dropping, which only makes the estimate earlier)."""
        stored = list(map(dict.get, tables, keys))
        threshold = now - self._ttl  # expired when its timestamp <= threshold
        oldest: int = min(map(self._oldest, filter(None, stored)), default=now)
        if oldest > threshold:
            return oldest  # the common case: nothing expired, found at C speed
        purge = self._purged
        for ns_table, key, value in zip(tables, keys, stored, strict=True):
            if value is None:
                continue
            purged = purge(value, now)
            if purged is None:
                ns_table.pop(key, None)
            elif purged is not value:
                ns_table[key] = purged
        return oldest

    def snapshot_transform(self) -> Callable[[Any], Any] | None:
        if not self._full_snapshot:
            return None
        now = self._now()
        purged = self._purged
        return lambda stored: purged(stored, now)

    def clear(self) -> None:
        self._ns_table.pop(self._key_for_access(), None)

    def _get_single(self) -> Any:
        """The user value of the current key's ``(value, ts)`` entry under the TTL rules;
        ``None`` when absent or expired-and-invisible."""
        key = self._key_for_access()
        ns_table = self._ns_table
        entry = ns_table.get(key)
        if entry is None:
            return None
        now = self._t
        if entry[1] + self._ttl <= now:
            del ns_table[key]
            return entry[0] if self._return_expired else None
        if self._update_on_read:
            ns_table[key] = (entry[0], now)
        return entry[0]


class TtlValueState(TtlState, ValueState[Any]):
    """``ValueState`` with TTL: ``ns_table[key] = (value, ts)``."""

    __slots__ = ()

    value = TtlState._get_single

    def update(self, value: Any) -> None:
        key = self._key_for_access()
        if value is None:
            self._ns_table.pop(key, None)
        else:
            self._ns_table[key] = (value, self._t)


class TtlReducingState(TtlState, ReducingState[Any]):
    """``ReducingState`` with TTL: ``ns_table[key] = (reduced, ts)``."""

    __slots__ = ("_reduce",)

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        name: str,
        table: StateTable,
        descriptor: ReducingStateDescriptor,
        kind: StateKind,
        config: StateTtlConfig,
    ) -> None:
        super().__init__(backend, name, table, descriptor, kind, config)
        self._reduce = descriptor.reduce_function

    get = TtlState._get_single

    def add(self, value: Any) -> None:
        key = self._key_for_access()
        ns_table = self._ns_table
        if value is None:
            ns_table.pop(key, None)
            return
        now = self._t
        entry = ns_table.get(key)
        if entry is None or entry[1] + self._ttl <= now:
            ns_table[key] = (value, now)
        else:
            ns_table[key] = (self._reduce(entry[0], value), now)

    def _merge_stored(self, first: Any, second: Any) -> Any:
        return (self._reduce(first[0], second[0]), max(first[1], second[1]))


class TtlAggregatingState(TtlState, AggregatingState[Any, Any]):
    """``AggregatingState`` with TTL: ``ns_table[key] = (accumulator, ts)``."""

    __slots__ = ("_function",)

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        name: str,
        table: StateTable,
        descriptor: AggregatingStateDescriptor,
        kind: StateKind,
        config: StateTtlConfig,
    ) -> None:
        super().__init__(backend, name, table, descriptor, kind, config)
        self._function = descriptor.agg_function

    def get(self) -> Any:
        key = self._key_for_access()
        ns_table = self._ns_table
        entry = ns_table.get(key)
        if entry is None:
            return None
        now = self._t
        if entry[1] + self._ttl <= now:
            del ns_table[key]
            return self._function.get_result(entry[0]) if self._return_expired else None
        if self._update_on_read:
            ns_table[key] = (entry[0], now)
        return self._function.get_result(entry[0])

    def add(self, value: Any) -> None:
        key = self._key_for_access()
        ns_table = self._ns_table
        if value is None:
            ns_table.pop(key, None)
            return
        now = self._t
        entry = ns_table.get(key)
        if entry is None or entry[1] + self._ttl <= now:
            accumulator = self._function.create_accumulator()
        else:
            accumulator = entry[0]
        ns_table[key] = (self._function.add(value, accumulator), now)

    def _merge_stored(self, first: Any, second: Any) -> Any:
        merge = getattr(self._function, "merge", None)
        if not callable(merge):
            raise StateError(
                f"state '{self.name}': the AggregateFunction has no merge(); it is needed to "
                "merge session windows"
            )
        return (merge(first[0], second[0]), max(first[1], second[1]))


class TtlListState(TtlState, ListState[Any]):
    """``ListState`` with TTL per element: ``ns_table[key] = [(element, ts), ...]``."""

    __slots__ = ()

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        name: str,
        table: StateTable,
        descriptor: StateDescriptor,
        kind: StateKind,
        config: StateTtlConfig,
    ) -> None:
        super().__init__(backend, name, table, descriptor, kind, config)
        self._oldest = _oldest_in_list

    def _purged(self, stored: Any, now: int) -> Any:
        ttl = self._ttl
        alive = [pair for pair in stored if pair[1] + ttl > now]
        if not alive:
            return None
        return stored if len(alive) == len(stored) else alive

    def get(self) -> list[Any]:
        key = self._key_for_access()
        ns_table = self._ns_table
        stored = ns_table.get(key)
        if stored is None:
            return []
        now = self._t
        alive = self._purged(stored, now)
        result = [pair[0] for pair in (stored if self._return_expired else alive or ())]
        if alive is None:
            del ns_table[key]
        elif self._update_on_read:
            ns_table[key] = [(pair[0], now) for pair in alive]
        elif alive is not stored:
            ns_table[key] = alive
        return result

    def add(self, value: Any) -> None:
        key = self._key_for_access()
        if value is None:
            raise StateError(f"You cannot add None to a ListState ('{self.name}').")
        stored = self._ns_table.get(key)
        if stored is None:
            self._ns_table[key] = [(value, self._t)]
        else:
            stored.append((value, self._t))

    def add_all(self, values: list[Any]) -> None:
        key = self._key_for_access()
        new = checked_list(self.name, values)
        if not new:
            return
        now = self._t
        stored = self._ns_table.get(key)
        if stored is None:
            self._ns_table[key] = [(value, now) for value in new]
        else:
            stored.extend((value, now) for value in new)

    def update(self, values: list[Any]) -> None:
        key = self._key_for_access()
        new = checked_list(self.name, values)
        if new:
            now = self._t
            self._ns_table[key] = [(value, now) for value in new]
        else:
            self._ns_table.pop(key, None)

    def _merge_stored(self, first: Any, second: Any) -> Any:
        return [*first, *second]


class TtlMapState(TtlState, MapState[Any, Any]):
    """``MapState`` with TTL per entry: ``ns_table[key] = {user_key: (value, ts)}``."""

    __slots__ = ()

    def __init__(
        self,
        backend: HeapKeyedStateBackend,
        name: str,
        table: StateTable,
        descriptor: StateDescriptor,
        kind: StateKind,
        config: StateTtlConfig,
    ) -> None:
        super().__init__(backend, name, table, descriptor, kind, config)
        self._oldest = _oldest_in_map

    def _purged(self, stored: Any, now: int) -> Any:
        ttl = self._ttl
        if all(entry[1] + ttl > now for entry in stored.values()):
            return stored
        alive = {k: entry for k, entry in stored.items() if entry[1] + ttl > now}
        return alive or None

    def _entries(self) -> dict[Any, tuple[Any, int]] | None:
        """The current key's map after dropping expired entries; with ReturnExpired..., the
        map as it was (expired entries included) is returned while storage drops them."""
        key = self._key_for_access()
        ns_table = self._ns_table
        stored: dict[Any, tuple[Any, int]] | None = ns_table.get(key)
        if stored is None:
            return None
        now = self._t
        alive = self._purged(stored, now)
        if alive is None:
            del ns_table[key]
        elif self._update_on_read:
            ns_table[key] = {k: (entry[0], now) for k, entry in alive.items()}
        elif alive is not stored:
            ns_table[key] = alive
        result: dict[Any, tuple[Any, int]] | None = stored if self._return_expired else alive
        return result

    def get(self, key: Any) -> Any:
        current = self._key_for_access()
        stored = self._ns_table.get(current)
        if stored is None:
            return None
        entry = stored.get(key)
        if entry is None:
            return None
        now = self._t
        if entry[1] + self._ttl <= now:
            del stored[key]
            if not stored:
                del self._ns_table[current]
            return entry[0] if self._return_expired else None
        if self._update_on_read:
            stored[key] = (entry[0], now)
        return entry[0]

    def put(self, key: Any, value: Any) -> None:
        current = self._key_for_access()
        stored = self._ns_table.get(current)
        if stored is None:
            self._ns_table[current] = {key: (value, self._t)}
        else:
            stored[key] = (value, self._t)

    def put_all(self, dict_value: dict[Any, Any]) -> None:
        current = self._key_for_access()
        if not dict_value:
            return
        now = self._t
        stored = self._ns_table.get(current)
        if stored is None:
            stored = self._ns_table[current] = {}
        for key, value in dict_value.items():
            stored[key] = (value, now)

    def remove(self, key: Any) -> None:
        current = self._key_for_access()
        stored = self._ns_table.get(current)
        if stored is not None:
            stored.pop(key, None)
            if not stored:
                del self._ns_table[current]

    def contains(self, key: Any) -> bool:
        current = self._key_for_access()
        stored = self._ns_table.get(current)
        if stored is None:
            return False
        entry = stored.get(key)
        if entry is None:
            return False
        now = self._t
        if entry[1] + self._ttl <= now:
            del stored[key]
            if not stored:
                del self._ns_table[current]
            return self._return_expired
        if self._update_on_read:
            stored[key] = (entry[0], now)
        return True

    def items(self) -> list[tuple[Any, Any]]:
        entries = self._entries()
        return [] if entries is None else [(k, entry[0]) for k, entry in entries.items()]

    def keys(self) -> list[Any]:
        entries = self._entries()
        return [] if entries is None else list(entries)

    def values(self) -> list[Any]:
        entries = self._entries()
        return [] if entries is None else [entry[0] for entry in entries.values()]

    def is_empty(self) -> bool:
        return not self._entries()


_TTL_STATES: dict[StateKind, type[TtlState]] = {
    StateKind.VALUE: TtlValueState,
    StateKind.LIST: TtlListState,
    StateKind.MAP: TtlMapState,
    StateKind.REDUCING: TtlReducingState,
    StateKind.AGGREGATING: TtlAggregatingState,
}


def create_ttl_state(
    backend: HeapKeyedStateBackend,
    name: str,
    table: StateTable,
    descriptor: StateDescriptor,
    kind: StateKind,
    config: StateTtlConfig,
) -> TtlState:
    """The TTL variant of the heap state of ``kind``."""
    return _TTL_STATES[kind](backend, name, table, descriptor, kind, config)
