"""Checkpointing of a job running in this process: barriers, snapshots and acks.

Wires the coordinator to the tasks of each execution attempt. Sources get the trigger on
the scheduler thread, snapshot synchronously and emit the barrier; other tasks snapshot
when their barriers are aligned. Encoding and writing state files runs on a writer thread
pool, whose acknowledgements reach the coordinator through its inbox, applied on the
scheduler thread before every round. A task that finishes leaves a final snapshot that
stands in for it in later checkpoints, so bounded jobs end with a final checkpoint that
lets two-phase-commit sinks commit everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flinklet._private.checkpoint.coordinator import (
    CheckpointCoordinator,
    PendingCheckpoint,
    TaskKey,
)
from flinklet._private.checkpoint.persist import write_task_state
from flinklet._private.checkpoint.snapshots import (
    OperatorSnapshot,
    cancel_pending,
    take_operator_snapshot,
)
from flinklet._private.exec.barriers import BarrierHandler
from flinklet._private.network.elements import CheckpointBarrier
from flinklet.errors import StorageError

if TYPE_CHECKING:
    from flinklet._private.exec.task import Task

log = logging.getLogger(__name__)


def snapshot_task(
    task: Task,
    checkpoint_id: int,
    timestamp: int,
    incremental: bool = False,
    allow_fork: bool = False,
) -> dict[str, OperatorSnapshot]:
    snapshots: dict[str, OperatorSnapshot] = {}
    try:
        for op in task.operators:
            snapshots[op.uid] = take_operator_snapshot(
                op, checkpoint_id, timestamp, incremental, allow_fork
            )
    except BaseException:
        cancel_pending(snapshots)
        raise
    return snapshots


class TaskCheckpointing:
    """Per attempt: the barrier handlers, triggers and acks of every task."""

    def __init__(self, coordinator: CheckpointCoordinator, tasks: list[Task]) -> None:
        self.coordinator = coordinator
        self.tasks = tasks
        self.by_key: dict[TaskKey, Task] = {(t.vertex_id, t.subtask_index): t for t in tasks}
        self.writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flinklet-ckpt")
        self.pending_storage: dict[int, Any] = {}
        self.pointers: dict[int, str] = {}
        self.wake: Callable[[], None] = lambda: None
        self.remote = False
        self.resolve_storage: Callable[[str], Any] = lambda pointer: None
        # snapshots whose keyed state a forked child may still be encoding, per checkpoint:
        # cancelled (child killed and reaped) when the checkpoint is aborted or we close
        self.in_flight: dict[int, list[dict[str, OperatorSnapshot]]] = {}
        # the checkpoints each task took its barrier snapshot for
        self.snapshotted: dict[TaskKey, set[int]] = {}
        self.savepoints: set[int] = set()
        exactly_once = coordinator.settings.exactly_once
        for t in tasks:
            t.barrier_handler = BarrierHandler(exactly_once, self._aligned)
            t.on_finished = self._finished
        coordinator.reset_tasks(set(self.by_key))
        coordinator.trigger_sources = self._trigger_sources
        coordinator.notify_complete = self._notify_complete
        coordinator.notify_aborted = self._notify_aborted

    def _trigger_sources(self, pending: PendingCheckpoint) -> None:
        self.pending_storage[pending.checkpoint_id] = pending.storage
        self.pointers[pending.checkpoint_id] = pending.pointer
        barrier = CheckpointBarrier(
            pending.checkpoint_id,
            pending.timestamp,
            pending.is_savepoint,
            target=getattr(pending, "pointer", None) if self.remote else None,
        )
        if pending.is_savepoint:
            self.savepoints.add(pending.checkpoint_id)
        elif not self.remote and all(t.finished for t in self.tasks):
            # the final checkpoint of a finished local job: it subsumes every pending
            # checkpoint, whose children would only compete with it for CPU and memory
            for cid in [c for c in self.in_flight if c not in self.savepoints]:
                self._forget(cid)
        for t in self.tasks:
            if t.is_source and not t.finished:
                self._snapshot_and_forward(t, barrier)

    def _aligned(self, task: Task, barrier: CheckpointBarrier) -> None:
        self._snapshot_and_forward(task, barrier)

    def _snapshot_and_forward(self, task: Task, barrier: CheckpointBarrier) -> None:
        incremental = not barrier.is_savepoint
        snapshots = snapshot_task(
            task, barrier.checkpoint_id, barrier.timestamp, incremental, allow_fork=True
        )
        for w in task.writers:
            w.broadcast_event(barrier)
        storage = self.pending_storage.get(barrier.checkpoint_id)
        if storage is None and barrier.target is not None:
            # cluster mode: the barrier overtook the trigger message to this process
            storage = self.resolve_storage(barrier.target)
            self.pending_storage[barrier.checkpoint_id] = storage
        if storage is None:
            cancel_pending(snapshots)
            return  # the checkpoint was aborted meanwhile
        key = (task.vertex_id, task.subtask_index)
        cid = barrier.checkpoint_id
        coordinator = self.coordinator
        self.snapshotted.setdefault(key, set()).add(cid)
        if any(
            s.keyed_encoded is not None and s.keyed_encoded.background for s in snapshots.values()
        ):
            self.in_flight.setdefault(cid, []).append(snapshots)

        shared = None
        if any(snap.upload for snap in snapshots.values()):
            shared = self.shared_storage(barrier)

        def write() -> None:
            try:
                ack = write_task_state(storage, key, snapshots, shared=shared)
            except StorageError as exc:
                coordinator.post("decline", (cid, f"task {task.display_name}: {exc}"))
                return
            except Exception as exc:  # encoding user state can fail; decline, don't crash
                coordinator.post(
                    "decline", (cid, f"task {task.display_name} could not write state: {exc!r}")
                )
                self.wake()
                return
            finally:
                cancel_pending(snapshots)  # no-op unless the write failed midway
            coordinator.post("ack", (cid, ack))
            self.wake()

        self.writer.submit(write)

    def shared_storage(self, barrier: CheckpointBarrier) -> Any:
        """Where incremental SST files go: ``<checkpoint root>/<job>/shared``."""
        from flinklet._private.checkpoint.snapshots import shared_uri_of

        pointer = barrier.target or self.pointers.get(barrier.checkpoint_id)
        uri = shared_uri_of(pointer) if pointer else None
        if uri is None:
            return None
        return (
            self.resolve_storage(uri)
            if self.remote
            else self.coordinator._storage_for(uri, self.coordinator.settings.storage_options)
        )

    def _finished(self, task: Task) -> None:
        # the snapshot is taken only if a checkpoint needs it, for the first one that does
        # (whose id and timestamp its functions see), and stands in for the later ones
        # (operators are not closed before the job ends, so the finished state stays
        # readable)
        key = (task.vertex_id, task.subtask_index)

        def final_snapshot(checkpoint_id: int, timestamp: int) -> Any:
            return snapshot_task(task, checkpoint_id, timestamp)

        self.coordinator.task_finished(key, final_snapshot, set(self.snapshotted.get(key, ())))

    def _forget(self, checkpoint_id: int) -> None:
        """Kill and reap the children still encoding for ``checkpoint_id`` (none are left
        once it completed: every task's state was written)."""
        for snapshots in self.in_flight.pop(checkpoint_id, []):
            cancel_pending(snapshots)
        for cids in self.snapshotted.values():
            cids.discard(checkpoint_id)
        self.savepoints.discard(checkpoint_id)

    def _notify_complete(self, checkpoint_id: int) -> None:
        self.pending_storage.pop(checkpoint_id, None)
        self._forget(checkpoint_id)
        for t in self.tasks:
            for op in t.operators:
                op.notify_checkpoint_complete(checkpoint_id)

    def _notify_aborted(self, checkpoint_id: int) -> None:
        self.pending_storage.pop(checkpoint_id, None)
        self._forget(checkpoint_id)
        for t in self.tasks:
            for op in t.operators:
                op.notify_checkpoint_aborted(checkpoint_id)

    def close(self) -> None:
        """Stop: children still encoding are killed (their checkpoints cannot complete)."""
        for checkpoint_id in list(self.in_flight):
            self._forget(checkpoint_id)
        self.writer.shutdown(wait=True)
