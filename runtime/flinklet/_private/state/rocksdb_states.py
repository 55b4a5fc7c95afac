"""State handles of the RocksDB backend: each state kind as reads and writes of RocksDB keys.

Every entry lives under the layout key of ``layout.py``
(``key_group | key | namespace | state name``), built here by concatenating the current
key's part (cached by the backend) and the handle's namespace-and-name suffix (cached per
namespace), so an access costs one ``bytes`` concatenation before the RocksDB call:

- value, reducing and aggregating states: one entry, ``layout key -> serialize(value)``;
- list states: one entry per element, ``layout key | 0x00 | 8-byte sequence number``, so
  ``add`` is one write (no read-modify-write) and elements keep their order;
- map states: one entry per user key, ``layout key | 0x00 | serialize_key(user key)``.

State names may not contain NUL, which keeps the ``0x00`` separator unambiguous. With a TTL
the stored values are ``(value, ts)`` (list elements and map values one by one), exactly as
``ttl.py`` stores them on the heap; expired entries are removed when read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from flinklet._private.state.backend import (
    VOID_NAMESPACE,
    StateKind,
    checked_list,
    namespace_to_bytes,
)
from flinklet._private.state.serializers import (
    FORMAT_VERSION,
    deserialize,
    deserialize_key,
    encode_varint,
    serialize,
    serialize_key,
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

if TYPE_CHECKING:
    from flinklet._private.state.rocksdb import RocksDBKeyedStateBackend

__all__ = [
    "ENTRY_SEPARATOR",
    "RocksDBState",
    "TtlPolicy",
    "create_state",
    "decode_value",
    "encode_value",
    "plain_tuple",
    "state_suffix",
]

ENTRY_SEPARATOR: Final = b"\x00"
"""Separates a layout key from the element/user-key part of list and map entries."""

_MISSING: Final[Any] = object()
_SUFFIX_CACHE_LIMIT = 4096
_INT64 = struct.Struct(">q")
_INT_PREFIX: Final = bytes([FORMAT_VERSION, ord("i")])
_STR_HEADERS: Final = [bytes([FORMAT_VERSION, ord("s"), n]) for n in range(128)]
_INT_TAG: Final = ord("i")
_STR_TAG: Final = ord("s")
_TUPLE_TAG: Final = ord("t")
_TUPLE_PREFIX: Final = bytes([FORMAT_VERSION, _TUPLE_TAG])
_INT64_MIN: Final = -0x8000000000000000
_INT64_MAX: Final = 0x7FFFFFFFFFFFFFFF


def encode_value(value: Any) -> bytes:
    """``serialize(value)``, byte for byte, with ints, short strings and flat tuples of them
    (the usual counters, labels and ``(key, count)`` pairs) encoded without the general
    type dispatch."""
    t = type(value)
    if t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return _INT_PREFIX + _INT64.pack(value)
    elif t is str:
        data: bytes = value.encode("utf-8", "surrogatepass")
        if len(data) < 128:
            return _STR_HEADERS[len(data)] + data
    elif t is tuple and len(value) < 128:
        out = bytearray(_TUPLE_PREFIX)
        out.append(len(value))
        for item in value:
            item_type = type(item)
            if item_type is int and _INT64_MIN <= item <= _INT64_MAX:
                out.append(_INT_TAG)
                out += _INT64.pack(item)
            elif item_type is str:
                data = item.encode("utf-8", "surrogatepass")
                if len(data) >= 128:
                    return serialize(value)
                out.append(_STR_TAG)
                out.append(len(data))
                out += data
            else:
                return serialize(value)
        return bytes(out)
    return serialize(value)


def _decode_flat_tuple(raw: bytes) -> tuple[Any, ...] | None:
    """The flat tuple ``encode_value`` wrote, or ``None`` for any other shape."""
    pos, end = 3, len(raw)
    items: list[Any] = []
    try:
        for _ in range(raw[2]):
            tag = raw[pos]
            if tag == _INT_TAG and pos + 9 <= end:
                items.append(_INT64.unpack_from(raw, pos + 1)[0])
                pos += 9
            elif tag == _STR_TAG and raw[pos + 1] < 128 and pos + 2 + raw[pos + 1] <= end:
                size = raw[pos + 1]
                items.append(raw[pos + 2 : pos + 2 + size].decode("utf-8", "surrogatepass"))
                pos += 2 + size
            else:
                return None
    except (IndexError, UnicodeDecodeError):
        return None
    return tuple(items) if pos == end else None


def decode_value(raw: bytes) -> Any:
    """``deserialize(raw)``, with the shapes ``encode_value`` special-cases read directly."""
    if raw[0] == FORMAT_VERSION:
        tag = raw[1]
        if tag == _INT_TAG and len(raw) == 10:
            return _INT64.unpack_from(raw, 2)[0]
        if tag == _STR_TAG and len(raw) == raw[2] + 3:
            return raw[3:].decode("utf-8", "surrogatepass")
        if tag == _TUPLE_TAG and len(raw) > 2 and raw[2] < 128:
            items = _decode_flat_tuple(raw)
            if items is not None:
                return items
    return deserialize(raw)


def plain_tuple(key: tuple[Any, ...]) -> bool:
    """Whether every element is a str, int or bytes: equal tuples of those are equal
    element by element *and type by type*, so they may share a cache entry."""
    for element in key:
        t = type(element)
        if t is not str and t is not int and t is not bytes:
            return False
    return True


def state_suffix(namespace_bytes: bytes, name_bytes: bytes) -> bytes:
    """The part of a layout key after the key: ``varint len | namespace | state name``."""
    out = bytearray()
    encode_varint(len(namespace_bytes), out)
    out += namespace_bytes
    out += name_bytes
    return bytes(out)


class TtlPolicy:
    """What a snapshot does with the expired entries of a TTL state."""

    __slots__ = ("delete_expired", "leave_out_expired", "ttl_ms")

    def __init__(self, ttl_ms: int, leave_out_expired: bool, delete_expired: bool) -> None:
        self.ttl_ms = ttl_ms
        self.leave_out_expired = leave_out_expired
        self.delete_expired = delete_expired


class RocksDBState:
    """Scoping shared by every RocksDB state: current key (from the backend) and namespace."""

    __slots__ = (
        "_backend",
        "_db",
        "_name_bytes",
        "_namespace",
        "_suffix",
        "_suffixes",
        "descriptor_type",
        "kind",
        "name",
    )

    def __init__(
        self,
        backend: RocksDBKeyedStateBackend,
        name: str,
        descriptor: StateDescriptor,
        kind: StateKind,
    ) -> None:
        self._backend = backend
        self._db: Any = backend.db
        self.name = name
        self.kind = kind
        self.descriptor_type = type(descriptor)
        self._name_bytes = name.encode("utf-8")
        self._namespace: Any = VOID_NAMESPACE
        self._suffix = state_suffix(b"", self._name_bytes)
        self._suffixes: dict[Any, bytes] = {VOID_NAMESPACE: self._suffix}

    def rebind(self, db: Any) -> None:
        """Use ``db`` from now on (the backend reopened its database)."""
        self._db = db

    def ttl_policy(self) -> TtlPolicy | None:
        return None

    # -- scoping --------------------------------------------------------------------------

    def set_current_namespace(self, namespace: Any) -> None:
        """Scope further accesses to ``namespace`` (a window, or ``VOID_NAMESPACE``)."""
        self._suffix = self._suffix_for(namespace)
        self._namespace = namespace

    def get_current_namespace(self) -> Any:
        return self._namespace

    def _suffix_for(self, namespace: Any) -> bytes:
        suffixes = self._suffixes
        try:
            suffix = suffixes.get(namespace)
        except TypeError:  # an unhashable namespace: not cached
            return state_suffix(namespace_to_bytes(namespace), self._name_bytes)
        if suffix is None:
            suffix = state_suffix(namespace_to_bytes(namespace), self._name_bytes)
            if len(suffixes) >= _SUFFIX_CACHE_LIMIT:
                suffixes.clear()
                suffixes[VOID_NAMESPACE] = state_suffix(b"", self._name_bytes)
            suffixes[namespace] = suffix
        return suffix

    def _key(self) -> bytes:
        """The layout key of the current key in the current namespace."""
        backend = self._backend
        key = backend.current_key
        if key is backend.part_key:
            return backend.part + self._suffix
        return backend.key_part(key, self.name) + self._suffix

    def _error(self, exc: Exception) -> StateError:
        return self._backend.storage_error(exc, f"access state '{self.name}'")

    # -- shared operations ---------------------------------------------------------------

    def _get_raw(self, db_key: bytes) -> bytes | None:
        try:
            raw: bytes | None = self._db.get(db_key)
        except Exception as exc:  # rocksdict raises plain Exception
            raise self._error(exc) from exc
        return raw

    def _put_raw(self, db_key: bytes, value: bytes) -> None:
        try:
            self._db.put(db_key, value)
        except Exception as exc:
            raise self._error(exc) from exc

    def _delete_raw(self, db_key: bytes) -> None:
        try:
            self._db.delete(db_key)
        except Exception as exc:
            raise self._error(exc) from exc

    def _entries(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return self._backend.scan(prefix)

    def clear(self) -> None:
        self._delete_raw(self._key())

    # -- merging (list, reducing, aggregating) --------------------------------------------

    def _merge_stored(self, first: Any, second: Any) -> Any:
        raise StateError(f"state '{self.name}' ({self.kind.value}) cannot merge namespaces")

    def _alive(self, stored: Any) -> Any:
        """``stored`` if it has not expired, else ``None`` (TTL states)."""
        return stored

    def merge_namespaces(self, target: Any, sources: Iterable[Any]) -> None:
        """Fold the current key's state in each namespace of ``sources`` into ``target`` and
        remove it from the sources (session-window merging)."""
        backend = self._backend
        part = backend.key_part(backend.current_key, self.name)
        deletes: list[bytes] = []
        merged: Any = _MISSING
        for source in sources:
            if source == target:
                continue
            source_key = part + self._suffix_for(source)
            raw = self._get_raw(source_key)
            if raw is None:
                continue
            deletes.append(source_key)
            stored = self._alive(deserialize(raw))
            if stored is None:
                continue
            merged = stored if merged is _MISSING else self._merge_stored(merged, stored)
        puts: list[tuple[bytes, bytes]] = []
        if merged is not _MISSING:
            target_key = part + self._suffix_for(target)
            raw = self._get_raw(target_key)
            existing = None if raw is None else self._alive(deserialize(raw))
            result = merged if existing is None else self._merge_stored(existing, merged)
            puts.append((target_key, serialize(result)))
        backend.write(puts, deletes)


# ---------------------------------------------------------------------------------------------
# Plain states
# ---------------------------------------------------------------------------------------------


class RocksDBValueState(RocksDBState, ValueState[Any]):
    """``ValueState``: ``layout key -> serialize(value)``.

    While a keyed operator processes a batch, ``prefetched`` may hold the stored bytes of
    the batch's keys, read with one RocksDB MultiGet (``RocksDBKeyedStateBackend.prefetch``):
    reads are served from it, and every write of this state goes to RocksDB first and then
    to it, so it never differs from the database. ``reads`` counts ``value()`` calls since
    the last prefetch (the backend prefetches only states the previous batch read).
    """

    __slots__ = ("prefetched", "reads")

    def __init__(
        self,
        backend: RocksDBKeyedStateBackend,
        name: str,
        descriptor: StateDescriptor,
        kind: StateKind,
    ) -> None:
        super().__init__(backend, name, descriptor, kind)
        self.prefetched: dict[bytes, bytes | None] | None = None
        self.reads = 0

    def value(self) -> Any:
        backend = self._backend
        key = backend.current_key
        if key is backend.part_key:
            db_key = backend.part + self._suffix
        else:
            db_key = backend.key_part(key, self.name) + self._suffix
        self.reads += 1
        prefetched = self.prefetched
        if prefetched is not None:
            raw = prefetched.get(db_key, _MISSING)
            if raw is not _MISSING:
                return None if raw is None else decode_value(raw)
        try:
            raw = self._db.get(db_key)
        except Exception as exc:
            raise self._error(exc) from exc
        return None if raw is None else decode_value(raw)

    def update(self, value: Any) -> None:
        backend = self._backend
        key = backend.current_key
        if key is backend.part_key:
            db_key = backend.part + self._suffix
        else:
            db_key = backend.key_part(key, self.name) + self._suffix
        try:
            if value is None:
                self._db.delete(db_key)
                raw = None
            else:
                raw = encode_value(value)
                self._db.put(db_key, raw)
        except StateError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        prefetched = self.prefetched
        if prefetched is not None:
            prefetched[db_key] = raw

    def clear(self) -> None:
        self.update(None)


class RocksDBReducingState(RocksDBState, ReducingState[Any]):
    """``ReducingState``: ``layout key -> serialize(reduced value)``."""

    __slots__ = ("_reduce",)

    def __init__(
        self,
        backend: RocksDBKeyedStateBackend,
        name: str,
        descriptor: ReducingStateDescriptor,
        kind: StateKind,
    ) -> None:
        super().__init__(backend, name, descriptor, kind)
        self._reduce = descriptor.reduce_function

    def get(self) -> Any:
        raw = self._get_raw(self._key())
        return None if raw is None else decode_value(raw)

    def add(self, value: Any) -> None:
        db_key = self._key()
        if value is None:  # as in Flink: adding None clears
            self._delete_raw(db_key)
            return
        raw = self._get_raw(db_key)
        new = value if raw is None else self._reduce(decode_value(raw), value)
        self._put_raw(db_key, encode_value(new))

    def _merge_stored(self, first: Any, second: Any) -> Any:
        return self._reduce(first, second)


def _merge_accumulators(state_name: str, function: Any, first: Any, second: Any) -> Any:
    merge = getattr(function, "merge", None)
    if not callable(merge):
        raise StateError(
            f"state '{state_name}': the AggregateFunction has no merge(); it is needed to "
            "merge session windows"
        )
    return merge(first, second)


class RocksDBAggregatingState(RocksDBState, AggregatingState[Any, Any]):
    """``AggregatingState``: ``layout key -> serialize(accumulator)``."""

    __slots__ = ("_function",)

    def __init__(
        self,
        backend: RocksDBKeyedStateBackend,
        name: str,
        descriptor: AggregatingStateDescriptor,
        kind: StateKind,
    ) -> None:
        super().__init__(backend, name, descriptor, kind)
        self._function = descriptor.agg_function

    def get(self) -> Any:
        raw = self._get_raw(self._key())
        return None if raw is None else self._function.get_result(deserialize(raw))

    def add(self, value: Any) -> None:
        db_key = self._key()
        if value is None:  # as in Flink: adding None clears
            self._delete_raw(db_key)
            return
        raw = self._get_raw(db_key)
        accumulator = self._function.create_accumulator() if raw is None else deserialize(raw)
        self._put_raw(db_key, serialize(self._function.add(value, accumulator)))

    def _merge_stored(self, first: Any, second: Any) -> Any:
        return _merge_accumulators(self.name, self._function, first, second)


class RocksDBListState(RocksDBState, ListState[Any]):
    """``ListState``: one entry per element, ``layout key | 0x00 | sequence number``."""

    __slots__ = ()

    def _wrap(self, element: Any) -> Any:
        """What is stored for ``element`` (TTL states add the timestamp)."""
        return element

    def get(self) -> list[Any]:
        return [deserialize(raw) for _, raw in self._entries(self._key() + ENTRY_SEPARATOR)]

    def add(self, value: Any) -> None:
        db_key = self._key()
        if value is None:
            raise StateError(f"You cannot add None to a ListState ('{self.name}').")
        self._put_raw(
            db_key + ENTRY_SEPARATOR + self._backend.next_sequence(), serialize(self._wrap(value))
        )

    def add_all(self, values: list[Any]) -> None:
        prefix = self._key() + ENTRY_SEPARATOR
        new = checked_list(self.name, values)
        if new:
            self._append(prefix, new, [])

    def update(self, values: list[Any]) -> None:
        prefix = self._key() + ENTRY_SEPARATOR
        new = checked_list(self.name, values)
        self._append(prefix, new, self._backend.scan_keys(prefix))

    def _append(self, prefix: bytes, elements: list[Any], deletes: list[bytes]) -> None:
        sequence = self._backend.next_sequence
        wrap = self._wrap
        self._backend.write(
            [(prefix + sequence(), serialize(wrap(element))) for element in elements], deletes
        )

    def clear(self) -> None:
        prefix = self._key() + ENTRY_SEPARATOR
        self._backend.write([], self._backend.scan_keys(prefix))

    def merge_namespaces(self, target: Any, sources: Iterable[Any]) -> None:
        """Move the current key's elements of each source namespace to the end of
        ``target``'s list (session-window merging)."""
        backend = self._backend
        part = backend.key_part(backend.current_key, self.name)
        target_prefix = part + self._suffix_for(target) + ENTRY_SEPARATOR
        puts: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        for source in sources:
            if source == target:
                continue
            for db_key, raw in self._entries(part + self._suffix_for(source) + ENTRY_SEPARATOR):
                deletes.append(db_key)
                if self._alive(deserialize(raw)) is not None:
                    puts.append((target_prefix + backend.next_sequence(), raw))
        backend.write(puts, deletes)


