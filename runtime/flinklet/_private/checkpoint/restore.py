"""Restoring a job from a checkpoint or savepoint: reading ``_metadata`` and mapping the
stored operator state onto the operators of the (possibly changed) job graph by uid.

Rules, as in Flink: state of an operator uid missing from the new job fails the restore
unless ``allow_non_restored_state`` is set; keyed state requires the same max parallelism
(key groups are computed modulo it); any parallelism may restore any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flinklet._private.checkpoint.metadata import CheckpointMetadata
from flinklet._private.checkpoint.snapshots import OperatorSnapshot, RestoredOperatorState
from flinklet._private.graph.stream_graph import JobGraph
from flinklet.errors import CheckpointError, SavepointRestoreError, StorageError


@dataclass
class RestorePlan:
    pointer: str
    metadata: CheckpointMetadata
    by_uid: dict[str, RestoredOperatorState]

    def for_subtask(self, uid: str) -> RestoredOperatorState | None:
        return self.by_uid.get(uid)


def load_metadata(storage: Any, pointer: str) -> CheckpointMetadata:
    try:
        exists = storage.exists("_metadata")
    except StorageError:
        raise
    if not exists:
        raise SavepointRestoreError(
            f"No checkpoint or savepoint at {pointer}: there is no _metadata file (an "
            f"incomplete checkpoint has none). Check the path; it should be a 'chk-<n>' or "
            f"'savepoint-...' directory"
        )
    return CheckpointMetadata.from_bytes(storage.read("_metadata"), pointer)


def plan_restore(
    storage: Any,
    pointer: str,
    job_graph: JobGraph,
    allow_non_restored_state: bool,
    metadata: CheckpointMetadata | None = None,
    options: dict[str, str] | None = None,
) -> RestorePlan:
    metadata = metadata or load_metadata(storage, pointer)
    nodes = {n.uid: n for v in job_graph.vertices for n in v.nodes}
    by_uid: dict[str, RestoredOperatorState] = {}
    for uid, entry in metadata.operators.items():
        node = nodes.get(uid)
        if node is None:
            if allow_non_restored_state:
                continue
            raise SavepointRestoreError(
                f"Failed to restore from {pointer}: it holds state for operator uid '{uid}' "
                f"('{entry.name}'), which is not in the new job. If the operator was removed "
                f"on purpose, allow skipping its state with allow_non_restored_state "
                f"(--allow-non-restored-state on the CLI, "
                f"execution.savepoint.ignore-unclaimed-state: true)"
            )
        if entry.has_keyed_state and entry.max_parallelism != node.max_parallelism:
            raise SavepointRestoreError(
                f"Failed to restore from {pointer}: operator '{entry.name}' (uid '{uid}') was "
                f"checkpointed with max parallelism {entry.max_parallelism} but now has "
                f"{node.max_parallelism}. The max parallelism of a stateful operator cannot "
                f"change: call set_max_parallelism({entry.max_parallelism}) on it (or the "
                f"environment)"
            )
        snapshots: list[OperatorSnapshot] = []
        for handle in sorted(entry.subtasks, key=lambda h: h.subtask):
            try:
                data = storage.read(handle.file)
            except StorageError as exc:
                raise CheckpointError(
                    f"Failed to restore from {pointer}: state file {handle.file} of operator "
                    f"'{entry.name}' cannot be read ({exc})"
                ) from exc
            snapshots.append(OperatorSnapshot.decode(data, f"{pointer}/{handle.file}"))
        by_uid[uid] = RestoredOperatorState(
            snapshots, entry.parallelism, _shared_fetcher(pointer, options)
        )
    return RestorePlan(pointer, metadata, by_uid)


def _shared_fetcher(pointer: str, options: dict[str, str] | None) -> Any:
    """Reads incremental SST files from the job's shared directory next to ``pointer``."""
    from flinklet._private.checkpoint.snapshots import shared_uri_of

    uri = shared_uri_of(pointer)
    cache: list[Any] = []

    def fetch(name: str) -> bytes:
        if uri is None:
            raise CheckpointError(f"{pointer} has no shared directory for incremental state")
        if not cache:
            from flinklet._private.checkpoint.storage import storage_for

            cache.append(storage_for(uri, options))
        return bytes(cache[0].read(name))

    return fetch
