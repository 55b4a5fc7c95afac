"""The local executor: deploys a job graph as tasks in this process and runs them.

All subtasks of a job run on one thread, interleaved by a cooperative scheduler: each
round gives every task a few steps (one input buffer or one source batch each), fires due
processing-time timers, and flushes partly filled buffers when the buffer timeout passes
or nothing else can run. No locks on the record path; a task whose output channels are
full is simply skipped (backpressure). The cluster runtime reuses ``deploy_tasks`` and
``Scheduler`` per TaskManager slot, with TCP channels at process boundaries.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flinklet._private.checkpoint.coordinator import CheckpointCoordinator, CheckpointSettings
from flinklet._private.checkpoint.restore import RestorePlan, plan_restore
from flinklet._private.exec.checkpointing import TaskCheckpointing
from flinklet._private.exec.context import OperatorEnv
from flinklet._private.exec.operators import Output, StreamOperator
from flinklet._private.exec.sinks import CollectBuffer
from flinklet._private.exec.task import Task, failing_operator, user_traceback
from flinklet._private.exec.timers import ProcessingTimeService, wall_clock_ms
from flinklet._private.graph.stream_graph import JobEdge, JobGraph, JobVertex, is_chainable
from flinklet._private.metrics import MetricRegistry, TaskMetricGroup
from flinklet._private.metrics.task_metrics import register_task_metrics, task_metric_group
from flinklet._private.network.channels import InputGate, LocalChannel
from flinklet._private.network.partitioners import RecordWriter
from flinklet._private.state.backend import OperatorStateBackend
from flinklet._private.state.heap import HeapKeyedStateBackend
from flinklet._private.state.keygroups import KeyGroupRange, key_group_range_for_operator
from flinklet.common.job_status import JobStatus
from flinklet.errors import (
    CheckpointError,
    JobCancelledError,
    SavepointRestoreError,
    StorageError,
    UserFunctionError,
)

log = logging.getLogger(__name__)


@dataclass
class ExecutionSettings:
    """Everything the runtime reads from the job's configuration."""

    buffer_records: int = 1024
    buffers_per_channel: int = 2
    floating_buffers: int = 8
    buffer_timeout_ms: int = 100
    auto_watermark_interval_ms: int = 200
    batch_mode: bool = False
    job_parameters: dict[str, str] = field(default_factory=dict)
    restart_backoff: Any = None  # flinklet.common.restart_strategy backoff object
    source_batch_size: int = 1024
    steps_per_round: int = 8
    checkpointing: bool = False
    keyed_backend_factory: Callable[[int, KeyGroupRange, str], Any] = field(
        default=lambda max_p, kg_range, scope: HeapKeyedStateBackend(max_p, kg_range)
    )

    @property
    def channel_capacity(self) -> int:
        return self.buffers_per_channel + self.floating_buffers


# collect sinks of local jobs hand results to their client through this registry
_collect_buffers: dict[str, CollectBuffer] = {}
_collect_lock = threading.Lock()


def collect_buffer(buffer_id: str) -> CollectBuffer:
    with _collect_lock:
        buf = _collect_buffers.get(buffer_id)
        if buf is None:
            buf = _collect_buffers[buffer_id] = CollectBuffer()
        return buf


def release_collect_buffer(buffer_id: str) -> None:
    with _collect_lock:
        _collect_buffers.pop(buffer_id, None)