class RocksDBMapState(RocksDBState, MapState[Any, Any]):
    """``MapState``: one entry per user key, ``layout key | 0x00 | serialized user key``."""

    __slots__ = ()

    def _entry_key(self, user_key: Any) -> bytes:
        return self._key() + ENTRY_SEPARATOR + serialize_key(user_key)

    def _user_entries(self) -> list[tuple[Any, Any]]:
        prefix = self._key() + ENTRY_SEPARATOR
        start = len(prefix)
        return [
            (deserialize_key(db_key[start:]), deserialize(raw))
            for db_key, raw in self._entries(prefix)
        ]

    def get(self, key: Any) -> Any:
        raw = self._get_raw(self._entry_key(key))
        return None if raw is None else deserialize(raw)

    def put(self, key: Any, value: Any) -> None:
        self._put_raw(self._entry_key(key), serialize(value))

    def put_all(self, dict_value: dict[Any, Any]) -> None:
        prefix = self._key() + ENTRY_SEPARATOR
        if dict_value:
            self._backend.write(
                [(prefix + serialize_key(k), serialize(v)) for k, v in dict_value.items()], []
            )

    def remove(self, key: Any) -> None:
        self._delete_raw(self._entry_key(key))

    def contains(self, key: Any) -> bool:
        return self._get_raw(self._entry_key(key)) is not None

    def items(self) -> list[tuple[Any, Any]]:
        return self._user_entries()

    def keys(self) -> list[Any]:
        prefix = self._key() + ENTRY_SEPARATOR
        start = len(prefix)
        return [deserialize_key(db_key[start:]) for db_key in self._backend.scan_keys(prefix)]

    def values(self) -> list[Any]:
        return [deserialize(raw) for _, raw in self._entries(self._key() + ENTRY_SEPARATOR)]

    def is_empty(self) -> bool:
        return not self._backend.scan_keys(self._key() + ENTRY_SEPARATOR, limit=1)

    def clear(self) -> None:
        prefix = self._key() + ENTRY_SEPARATOR
        self._backend.write([], self._backend.scan_keys(prefix))


