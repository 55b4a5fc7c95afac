"""What one operator subtask contributes to a checkpoint, and how it is restored.

The synchronous part (``take_operator_snapshot``) copies the operator's state into
immutable snapshot objects on the task thread; encoding and writing them to storage
happens afterwards, off the task thread. Restoring hands every new subtask the snapshots
of all old subtasks of the same operator: keyed state and timers are filtered by the new
subtask's key-group range, operator list state is redistributed, and sources pick their
own positions — which is what makes restoring at another parallelism work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flinklet._private.state.backend import KeyedStateSnapshot, OperatorStateSnapshot
from flinklet._private.state.regions import FileRegion, Part, join_parts
from flinklet._private.state.serializers import (
    deserialize,
    encode_into,
    encode_varint,
    serialize,
)
from flinklet.errors import CheckpointError

if TYPE_CHECKING:
    from flinklet._private.exec.operators import StreamOperator
    from flinklet._private.state.heap_snapshots import EncodedKeyedState

_MAGIC = "flinklet-operator-state"
_VERSION = 1


@dataclass
class OperatorSnapshot:
    keyed: KeyedStateSnapshot | None
    operator: OperatorStateSnapshot | None
    timers: dict[str, Any] | None
    raw: dict[str, Any] = field(default_factory=dict)
    # RocksDB incremental checkpoints: the manifest (instead of ``keyed``), and the new
    # SST files to upload into the job's shared directory (not encoded)
    incremental: Any = None
    upload: dict[str, Any] = field(default_factory=dict)
    # the hashmap backend's keyed state as bytes (instead of ``keyed``), encoded on the task
    # thread or still being encoded by a forked child (``state/heap_snapshots.py``)
    keyed_encoded: EncodedKeyedState | None = None

    @property
    def shared_files(self) -> list[str]:
        return [] if self.incremental is None else list(self.incremental.shared_files())

    def is_empty(self) -> bool:
        """No state at all: such operators are left out of checkpoints, so stateless
        operators can change freely between savepoint and restore (as in Flink)."""
        if self.keyed is not None and (self.keyed.entry_count() or self.keyed.extra):
            return False
        if self.keyed_encoded is not None and self.keyed_encoded.has_entries():
            return False
        if self.incremental is not None:
            return False
        if self.operator is not None and (
            any(items for _mode, items in self.operator.list_states.values())
            or any(self.operator.broadcast_states.values())
        ):
            return False
        if self.timers and any(self.timers.values()):
            return False
        return not any(v is not None for v in self.raw.values())

    def encode(self) -> bytes:
        """The state file's bytes; waits for a keyed-state snapshot encoded by another
        process to finish."""
        try:
            return join_parts(self.encode_parts())
        finally:
            self.release()

    def encode_parts(self) -> list[Part]:
        """The state file's bytes as parts: the keyed state may stay in the file another
        process encoded it into, valid until ``release()``. Waits for that process."""
        rest = (
            None if self.operator is None else self.operator.to_bytes(),
            self.timers,
            self.raw,
            None if self.incremental is None else self.incremental.to_bytes(),
        )
        keyed: bytes | FileRegion | None = None
        if self.keyed_encoded is not None:
            keyed = self.keyed_encoded.result_region()
        elif self.keyed is not None:
            keyed = self.keyed.to_bytes()
        if not isinstance(keyed, FileRegion):
            return [serialize((_MAGIC, _VERSION, keyed, *rest))]
        # serialize() of the same tuple, with the keyed bytes left where they are: a tuple of
        # 7 items whose third is bytes ("b" + length + the bytes)
        head = bytearray(serialize((_MAGIC, _VERSION)))
        head[2] = 7
        head += b"b"
        encode_varint(keyed.size, head)
        tail = bytearray()
        for item in rest:
            encode_into(item, tail)
        return [bytes(head), keyed, bytes(tail)]

    def release(self) -> None:
        """Close the files ``encode_parts`` pointed into (and stop a process still
        encoding); idempotent."""
        if self.keyed_encoded is not None:
            self.keyed_encoded.cancel()

    @staticmethod
    def decode(data: bytes, where: str) -> OperatorSnapshot:
        try:
            payload = deserialize(data)
        except Exception as exc:
            raise CheckpointError(f"state file {where} is corrupt ({exc})") from exc
        if not (isinstance(payload, tuple) and len(payload) in (6, 7) and payload[0] == _MAGIC):
            raise CheckpointError(f"{where} is not a Flinklet operator state file")
        _, version, keyed, operator, timers, raw = payload[:6]
        incremental = None
        if len(payload) == 7 and payload[6] is not None:
            from flinklet._private.state.rocksdb import IncrementalKeyedStateSnapshot

            incremental = IncrementalKeyedStateSnapshot.from_bytes(payload[6])
        if version != _VERSION:
            raise CheckpointError(
                f"{where} has operator-state format {version}; this Flinklet reads {_VERSION}"
            )
        return OperatorSnapshot(
            None if keyed is None else KeyedStateSnapshot.from_bytes(keyed),
            None if operator is None else OperatorStateSnapshot.from_bytes(operator),
            timers,
            raw or {},
            incremental,
        )


@dataclass
class RestoredOperatorState:
    """The old subtasks' snapshots of one operator (in old subtask order)."""

    snapshots: list[OperatorSnapshot]
    old_parallelism: int
    fetch_shared: Any = None  # name -> bytes of a shared (incremental) file

    @property
    def incremental(self) -> list[Any]:
        return [s.incremental for s in self.snapshots if s.incremental is not None]

    @property
    def keyed(self) -> list[KeyedStateSnapshot]:
        return [s.keyed for s in self.snapshots if s.keyed is not None]

    @property
    def operator(self) -> list[OperatorStateSnapshot]:
        return [s.operator for s in self.snapshots if s.operator is not None]

    @property
    def raw(self) -> list[dict[str, Any]]:
        return [s.raw for s in self.snapshots]

    @property
    def timers(self) -> list[dict[str, Any]]:
        return [s.timers for s in self.snapshots if s.timers]


