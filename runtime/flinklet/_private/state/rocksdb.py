"""The RocksDB state backend: keyed state of one subtask in an embedded RocksDB (rocksdict).

State that does not fit in memory lives on local disk: one RocksDB instance per keyed
operator subtask, in ``<state.backend.rocksdb.localdir>/<scope>-<random>/db``, written
without a write-ahead log (recovery is from checkpoints, as in Flink). Keys are the layout
keys of ``layout.py`` (key group first), so a subtask's key groups are one contiguous byte
range and every snapshot is one range scan with a single iterator (a consistent view).

``snapshot()`` writes the same canonical ``KeyedStateSnapshot`` as the heap backend, so
checkpoints and savepoints move freely between the two backends and across parallelism.
``snapshot_incremental()`` instead hands over RocksDB's own SST files (hard-linked by a
RocksDB checkpoint): files already uploaded for an earlier checkpoint are only referenced
again (see ``shared_registry.py``).

This is the only module (with its state handles in ``rocksdb_states.py``) that talks to
rocksdict; its errors become ``StateError`` here, with what to do about them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, overload

from flinklet._private.state.backend import (
    NO_KEY,
    VOID_NAMESPACE,
    KeyedStateSnapshot,
    StateKind,
    StateMetaInfo,
    check_restore_max_parallelism,
    kind_of,
    merge_state_meta,
    namespace_to_bytes,
    no_key_error,
)
from flinklet._private.state.heap_snapshots import EncodedKeyedState, ReadySnapshot
from flinklet._private.state.keygroups import (
    KeyGroupRange,
    assign_to_key_group,
    check_max_parallelism,
)
from flinklet._private.state.layout import key_group_range_bounds
from flinklet._private.state.rocksdb_export import export_snapshot
from flinklet._private.state.rocksdb_states import (
    ENTRY_SEPARATOR,
    RocksDBState,
    RocksDBValueState,
    TtlPolicy,
    create_state,
    decode_value,
    encode_value,
    plain_tuple,
    state_suffix,
)
from flinklet._private.state.serializers import (
    FORMAT_VERSION,
    decode_varint,
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
from flinklet.errors import ConfigurationError, StateError, StateMigrationError

__all__ = [
    "IncrementalKeyedStateSnapshot",
    "RocksDBKeyedStateBackend",
    "RocksDBValueTable",
    "canonical_entries",
    "default_local_dir",
    "incremental_to_keyed_snapshot",
    "split_db_key",
    "storage_error",
]

LOCALDIR_OPTION: Final = "state.backend.rocksdb.localdir"
_META_PREFIX: Final = b"\xff\xff"
"""Bookkeeping keys live above every key group (key groups are < 2^15)."""
_SEQUENCE_KEY: Final = _META_PREFIX + b"list-sequence"
_KEY_PART_CACHE_LIMIT = 65_536
_VALUE_CACHE_LIMIT = 8_192
_BATCH_LIMIT = 10_000
_UNSET: Final[Any] = object()
FULL_SNAPSHOT_MODES = ("process", "sync")
"""Values of ``state.backend.rocksdb.snapshot``."""

COMPRESSION_OPTION: Final = "state.backend.rocksdb.compression.per.level"
# Flink's CompressionType names -> rocksdict's DBCompressionType constructors
COMPRESSION_TYPES: Final = {
    "NO_COMPRESSION": "none",
    "SNAPPY_COMPRESSION": "snappy",
    "ZLIB_COMPRESSION": "zlib",
    "BZLIB2_COMPRESSION": "bz2",
    "LZ4_COMPRESSION": "lz4",
    "LZ4HC_COMPRESSION": "lz4hc",
    "ZSTD_COMPRESSION": "zstd",
}
# Levels 0 and 1 are flushed and rewritten every few checkpoints and read by every state
# access: uncompressed, they cost less CPU (see _open_db); the larger levels keep Snappy.
DEFAULT_COMPRESSION_PER_LEVEL: Final = ("NO_COMPRESSION", "NO_COMPRESSION", "SNAPPY_COMPRESSION")
_NUM_LEVELS: Final = 7  # RocksDB's default num_levels


def parse_compression_per_level(value: str | Sequence[str]) -> tuple[str, ...]:
    """Flink's ``state.backend.rocksdb.compression.per.level``: compression types for levels
    0, 1, ... separated by ``;`` (a list is accepted too); the last one also applies to
    the levels after it. Raises ``ConfigurationError`` naming the valid types."""
    items = value.split(";") if isinstance(value, str) else list(value)
    names = tuple(str(item).strip().upper() for item in items if str(item).strip())
    unknown = [n for n in names if n not in COMPRESSION_TYPES]
    if not names or unknown:
        raise ConfigurationError(
            f"{COMPRESSION_OPTION}: {value!r} is not a ';'-separated list of compression "
            f"types (levels 0, 1, ...; the last applies to the levels below it); use "
            f"{', '.join(COMPRESSION_TYPES)}"
        )
    if len(names) > _NUM_LEVELS:
        raise ConfigurationError(
            f"{COMPRESSION_OPTION}: {len(names)} entries for RocksDB's {_NUM_LEVELS} levels"
        )
    return names


_SINGLE_VALUE_KINDS = frozenset({StateKind.VALUE, StateKind.REDUCING, StateKind.AGGREGATING})
_VERSION_BYTE = bytes([FORMAT_VERSION])
_FileSource = Callable[[str], "bytes | Path"]


def default_local_dir() -> Path:
    """Where RocksDB files go when ``state.backend.rocksdb.localdir`` is not set."""
    return Path(tempfile.gettempdir()) / "flinklet-rocksdb"


def _sanitize(scope: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", scope).strip("._") or "state"
    return cleaned[:100]


def _is_disk_problem(message: str) -> bool:
    lowered = message.lower()
    return any(
        marker in lowered
        for marker in (
            "no space",
            "enospc",
            "disk full",
            "quota",
            "permission denied",
            "read-only file system",
            "not a directory",
            "io error",
        )
    )


def storage_error(exc: BaseException, directory: Path, action: str) -> StateError:
    """A ``StateError`` for a RocksDB / file-system failure, saying what to do."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) or _is_disk_problem(message):
        return StateError(
            f"the RocksDB state backend could not {action} in {directory}: {message}. The disk "
            f"is full or the directory is not writable: free space there, or point "
            f"'{LOCALDIR_OPTION}' (EmbeddedRocksDBStateBackend(local_dir=...) or "
            "set_db_storage_paths(...)) to a writable directory with enough free space"
        )
    return StateError(f"the RocksDB state backend could not {action} in {directory}: {message}")