# ---------------------------------------------------------------------------------------------
# States with TTL: stored values are (value, ts); see ttl.py for the semantics
# ---------------------------------------------------------------------------------------------


class _Ttl(RocksDBState):
    """The TTL settings of one state, shared by the TTL handle classes below."""

    __slots__ = ("_now", "_policy", "_return_expired", "_ttl", "_update_on_read")

    def _configure(self, backend: RocksDBKeyedStateBackend, config: StateTtlConfig) -> None:
        self._ttl = config.ttl_milliseconds
        self._now = backend.time_provider
        self._update_on_read = config.update_type is StateTtlConfig.UpdateType.OnReadAndWrite
        self._return_expired = (
            config.state_visibility is StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
        )
        strategies = config.cleanup_strategies
        self._policy = TtlPolicy(
            config.ttl_milliseconds,
            leave_out_expired=strategies.in_full_snapshot(),
            # RocksDB has no per-access sweep: any background cleanup (incremental, the
            # compaction filter, or the default) deletes expired entries at snapshots
            delete_expired=strategies.is_cleanup_in_background()
            or strategies.get_incremental_cleanup_strategy() is not None
            or strategies.get_rocksdb_compact_filter_cleanup_strategy() is not None,
        )

    def ttl_policy(self) -> TtlPolicy | None:
        return self._policy

    def _alive(self, stored: Any) -> Any:
        return None if stored[1] + self._ttl <= self._now() else stored


