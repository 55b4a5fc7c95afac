"""Keyed and operator state: the descriptors users declare and the state handles they get.

A function declares *what* state it needs with a descriptor (``ValueStateDescriptor("count",
Types.LONG())``) and receives a handle from its runtime context in ``open()``. The handle is
scoped by the engine: on a keyed stream every access reads and writes the entry of the key of
the record (or timer) being processed, so one handle serves every key. The handles here are
abstract; the state backends in ``flinklet._private.state`` implement them.

Names and signatures follow PyFlink's ``pyflink.datastream.state`` so that PyFlink programs run
unchanged::

    from flinklet.datastream.state import StateTtlConfig, ValueStateDescriptor
    from flinklet.common.time import Time

    descriptor = ValueStateDescriptor("last_seen", None)
    descriptor.enable_time_to_live(
        StateTtlConfig.new_builder(Time.hours(1)).update_ttl_on_read_and_write().build()
    )
"""

from __future__ import annotations

import abc
import datetime
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

from flinklet.errors import ApiUsageError, ConfigurationError, StateError

__all__ = [
    "AggregatingState",
    "AggregatingStateDescriptor",
    "AppendingState",
    "BroadcastState",
    "ListState",
    "ListStateDescriptor",
    "MapState",
    "MapStateDescriptor",
    "MergingState",
    "ReadOnlyBroadcastState",
    "ReducingState",
    "ReducingStateDescriptor",
    "State",
    "StateDescriptor",
    "StateTtlConfig",
    "ValueState",
    "ValueStateDescriptor",
]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
IN = TypeVar("IN")
OUT = TypeVar("OUT")


# ---------------------------------------------------------------------------------------------
# State handles
# ---------------------------------------------------------------------------------------------


class State(abc.ABC):
    """Base of every state handle."""

    __slots__ = ()

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove the value(s) of the current key (and namespace)."""


class ValueState(State, Generic[T]):
    """One value per key. ``value()`` is ``None`` when the key has no value yet::

    count = self.count_state.value() or 0
    self.count_state.update(count + 1)
    """

    __slots__ = ()

    @abc.abstractmethod
    def value(self) -> T | None:
        """The current key's value, or ``None`` if it has none."""

    @abc.abstractmethod
    def update(self, value: T | None) -> None:
        """Replace the current key's value; ``update(None)`` clears it."""


class AppendingState(State, Generic[IN, OUT]):
    """State that values are added to, and read back as one result."""

    __slots__ = ()

    @abc.abstractmethod
    def get(self) -> OUT:
        """The current result for the current key."""

    @abc.abstractmethod
    def add(self, value: IN) -> None:
        """Add a value to the current key's state."""


class MergingState(AppendingState[IN, OUT]):
    """Appending state whose contents can be merged (session windows merge namespaces)."""

    __slots__ = ()


class ListState(MergingState[T, Iterable[T]]):
    """A list of elements per key. ``get()`` of a key without elements is empty (``[]``).

    The built-in backends return a fresh ``list``: changing it does not change the state, use
    ``update()`` for that.
    """

    __slots__ = ()

    @abc.abstractmethod
    def update(self, values: list[T]) -> None:
        """Replace the current key's elements; ``update([])`` clears them."""

    @abc.abstractmethod
    def add_all(self, values: list[T]) -> None:
        """Append every element of ``values``."""


class ReducingState(MergingState[T, T | None]):
    """One value per key, combined with a reduce function on every ``add()``."""

    __slots__ = ()


class AggregatingState(MergingState[IN, OUT | None]):
    """An accumulator per key, fed by ``add()``; ``get()`` returns the aggregate's result."""

    __slots__ = ()