def _rocksdict() -> Any:
    try:
        import rocksdict
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise StateError(
            "the RocksDB state backend needs the 'rocksdict' package: pip install "
            "'flinklet[rocksdb]', or use the hashmap state backend (state.backend.type: hashmap)"
        ) from exc
    return rocksdict


def _open_db(path: Path, compression: Sequence[str] = DEFAULT_COMPRESSION_PER_LEVEL) -> Any:
    """A raw-bytes rocksdict ``Rdict`` at ``path`` (created if missing), writes without WAL;
    ``compression``: Flink compression type names for levels 0, 1, ... (the last repeats)."""
    rocksdict = _rocksdict()
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_max_manifest_file_size(8 << 20)  # keeps incremental checkpoints' private part small
    # Per-record updates of the same keys (counters, reduce values) overwrite the memtable
    # entry instead of stacking versions, which keeps reads ~3x faster. RocksDB gives up
    # point-in-time iterators only under *concurrent* writes; this backend is used from one
    # thread, and every scan is consumed before it writes.
    options.set_allow_concurrent_memtable_write(False)
    options.set_inplace_update_support(True)
    # Point reads (every state access) check a Bloom filter per SST file before reading it:
    # frequent checkpoints flush small level-0 files that reads would otherwise all visit.
    table = rocksdict.BlockBasedOptions()
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    # A checkpoint flushes the memtable: every checkpoint interval adds a small level-0
    # file. Compacting them 8 at a time instead of 4 halves the rewriting of level 1, and
    # by default levels 0 and 1 (flushed and compacted every few seconds, read by every
    # state access) stay uncompressed. Together they cut the background work of a
    # checkpoint by about 45% (instruction counts, docs/state-backends.md), and change
    # nothing for a job without checkpoints.
    options.set_level_zero_file_num_compaction_trigger(8)
    names = list(compression)[:_NUM_LEVELS]
    names += [names[-1]] * (_NUM_LEVELS - len(names))
    kinds = rocksdict.DBCompressionType
    options.set_compression_per_level([getattr(kinds, COMPRESSION_TYPES[n])() for n in names])
    try:
        db = rocksdict.Rdict(str(path), options)
    except Exception as exc:  # rocksdict raises plain Exception
        raise storage_error(exc, path, "open its database") from exc
    write_options = rocksdict.WriteOptions()
    write_options.disable_wal = True
    db.set_write_options(write_options)
    return db


def _close_and_remove(holder: list[Any], directory: Path) -> None:
    """Close the database in ``holder`` and delete ``directory`` (the backend's own)."""
    db = holder[0] if holder else None
    holder.clear()
    if db is not None:
        with contextlib.suppress(Exception):  # best effort: the files are deleted anyway
            db.close()
        del db
    shutil.rmtree(directory, ignore_errors=True)


def split_db_key(db_key: bytes) -> tuple[bytes, bytes]:
    """``(layout key, state name bytes)`` of a RocksDB key (list and map entries carry more
    after the layout key; see ``rocksdb_states.py``)."""
    key_len, pos = decode_varint(db_key, 2)
    ns_len, pos = decode_varint(db_key, pos + key_len)
    name_start = pos + ns_len
    end = db_key.find(ENTRY_SEPARATOR, name_start)
    if end < 0:
        return db_key, db_key[name_start:]
    return db_key[:end], db_key[name_start:end]


def _split_layout(layout_key: bytes) -> tuple[bytes, bytes, bytes]:
    """``(key bytes, namespace bytes, state name bytes)`` of a layout key."""
    key_len, pos = decode_varint(layout_key, 2)
    key_bytes = layout_key[pos : pos + key_len]
    ns_len, pos = decode_varint(layout_key, pos + key_len)
    return key_bytes, layout_key[pos : pos + ns_len], layout_key[pos + ns_len :]


def _collection_bytes(tag: bytes, parts: list[bytes]) -> bytes:
    out = bytearray(_VERSION_BYTE)
    out += tag
    encode_varint(len(parts), out)
    for part in parts:
        out += part
    return bytes(out)


def _expired(raw: bytes, policy: TtlPolicy, now: int) -> bool:
    stored = deserialize(raw)
    return bool(stored[1] + policy.ttl_ms <= now)