class _TtlSingle(_Ttl):
    """Value, reducing and aggregating states with TTL: ``layout key -> (value, ts)``."""

    __slots__ = ()

    def _read(self, db_key: bytes) -> tuple[Any, bool]:
        """``(stored value, visible)`` of the entry (``(None, False)`` when absent), after
        the TTL rules: an expired entry is deleted and visible only with
        ``ReturnExpiredIfNotCleanedUp``; ``OnReadAndWrite`` refreshes a live one."""
        raw = self._get_raw(db_key)
        if raw is None:
            return None, False
        value, ts = deserialize(raw)
        now = self._now()
        if ts + self._ttl <= now:
            self._delete_raw(db_key)
            return value, self._return_expired
        if self._update_on_read:
            self._put_raw(db_key, serialize((value, now)))
        return value, True

    def _live(self, db_key: bytes) -> Any:
        """The stored value if present and not expired (no refresh), else ``_MISSING``."""
        raw = self._get_raw(db_key)
        if raw is None:
            return _MISSING
        value, ts = deserialize(raw)
        return _MISSING if ts + self._ttl <= self._now() else value


class TtlValueState(_TtlSingle, ValueState[Any]):
    __slots__ = ()

    def value(self) -> Any:
        value, visible = self._read(self._key())
        return value if visible else None

    def update(self, value: Any) -> None:
        db_key = self._key()
        if value is None:
            self._delete_raw(db_key)
        else:
            self._put_raw(db_key, serialize((value, self._now())))