class MapState(State, Generic[K, V]):
    """A map per key (user key -> value)::

    self.seen.put(item_id, True)
    if self.seen.contains(item_id): ...
    """

    __slots__ = ()

    @abc.abstractmethod
    def get(self, key: K) -> V | None:
        """The value under ``key`` for the current key, or ``None``."""

    @abc.abstractmethod
    def put(self, key: K, value: V) -> None:
        """Set the value under ``key``."""

    @abc.abstractmethod
    def put_all(self, dict_value: dict[K, V]) -> None:
        """Set every mapping of ``dict_value``."""

    @abc.abstractmethod
    def remove(self, key: K) -> None:
        """Remove ``key`` (no error if absent)."""

    @abc.abstractmethod
    def contains(self, key: K) -> bool:
        """Whether ``key`` has a value."""

    @abc.abstractmethod
    def items(self) -> Iterable[tuple[K, V]]:
        """All ``(key, value)`` pairs of the current key's map."""

    @abc.abstractmethod
    def keys(self) -> Iterable[K]:
        """All user keys of the current key's map."""

    @abc.abstractmethod
    def values(self) -> Iterable[V]:
        """All values of the current key's map."""

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """Whether the current key's map has no mappings."""

    def __getitem__(self, key: K) -> V | None:
        return self.get(key)

    def __setitem__(self, key: K, value: V) -> None:
        self.put(key, value)

    def __delitem__(self, key: K) -> None:
        self.remove(key)

    def __contains__(self, key: object) -> bool:
        return self.contains(key)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())


class ReadOnlyBroadcastState(abc.ABC, Generic[K, V]):
    """The broadcast state as the non-broadcast side sees it: read only, same on every
    subtask."""

    __slots__ = ()

    @abc.abstractmethod
    def get(self, key: K) -> V | None:
        """The value under ``key``, or ``None``."""

    @abc.abstractmethod
    def contains(self, key: K) -> bool:
        """Whether ``key`` has a value."""

    @abc.abstractmethod
    def items(self) -> Iterable[tuple[K, V]]:
        """All ``(key, value)`` pairs."""

    @abc.abstractmethod
    def keys(self) -> Iterable[K]:
        """All keys."""

    @abc.abstractmethod
    def values(self) -> Iterable[V]:
        """All values."""

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """Whether the state has no mappings."""

    def __getitem__(self, key: K) -> V | None:
        return self.get(key)

    def __contains__(self, key: object) -> bool:
        return self.contains(key)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())


class BroadcastState(ReadOnlyBroadcastState[K, V], State):
    """The broadcast state as the broadcast side sees it: writable. Write the same thing on
    every subtask (derive it from the broadcast element only), or the copies diverge."""

    __slots__ = ()

    @abc.abstractmethod
    def put(self, key: K, value: V) -> None:
        """Set the value under ``key``."""

    @abc.abstractmethod
    def put_all(self, dict_value: dict[K, V]) -> None:
        """Set every mapping of ``dict_value``."""

    @abc.abstractmethod
    def remove(self, key: K) -> None:
        """Remove ``key`` (no error if absent)."""

    def __setitem__(self, key: K, value: V) -> None:
        self.put(key, value)

    def __delitem__(self, key: K) -> None:
        self.remove(key)


# ---------------------------------------------------------------------------------------------
# Time-to-live
# ---------------------------------------------------------------------------------------------


def _ttl_to_milliseconds(ttl: Any) -> int:
    """Accept ``Time``/``Duration`` (anything with ``to_milliseconds()``), ``timedelta`` or int
    milliseconds, without importing ``flinklet.common.time``."""
    if isinstance(ttl, bool):
        raise ApiUsageError(
            f"state TTL must be a Time, a Duration or int milliseconds, got {ttl!r}"
        )
    if isinstance(ttl, int):
        millis = ttl
    elif isinstance(ttl, datetime.timedelta):
        millis = ttl // datetime.timedelta(milliseconds=1)
    elif callable(getattr(ttl, "to_milliseconds", None)):
        millis = int(ttl.to_milliseconds())
    else:
        raise ApiUsageError(
            f"state TTL must be a Time, a Duration or int milliseconds, got {type(ttl).__name__}; "
            "use e.g. StateTtlConfig.new_builder(Time.seconds(10))"
        )
    if millis <= 0:
        raise ConfigurationError(f"state TTL must be positive, got {millis} ms")
    return millis


@dataclass(frozen=True)
class IncrementalCleanupStrategy:
    """Check ``cleanup_size`` more entries for expiry on every state access."""

    cleanup_size: int
    run_for_every_record: bool = False

    def __post_init__(self) -> None:
        if self.cleanup_size <= 0:
            raise ConfigurationError(
                f"incremental TTL cleanup size must be positive, got {self.cleanup_size}"
            )

    def get_cleanup_size(self) -> int:
        return self.cleanup_size

    def run_cleanup_for_every_record(self) -> bool:
        return self.run_for_every_record


