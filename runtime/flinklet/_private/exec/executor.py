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
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flinklet._private.exec.context import OperatorEnv
from flinklet._private.exec.operators import Output, StreamOperator
from flinklet._private.exec.sinks import CollectBuffer
from flinklet._private.exec.task import Task, failing_operator, user_traceback
from flinklet._private.exec.timers import ProcessingTimeService, wall_clock_ms
from flinklet._private.graph.stream_graph import JobEdge, JobGraph, JobVertex, is_chainable
from flinklet._private.metrics import MetricRegistry, TaskMetricGroup
from flinklet._private.network.channels import InputGate, LocalChannel
from flinklet._private.network.partitioners import RecordWriter
from flinklet._private.state.backend import OperatorStateBackend
from flinklet._private.state.heap import HeapKeyedStateBackend
from flinklet._private.state.keygroups import key_group_range_for_operator
from flinklet.common.job_status import JobStatus
from flinklet.errors import JobCancelledError, JobExecutionError, UserFunctionError

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
) -> Deployment:
    """Instantiate the tasks of ``job_graph`` (those selected by ``subtasks``)."""
    registry = registry or MetricRegistry()
    tasks: list[Task] = []
    by_uid: dict[tuple[str, int], StreamOperator] = {}
    for v in job_graph.vertices:
        for idx in range(v.parallelism):
            if not subtasks(v, idx):
                continue
            task, ops = _build_task(job_id, v, idx, settings, attempt, channels, registry, clock)
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
                HeapKeyedStateBackend(node.max_parallelism, kg_range) if keyed else None
            ),
            operator_state=OperatorStateBackend(),
            batch_mode=settings.batch_mode,
            auto_watermark_interval=settings.auto_watermark_interval_ms,
        )
        ops[node.id].setup(env, Output(targets, side, chained, writers))
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


class LocalJob:
    """A job running in this process: restarts per strategy, reports status."""

    def __init__(
        self, job_graph: JobGraph, settings: ExecutionSettings, job_id: str | None = None
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
                    return
                except JobCancelledError:
                    self.status = JobStatus.CANCELED
                    raise
                except UserFunctionError as exc:
                    exc.job_id = self.job_id
                    self.exceptions.append(
                        {
                            "timestamp": wall_clock_ms(),
                            "exception": str(exc),
                            "taskName": exc.operator_name,
                        }
                    )
                    if not self._may_restart():
                        self.status = JobStatus.FAILED
                        self.failure = exc
                        raise
                    self.status = JobStatus.RESTARTING
                    delay = self.settings.restart_backoff.backoff_ms()
                    log.warning(
                        "Job %s failed (%s); restarting in %d ms (%s)",
                        self.job_id,
                        exc.operator_name,
                        delay,
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
                if self.status not in (JobStatus.CANCELED,):
                    self.status = JobStatus.FAILED
            raise
        finally:
            self.end_time = wall_clock_ms()
            self._done.set()

    def _may_restart(self) -> bool:
        backoff = self.settings.restart_backoff
        if backoff is None:
            return False
        backoff.notify_failure(wall_clock_ms())
        return bool(backoff.can_restart())

    def _run_attempt(self) -> None:
        channels = build_channels(self.job_graph, self.settings.channel_capacity)
        deployment = deploy_tasks(
            self.job_id,
            self.job_graph,
            self.settings,
            self.attempt,
            channels,
            registry=self.registry,
        )
        self.deployment = deployment
        scheduler = Scheduler(deployment.tasks, self.settings)
        self._scheduler = scheduler
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
        finally:
            for t in opened:
                try:
                    t.close()
                except Exception as exc:  # a failing close must not hide the first error
                    log.warning("closing %s failed: %s", t.display_name, exc)

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


def describe_failure(job_name: str, exc: BaseException) -> JobExecutionError:
    return JobExecutionError(f"Job '{job_name}' failed: {exc}")


def new_job_id() -> str:
    return uuid.uuid4().hex


def sleep_ms(ms: float) -> None:
    time.sleep(ms / 1000.0)


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
