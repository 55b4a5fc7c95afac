"""The checkpoint coordinator: triggers checkpoints, collects acknowledgements, commits
``_metadata``, notifies completion, and keeps the history the REST API reports.

It is driven from one thread (the scheduler loop locally, the JobManager's loop in a
cluster): ``tick`` triggers periodic checkpoints and expires slow ones; acknowledgements
arriving from other threads go through ``post`` and are applied on the next tick. A
checkpoint is complete only when every task acknowledged and its ``_metadata`` is
committed; only then do tasks hear ``notify_checkpoint_complete`` (two-phase-commit sinks
commit there). Savepoints are never deleted by the coordinator.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flinklet._private.checkpoint.metadata import (
    CheckpointMetadata,
    OperatorStateEntry,
    SubtaskStateHandle,
)
from flinklet.errors import CheckpointError, StorageError

log = logging.getLogger(__name__)

TaskKey = tuple[int, int]  # (job vertex id, subtask index)


@dataclass
class CheckpointSettings:
    interval_ms: int | None = None
    exactly_once: bool = True
    timeout_ms: int = 600_000
    min_pause_ms: int = 0
    max_concurrent: int = 1
    tolerable_failures: int = 0
    num_retained: int = 1
    retention: str = "NO_EXTERNALIZED_CHECKPOINTS"
    storage_uri: str | None = None
    savepoint_dir: str | None = None
    storage_options: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.interval_ms is not None and self.interval_ms > 0


@dataclass
class SubtaskAck:
    """What one task reports for one checkpoint: per operator uid, its state handle."""

    task: TaskKey
    handles: dict[str, SubtaskStateHandle]
    bytes_written: int = 0
    # the whole state's size: more than bytes_written when an incremental checkpoint
    # references files an earlier one uploaded (None: the same as bytes_written)
    state_size: int | None = None


@dataclass
class PendingCheckpoint:
    checkpoint_id: int
    timestamp: int
    is_savepoint: bool
    storage: Any  # CheckpointStorage rooted at the checkpoint's directory
    pointer: str  # the directory URI users see
    awaiting: set[TaskKey]
    handles: dict[str, list[SubtaskStateHandle]] = field(default_factory=dict)
    future: Future[str] = field(default_factory=Future)
    size: int = 0
    state_size: int = 0
    kind: str = "CHECKPOINT"
    notify: bool = True


@dataclass
class CompletedCheckpoint:
    checkpoint_id: int
    timestamp: int
    completed_at: int
    is_savepoint: bool
    pointer: str
    storage: Any
    metadata: CheckpointMetadata
    size: int  # written by this checkpoint (Flink's checkpointed size)
    state_size: int = -1  # the whole state it restores (-1: the same as ``size``)

    @property
    def duration_ms(self) -> int:
        return self.completed_at - self.timestamp


@dataclass
class CheckpointStats:
    """Counts and history in the shape Flink's REST API reports."""

    triggered: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    restored: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    latest_failed: dict[str, Any] | None = None
    latest_restored: dict[str, Any] | None = None

    def record(self, entry: dict[str, Any]) -> None:
        self.history.insert(0, entry)
        del self.history[20:]