class TtlReducingState(_TtlSingle, ReducingState[Any]):
    __slots__ = ("_reduce",)

    def __init__(
        self,
        backend: RocksDBKeyedStateBackend,
        name: str,
        descriptor: ReducingStateDescriptor,
        kind: StateKind,
    ) -> None:
        super().__init__(backend, name, descriptor, kind)
        self._reduce = descriptor.reduce_function

    def get(self) -> Any:
        value, visible = self._read(self._key())
        return value if visible else None

    def add(self, value: Any) -> None:
        db_key = self._key()
        if value is None:
            self._delete_raw(db_key)
            return
        previous = self._live(db_key)
        new = value if previous is _MISSING else self._reduce(previous, value)
        self._put_raw(db_key, serialize((new, self._now())))

    def _merge_stored(self, first: Any, second: Any) -> Any:
        return (self._reduce(first[0], second[0]), max(first[1], second[1]))


class TtlAggregatingState(_TtlSingle, AggregatingState[Any, Any]):
    __slots__ = ("_function",)

    def __init__(
        self,
        backend: RocksDBKeyedStateBackend,
        name: str,
        descriptor: AggregatingStateDescriptor,
        kind: StateKind,
    ) -> None:
        super().__init__(backend, name, descriptor, kind)
        self._function = descriptor.agg_function

    def get(self) -> Any:
        accumulator, visible = self._read(self._key())
        return self._function.get_result(accumulator) if visible else None

    def add(self, value: Any) -> None:
        db_key = self._key()
        if value is None:
            self._delete_raw(db_key)
            return
        accumulator = self._live(db_key)
        if accumulator is _MISSING:
            accumulator = self._function.create_accumulator()
        self._put_raw(db_key, serialize((self._function.add(value, accumulator), self._now())))

    def _merge_stored(self, first: Any, second: Any) -> Any:
        merged = _merge_accumulators(self.name, self._function, first[0], second[0])
        return (merged, max(first[1], second[1]))