def _pointwise_targets(src_p: int, dst_p: int, src_idx: int) -> list[int]:
    """Downstream subtasks of upstream ``src_idx`` for forward/rescale edges (Flink's
    pointwise pattern: contiguous groups)."""
    if src_p == dst_p:
        return [src_idx]
    if src_p < dst_p:
        start = src_idx * dst_p // src_p
        end = (src_idx + 1) * dst_p // src_p
        return list(range(start, end))
    return [src_idx * dst_p // src_p]


def build_channels(
    job_graph: JobGraph, capacity: int, make_channel: Callable[..., LocalChannel] | None = None
) -> dict[tuple[int, int, int], LocalChannel]:
    """(id(job edge), upstream subtask, downstream subtask) -> channel."""
    channels: dict[tuple[int, int, int], LocalChannel] = {}
    for v in job_graph.vertices:
        for e in v.outputs:
            sp, dp = e.source.parallelism, e.target.parallelism
            for s in range(sp):
                targets = _pointwise_targets(sp, dp, s) if e.partitioner.pointwise else range(dp)
                for d in targets:
                    name = f"{e.source.name}[{s}] -> {e.target.name}[{d}]"
                    channels[(id(e), s, d)] = (
                        make_channel(e, s, d) if make_channel else LocalChannel(capacity, name)
                    )
    return channels


@dataclass
class Deployment:
    tasks: list[Task]
    operators_by_uid: dict[tuple[str, int], StreamOperator]
    registry: MetricRegistry


def deploy_tasks(
    job_id: str,
    job_graph: JobGraph,
    settings: ExecutionSettings,
    attempt: int,
    channels: dict[tuple[int, int, int], LocalChannel],
    subtasks: Callable[[JobVertex, int], bool] = lambda v, i: True,
    registry: MetricRegistry | None = None,
    clock: Callable[[], int] = wall_clock_ms,
    restore: RestorePlan | None = None,
) -> Deployment:
    """Instantiate the tasks of ``job_graph`` (those selected by ``subtasks``)."""
    registry = registry or MetricRegistry()
    tasks: list[Task] = []
    by_uid: dict[tuple[str, int], StreamOperator] = {}
    for v in job_graph.vertices:
        for idx in range(v.parallelism):
            if not subtasks(v, idx):
                continue
            task, ops = _build_task(
                job_id, v, idx, settings, attempt, channels, registry, clock, restore
            )
            register_task_metrics(task, task_metric_group(registry, job_id, task))
            tasks.append(task)
            for node, op in ops.items():
                by_uid[(node, idx)] = op
    return Deployment(tasks, by_uid, registry)


def _build_task(
    job_id: str,
    v: JobVertex,
    idx: int,
    settings: ExecutionSettings,
    attempt: int,
    channels: dict[tuple[int, int, int], LocalChannel],
    registry: MetricRegistry,
    clock: Callable[[], int],
    restore: RestorePlan | None,
) -> tuple[Task, dict[str, StreamOperator]]:
    pts = ProcessingTimeService(clock)
    ops: dict[int, StreamOperator] = {}
    for node in v.nodes:
        op = node.factory()
        op.name = node.name
        op.uid = node.uid
        ops[node.id] = op
    writers_by_edge: dict[int, RecordWriter] = {}
    for je in v.outputs:
        chans = [
            channels[(id(je), idx, d)]
            for d in range(je.target.parallelism)
            if (id(je), idx, d) in channels
        ]
        writers_by_edge[id(je.stream_edge)] = RecordWriter(
            je.partitioner, chans, idx, settings.buffer_records
        )
    task_name = v.name
    kg_range = key_group_range_for_operator(v.max_parallelism, v.parallelism, idx)
    for node in reversed(v.nodes):
        targets: list[Any] = []
        side: dict[str, list[Any]] = {}
        chained: list[StreamOperator] = []
        writers: list[RecordWriter] = []
        for e in node.out_edges:
            if is_chainable(e):
                target_op = ops[e.target.id]
                fn = target_op.process_batch
                chained.append(target_op)
            else:
                w = writers_by_edge[id(e)]
                fn = w.emit
                writers.append(w)
            if e.tag_id is not None:
                side.setdefault(e.tag_id, []).append(fn)
            else:
                targets.append(fn)
        keyed = any(ks is not None for ks in node.key_selectors)
        env = OperatorEnv(
            job_id=job_id,
            task_name=task_name,
            operator_name=node.name,
            operator_uid=node.uid,
            subtask_index=idx,
            parallelism=v.parallelism,
            max_parallelism=node.max_parallelism,
            attempt=attempt,
            pts=pts,
            metrics=TaskMetricGroup(registry, f"{job_id}.{node.name}.{idx}"),
            job_parameters=settings.job_parameters,
            keyed_backend=(
                settings.keyed_backend_factory(
                    node.max_parallelism, kg_range, f"{job_id}/{node.uid}/{idx}"
                )
                if keyed
                else None
            ),
            operator_state=OperatorStateBackend(),
            batch_mode=settings.batch_mode,
            auto_watermark_interval=settings.auto_watermark_interval_ms,
            checkpointing=settings.checkpointing,
        )
        ops[node.id].setup(env, Output(targets, side, chained, writers))
    for node in v.nodes:
        ops[node.id].restore(restore.for_subtask(node.uid) if restore is not None else None)
    gates: list[InputGate] = []
    head = v.nodes[0]
    if not head.is_source:
        per_input: dict[int, list[LocalChannel]] = {}
        for ie in v.inputs:
            for s in range(ie.source.parallelism):
                ch = channels.get((id(ie), s, idx))
                if ch is not None:
                    per_input.setdefault(ie.type_number, []).append(ch)
        for type_number in sorted(per_input):
            gates.append(InputGate(per_input[type_number]))
    all_writers = list(writers_by_edge.values())
    task = Task(
        task_name,
        v.id,
        idx,
        v.parallelism,
        [ops[n.id] for n in v.nodes],
        gates,
        all_writers,
        pts,
        settings.source_batch_size,
    )
    return task, {n.uid: ops[n.id] for n in v.nodes}


class Scheduler:
    """Runs tasks cooperatively on the calling thread until all finish or one fails."""

    def __init__(self, tasks: list[Task], settings: ExecutionSettings) -> None:
        self.tasks = tasks
        self.settings = settings
        self.cancelled = threading.Event()
        self.wakeup = threading.Event()
        self.before_round: Callable[[], None] | None = None

    def run(self) -> None:
        tasks = self.tasks
        steps = self.settings.steps_per_round
        timeout = self.settings.buffer_timeout_ms
        last_flush = wall_clock_ms()
        active = [t for t in tasks if not t.finished]
        while active:
            if self.cancelled.is_set():
                raise JobCancelledError("the job was cancelled")
            if self.before_round is not None:
                self.before_round()
            progressed = False
            now = wall_clock_ms()
            for t in active:
                pts = t.pts
                nxt = pts.next_fire_time()
                if nxt is not None and nxt <= now:
                    self._guard(t, pts.fire_due, now)
                    progressed = True
                for _ in range(steps):
                    if not self._guard(t, t.step):
                        break
                    progressed = True
            if any(t.finished for t in active):
                active = [t for t in active if not t.finished]
            if timeout >= 0 and now - last_flush >= timeout:
                last_flush = now
                for t in active:
                    t.flush()
            if progressed:
                continue
            if any(t.flush() for t in active):
                continue
            self._idle_wait(active, now)

    def _idle_wait(self, active: list[Task], now: int) -> None:
        wait = 50.0
        for t in active:
            nxt = t.pts.next_fire_time()
            if nxt is not None:
                wait = min(wait, max(0.0, nxt - now))
            sw = t.source_wait_ms()
            if sw is not None:
                wait = min(wait, sw)
        if wait > 0:
            self.wakeup.wait(wait / 1000.0)
            self.wakeup.clear()

    def _guard(self, task: Task, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except (JobCancelledError, UserFunctionError):
            raise
        except Exception as exc:
            op = failing_operator(exc, task)
            tb = user_traceback(exc)
            message = (
                f"Operator '{op.name}' (subtask {task.subtask_index + 1}/{task.parallelism} "
                f"of task '{task.name}') failed: {type(exc).__name__}: {exc}\n{tb}"
            )
            task.state = "FAILED"
            raise UserFunctionError(message, op.name, task.subtask_index, tb) from exc


class _StopJob(Exception):
    """Internal: a stop-with-savepoint completed; the attempt ends as FINISHED."""


class LocalJob:
    """A job running in this process: checkpoints, restarts per strategy (restoring the
    latest completed checkpoint), savepoints, stop-with-savepoint, status."""

    def __init__(
        self,
        job_graph: JobGraph,
        settings: ExecutionSettings,
        job_id: str | None = None,
        checkpoint_settings: CheckpointSettings | None = None,
        restore_from: str | None = None,
        allow_non_restored_state: bool = False,
    ) -> None:
        self.job_graph = job_graph
        self.settings = settings
        self.job_id = job_id or uuid.uuid4().hex
        self.status = JobStatus.CREATED
        self.start_time = 0
        self.end_time = 0
        self.failure: BaseException | None = None
        self.attempt = 0
        self.num_restarts = 0
        self.exceptions: list[dict[str, Any]] = []
        self._scheduler: Scheduler | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self.deployment: Deployment | None = None
        self.registry = MetricRegistry()
        self.on_deploy: Callable[[LocalJob, Deployment], None] | None = None
        self.restore_from = restore_from
        self.allow_non_restored_state = allow_non_restored_state
        self.checkpoint_settings = checkpoint_settings or CheckpointSettings()
        operators = {
            n.uid: (
                n.name,
                n.parallelism,
                n.max_parallelism,
                any(k is not None for k in n.key_selectors),
            )
            for v in job_graph.vertices
            for n in v.nodes
        }
        self.coordinator = CheckpointCoordinator(
            self.job_id,
            job_graph.job_name,
            self.checkpoint_settings,
            operators,
            _storage_for,
            wall_clock_ms,
        )
        self._requests: queue.SimpleQueue[tuple[str, Any, Future[str]]] = queue.SimpleQueue()
        self._stopping: tuple[Any, Future[str]] | None = None
        self._drain_target: tuple[str | None, Future[str]] | None = None
        self.restored_from: str | None = None
        # how long the latest restore took (reading the checkpoint, loading the state)
        self.restore_duration_ms: float | None = None

    # -- lifecycle ----------------------------------------------------------------

    def run(self) -> None:
        """Run to completion (with restarts) on the calling thread; raises on failure."""
        self.start_time = wall_clock_ms()
        self.status = JobStatus.RUNNING
        try:
            while True:
                try:
                    self._run_attempt()
                    self.status = JobStatus.FINISHED
                    self._discard_checkpoints(cancelled=False)
                    return
                except _StopJob:
                    self.status = JobStatus.FINISHED
                    return
                except JobCancelledError:
                    self.status = JobStatus.CANCELED
                    self._discard_checkpoints(cancelled=True)
                    raise
                except (UserFunctionError, CheckpointError) as exc:
                    if isinstance(exc, UserFunctionError):
                        exc.job_id = self.job_id
                    self.exceptions.append(
                        {
                            "timestamp": wall_clock_ms(),
                            "exception": str(exc),
                            "taskName": getattr(exc, "operator_name", "checkpointing"),
                        }
                    )
                    if isinstance(exc, SavepointRestoreError) or not self._may_restart():
                        self.status = JobStatus.FAILED
                        self.failure = exc
                        raise
                    self.status = JobStatus.RESTARTING
                    delay = self.settings.restart_backoff.backoff_ms()
                    log.warning(
                        "Job %s failed (%s); restarting in %d ms from %s (%s)",
                        self.job_id,
                        getattr(exc, "operator_name", exc),
                        delay,
                        self.coordinator.latest.pointer if self.coordinator.latest else "scratch",
                        self.settings.restart_backoff.describe(),
                    )
                    if self._cancel.wait(delay / 1000.0):
                        self.status = JobStatus.CANCELED
                        raise JobCancelledError("the job was cancelled while restarting") from exc
                    self.attempt += 1
                    self.num_restarts += 1
                    self.status = JobStatus.RUNNING
        except BaseException as exc:
            if self.failure is None and not isinstance(exc, JobCancelledError):
                self.failure = exc
                self.status = JobStatus.FAILED
            raise
        finally:
            self.end_time = wall_clock_ms()
            self._fail_requests()
            self._done.set()

    def _discard_checkpoints(self, cancelled: bool) -> None:
        retention = self.checkpoint_settings.retention
        if cancelled and retention == "RETAIN_ON_CANCELLATION":
            return
        self.coordinator.discard_all_checkpoints()

    def _may_restart(self) -> bool:
        backoff = self.settings.restart_backoff
        if backoff is None:
            return False
        backoff.notify_failure(wall_clock_ms())
        return bool(backoff.can_restart())

    def _restore_plan(self) -> RestorePlan | None:
        latest = self.coordinator.latest
        if latest is not None:
            plan = plan_restore(
                latest.storage,
                latest.pointer,
                self.job_graph,
                True,
                latest.metadata,
                options=self.checkpoint_settings.storage_options,
            )
        elif self.restore_from is not None:
            storage, pointer = _open_pointer(self.restore_from, self.checkpoint_settings)
            plan = plan_restore(
                storage,
                pointer,
                self.job_graph,
                self.allow_non_restored_state,
                options=self.checkpoint_settings.storage_options,
            )
        else:
            return None
        self.restored_from = plan.pointer
        self.coordinator.next_id = max(self.coordinator.next_id, plan.metadata.checkpoint_id + 1)
        self.coordinator.stats.restored += 1
        self.coordinator.stats.latest_restored = {
            "id": plan.metadata.checkpoint_id,
            "restore_timestamp": wall_clock_ms(),
            "is_savepoint": plan.metadata.is_savepoint,
            "external_path": plan.pointer,
        }
        return plan

    def _run_attempt(self) -> None:
        started = time.perf_counter()
        try:
            plan = self._restore_plan()
        except (CheckpointError, StorageError) as exc:
            raise SavepointRestoreError(str(exc)) from exc
        channels = build_channels(self.job_graph, self.settings.channel_capacity)
        try:
            deployment = deploy_tasks(
                self.job_id,
                self.job_graph,
                self.settings,
                self.attempt,
                channels,
                registry=self.registry,
                restore=plan,
            )
        except (UserFunctionError, SavepointRestoreError, JobCancelledError):
            raise
        except Exception as exc:
            # restoring operator state failed: as a task failure, the restart strategy applies
            tb = user_traceback(exc)
            raise UserFunctionError(
                f"Restoring the operators' state failed: {type(exc).__name__}: {exc}\n{tb}",
                "restore",
                0,
                tb,
            ) from exc
        if plan is not None:
            # reading the checkpoint and deploying the tasks with their state loaded (the
            # deployment itself is some milliseconds), as Flink's InitializeStateDurationMs
            self.restore_duration_ms = (time.perf_counter() - started) * 1000.0
            log.info(
                "Job %s restored its state from %s in %.0f ms",
                self.job_id,
                plan.pointer,
                self.restore_duration_ms,
            )
        self.deployment = deployment
        scheduler = Scheduler(deployment.tasks, self.settings)
        self._scheduler = scheduler
        checkpointing = TaskCheckpointing(self.coordinator, deployment.tasks)
        checkpointing.wake = scheduler.wakeup.set
        scheduler.before_round = self._before_round
        if self._cancel.is_set():
            scheduler.cancelled.set()
        if self.on_deploy is not None:
            self.on_deploy(self, deployment)
        opened: list[Task] = []
        try:
            for t in deployment.tasks:
                scheduler._guard(t, t.open)
                opened.append(t)
            scheduler.run()
            self._final_checkpoint()
        finally:
            checkpointing.close()
            for t in opened:
                try:
                    t.close()
                except Exception as exc:  # a failing close must not hide the first error
                    log.warning("closing %s failed: %s", t.display_name, exc)

    def _before_round(self) -> None:
        coordinator = self.coordinator
        now = wall_clock_ms()
        while True:
            try:
                kind, arg, future = self._requests.get_nowait()
            except queue.Empty:
                break
            self._handle_request(kind, arg, future, now)
        coordinator.tick(now)
        if coordinator.fatal is not None:
            fatal, coordinator.fatal = coordinator.fatal, None
            raise fatal
        if self._stopping is not None and self._stopping[0].done():
            pending_future, user_future = self._stopping
            self._stopping = None
            exc = pending_future.exception()
            if exc is not None:
                self._resume_sources()
                user_future.set_exception(exc)
            else:
                user_future.set_result(pending_future.result())
                raise _StopJob

    def _handle_request(self, kind: str, arg: Any, future: Future[str], now: int) -> None:
        try:
            if kind == "savepoint":
                pending = self.coordinator.trigger(now, True, arg)
                pending.future.add_done_callback(lambda f: _chain(f, future))
            elif kind == "stop":
                target, drain = arg
                if drain:
                    self._drain_target = (target, future)
                    self._stop_sources("drain")
                else:
                    pending = self.coordinator.trigger(now, True, target, notify=True)
                    self._stop_sources("suspend")
                    self._stopping = (pending.future, future)
        except Exception as exc:
            future.set_exception(exc)

    def _stop_sources(self, how: str) -> None:
        assert self.deployment is not None
        for t in self.deployment.tasks:
            if t.is_source and not t.finished:
                t.stop_requested = how

    def _resume_sources(self) -> None:
        if self.deployment is not None:
            for t in self.deployment.tasks:
                t.stop_requested = None

    def _final_checkpoint(self) -> None:
        """All tasks finished: a final checkpoint (or the savepoint of a draining stop)
        makes two-phase-commit sinks commit everything."""
        coordinator = self.coordinator
        coordinator.tick(wall_clock_ms())
        if self._drain_target is not None:
            target, future = self._drain_target
            self._drain_target = None
            pending = coordinator.trigger(wall_clock_ms(), True, target, notify=True)
            _chain(pending.future, future)
            if pending.future.exception() is not None:
                raise CheckpointError(str(pending.future.exception()))
            return
        if not self.checkpoint_settings.enabled or coordinator._checkpoint_root is None:
            return
        pending = coordinator.trigger(wall_clock_ms())
        exc = pending.future.exception(timeout=0) if pending.future.done() else None
        if not pending.future.done():
            raise CheckpointError("the final checkpoint did not complete")
        if exc is not None:
            raise CheckpointError(f"the final checkpoint failed: {exc}")

    def _fail_requests(self) -> None:
        while True:
            try:
                _kind, _arg, future = self._requests.get_nowait()
            except queue.Empty:
                break
            if not future.done():
                future.set_exception(
                    CheckpointError(f"job {self.job_id} ended ({self.status.name}) first")
                )
        if self._drain_target is not None and not self._drain_target[1].done():
            self._drain_target[1].set_exception(CheckpointError("the job ended before draining"))

    # -- client requests (thread-safe) -------------------------------------------------

    def trigger_savepoint(self, target_directory: str | None = None) -> Future[str]:
        return self._request("savepoint", target_directory)

    def stop_with_savepoint(
        self, target_directory: str | None = None, drain: bool = False
    ) -> Future[str]:
        return self._request("stop", (target_directory, drain))

    def _request(self, kind: str, arg: Any) -> Future[str]:
        future: Future[str] = Future()
        if self._done.is_set() or self.status not in (JobStatus.RUNNING, JobStatus.CREATED):
            future.set_exception(
                CheckpointError(
                    f"job {self.job_id} is {self.status.name}; savepoints need a RUNNING job"
                )
            )
            return future
        self._requests.put((kind, arg, future))
        if self._scheduler is not None:
            self._scheduler.wakeup.set()
        return future

    def cancel(self) -> None:
        self._cancel.set()
        if self._scheduler is not None:
            self._scheduler.cancelled.set()
            self._scheduler.wakeup.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def net_runtime_ms(self) -> int:
        end = self.end_time or wall_clock_ms()
        return end - self.start_time if self.start_time else 0


def _chain(source: Future[str], target: Future[str]) -> None:
    if target.done():
        return
    exc = source.exception()
    if exc is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def _storage_for(uri: str, options: dict[str, str]) -> Any:
    from flinklet._private.checkpoint.storage import storage_for

    return storage_for(uri, options)


def _open_pointer(path: str, settings: CheckpointSettings) -> tuple[Any, str]:
    """Storage rooted at a checkpoint/savepoint directory given by the user."""
    from flinklet._private.checkpoint.layout import parse_checkpoint_pointer

    uri, key = parse_checkpoint_pointer(path)
    root = _storage_for(uri, settings.storage_options)
    storage = root.child(key) if key else root
    return storage, f"{uri.rstrip('/')}/{key}" if key else uri


__all__ = [
    "Deployment",
    "ExecutionSettings",
    "JobEdge",
    "LocalJob",
    "Scheduler",
    "build_channels",
    "collect_buffer",
    "deploy_tasks",
]