@dataclass(frozen=True)
class RocksdbCompactFilterCleanupStrategy:
    """Drop expired entries while RocksDB compacts (used by the RocksDB backend only)."""

    query_time_after_num_entries: int
    periodic_compaction_time: Any = None

    def __post_init__(self) -> None:
        if self.query_time_after_num_entries < 0:
            raise ConfigurationError(
                "query_time_after_num_entries must not be negative, "
                f"got {self.query_time_after_num_entries}"
            )

    def get_query_time_after_num_entries(self) -> int:
        return self.query_time_after_num_entries

    def get_periodic_compaction_time(self) -> Any:
        return self.periodic_compaction_time


DEFAULT_INCREMENTAL_CLEANUP = IncrementalCleanupStrategy(5, False)


@dataclass(frozen=True)
class CleanupStrategies:
    """Which background cleanups expire state besides the lazy check on read."""

    cleanup_in_background: bool = True
    full_snapshot: bool = False
    incremental_cleanup_strategy: IncrementalCleanupStrategy | None = None
    rocksdb_compact_filter_cleanup_strategy: RocksdbCompactFilterCleanupStrategy | None = None

    def is_cleanup_in_background(self) -> bool:
        return self.cleanup_in_background

    def in_full_snapshot(self) -> bool:
        return self.full_snapshot

    def get_incremental_cleanup_strategy(self) -> IncrementalCleanupStrategy | None:
        """The explicit incremental strategy, or the default one (5 entries per access) when
        cleanup in background is on, as Flink does for heap state."""
        if self.incremental_cleanup_strategy is not None:
            return self.incremental_cleanup_strategy
        return DEFAULT_INCREMENTAL_CLEANUP if self.cleanup_in_background else None

    def get_rocksdb_compact_filter_cleanup_strategy(
        self,
    ) -> RocksdbCompactFilterCleanupStrategy | None:
        return self.rocksdb_compact_filter_cleanup_strategy