class _TtlEntries(_Ttl):
    """List and map states with TTL: every element / map value is stored as ``(x, ts)``."""

    __slots__ = ()

    def _sweep(self, prefix: bytes) -> list[tuple[bytes, Any, bool]]:
        """``(db key, stored x, alive)`` of each entry under ``prefix``; expired entries are
        deleted and live ones refreshed with ``OnReadAndWrite``."""
        now = self._now()
        ttl = self._ttl
        rows: list[tuple[bytes, Any, bool]] = []
        deletes: list[bytes] = []
        puts: list[tuple[bytes, bytes]] = []
        for db_key, raw in self._entries(prefix):
            x, ts = deserialize(raw)
            alive = ts + ttl > now
            rows.append((db_key, x, alive))
            if not alive:
                deletes.append(db_key)
            elif self._update_on_read:
                puts.append((db_key, serialize((x, now))))
        if deletes or puts:
            self._backend.write(puts, deletes)
        return rows

    def _visible(self, prefix: bytes) -> list[tuple[bytes, Any]]:
        show_all = self._return_expired
        return [(k, x) for k, x, alive in self._sweep(prefix) if alive or show_all]


class TtlListState(_TtlEntries, RocksDBListState):
    __slots__ = ()

    def _wrap(self, element: Any) -> Any:
        return (element, self._now())

    def get(self) -> list[Any]:
        return [x for _, x in self._visible(self._key() + ENTRY_SEPARATOR)]

    def _append(self, prefix: bytes, elements: list[Any], deletes: list[bytes]) -> None:
        now = self._now()
        sequence = self._backend.next_sequence
        self._backend.write(
            [(prefix + sequence(), serialize((element, now))) for element in elements], deletes
        )