def canonical_entries(
    items: Iterator[tuple[bytes, bytes]],
    end: bytes | None,
    kinds: dict[bytes, StateKind],
    policies: dict[bytes, TtlPolicy],
    now: int,
    expired: list[bytes] | None = None,
) -> dict[int, list[tuple[bytes, bytes]]]:
    """Turn RocksDB entries (ascending, stopping at ``end``) into the canonical snapshot
    entries: one ``(layout key, serialized value)`` per key, namespace and state, lists as
    lists and maps as dicts, grouped by key group. Expired TTL entries are left out when
    the state's policy says so and collected into ``expired`` when it asks for deletion."""
    entries: dict[int, list[tuple[bytes, bytes]]] = {}
    group: list[tuple[bytes, bytes]] = []
    group_id = -1
    pending_key = b""
    pending_tag = b""
    parts: list[bytes] = []

    def flush() -> None:
        if parts:
            group.append((pending_key, _collection_bytes(pending_tag, parts)))
            parts.clear()

    for db_key, raw in items:
        if end is not None and db_key >= end:
            break
        layout_key, name = split_db_key(db_key)
        kind = kinds.get(name)
        if kind is None:
            raise StateMigrationError(
                f"the RocksDB database has entries of state '{name.decode('utf-8', 'replace')}' "
                "but no metadata for it"
            )
        policy = policies.get(name)
        if policy is not None and _expired(raw, policy, now):
            if policy.delete_expired and expired is not None:
                expired.append(db_key)
                continue
            if policy.leave_out_expired:
                continue
        key_group = (layout_key[0] << 8) | layout_key[1]
        if key_group != group_id:
            flush()
            pending_key = b""
            group_id = key_group
            group = entries.setdefault(key_group, [])
        if kind in _SINGLE_VALUE_KINDS:
            flush()
            pending_key = b""
            group.append((layout_key, raw))
            continue
        if layout_key != pending_key:
            flush()
            pending_key = layout_key
            pending_tag = b"l" if kind is StateKind.LIST else b"m"
        if kind is StateKind.LIST:
            parts.append(raw[1:])
        else:  # map entry: serialized user key after the separator, then the value
            parts.append(db_key[len(layout_key) + 2 :] + raw[1:])
    flush()
    return {key_group: group for key_group, group in entries.items() if group}


def _convert_entry(raw: bytes, had_ttl: bool, now: int) -> bytes:
    """One stored entry (value, list element or map value) converted for a state that turned
    TTL off (strip the timestamp) or on (add ``now``)."""
    stored = deserialize(raw)
    return serialize(stored[0] if had_ttl else (stored, now))


# ---------------------------------------------------------------------------------------------
# The engine's value table (keyed reduce/sum/min/max)
# ---------------------------------------------------------------------------------------------


class RocksDBValueTable(MutableMapping[Any, Any]):
    """``key -> value`` of an internal value state, backed by RocksDB.

    Reads check a small write-through cache of *serialized* values first (for str, int and
    bytes keys and tuples of them, whose equality never crosses types): every write goes to RocksDB
    before the cache, so a snapshot never misses a value, and each read deserializes a
    fresh copy, so mutating a returned value never changes the state behind the backend's
    back. The cache is dropped when it is full (no LRU bookkeeping on the record path) and
    on restore.
    """

    __slots__ = ("_backend", "_cache", "_db", "_name", "_suffix")

    def __init__(self, backend: RocksDBKeyedStateBackend, name: str, namespace: Any) -> None:
        self._backend = backend
        self._db: Any = backend.db
        self._name = name
        self._suffix = state_suffix(namespace_to_bytes(namespace), name.encode("utf-8"))
        self._cache: dict[Any, bytes | None] = {}

    def rebind(self, db: Any) -> None:
        self._db = db
        self._cache.clear()

    def invalidate(self) -> None:
        self._cache.clear()

    def _db_key(self, key: Any) -> bytes:
        backend = self._backend
        if key is backend.part_key:
            return backend.part + self._suffix
        return backend.key_part(key, self._name) + self._suffix

    def get(self, key: Any, default: Any = None) -> Any:
        t = type(key)
        cacheable = t is str or t is int or t is bytes or (t is tuple and plain_tuple(key))
        if cacheable:
            raw = self._cache.get(key, _UNSET)
            if raw is not _UNSET:
                return default if raw is None else decode_value(raw)
        db_key = self._db_key(key)
        try:
            raw = self._db.get(db_key)
        except Exception as exc:
            raise self._backend.storage_error(exc, f"read state '{self._name}'") from exc
        if cacheable:
            cache = self._cache
            if len(cache) >= _VALUE_CACHE_LIMIT:
                cache.clear()
            cache[key] = raw
        return default if raw is None else decode_value(raw)

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _UNSET)
        if value is _UNSET:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        raw = encode_value(value)
        db_key = self._db_key(key)
        try:
            self._db.put(db_key, raw)
        except Exception as exc:
            raise self._backend.storage_error(exc, f"write state '{self._name}'") from exc
        t = type(key)
        if t is str or t is int or t is bytes or (t is tuple and plain_tuple(key)):
            cache = self._cache
            if len(cache) >= _VALUE_CACHE_LIMIT:
                cache.clear()
            cache[key] = raw

    def __delitem__(self, key: Any) -> None:
        if self.get(key, _UNSET) is _UNSET:
            raise KeyError(key)
        self._backend.write([], [self._db_key(key)])
        self._cache.pop(key, None)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._backend.keys_with_suffix(self._suffix))

    def __len__(self) -> int:
        return len(self._backend.keys_with_suffix(self._suffix))


# ---------------------------------------------------------------------------------------------
# Incremental checkpoints
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncrementalKeyedStateSnapshot:
    """The manifest of an incremental RocksDB checkpoint of one subtask.

    ``sst_files`` maps each shared file name (unique across subtasks and runs; what the
    checkpoint storage and ``SharedStateRegistry`` use) to ``(local file name, size)``;
    ``private_files`` holds the small per-checkpoint files (``CURRENT``, ``MANIFEST-*``,
    ``OPTIONS-*``, ...) by local name. With the SST files it is a complete RocksDB
    database of the subtask's key groups.
    """

    max_parallelism: int
    key_group_range: KeyGroupRange
    states: dict[str, StateMetaInfo]
    sst_files: dict[str, tuple[str, int]]
    private_files: dict[str, bytes]
    extra: dict[str, bytes] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def shared_files(self) -> list[str]:
        return sorted(self.sst_files)

    def to_bytes(self) -> bytes:
        return serialize(
            (
                "keyed-incremental",
                self.format_version,
                self.max_parallelism,
                self.key_group_range.start,
                self.key_group_range.end,
                {name: (meta.kind.value, meta.ttl_ms) for name, meta in self.states.items()},
                self.sst_files,
                self.private_files,
                self.extra,
            )
        )

    @staticmethod
    def from_bytes(data: bytes) -> IncrementalKeyedStateSnapshot:
        payload = deserialize(data)
        if not isinstance(payload, tuple) or len(payload) != 9 or payload[0] != "keyed-incremental":
            raise StateMigrationError("these bytes are not a Flinklet incremental RocksDB manifest")
        _, version, max_parallelism, start, end, states, sst_files, private_files, extra = payload
        if version != FORMAT_VERSION:
            raise StateMigrationError(
                f"incremental RocksDB manifest format version {version} is not readable by this "
                f"Flinklet (it reads version {FORMAT_VERSION})"
            )
        return IncrementalKeyedStateSnapshot(
            max_parallelism=max_parallelism,
            key_group_range=KeyGroupRange(start, end),
            states={
                name: StateMetaInfo(StateKind(kind), ttl_ms)
                for name, (kind, ttl_ms) in states.items()
            },
            sst_files={name: (local, size) for name, (local, size) in sst_files.items()},
            private_files=private_files,
            extra=extra,
            format_version=version,
        )