@dataclass(frozen=True)
class StateTtlConfig:
    """Time-to-live of state entries, in processing time. Build it with
    ``StateTtlConfig.new_builder(ttl)``::

        ttl = (
            StateTtlConfig.new_builder(Time.minutes(5))
            .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .cleanup_incrementally(10, False)
            .build()
        )
        descriptor.enable_time_to_live(ttl)

    An entry expires ``ttl`` milliseconds after its last write (or read, with
    ``OnReadAndWrite``). List elements and map entries expire individually.
    """

    class UpdateType(Enum):
        """When the last-access timestamp of an entry is refreshed."""

        Disabled = 0
        OnCreateAndWrite = 1
        OnReadAndWrite = 2

    class StateVisibility(Enum):
        """Whether an expired entry that was not cleaned up yet may still be returned."""

        ReturnExpiredIfNotCleanedUp = 0
        NeverReturnExpired = 1

    class TtlTimeCharacteristic(Enum):
        """The time TTL is measured in (processing time only, as in Flink)."""

        ProcessingTime = 0

    ttl: Any
    update_type: StateTtlConfig.UpdateType = UpdateType.OnCreateAndWrite
    state_visibility: StateTtlConfig.StateVisibility = StateVisibility.NeverReturnExpired
    ttl_time_characteristic: StateTtlConfig.TtlTimeCharacteristic = (
        TtlTimeCharacteristic.ProcessingTime
    )
    cleanup_strategies: CleanupStrategies = field(default_factory=CleanupStrategies)
    ttl_milliseconds: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ttl_milliseconds", _ttl_to_milliseconds(self.ttl))

    @staticmethod
    def new_builder(ttl: Any) -> StateTtlConfig.Builder:
        """Start building a config for entries that live ``ttl`` (a ``Time``, ``Duration`` or
        int milliseconds)."""
        return StateTtlConfig.Builder(ttl)

    def get_update_type(self) -> StateTtlConfig.UpdateType:
        return self.update_type

    def get_state_visibility(self) -> StateTtlConfig.StateVisibility:
        return self.state_visibility

    def get_ttl(self) -> Any:
        """The TTL as given to the builder (see ``ttl_milliseconds`` for the number)."""
        return self.ttl

    def get_ttl_time_characteristic(self) -> StateTtlConfig.TtlTimeCharacteristic:
        return self.ttl_time_characteristic

    def is_enabled(self) -> bool:
        return self.update_type is not StateTtlConfig.UpdateType.Disabled

    def get_cleanup_strategies(self) -> CleanupStrategies:
        return self.cleanup_strategies

    class Builder:
        """Fluent builder of a ``StateTtlConfig`` (every setter returns the builder)."""

        def __init__(self, ttl: Any) -> None:
            _ttl_to_milliseconds(ttl)
            self._ttl = ttl
            self._update_type = StateTtlConfig.UpdateType.OnCreateAndWrite
            self._visibility = StateTtlConfig.StateVisibility.NeverReturnExpired
            self._characteristic = StateTtlConfig.TtlTimeCharacteristic.ProcessingTime
            self._in_background = True
            self._full_snapshot = False
            self._incremental: IncrementalCleanupStrategy | None = None
            self._compact_filter: RocksdbCompactFilterCleanupStrategy | None = None

        def set_update_type(self, update_type: StateTtlConfig.UpdateType) -> StateTtlConfig.Builder:
            if not isinstance(update_type, StateTtlConfig.UpdateType):
                raise ApiUsageError(
                    f"update type must be a StateTtlConfig.UpdateType, got {update_type!r}"
                )
            self._update_type = update_type
            return self

        def update_ttl_on_create_and_write(self) -> StateTtlConfig.Builder:
            return self.set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)

        def update_ttl_on_read_and_write(self) -> StateTtlConfig.Builder:
            return self.set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)

        def set_state_visibility(
            self, state_visibility: StateTtlConfig.StateVisibility
        ) -> StateTtlConfig.Builder:
            if not isinstance(state_visibility, StateTtlConfig.StateVisibility):
                raise ApiUsageError(
                    "state visibility must be a StateTtlConfig.StateVisibility, "
                    f"got {state_visibility!r}"
                )
            self._visibility = state_visibility
            return self

        def return_expired_if_not_cleaned_up(self) -> StateTtlConfig.Builder:
            return self.set_state_visibility(
                StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
            )

        def never_return_expired(self) -> StateTtlConfig.Builder:
            return self.set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)

        def set_ttl_time_characteristic(
            self, ttl_time_characteristic: StateTtlConfig.TtlTimeCharacteristic
        ) -> StateTtlConfig.Builder:
            if not isinstance(ttl_time_characteristic, StateTtlConfig.TtlTimeCharacteristic):
                raise ApiUsageError(
                    "TTL time characteristic must be StateTtlConfig.TtlTimeCharacteristic."
                    f"ProcessingTime, got {ttl_time_characteristic!r}"
                )
            self._characteristic = ttl_time_characteristic
            return self

        def use_processing_time(self) -> StateTtlConfig.Builder:
            return self.set_ttl_time_characteristic(
                StateTtlConfig.TtlTimeCharacteristic.ProcessingTime
            )

        def cleanup_full_snapshot(self) -> StateTtlConfig.Builder:
            """Leave expired entries out of full snapshots (checkpoints and savepoints)."""
            self._full_snapshot = True
            return self

        def cleanup_incrementally(
            self, cleanup_size: int, run_cleanup_for_every_record: bool
        ) -> StateTtlConfig.Builder:
            """On every access of the state, check ``cleanup_size`` more entries for expiry."""
            self._incremental = IncrementalCleanupStrategy(
                cleanup_size, run_cleanup_for_every_record
            )
            return self

        def cleanup_in_rocksdb_compact_filter(
            self, query_time_after_num_entries: int, periodic_compaction_time: Any = None
        ) -> StateTtlConfig.Builder:
            self._compact_filter = RocksdbCompactFilterCleanupStrategy(
                query_time_after_num_entries, periodic_compaction_time
            )
            return self

        def disable_cleanup_in_background(self) -> StateTtlConfig.Builder:
            """Only the lazy check on read (and explicitly configured cleanups) remain."""
            self._in_background = False
            return self

        def set_ttl(self, ttl: Any) -> StateTtlConfig.Builder:
            _ttl_to_milliseconds(ttl)
            self._ttl = ttl
            return self

        def build(self) -> StateTtlConfig:
            return StateTtlConfig(
                ttl=self._ttl,
                update_type=self._update_type,
                state_visibility=self._visibility,
                ttl_time_characteristic=self._characteristic,
                cleanup_strategies=CleanupStrategies(
                    cleanup_in_background=self._in_background,
                    full_snapshot=self._full_snapshot,
                    incremental_cleanup_strategy=self._incremental,
                    rocksdb_compact_filter_cleanup_strategy=self._compact_filter,
                ),
            )