class TtlMapState(_TtlEntries, RocksDBMapState):
    __slots__ = ()

    def _user_entries(self) -> list[tuple[Any, Any]]:
        prefix = self._key() + ENTRY_SEPARATOR
        start = len(prefix)
        return [(deserialize_key(k[start:]), x) for k, x in self._visible(prefix)]

    def _read_entry(self, db_key: bytes) -> tuple[Any, bool]:
        raw = self._get_raw(db_key)
        if raw is None:
            return None, False
        value, ts = deserialize(raw)
        now = self._now()
        if ts + self._ttl <= now:
            self._delete_raw(db_key)
            return value, self._return_expired
        if self._update_on_read:
            self._put_raw(db_key, serialize((value, now)))
        return value, True

    def get(self, key: Any) -> Any:
        value, visible = self._read_entry(self._entry_key(key))
        return value if visible else None

    def contains(self, key: Any) -> bool:
        return self._read_entry(self._entry_key(key))[1]

    def put(self, key: Any, value: Any) -> None:
        self._put_raw(self._entry_key(key), serialize((value, self._now())))

    def put_all(self, dict_value: dict[Any, Any]) -> None:
        prefix = self._key() + ENTRY_SEPARATOR
        if dict_value:
            now = self._now()
            self._backend.write(
                [(prefix + serialize_key(k), serialize((v, now))) for k, v in dict_value.items()],
                [],
            )

    def keys(self) -> list[Any]:
        return [k for k, _ in self._user_entries()]

    def values(self) -> list[Any]:
        return [v for _, v in self._user_entries()]

    def is_empty(self) -> bool:
        return not self._user_entries()


_PLAIN: dict[StateKind, type[RocksDBState]] = {
    StateKind.VALUE: RocksDBValueState,
    StateKind.LIST: RocksDBListState,
    StateKind.MAP: RocksDBMapState,
    StateKind.REDUCING: RocksDBReducingState,
    StateKind.AGGREGATING: RocksDBAggregatingState,
}

_WITH_TTL: dict[StateKind, type[_Ttl]] = {
    StateKind.VALUE: TtlValueState,
    StateKind.LIST: TtlListState,
    StateKind.MAP: TtlMapState,
    StateKind.REDUCING: TtlReducingState,
    StateKind.AGGREGATING: TtlAggregatingState,
}


def create_state(
    backend: RocksDBKeyedStateBackend, descriptor: StateDescriptor, kind: StateKind
) -> RocksDBState:
    """The handle of ``descriptor``'s state (a TTL class when it has a TTL config)."""
    config = descriptor.ttl_config
    if config is None:
        return _PLAIN[kind](backend, descriptor.name, descriptor, kind)
    state = _WITH_TTL[kind](backend, descriptor.name, descriptor, kind)
    state._configure(backend, config)
    return state