def _materialize(
    manifest: IncrementalKeyedStateSnapshot, files: _FileSource, directory: Path
) -> None:
    """Lay out the database of ``manifest`` in ``directory`` (SST files hard-linked when
    ``files`` gives local paths, copied otherwise)."""
    directory.mkdir(parents=True)
    for shared, (local, _size) in manifest.sst_files.items():
        source = files(shared)
        target = directory / local
        if isinstance(source, Path):
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        else:
            target.write_bytes(source)
    for local, data in manifest.private_files.items():
        (directory / local).write_bytes(data)


def incremental_to_keyed_snapshot(
    manifest: IncrementalKeyedStateSnapshot, files: _FileSource, work_dir: Path | None = None
) -> KeyedStateSnapshot:
    """The canonical snapshot of an incremental checkpoint (for a savepoint, or to restore
    it into the heap backend). ``files(shared name)`` returns a file's bytes or a path."""
    base = Path(tempfile.mkdtemp(prefix="flinklet-rocksdb-convert-", dir=work_dir))
    holder: list[Any] = []
    try:
        db_dir = base / "db"
        _materialize(manifest, files, db_dir)
        holder.append(_open_db(db_dir))
        kinds = {name.encode("utf-8"): meta.kind for name, meta in manifest.states.items()}
        start, end = key_group_range_bounds(manifest.key_group_range)
        entries = canonical_entries(holder[0].items(from_key=start), end, kinds, {}, 0)
    finally:
        _close_and_remove(holder, base)
    return KeyedStateSnapshot(
        max_parallelism=manifest.max_parallelism,
        key_group_range=manifest.key_group_range,
        entries=entries,
        states=dict(manifest.states),
        extra=dict(manifest.extra),
    )


# ---------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------