# ---------------------------------------------------------------------------------------------
# Descriptors
# ---------------------------------------------------------------------------------------------


class StateDescriptor:
    """Names a piece of state and says what kind it is. Type information is kept for
    PyFlink compatibility; Flinklet serializes any picklable value."""

    def __init__(self, name: str, type_info: Any) -> None:
        if not isinstance(name, str) or not name:
            raise StateError(f"a state name must be a non-empty str, got {name!r}")
        self.name = name
        self.type_info = type_info
        self._ttl_config: StateTtlConfig | None = None

    def get_name(self) -> str:
        return self.name

    @property
    def ttl_config(self) -> StateTtlConfig | None:
        """The TTL config enabled on this descriptor, if any."""
        return self._ttl_config

    def enable_time_to_live(self, ttl_config: StateTtlConfig) -> None:
        """Let entries of this state expire as ``ttl_config`` says."""
        if not isinstance(ttl_config, StateTtlConfig):
            raise StateError(
                f"enable_time_to_live takes a StateTtlConfig, got {type(ttl_config).__name__}; "
                "build one with StateTtlConfig.new_builder(ttl).build()"
            )
        if not ttl_config.is_enabled():
            raise StateError(
                f"state '{self.name}': the state TTL config update type cannot be Disabled"
            )
        self._ttl_config = ttl_config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ValueStateDescriptor(StateDescriptor):
    """Describes a ``ValueState``: ``ValueStateDescriptor("count", Types.LONG())``."""

    def __init__(self, name: str, value_type_info: Any) -> None:
        super().__init__(name, value_type_info)


class ListStateDescriptor(StateDescriptor):
    """Describes a ``ListState``: ``ListStateDescriptor("buffer", Types.STRING())``."""

    def __init__(self, name: str, elem_type_info: Any) -> None:
        super().__init__(name, elem_type_info)
        self.elem_type_info = elem_type_info


class MapStateDescriptor(StateDescriptor):
    """Describes a ``MapState`` (or a broadcast state):
    ``MapStateDescriptor("rules", Types.STRING(), Types.PICKLED_BYTE_ARRAY())``."""

    def __init__(self, name: str, key_type_info: Any, value_type_info: Any) -> None:
        super().__init__(name, None)
        self.key_type_info = key_type_info
        self.value_type_info = value_type_info


class ReducingStateDescriptor(StateDescriptor):
    """Describes a ``ReducingState``; ``reduce_function`` is a ``ReduceFunction`` or a plain
    callable ``(a, b) -> c``: ``ReducingStateDescriptor("sum", lambda a, b: a + b, None)``."""

    def __init__(self, name: str, reduce_function: Any, type_info: Any) -> None:
        super().__init__(name, type_info)
        reduce_method = getattr(reduce_function, "reduce", None)
        normalized: Callable[[Any, Any], Any]
        if callable(reduce_method):
            normalized = reduce_method
        elif callable(reduce_function):
            normalized = reduce_function
        else:
            raise StateError(
                f"state '{name}': reduce_function must be a ReduceFunction or a callable "
                f"(a, b) -> c, got {type(reduce_function).__name__}"
            )
        self._reduce_function_obj = reduce_function
        self.reduce_function: Callable[[Any, Any], Any] = normalized

    def get_reduce_function(self) -> Any:
        """The reduce function as given (``reduce_function`` is the normalized callable)."""
        return self._reduce_function_obj


class AggregatingStateDescriptor(StateDescriptor):
    """Describes an ``AggregatingState``; ``agg_function`` is an ``AggregateFunction``
    (``create_accumulator()``, ``add(value, acc) -> acc``, ``get_result(acc)``,
    ``merge(a, b)``)."""

    def __init__(self, name: str, agg_function: Any, state_type_info: Any) -> None:
        super().__init__(name, state_type_info)
        missing = [
            method
            for method in ("create_accumulator", "add", "get_result")
            if not callable(getattr(agg_function, method, None))
        ]
        if missing:
            raise StateError(
                f"state '{name}': agg_function must be an AggregateFunction; "
                f"{type(agg_function).__name__} has no {', '.join(missing)}()"
            )
        self.agg_function = agg_function

    def get_agg_function(self) -> Any:
        return self.agg_function
