"""State backends: where keyed state lives while the job runs.

``HashMapStateBackend`` keeps it in Python dictionaries (fast, bounded by memory);
``EmbeddedRocksDBStateBackend`` keeps it in one RocksDB instance per subtask in a local
working directory (large state, incremental checkpoints). Choose with
``env.set_state_backend(...)`` or ``state.backend.type: hashmap|rocksdb``. Checkpoints of
both have the same format, so a job can switch backends through a savepoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["EmbeddedRocksDBStateBackend", "HashMapStateBackend", "StateBackend"]


class StateBackend:
    name = "abstract"

    def create_keyed_backend(self, max_parallelism: int, key_group_range: Any, scope: str) -> Any:
        raise NotImplementedError  # pragma: no cover - abstract


class HashMapStateBackend(StateBackend):
    """Keyed state in dicts on the task's heap.

    ``snapshot`` is how checkpoints copy it: ``"fork"`` (where ``os.fork`` exists) encodes
    a copy-on-write image of the state in a forked child process while the task goes on;
    ``"sync"`` encodes it on the task thread. ``None`` takes
    ``state.backend.hashmap.snapshot`` from the configuration (default ``fork``)::

        env.set_state_backend(HashMapStateBackend(snapshot="sync"))
    """

    name = "hashmap"

    def __init__(self, snapshot: str | None = None) -> None:
        from flinklet._private.state.heap_snapshots import SNAPSHOT_MODES
        from flinklet.errors import ConfigurationError

        if snapshot is not None and snapshot not in SNAPSHOT_MODES:
            raise ConfigurationError(
                f"HashMapStateBackend(snapshot={snapshot!r}): use 'fork' or 'sync'"
            )
        self.snapshot = snapshot

    def create_keyed_backend(self, max_parallelism: int, key_group_range: Any, scope: str) -> Any:
        from flinklet._private.state.heap import HeapKeyedStateBackend

        return HeapKeyedStateBackend(
            max_parallelism, key_group_range, snapshot_mode=self.snapshot or "fork"
        )


class EmbeddedRocksDBStateBackend(StateBackend):
    """RocksDB (through rocksdict) per subtask under ``local_dir`` (a temp dir by default).

    ``full_snapshot`` is how full (canonical) snapshots are encoded: ``"process"`` (the
    default) has the task only create a RocksDB checkpoint and another process encode it;
    ``"sync"`` encodes on the task thread (``state.backend.rocksdb.snapshot``).

    ``compression_per_level``: Flink's compression type names for levels 0, 1, ...,
    ``;``-separated or a list, the last one repeating for the levels below it
    (``state.backend.rocksdb.compression.per.level``; ``None``: that key, else
    ``NO_COMPRESSION;NO_COMPRESSION;SNAPPY_COMPRESSION``)."""

    name = "rocksdb"

    def __init__(
        self,
        enable_incremental_checkpointing: bool | None = None,
        local_dir: str | None = None,
        full_snapshot: str = "process",
        compression_per_level: str | Sequence[str] | None = None,
    ) -> None:
        from flinklet._private.state.rocksdb import (
            FULL_SNAPSHOT_MODES,
            parse_compression_per_level,
        )
        from flinklet.errors import ConfigurationError

        if full_snapshot not in FULL_SNAPSHOT_MODES:
            raise ConfigurationError(
                f"EmbeddedRocksDBStateBackend(full_snapshot={full_snapshot!r}): use "
                "'process' or 'sync'"
            )
        self.incremental = bool(enable_incremental_checkpointing)
        self.local_dir = local_dir
        self.full_snapshot = full_snapshot
        self.compression_per_level = (
            None
            if compression_per_level is None
            else parse_compression_per_level(compression_per_level)
        )

    def set_db_storage_paths(self, *paths: str) -> None:
        self.local_dir = paths[0] if paths else None

    def is_incremental_checkpoints_enabled(self) -> bool:
        return self.incremental

    def create_keyed_backend(self, max_parallelism: int, key_group_range: Any, scope: str) -> Any:
        from flinklet._private.state.rocksdb import (
            DEFAULT_COMPRESSION_PER_LEVEL,
            RocksDBKeyedStateBackend,
        )

        return RocksDBKeyedStateBackend(
            max_parallelism,
            key_group_range,
            scope,
            self.local_dir,
            self.incremental,
            full_snapshot=self.full_snapshot,
            compression_per_level=self.compression_per_level or DEFAULT_COMPRESSION_PER_LEVEL,
        )