class RocksDBKeyedStateBackend:
    """Keyed state of one operator subtask in RocksDB (the ``rocksdb`` state backend)::

    backend = RocksDBKeyedStateBackend(128, KeyGroupRange(0, 127), "job/counter/0")
    count = backend.get_partitioned_state(ValueStateDescriptor("count", None))
    backend.current_key = "sensor_1"
    count.update((count.value() or 0) + 1)
    backend.dispose()  # closes the database and deletes its directory
    """

    def __init__(
        self,
        max_parallelism: int,
        key_group_range: KeyGroupRange,
        scope: str = "flinklet",
        local_dir: str | os.PathLike[str] | None = None,
        incremental: bool = False,
        *,
        time_provider: Callable[[], int] | None = None,
        full_snapshot: str = "process",
        compression_per_level: str | Sequence[str] = DEFAULT_COMPRESSION_PER_LEVEL,
    ) -> None:
        check_max_parallelism(max_parallelism)
        if not key_group_range.is_empty() and key_group_range.end >= max_parallelism:
            raise StateError(f"{key_group_range!r} does not fit max parallelism {max_parallelism}")
        if full_snapshot not in FULL_SNAPSHOT_MODES:
            raise StateError(
                f"unknown RocksDB full snapshot mode {full_snapshot!r}; use one of "
                f"{', '.join(FULL_SNAPSHOT_MODES)} (state.backend.rocksdb.snapshot)"
            )
        self.max_parallelism = max_parallelism
        self.key_group_range = key_group_range
        self.incremental = incremental
        self.full_snapshot = full_snapshot
        self.compression = parse_compression_per_level(compression_per_level)
        self.current_key: Any = NO_KEY
        self.time_provider: Callable[[], int] = time_provider or _wall_clock_ms
        base = Path(local_dir) if local_dir is not None else default_local_dir()
        try:
            base.mkdir(parents=True, exist_ok=True)
            self.directory = Path(tempfile.mkdtemp(prefix=_sanitize(scope) + "-", dir=base))
        except OSError as exc:
            raise storage_error(exc, base, "create its working directory") from exc
        self._holder: list[Any] = []
        self._finalizer = weakref.finalize(self, _close_and_remove, self._holder, self.directory)
        self._write_batch: Callable[..., Any] = _rocksdict().WriteBatch
        self.db: Any = _open_db(self.directory / "db", self.compression)
        self._holder.append(self.db)
        # The part of every layout key that depends on the key (key group, length, bytes):
        # ``part`` is the one of ``part_key`` (the last key used), others are in ``_parts``.
        self.part_key: Any = _UNSET
        self.part = b""
        self._parts: dict[Any, bytes] = {}
        self._sequence = itertools.count(time.time_ns())
        self._meta: dict[str, StateMetaInfo] = {}
        self._states: dict[str, RocksDBState] = {}
        self._internal: set[str] = set()
        self._tables: dict[tuple[str, Any], RocksDBValueTable] = {}
        self._value_states: list[RocksDBValueState] = []  # plain ones: prefetch candidates
        self._prefetched: list[RocksDBValueState] = []
        self._last_batch = 0
        self._shared_names: dict[str, str] = {}  # local SST name -> shared name
        self._instance = uuid.uuid4().hex[:16]
        self._checkpoint_dirs: dict[int, Path] = {}
        self._checkpoint_counter = itertools.count()

    # -- errors and raw access (used by the state handles) --------------------------------

    def storage_error(self, exc: BaseException, action: str) -> StateError:
        return storage_error(exc, self.directory, action)

    def key_part(self, key: Any, state_name: str) -> bytes:
        """``key group | varint len | key bytes`` of ``key`` (cached)."""
        if key is NO_KEY:
            raise no_key_error(state_name)
        t = type(key)
        # equality never crosses these types, so an equal key has the same bytes
        cacheable = t is str or t is int or t is bytes or (t is tuple and plain_tuple(key))
        if cacheable:
            part = self._parts.get(key)
            if part is not None:
                self.part_key = key
                self.part = part
                return part
        key_bytes = serialize_key(key)
        out = bytearray(assign_to_key_group(key, self.max_parallelism).to_bytes(2, "big"))
        encode_varint(len(key_bytes), out)
        out += key_bytes
        part = bytes(out)
        if cacheable:
            if len(self._parts) >= _KEY_PART_CACHE_LIMIT:
                self._parts.clear()
            self._parts[key] = part
        self.part_key = key
        self.part = part
        return part

    def next_sequence(self) -> bytes:
        """8 bytes that sort after every earlier call's (list element order)."""
        return next(self._sequence).to_bytes(8, "big")

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every ``(db key, value)`` whose key starts with ``prefix``."""
        out: list[tuple[bytes, bytes]] = []
        try:
            for db_key, raw in self.db.items(from_key=prefix):
                if not db_key.startswith(prefix):
                    break
                out.append((db_key, raw))
        except Exception as exc:
            raise self.storage_error(exc, "scan state") from exc
        return out

    def scan_keys(self, prefix: bytes, limit: int = -1) -> list[bytes]:
        out: list[bytes] = []
        try:
            for db_key in self.db.keys(from_key=prefix):
                if not db_key.startswith(prefix) or len(out) == limit:
                    break
                out.append(db_key)
        except Exception as exc:
            raise self.storage_error(exc, "scan state") from exc
        return out

    def write(self, puts: Iterable[tuple[bytes, bytes]], deletes: Iterable[bytes]) -> None:
        """Apply deletes, then puts, atomically (one write batch)."""
        if self._prefetched:  # these bypass the value states: later reads go to the database
            deletes = list(deletes)
            puts = list(puts)
            for state in self._prefetched:
                prefetched = state.prefetched
                if prefetched:
                    for db_key in deletes:
                        prefetched.pop(db_key, None)
                    for db_key, _raw in puts:
                        prefetched.pop(db_key, None)
        batch = self._write_batch(raw_mode=True)
        for db_key in deletes:
            batch.delete(db_key)
        for db_key, raw in puts:
            batch.put(db_key, raw)
        if batch.is_empty():
            return
        try:
            self.db.write(batch)
        except Exception as exc:
            raise self.storage_error(exc, "write state") from exc

    def _range_items(self, key_groups: KeyGroupRange) -> Iterator[tuple[bytes, bytes]]:
        start, _end = key_group_range_bounds(key_groups)
        items: Iterator[tuple[bytes, bytes]] = self.db.items(from_key=start)
        return items

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

    def _register(self, descriptor: StateDescriptor) -> RocksDBState:
        name = descriptor.name
        kind = kind_of(descriptor)
        existing = self._states.get(name)
        if existing is not None:
            if existing.kind is kind:
                return existing
            raise StateError(
                f"state '{name}' is already registered as a "
                f"{StateMetaInfo(existing.kind).describe()}; it cannot also be a "
                f"{StateMetaInfo(kind).describe()} — use another state name"
            )
        if name in self._internal:
            raise StateError(f"state name '{name}' is reserved by the engine; use another name")
        _check_name(name)
        ttl_config = descriptor.ttl_config
        self._adopt(
            name, StateMetaInfo(kind, None if ttl_config is None else ttl_config.ttl_milliseconds)
        )
        state = create_state(self, descriptor, kind)
        self._states[name] = state
        if type(state) is RocksDBValueState:
            self._value_states.append(state)
        return state

    # -- batched reads --------------------------------------------------------------------

    def prefetch(self, keys: Sequence[Any]) -> None:
        """Before a keyed operator processes a batch of records with ``keys``: read, with
        one RocksDB MultiGet per state, the value of every key in each plain value state
        that the previous batch read for at least a quarter of its records (in the
        namespace it read last). A MultiGet sorts its keys and looks each file up once
        for all of them, which makes the reads of a batch far cheaper than one ``get`` per
        record once the state lives in SST files (after every checkpoint's flush).
        ``end_prefetch()`` must follow the batch. A key that cannot be encoded disables the
        prefetch of the batch, and the record's own read raises the error as usual."""
        threshold = max(1, self._last_batch >> 2)
        self._last_batch = len(keys)
        if not keys:
            return
        key_part = self.key_part
        for state in self._value_states:
            reads = state.reads
            state.reads = 0
            if reads < threshold:
                continue
            suffix = state._suffix
            name = state.name
            try:
                db_keys = [key_part(key, name) + suffix for key in keys]
            except Exception:  # the record's own read reports it
                return
            try:
                raws = self.db.get(db_keys)
            except Exception as exc:  # rocksdict raises plain Exception
                raise self.storage_error(exc, f"read state '{name}'") from exc
            state.prefetched = dict(zip(db_keys, raws, strict=True))
            self._prefetched.append(state)

    def end_prefetch(self) -> None:
        """Drop what ``prefetch`` read (the batch is processed)."""
        for state in self._prefetched:
            state.prefetched = None
        self._prefetched.clear()

    def _adopt(self, name: str, meta: StateMetaInfo) -> None:
        """Record ``meta`` for ``name``; restored entries written with (or without) TTL
        timestamps are converted when the state now declares the opposite."""
        known = self._meta.get(name)
        if known is not None:
            if known.kind is not meta.kind:
                raise StateMigrationError(
                    f"state '{name}' was restored as a {known.describe()}, but the job now "
                    f"declares it as a {meta.describe()}; keep the kind of a state stable, or "
                    "give the new state another name"
                )
            if (known.ttl_ms is None) != (meta.ttl_ms is None):
                self._convert_state(name, had_ttl=known.ttl_ms is not None)
        self._meta[name] = meta

    def _convert_state(self, name: str, had_ttl: bool) -> None:
        name_bytes = name.encode("utf-8")
        now = self.time_provider()
        start, end = key_group_range_bounds(self.key_group_range)
        puts: list[tuple[bytes, bytes]] = []
        for db_key, raw in self.db.items(from_key=start):
            if end is not None and db_key >= end:
                break
            if split_db_key(db_key)[1] == name_bytes:
                puts.append((db_key, _convert_entry(raw, had_ttl, now)))
                if len(puts) >= _BATCH_LIMIT:
                    self.write(puts, ())
                    puts = []
        self.write(puts, ())

    def register_internal_value_state(self, name: str) -> None:
        """Declare an engine-owned value state, read and written through ``value_table``."""
        if name in self._internal:
            return
        if name in self._states:
            raise StateError(f"state name '{name}' is already used by a user state")
        _check_name(name)
        self._adopt(name, StateMetaInfo(StateKind.VALUE))
        self._internal.add(name)

    def value_table(self, name: str, namespace: Any = VOID_NAMESPACE) -> MutableMapping[Any, Any]:
        """The ``key -> value`` mapping of an internal value state (one per name and
        namespace; restore refreshes it in place)."""
        if name not in self._internal:
            raise StateError(
                f"internal state '{name}' is not registered; call "
                "register_internal_value_state() first"
            )
        table = self._tables.get((name, namespace))
        if table is None:
            table = self._tables[(name, namespace)] = RocksDBValueTable(self, name, namespace)
        return table

    def set_current_namespace(self, state_name: str, namespace: Any) -> None:
        state = self._states.get(state_name)
        if state is None:
            raise StateError(f"state '{state_name}' is not registered")
        state.set_current_namespace(namespace)

    # -- iteration ------------------------------------------------------------------------

    def keys_with_suffix(self, suffix: bytes) -> list[Any]:
        """The keys having an entry whose layout key ends with ``suffix`` (namespace and
        state name), each once: a scan of the subtask's whole key-group range."""
        namespace_part, name = _split_suffix(suffix)
        result: list[Any] = []
        last = b""
        start, end = key_group_range_bounds(self.key_group_range)
        try:
            for db_key in self.db.keys(from_key=start):
                if end is not None and db_key >= end:
                    break
                layout_key, entry_name = split_db_key(db_key)
                if entry_name != name or layout_key == last:
                    continue
                key_bytes, namespace_bytes, _ = _split_layout(layout_key)
                if namespace_bytes == namespace_part:
                    last = layout_key
                    result.append(deserialize_key(key_bytes))
        except StateError:
            raise
        except Exception as exc:
            raise self.storage_error(exc, "scan state") from exc
        return result

    def keys(self, state_name: str, namespace: Any = VOID_NAMESPACE) -> list[Any]:
        """The keys that have ``state_name`` state in ``namespace`` (a scan of the DB)."""
        return self.keys_with_suffix(
            state_suffix(namespace_to_bytes(namespace), state_name.encode("utf-8"))
        )

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
        """A self-contained copy of all keyed state in the canonical format (one consistent
        iterator over the key-group range). Expired TTL entries are dropped from the
        database here for states with background cleanup, and left out of the snapshot
        for states with ``cleanup_full_snapshot``."""
        self._check_open()
        try:
            self._check_no_foreign_keys()
        except StateError:
            raise
        except Exception as exc:
            raise self.storage_error(exc, "read state for a snapshot") from exc
        kinds = {name.encode("utf-8"): meta.kind for name, meta in self._meta.items()}
        policies: dict[bytes, TtlPolicy] = {}
        for name, state in self._states.items():
            policy = state.ttl_policy()
            if policy is not None:
                policies[name.encode("utf-8")] = policy
        expired: list[bytes] = []
        _start, end = key_group_range_bounds(self.key_group_range)
        try:
            entries = canonical_entries(
                self._range_items(self.key_group_range),
                end,
                kinds,
                policies,
                self.time_provider(),
                expired,
            )
        except StateError:
            raise
        except Exception as exc:
            raise self.storage_error(exc, "read state for a snapshot") from exc
        for index in range(0, len(expired), _BATCH_LIMIT):
            self.write((), expired[index : index + _BATCH_LIMIT])
        return KeyedStateSnapshot(
            max_parallelism=self.max_parallelism,
            key_group_range=self.key_group_range,
            entries=entries,
            states=dict(self._meta),
            extra=dict(extra or {}),
        )

    def snapshot_encoded(
        self, allow_fork: bool = True, extra: dict[str, bytes] | None = None
    ) -> EncodedKeyedState:
        """The bytes of ``snapshot(extra)`` for a checkpoint or savepoint. In ``process``
        mode (and with ``allow_fork``) the task thread only creates a RocksDB checkpoint
        and another process encodes it (``rocksdb_export.py``); states with a TTL, and
        ``sync`` mode, encode here."""
        has_ttl = any(state.ttl_policy() is not None for state in self._states.values())
        if not allow_fork or self.full_snapshot != "process" or has_ttl or self._range_empty():
            snapshot = self.snapshot(extra)
            return ReadySnapshot(snapshot.to_bytes(), snapshot.entry_count())
        self._check_open()
        try:
            self._check_no_foreign_keys()
        except StateError:
            raise
        except Exception as exc:
            raise self.storage_error(exc, "read state for a snapshot") from exc
        target = self.directory / f"full-{next(self._checkpoint_counter)}"
        if target.exists():
            shutil.rmtree(target)
        self.checkpoint_sst_files(target)
        return export_snapshot(
            target, self.max_parallelism, self.key_group_range, dict(self._meta), extra
        )

    def _range_empty(self) -> bool:
        """No entry in this subtask's key groups (one seek)."""
        self._check_open()
        start, end = key_group_range_bounds(self.key_group_range)
        try:
            first = next(self.db.keys(from_key=start), None)
        except Exception as exc:
            raise self.storage_error(exc, "read state for a snapshot") from exc
        return first is None or (end is not None and first >= end)

    def _check_open(self) -> None:
        if self.db is None:
            raise StateError(
                "this RocksDB state backend was disposed (its database is closed and its "
                "directory deleted); create a new backend"
            )

    def _check_no_foreign_keys(self) -> None:
        start, end = key_group_range_bounds(self.key_group_range)
        below = self.db.keys(from_key=b"")
        first = next(below, None)
        above = self.db.keys(from_key=end) if end is not None else iter(())
        after = next(above, None)
        for db_key in (first if first is not None and first < start else None, after):
            if db_key is None or db_key.startswith(_META_PREFIX):
                continue
            layout_key, name = split_db_key(db_key)
            key = deserialize_key(_split_layout(layout_key)[0])
            key_group = (layout_key[0] << 8) | layout_key[1]
            raise StateError(
                f"key {key!r} of state '{name.decode('utf-8', 'replace')}' belongs to key "
                f"group {key_group}, outside this subtask's {self.key_group_range!r}: records "
                "were routed with another max parallelism or key than the state uses"
            )

    def _check_incoming_meta(self, incoming: dict[str, StateMetaInfo]) -> None:
        for name, meta in incoming.items():
            _check_name(name)
            known = self._meta.get(name)
            if known is None:
                self._meta[name] = meta
            elif known.kind is not meta.kind:
                raise StateMigrationError(
                    f"state '{name}' was restored as a {meta.describe()}, but the job declares "
                    f"it as a {known.describe()}; keep the kind of a state stable, or give the "
                    "new state another name"
                )

    def restore(self, snapshots: Sequence[KeyedStateSnapshot]) -> None:
        """Load the entries of this subtask's key groups from snapshots of any parallelism
        (written by either backend)."""
        self._check_open()
        for snapshot in snapshots:
            check_restore_max_parallelism(snapshot.max_parallelism, self.max_parallelism)
        incoming: dict[str, StateMetaInfo] = {}
        for snapshot in snapshots:
            merge_state_meta(incoming, snapshot.states)
        self._check_incoming_meta(incoming)
        now = self.time_provider()
        mine = self.key_group_range
        fresh = not self.scan_keys(key_group_range_bounds(mine)[0], limit=1)
        puts: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        for snapshot in snapshots:
            if snapshot.key_group_range.intersection(mine).is_empty():
                continue
            converting = {
                name.encode("utf-8"): meta.ttl_ms is not None
                for name, meta in snapshot.states.items()
                if (meta.ttl_ms is None) != (self._meta[name].ttl_ms is None)
            }
            kinds = {name.encode("utf-8"): meta.kind for name, meta in snapshot.states.items()}
            for key_group, group in snapshot.entries.items():
                if key_group not in mine:
                    continue
                for layout_key, raw in group:
                    name = _split_layout(layout_key)[2]
                    kind = kinds.get(name)
                    if kind is None:
                        raise StateMigrationError(
                            f"the snapshot has entries of state "
                            f"'{name.decode('utf-8', 'replace')}' but no metadata for it"
                        )
                    had_ttl = converting.get(name)
                    if kind in _SINGLE_VALUE_KINDS:
                        if had_ttl is not None:
                            raw = _convert_entry(raw, had_ttl, now)
                        puts.append((layout_key, raw))
                    else:
                        prefix = layout_key + ENTRY_SEPARATOR
                        if not fresh:
                            deletes.extend(self.scan_keys(prefix))
                        puts.extend(self._collection_entries(prefix, kind, raw, had_ttl, now))
                    if len(puts) >= _BATCH_LIMIT:
                        self.write(puts, deletes)
                        puts, deletes = [], []
        self.write(puts, deletes)
        for table in self._tables.values():
            table.invalidate()

    def _collection_entries(
        self, prefix: bytes, kind: StateKind, raw: bytes, had_ttl: bool | None, now: int
    ) -> list[tuple[bytes, bytes]]:
        stored = deserialize(raw)

        def convert(x: Any) -> bytes:
            if had_ttl is None:
                return serialize(x)
            return serialize(x[0] if had_ttl else (x, now))

        if kind is StateKind.LIST:
            return [(prefix + self.next_sequence(), convert(element)) for element in stored]
        return [(prefix + serialize_key(k), convert(v)) for k, v in stored.items()]

    # -- incremental checkpoints ----------------------------------------------------------

    def checkpoint_sst_files(self, target_dir: Path) -> list[Path]:
        """Create a RocksDB checkpoint (memtable flushed, SST files hard-linked) in
        ``target_dir`` (which must not exist) and return its SST files, sorted."""
        self.write([(_SEQUENCE_KEY, self.next_sequence())], ())
        try:
            _rocksdict().Checkpoint(self.db).create_checkpoint(str(target_dir))
        except Exception as exc:
            raise self.storage_error(exc, f"create a RocksDB checkpoint in {target_dir}") from exc
        return sorted(target_dir.glob("*.sst"))

    def snapshot_incremental(
        self,
        previous_files: set[str],
        checkpoint_id: int | None = None,
        extra: dict[str, bytes] | None = None,
    ) -> tuple[IncrementalKeyedStateSnapshot, dict[str, Path], list[str]]:
        """An incremental checkpoint: ``(manifest, new_files, all_files)``.

        ``all_files`` are the shared names of every SST file this checkpoint needs;
        ``new_files`` maps those not in ``previous_files`` (already in checkpoint storage)
        to local paths to upload. The paths stay valid until
        ``notify_checkpoint_complete``/``notify_checkpoint_aborted`` of a later/this
        checkpoint or ``dispose()``. Expired TTL entries are not filtered here (they are
        dropped when read after restore).
        """
        number = next(self._checkpoint_counter) if checkpoint_id is None else checkpoint_id
        target = self.directory / f"chk-{number}"
        if target.exists():
            shutil.rmtree(target)
        sst_paths = self.checkpoint_sst_files(target)
        self._checkpoint_dirs[number] = target
        sst_files: dict[str, tuple[str, int]] = {}
        new_files: dict[str, Path] = {}
        for path in sst_paths:
            shared = self._shared_names.get(path.name)
            if shared is None:
                shared = self._shared_names[path.name] = f"{self._instance}-{path.name}"
            sst_files[shared] = (path.name, path.stat().st_size)
            if shared not in previous_files:
                new_files[shared] = path
        private = {
            path.name: path.read_bytes()
            for path in sorted(target.iterdir())
            if path.is_file() and path.suffix != ".sst"
        }
        manifest = IncrementalKeyedStateSnapshot(
            max_parallelism=self.max_parallelism,
            key_group_range=self.key_group_range,
            states=dict(self._meta),
            sst_files=sst_files,
            private_files=private,
            extra=dict(extra or {}),
        )
        return manifest, new_files, sorted(sst_files)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Drop the local files of checkpoints before ``checkpoint_id``."""
        for number in [n for n in self._checkpoint_dirs if n < checkpoint_id]:
            shutil.rmtree(self._checkpoint_dirs.pop(number), ignore_errors=True)

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        path = self._checkpoint_dirs.pop(checkpoint_id, None)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    def restore_incremental(
        self, manifests: Sequence[IncrementalKeyedStateSnapshot], files: _FileSource
    ) -> None:
        """Restore from incremental checkpoints. One manifest of exactly this key-group
        range becomes this backend's database (its files are reused, and keep their shared
        names); otherwise the entries of this subtask's key groups are copied from each."""
        for manifest in manifests:
            check_restore_max_parallelism(manifest.max_parallelism, self.max_parallelism)
        incoming: dict[str, StateMetaInfo] = {}
        for manifest in manifests:
            merge_state_meta(incoming, manifest.states)
        self._check_incoming_meta(incoming)
        relevant = [
            m
            for m in manifests
            if not m.key_group_range.intersection(self.key_group_range).is_empty()
        ]
        if (
            len(relevant) == 1
            and relevant[0].key_group_range == self.key_group_range
            and not self.scan_keys(b"", limit=1)
        ):
            self._adopt_database(relevant[0], files)
        else:
            for manifest in relevant:
                self._copy_from(manifest, files)
        self._convert_after_restore(incoming)
        for table in self._tables.values():
            table.invalidate()

    def _adopt_database(self, manifest: IncrementalKeyedStateSnapshot, files: _FileSource) -> None:
        db_dir = self.directory / "db"
        self.db.close()
        self._holder.clear()
        self.db = None
        shutil.rmtree(db_dir, ignore_errors=True)
        try:
            _materialize(manifest, files, db_dir)
        except OSError as exc:
            raise self.storage_error(exc, "lay out the restored RocksDB files") from exc
        self.db = _open_db(db_dir, self.compression)
        self._holder.append(self.db)
        for state in self._states.values():
            state.rebind(self.db)
        for table in self._tables.values():
            table.rebind(self.db)
        self._shared_names = {local: shared for shared, (local, _) in manifest.sst_files.items()}
        self._bump_sequence(self.db.get(_SEQUENCE_KEY))

    def _copy_from(self, manifest: IncrementalKeyedStateSnapshot, files: _FileSource) -> None:
        base = Path(tempfile.mkdtemp(prefix="restore-", dir=self.directory))
        holder: list[Any] = []
        try:
            _materialize(manifest, files, base / "db")
            holder.append(_open_db(base / "db"))
            source = holder[0]
            mine = self.key_group_range.intersection(manifest.key_group_range)
            start, end = key_group_range_bounds(mine)
            puts: list[tuple[bytes, bytes]] = []
            for db_key, raw in source.items(from_key=start):
                if end is not None and db_key >= end:
                    break
                puts.append((db_key, raw))
                if len(puts) >= _BATCH_LIMIT:
                    self.write(puts, ())
                    puts = []
            self.write(puts, ())
            self._bump_sequence(source.get(_SEQUENCE_KEY))
        except OSError as exc:
            raise self.storage_error(exc, "copy restored RocksDB files") from exc
        finally:
            _close_and_remove(holder, base)

    def _convert_after_restore(self, incoming: dict[str, StateMetaInfo]) -> None:
        for name, meta in incoming.items():
            known = self._meta[name]
            if known is not meta and (known.ttl_ms is None) != (meta.ttl_ms is None):
                self._convert_state(name, had_ttl=meta.ttl_ms is not None)

    def _bump_sequence(self, stored: bytes | None) -> None:
        floor = max(time.time_ns(), int.from_bytes(stored, "big") + 1 if stored else 0)
        current = next(self._sequence)
        self._sequence = itertools.count(max(floor, current))

    # -- lifecycle ------------------------------------------------------------------------

    def dispose(self) -> None:
        """Close the database and delete this backend's directory (nothing else)."""
        for state in self._states.values():
            state.rebind(None)
        for table in self._tables.values():
            table.rebind(None)
        self._states.clear()
        self._value_states.clear()
        self._prefetched.clear()
        self._tables.clear()
        self._meta.clear()
        self._internal.clear()
        self.current_key = NO_KEY
        self.db = None
        self._finalizer()


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_name(name: str) -> None:
    if "\x00" in name:
        raise StateError(
            f"state name {name!r} contains a NUL character, which the RocksDB state backend "
            "cannot store; rename the state"
        )


def _split_suffix(suffix: bytes) -> tuple[bytes, bytes]:
    """``(namespace bytes, state name bytes)`` of a state suffix."""
    ns_len, pos = decode_varint(suffix, 0)
    return suffix[pos : pos + ns_len], suffix[pos + ns_len :]
