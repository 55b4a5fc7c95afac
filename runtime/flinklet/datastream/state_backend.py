"""State backends: where keyed state lives while the job runs.

``HashMapStateBackend`` keeps it in Python dictionaries (fast, bounded by memory);
``EmbeddedRocksDBStateBackend`` keeps it in one RocksDB instance per subtask in a local
working directory (large state, incremental checkpoints). Choose with
``env.set_state_backend(...)`` or ``state.backend.type: hashmap|rocksdb``. Checkpoints of
both have the same format, so a job can switch backends through a savepoint.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EmbeddedRocksDBStateBackend", "HashMapStateBackend", "StateBackend"]


class StateBackend:
    name = "abstract"

    def create_keyed_backend(self, max_parallelism: int, key_group_range: Any, scope: str) -> Any:
        raise NotImplementedError  # pragma: no cover - abstract


class HashMapStateBackend(StateBackend):
    name = "hashmap"

    def create_keyed_backend(self, max_parallelism: int, key_group_range: Any, scope: str) -> Any:
        from flinklet._private.state.heap import HeapKeyedStateBackend

        return HeapKeyedStateBackend(max_parallelism, key_group_range)


class EmbeddedRocksDBStateBackend(StateBackend):
    """RocksDB (through rocksdict) per subtask under ``local_dir`` (a temp dir by default)."""

    name = "rocksdb"

    def __init__(
        self, enable_incremental_checkpointing: bool | None = None, local_dir: str | None = None
    ) -> None:
        self.incremental = bool(enable_incremental_checkpointing)
        self.local_dir = local_dir

    def set_db_storage_paths(self, *paths: str) -> None:
        self.local_dir = paths[0] if paths else None

    def is_incremental_checkpoints_enabled(self) -> bool:
        return self.incremental

    def create_keyed_backend(self, max_parallelism: int, key_group_range: Any, scope: str) -> Any:
        from flinklet._private.state.rocksdb import RocksDBKeyedStateBackend

        return RocksDBKeyedStateBackend(
            max_parallelism, key_group_range, scope, self.local_dir, self.incremental
        )