def take_operator_snapshot(
    op: StreamOperator,
    checkpoint_id: int,
    timestamp: int,
    incremental: bool = False,
    allow_fork: bool = False,
) -> OperatorSnapshot:
    """The synchronous part of an operator's checkpoint (task thread). With
    ``incremental`` (a checkpoint, not a savepoint) a RocksDB backend configured for it
    hands over hard-linked SST files instead of copying its entries. With ``allow_fork``
    the hashmap backend in ``fork`` mode leaves encoding its state to a forked child; the
    caller must ``cancel_pending`` the snapshot if it is never written."""
    op.before_snapshot(checkpoint_id, timestamp)
    env = op.env
    backend = env.keyed_backend
    operator = env.operator_state.snapshot() if env.operator_state is not None else None
    timers = op.snapshot_timers() if hasattr(op, "snapshot_timers") else None
    if (
        incremental
        and backend is not None
        and getattr(backend, "incremental", False)
        and hasattr(backend, "snapshot_incremental")
    ):
        uploaded: set[str] = getattr(op, "_shared_uploaded", set())
        manifest, new_files, all_files = backend.snapshot_incremental(uploaded, checkpoint_id)
        pending: dict[int, list[str]] = op.__dict__.setdefault("_shared_pending", {})
        pending[checkpoint_id] = all_files
        return OperatorSnapshot(None, operator, timers, op.snapshot_state(), manifest, new_files)
    if backend is not None and hasattr(backend, "snapshot_encoded"):
        encoded = backend.snapshot_encoded(allow_fork)
        try:
            raw = op.snapshot_state()
        except BaseException:
            encoded.cancel()
            raise
        return OperatorSnapshot(None, operator, timers, raw, keyed_encoded=encoded)
    keyed = backend.snapshot() if backend is not None else None
    return OperatorSnapshot(keyed, operator, timers, op.snapshot_state())


def cancel_pending(snapshots: dict[str, OperatorSnapshot]) -> None:
    """Stop (kill and reap) the forked children of snapshots that will not be written."""
    for snap in snapshots.values():
        if snap.keyed_encoded is not None:
            snap.keyed_encoded.cancel()


def shared_uri_of(pointer: str) -> str | None:
    """The job's shared directory next to a ``.../<job>/chk-<n>`` checkpoint directory."""
    head, sep, _tail = pointer.rstrip("/").rpartition("/chk-")
    return f"{head}/shared" if sep else None