class CheckpointCoordinator:
    def __init__(
        self,
        job_id: str,
        job_name: str,
        settings: CheckpointSettings,
        operators: dict[str, tuple[str, int, int, bool]],  # uid -> (name, p, max p, keyed)
        storage_for: Callable[[str, dict[str, str]], Any],
        clock: Callable[[], int],
        fencing_epoch: Callable[[], int | None] = lambda: None,
        before_commit: Callable[[int], None] = lambda checkpoint_id: None,
        after_commit: Callable[[CompletedCheckpoint], None] = lambda completed: None,
    ) -> None:
        self.job_id = job_id
        self.job_name = job_name
        self.settings = settings
        self.operators = operators
        self._storage_for = storage_for
        self.clock = clock
        self._fencing_epoch = fencing_epoch
        self._before_commit = before_commit
        self._after_commit = after_commit
        self.pending: dict[int, PendingCheckpoint] = {}
        self.completed: list[CompletedCheckpoint] = []
        self.stats = CheckpointStats()
        self.next_id = 1
        self.consecutive_failures = 0
        self._last_completion = 0
        self._last_trigger = clock()
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.tasks: set[TaskKey] = set()
        self.finished: dict[TaskKey, Any] = {}
        self.trigger_sources: Callable[[PendingCheckpoint], None] = lambda p: None
        self.notify_complete: Callable[[int], None] = lambda checkpoint_id: None
        self.notify_aborted: Callable[[int], None] = lambda checkpoint_id: None
        self.fatal: CheckpointError | None = None
        # locally the coordinator writes finished tasks' final state itself; in a cluster
        # the slot that ran the task does, when it gets the trigger
        self.persist_finished_locally = True
        self._checkpoint_root = (
            storage_for(settings.storage_uri, settings.storage_options)
            if settings.storage_uri
            else None
        )
        from flinklet._private.state.shared_registry import SharedStateRegistry

        # incremental RocksDB files in <root>/<job>/shared, counted per retained checkpoint
        self.shared_registry = SharedStateRegistry()

    # -- wiring --------------------------------------------------------------------------

    def reset_tasks(self, tasks: set[TaskKey]) -> None:
        """A new execution attempt: pending checkpoints of the old one are aborted."""
        for p in list(self.pending.values()):
            self._fail(p, "the job restarted before the checkpoint completed")
        self.tasks = set(tasks)
        self.finished = {}

    def post(self, kind: str, payload: Any) -> None:
        """Thread-safe: queue an acknowledgement ('ack'), decline or write failure."""
        self._inbox.put((kind, payload))

    @property
    def latest(self) -> CompletedCheckpoint | None:
        return self.completed[-1] if self.completed else None

    # -- the periodic loop -------------------------------------------------------------------

    def tick(self, now: int) -> None:
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "ack":
                cid, ack = payload
                self._acknowledge(cid, ack)
            elif kind == "decline":
                cid, reason = payload
                p = self.pending.get(cid)
                if p is not None:
                    self._fail(p, reason)
        for p in list(self.pending.values()):
            if now - p.timestamp > self.settings.timeout_ms:
                self._fail(p, f"expired after {self.settings.timeout_ms} ms before completing")
        s = self.settings
        if (
            s.enabled
            and self._checkpoint_root is not None
            and len([p for p in self.pending.values() if not p.is_savepoint]) < s.max_concurrent
            and now - self._last_trigger >= (s.interval_ms or 0)
            and now - self._last_completion >= s.min_pause_ms
            and len(self.finished) < len(self.tasks)
        ):
            self.trigger(now)

    # -- triggering --------------------------------------------------------------------------

    def trigger(
        self,
        now: int,
        is_savepoint: bool = False,
        target_dir: str | None = None,
        notify: bool | None = None,
    ) -> PendingCheckpoint:
        """Start a checkpoint (or savepoint). Tasks hear ``notify_checkpoint_complete`` for
        checkpoints and for savepoints that end the job (stop-with-savepoint); a plain
        savepoint does not make two-phase-commit sinks commit, as in Flink 1.15+."""
        from flinklet._private.checkpoint.layout import checkpoint_dir, savepoint_dir_name

        cid = self.next_id
        self.next_id += 1
        if is_savepoint:
            target = target_dir or self.settings.savepoint_dir
            if not target:
                raise CheckpointError(
                    "No savepoint directory: pass one (flinklet savepoint <job> <dir>, or the "
                    "REST body's target-directory) or set execution.checkpointing.savepoint-dir"
                )
            root = self._storage_for(target, self.settings.storage_options)
            name = savepoint_dir_name(self.job_id)
            storage = root.child(name)
            pointer = f"{root.uri.rstrip('/')}/{name}"
        else:
            if self._checkpoint_root is None:
                raise CheckpointError(
                    "No checkpoint storage: set execution.checkpointing.dir (e.g. "
                    "file:///tmp/checkpoints or s3://bucket/checkpoints)"
                )
            key = checkpoint_dir(self.job_id, cid)
            storage = self._checkpoint_root.child(key)
            pointer = f"{self._checkpoint_root.uri.rstrip('/')}/{key}"
        pending = PendingCheckpoint(
            cid,
            now,
            is_savepoint,
            storage,
            pointer,
            set(self.tasks),
            kind="SAVEPOINT" if is_savepoint else "CHECKPOINT",
        )
        self.pending[cid] = pending
        self._last_trigger = now
        self.stats.triggered += 1
        self.stats.in_progress += 1
        self.trigger_sources(pending)
        if not self.persist_finished_locally:
            return pending
        for task_key, final in list(self.finished.items()):
            # finished tasks contribute the state they finished with
            if task_key in pending.awaiting:
                self._persist_finished(pending, task_key, final)
        return pending

    def task_finished(
        self, key: TaskKey, final_snapshots: Any, snapshotted: Collection[int] = ()
    ) -> None:
        """A task finished: it acknowledges every pending (and future) checkpoint with the
        state it finished with — except the ``snapshotted`` ones, for which it already took
        its snapshot at the barrier (that acknowledgement is on its way, and the state it
        finished with would not match the other tasks' snapshots). ``final_snapshots`` is
        the snapshots, or ``f(checkpoint_id, timestamp)`` that takes them when the first
        checkpoint needs them."""
        self.finished[key] = final_snapshots
        if not self.persist_finished_locally:
            return
        for p in list(self.pending.values()):
            if key in p.awaiting and p.checkpoint_id not in snapshotted:
                self._persist_finished(p, key, final_snapshots)

    def _persist_finished(self, pending: PendingCheckpoint, key: TaskKey, snapshots: Any) -> None:
        from flinklet._private.checkpoint.persist import write_task_state

        if callable(snapshots):  # taken now, for the first checkpoint that needs it
            snapshots = snapshots(pending.checkpoint_id, pending.timestamp)
            self.finished[key] = snapshots
        try:
            ack = write_task_state(pending.storage, key, snapshots, finished=True)
        except StorageError as exc:
            self._fail(pending, str(exc))
            return
        self._acknowledge(pending.checkpoint_id, ack)

    # -- completion -------------------------------------------------------------------------

    def _acknowledge(self, cid: int, ack: SubtaskAck) -> None:
        p = self.pending.get(cid)
        if p is None or ack.task not in p.awaiting:
            return  # late ack of an aborted checkpoint
        p.awaiting.discard(ack.task)
        p.size += ack.bytes_written
        p.state_size += ack.bytes_written if ack.state_size is None else ack.state_size
        for uid, handle in ack.handles.items():
            p.handles.setdefault(uid, []).append(handle)
        if not p.awaiting:
            self._complete(p)

    def _complete(self, p: PendingCheckpoint) -> None:
        operators: dict[str, OperatorStateEntry] = {}
        for uid, handles in p.handles.items():
            name, parallelism, max_p, keyed = self.operators.get(uid, (uid, len(handles), 0, False))
            operators[uid] = OperatorStateEntry(
                uid, name, parallelism, max_p, keyed, sorted(handles, key=lambda h: h.subtask)
            )
        metadata = CheckpointMetadata(
            checkpoint_id=p.checkpoint_id,
            job_id=self.job_id,
            job_name=self.job_name,
            timestamp=p.timestamp,
            is_savepoint=p.is_savepoint,
            operators=operators,
            fencing_epoch=self._fencing_epoch(),
        )
        try:
            self._before_commit(p.checkpoint_id)
            p.storage.commit("_metadata", metadata.to_bytes(), if_absent=True)
        except (StorageError, CheckpointError) as exc:
            self._fail(p, f"its _metadata could not be committed: {exc}")
            return
        now = self.clock()
        done = CompletedCheckpoint(
            p.checkpoint_id,
            p.timestamp,
            now,
            p.is_savepoint,
            p.pointer,
            p.storage,
            metadata,
            p.size,
            p.state_size,
        )
        try:
            # e.g. HA records it as the latest: before older ones are pruned or tasks notified
            self._after_commit(done)
        except CheckpointError as exc:  # not complete: its files (and _metadata) go
            self._fail(p, f"it could not be recorded: {exc}")
            return
        self.pending.pop(p.checkpoint_id, None)
        self.stats.in_progress -= 1
        self.stats.completed += 1
        self.consecutive_failures = 0
        self._last_completion = now
        self.stats.record(self._entry(done, "COMPLETED"))
        if not p.is_savepoint:
            shared = {
                f for op in metadata.operators.values() for h in op.subtasks for f in h.shared
            }
            if shared:
                self.shared_registry.register(p.checkpoint_id, shared)
            self.completed.append(done)
            self._prune()
        # aborted older pending checkpoints are subsumed by this one
        for older in [
            q
            for q in self.pending.values()
            if q.checkpoint_id < p.checkpoint_id and not q.is_savepoint
        ]:
            self._fail(older, f"subsumed by checkpoint {p.checkpoint_id}")
        if p.notify:
            self.notify_complete(p.checkpoint_id)
        if not p.future.done():
            p.future.set_result(p.pointer)
        log.info(
            "Completed %s %d for job %s (%d bytes in %d ms) at %s",
            p.kind.lower(),
            p.checkpoint_id,
            self.job_id,
            p.size,
            done.duration_ms,
            p.pointer,
        )

    def _prune(self) -> None:
        keep = max(1, self.settings.num_retained)
        while len(self.completed) > keep:
            old = self.completed.pop(0)
            try:
                old.storage.delete_prefix("")
            except StorageError as exc:  # leftovers are harmless; never fail the job
                log.warning("could not delete old checkpoint %s: %s", old.pointer, exc)
            self._release_shared(old.checkpoint_id)

    def _release_shared(self, checkpoint_id: int) -> None:
        """Delete the shared files that no retained checkpoint references any more."""
        unused = self.shared_registry.release(checkpoint_id)
        if not unused or self._checkpoint_root is None:
            return
        from flinklet._private.checkpoint.layout import shared_dir

        shared = self._checkpoint_root.child(shared_dir(self.job_id))
        for name in unused:
            try:
                shared.delete(name)
            except StorageError as exc:
                log.warning("could not delete shared file %s: %s", name, exc)

    def _fail(self, p: PendingCheckpoint, reason: str) -> None:
        if self.pending.pop(p.checkpoint_id, None) is None:
            return
        self.stats.in_progress -= 1
        self.stats.failed += 1
        entry = {
            "id": p.checkpoint_id,
            "status": "FAILED",
            "is_savepoint": p.is_savepoint,
            "trigger_timestamp": p.timestamp,
            "failure_timestamp": self.clock(),
            "failure_message": reason,
            "external_path": p.pointer,
        }
        self.stats.latest_failed = entry
        self.stats.record(entry)
        log.warning(
            "%s %d of job %s failed: %s", p.kind.title(), p.checkpoint_id, self.job_id, reason
        )
        with contextlib.suppress(StorageError):
            p.storage.delete_prefix("")  # an incomplete checkpoint has no committed metadata
        self.notify_aborted(p.checkpoint_id)
        if not p.future.done():
            p.future.set_exception(
                CheckpointError(f"{p.kind.title()} {p.checkpoint_id} failed: {reason}")
            )
        if not p.is_savepoint and "subsumed" not in reason and "restarted" not in reason:
            self.consecutive_failures += 1
            if self.consecutive_failures > self.settings.tolerable_failures:
                self.fatal = CheckpointError(
                    f"Exceeded checkpoint tolerable failure threshold "
                    f"({self.settings.tolerable_failures}); last failure: {reason}. Raise "
                    f"execution.checkpointing.tolerable-failed-checkpoints or fix the cause"
                )

    def _entry(self, c: CompletedCheckpoint, status: str) -> dict[str, Any]:
        return {
            "id": c.checkpoint_id,
            "status": status,
            "is_savepoint": c.is_savepoint,
            "trigger_timestamp": c.timestamp,
            "latest_ack_timestamp": c.completed_at,
            "state_size": c.size if c.state_size < 0 else c.state_size,
            "checkpointed_size": c.size,
            "end_to_end_duration": c.duration_ms,
            "external_path": c.pointer,
        }

    def discard_all_checkpoints(self) -> None:
        """Delete this job's retained checkpoints (finished or cancelled per retention)."""
        for c in self.completed:
            try:
                c.storage.delete_prefix("")
            except StorageError as exc:
                log.warning("could not delete checkpoint %s: %s", c.pointer, exc)
            self._release_shared(c.checkpoint_id)
        self.completed = []
