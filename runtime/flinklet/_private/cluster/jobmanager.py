"""The JobManager: slot registry, scheduling, checkpoint coordination and failover.

Slots (TaskManager processes' workers) connect to the RPC port and register. A submitted
job waits until enough slots are alive (with slot sharing, one slot runs one subtask of
every vertex, so a job needs as many slots as its highest parallelism), is deployed to
them, and is watched through task reports and heartbeats. Everything that changes state
happens on the JobManager's own loop thread; network handlers only queue messages for it.
On a task failure or a lost slot the attempt is cancelled everywhere and, if the restart
strategy allows, redeployed (when slots are available again) from the latest completed
checkpoint.

An attempt is over in a slot only when the slot reports that its runner ended (its tasks
closed), or when the slot is lost (its process is gone). The next attempt is deployed only
then: a task of the old attempt that is still running (or still restoring) in a slot must
not touch what the new attempt's tasks restored, e.g. the file sink's restore deletes the
in-progress files of earlier attempts, and an old task restoring late would delete the
new attempt's. Likewise a job is FINISHED only when every slot ran the final checkpoint's
completion (sinks commit there) and closed the attempt.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import cloudpickle

from flinklet._private.checkpoint.coordinator import (
    CheckpointCoordinator,
    CheckpointSettings,
    CompletedCheckpoint,
)
from flinklet._private.cluster.protocol import frame, read_message
from flinklet._private.exec.executor import ExecutionSettings, _storage_for
from flinklet._private.exec.timers import wall_clock_ms
from flinklet._private.graph.stream_graph import JobGraph
from flinklet._private.metrics import MetricRegistry
from flinklet.common.job_status import JobStatus
from flinklet.errors import CheckpointError, ClusterError, JobCancelledError, JobExecutionError

log = logging.getLogger(__name__)


class HighAvailability(Protocol):
    """What the JobManager asks of high availability (``ha.py``); ``JobManager.ha`` is None
    without it. The checkpoint hooks raise ``CheckpointError`` to refuse."""

    def fencing_epoch(self) -> int | None: ...

    def before_commit(self, job_id: str, checkpoint_id: int) -> None: ...

    def checkpoint_completed(self, job_id: str, completed: CompletedCheckpoint) -> None: ...

    def job_terminated(self, job_id: str, status: JobStatus) -> None: ...


@dataclass
class SlotInfo:
    slot_id: str
    tm_id: str
    index: int
    host: str
    data_port: int
    pid: int
    writer: asyncio.StreamWriter
    registered_at: int
    last_heartbeat: float
    alive: bool = True
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.data_port


class _TaskView:
    """A task as the REST API sees it in a cluster: built from slot heartbeats."""

    def __init__(self, report: dict[str, Any], name: str, parallelism: int) -> None:
        self.vertex_id = report["vertex_id"]
        self.subtask_index = report["subtask"]
        self.name = name
        self.parallelism = parallelism
        self.state = report["state"]
        self.num_records_in = report["records_in"]
        self.backpressured_steps = report["backpressured"]
        self.writers = [type("W", (), {"num_records_out": report["records_out"]})()]
        self.watermark = report.get("watermark")

    @property
    def finished(self) -> bool:
        return bool(self.state == "FINISHED")


class ClusterJob:
    """A job running on the cluster; the same interface as a local job for the REST API."""

    def __init__(
        self,
        jm: JobManager,
        job_graph: JobGraph,
        settings: ExecutionSettings,
        checkpoint_settings: CheckpointSettings,
        restore_from: str | None,
        allow_non_restored_state: bool,
        sys_path: list[str],
        job_id: str | None = None,
        recovered: CompletedCheckpoint | None = None,
    ) -> None:
        self.jm = jm
        self.job_id = job_id or uuid.uuid4().hex
        self.job_graph = job_graph
        self.settings = settings
        self.checkpoint_settings = checkpoint_settings
        self.restore_from = restore_from
        self.allow_non_restored_state = allow_non_restored_state
        self.sys_path = sys_path
        self.status = JobStatus.CREATED
        self.start_time = wall_clock_ms()
        self.end_time = 0
        self.exceptions: list[dict[str, Any]] = []
        self.failure: BaseException | None = None
        self.attempt = -1
        self.num_restarts = 0
        self.registry = MetricRegistry()
        self.restored_from: str | None = None
        self.assignment: dict[tuple[int, int], str] = {}
        self.running_slots: set[str] = set()
        # slots that run (or still end) the current attempt: until each reported that its
        # runner ended, or was lost, no new attempt is deployed and the job does not end
        self.active_slots: set[str] = set()
        self.finished_tasks: set[tuple[int, int]] = set()
        self.restart_at = 0.0
        # WAITING, DEPLOYING, RUNNING, FINISHING, CLOSING, DONE
        self.phase = "WAITING"
        self._closing_status = JobStatus.FINISHED
        self._done = threading.Event()
        self._final: Any = None
        self._stopping: tuple[Future[str], Future[str]] | None = None
        self._drain: tuple[str | None, Future[str]] | None = None
        self._graph_bytes = cloudpickle.dumps(job_graph)
        self._settings_bytes = cloudpickle.dumps(settings)
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
        ha, job = jm.ha, self.job_id
        self.coordinator = CheckpointCoordinator(
            self.job_id,
            job_graph.job_name,
            checkpoint_settings,
            operators,
            _storage_for,
            wall_clock_ms,
            fencing_epoch=ha.fencing_epoch if ha else lambda: None,
            before_commit=(lambda cid: ha.before_commit(job, cid)) if ha else lambda cid: None,
            after_commit=(lambda c: ha.checkpoint_completed(job, c)) if ha else lambda c: None,
        )
        if recovered is not None:  # HA failover: the latest checkpoint the old leader recorded
            self.coordinator.completed.append(recovered)
            self.coordinator.next_id = recovered.checkpoint_id + 1
        self.coordinator.persist_finished_locally = False
        self.coordinator.trigger_sources = self._send_trigger
        self.coordinator.notify_complete = lambda cid: self._broadcast(("notify", cid, True))
        self.coordinator.notify_aborted = lambda cid: self._broadcast(("notify", cid, False))

    # -- what the REST API reads ---------------------------------------------------------

    @property
    def all_tasks(self) -> set[tuple[int, int]]:
        return {(v.id, i) for v in self.job_graph.vertices for i in range(v.parallelism)}

    @property
    def deployment(self) -> Any:
        names = {v.id: (v.name, v.parallelism) for v in self.job_graph.vertices}
        tasks = []
        key = f"{self.job_id}:{self.attempt}"
        for slot in self.jm.slots.values():
            for report in slot.tasks.get(key, []):
                name, p = names.get(report["vertex_id"], ("?", 1))
                tasks.append(_TaskView(report, name, p))
        return type("Deployment", (), {"tasks": tasks})()

    @property
    def net_runtime_ms(self) -> int:
        return (self.end_time or wall_clock_ms()) - self.start_time

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    # -- client requests (thread-safe: queued for the JobManager loop) ------------------

    def cancel(self) -> None:
        self.jm.post(("job_cancel", self.job_id))

    def trigger_savepoint(self, target_directory: str | None = None) -> Future[str]:
        future: Future[str] = Future()
        self.jm.post(("job_savepoint", self.job_id, target_directory, future))
        return future

    def stop_with_savepoint(
        self, target_directory: str | None = None, drain: bool = False
    ) -> Future[str]:
        future: Future[str] = Future()
        self.jm.post(("job_stop", self.job_id, target_directory, drain, future))
        return future

    # -- on the JobManager loop ------------------------------------------------------------

    def _send(self, slot_id: str, message: tuple[Any, ...]) -> None:
        self.jm.send(slot_id, message)

    def _broadcast(self, message: tuple[Any, ...]) -> None:
        for slot_id in set(self.assignment.values()):
            self._send(slot_id, (message[0], self.job_id, self.attempt, *message[1:]))

    def _send_trigger(self, pending: Any) -> None:
        self._broadcast(
            (
                "trigger",
                pending.checkpoint_id,
                pending.timestamp,
                pending.is_savepoint,
                pending.pointer,
            )
        )

    def deploy(self, slots: list[SlotInfo]) -> None:
        self.attempt += 1
        self.finished_tasks = set()
        self.running_slots = set()
        used = slots[: max(v.parallelism for v in self.job_graph.vertices)]
        self.assignment = {
            (v.id, i): used[i % len(used)].slot_id
            for v in self.job_graph.vertices
            for i in range(v.parallelism)
        }
        restore: tuple[str, bool] | None = None
        latest = self.coordinator.latest
        if latest is not None:
            restore = (latest.pointer, True)
        elif self.restore_from is not None:
            restore = (self.restore_from, self.allow_non_restored_state)
        if restore is not None:
            if latest is not None:
                restored_id, is_savepoint = latest.checkpoint_id, False
            else:
                # read the user's savepoint here: a bad path fails now, with its reason
                from flinklet._private.checkpoint.restore import load_metadata
                from flinklet._private.exec.executor import _open_pointer

                try:
                    storage, resolved = _open_pointer(restore[0], self.checkpoint_settings)
                    meta = load_metadata(storage, resolved)
                except Exception as exc:
                    self.attempt -= 1
                    self.failure = JobExecutionError(
                        f"Job '{self.job_graph.job_name}' cannot restore: {exc}", self.job_id
                    )
                    self.exceptions.append(
                        {"timestamp": wall_clock_ms(), "exception": str(exc), "taskName": "restore"}
                    )
                    self._finish(JobStatus.FAILED)
                    return
                restored_id, is_savepoint = meta.checkpoint_id, meta.is_savepoint
            self.restored_from = restore[0]
            self.coordinator.stats.restored += 1
            self.coordinator.stats.latest_restored = {
                "id": restored_id,
                "restore_timestamp": wall_clock_ms(),
                "is_savepoint": is_savepoint,
                "external_path": restore[0],
            }
            self.coordinator.next_id = max(self.coordinator.next_id, restored_id + 1)
        self.coordinator.reset_tasks(self.all_tasks)
        addresses = {s.slot_id: s.address for s in used}
        spec = {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "job_graph": self._graph_bytes,
            "settings": self._settings_bytes,
            "checkpoint_settings": self.checkpoint_settings,
            "restore": restore,
            "assignment": self.assignment,
            "addresses": addresses,
            "sys_path": self.sys_path,
        }
        self.active_slots = {s.slot_id for s in used}
        for slot in used:
            self._send(slot.slot_id, ("deploy", spec))
        self.phase = "DEPLOYING"
        self.status = JobStatus.RUNNING if self.attempt == 0 else JobStatus.RESTARTING
        log.info("Deployed job %s attempt %d to %d slots", self.job_id, self.attempt, len(used))

    def fail_attempt(self, reason: str, operator: str = "") -> None:
        """Cancel the attempt everywhere, then restart or fail the job."""
        if self.phase in ("DONE",):
            return
        log.warning("Job %s attempt %d failed: %s", self.job_id, self.attempt, reason[-700:])
        self.exceptions.append(
            {"timestamp": wall_clock_ms(), "exception": reason, "taskName": operator}
        )
        for slot_id in set(self.assignment.values()):
            self._send(slot_id, ("cancel", self.job_id, self.attempt))
        self._fail_pending_requests(reason)
        backoff = self.settings.restart_backoff
        if backoff is not None:
            backoff.notify_failure(wall_clock_ms())
        if backoff is None or not backoff.can_restart():
            self.failure = JobExecutionError(
                f"Job '{self.job_graph.job_name}' failed: {reason}", self.job_id
            )
            self._finish(JobStatus.FAILED)
            return
        self.num_restarts += 1
        self.status = JobStatus.RESTARTING
        self.phase = "WAITING"
        self.restart_at = time.monotonic() + backoff.backoff_ms() / 1000.0

    def _fail_pending_requests(self, reason: str) -> None:
        if self._stopping is not None:
            self._stopping[1].set_exception(CheckpointError(f"the job failed: {reason}"))
            self._stopping = None
        if self._drain is not None:
            self._drain[1].set_exception(CheckpointError(f"the job failed: {reason}"))
            self._drain = None

    def _finish(self, status: JobStatus) -> None:
        self.status = status
        self.phase = "DONE"
        self.end_time = wall_clock_ms()
        for slot_id in set(self.assignment.values()):
            self._send(slot_id, ("cancel", self.job_id, self.attempt))
        if self.jm.ha is not None:
            try:
                self.jm.ha.job_terminated(self.job_id, status)
            except ClusterError as exc:  # a new leader may still need the checkpoints
                log.warning("job %s: %s; its checkpoints are kept", self.job_id, exc)
                self._done.set()
                return
        if status == JobStatus.FINISHED or (
            status == JobStatus.CANCELED
            and self.checkpoint_settings.retention != "RETAIN_ON_CANCELLATION"
        ):
            self.coordinator.discard_all_checkpoints()
        self._done.set()

    def suspend(self, reason: str) -> None:
        """This JobManager lost leadership: stop the job here, keep its checkpoints and
        HA record (the new leader resumes it), and end its waiters."""
        if self.phase == "DONE":
            return
        log.warning("Suspending job %s: %s", self.job_id, reason)
        self._fail_pending_requests(reason)
        for slot_id in set(self.assignment.values()):
            self._send(slot_id, ("cancel", self.job_id, self.attempt))
        self.status = JobStatus.SUSPENDED
        self.phase = "DONE"
        self.end_time = wall_clock_ms()
        self.failure = JobExecutionError(f"Job {self.job_id} was suspended: {reason}", self.job_id)
        self._done.set()

    def tick(self, now: float) -> None:
        if self.phase == "DONE":
            return
        if self.phase == "WAITING":
            if now < self.restart_at or self.attempt_ending():
                return
            needed = max(v.parallelism for v in self.job_graph.vertices)
            slots = self.jm.available_slots()
            if len(slots) >= needed:
                self.deploy(slots)
            return
        if self.phase == "CLOSING":
            if not self.attempt_ending():
                self._finish(self._closing_status)
            return
        coordinator = self.coordinator
        coordinator.tick(wall_clock_ms())
        if coordinator.fatal is not None:
            fatal, coordinator.fatal = coordinator.fatal, None
            self.fail_attempt(str(fatal), "checkpointing")
            return
        if self._stopping is not None and self._stopping[0].done():
            pending_future, user_future = self._stopping
            self._stopping = None
            exc = pending_future.exception()
            if exc is not None:
                self._broadcast(("resume_sources",))
                user_future.set_exception(exc)
            else:
                user_future.set_result(pending_future.result())
                # the savepoint's completion notice (sinks commit there) is applied before
                # the cancel; the job ends once every slot ended the attempt
                self._close(("cancel",), JobStatus.FINISHED)
            return
        if self.phase == "RUNNING" and self.finished_tasks >= self.all_tasks:
            self._start_final_checkpoint()
        if self.phase == "FINISHING" and self._final is not None and self._final.done():
            exc = self._final.exception()
            if exc is not None:
                self._final = None
                self.phase = "RUNNING"
                self.fail_attempt(f"the final checkpoint failed: {exc}", "checkpointing")
                return
            self._close(("close",), JobStatus.FINISHED)

    def attempt_ending(self) -> bool:
        """Whether a slot still runs (or is still ending) the current attempt."""
        slots = self.jm.slots
        self.active_slots = {s for s in self.active_slots if s in slots and slots[s].alive}
        return bool(self.active_slots)

    def _close(self, message: tuple[Any, ...], status: JobStatus) -> None:
        """End the attempt with ``message`` ("close" after the final checkpoint, whose
        completion notice the slots apply first); the job takes ``status`` when every slot
        reported that the attempt ended there (sinks committed)."""
        self._broadcast(message)
        self._closing_status = status
        self.phase = "CLOSING"
        if not self.attempt_ending():
            self._finish(status)

    def _start_final_checkpoint(self) -> None:
        self.phase = "FINISHING"
        coordinator = self.coordinator
        if self._drain is not None:
            target, user_future = self._drain
            self._drain = None
            try:
                pending = coordinator.trigger(wall_clock_ms(), True, target, notify=True)
            except CheckpointError as exc:
                user_future.set_exception(exc)
                self._final = _done_future()
                return
            pending.future.add_done_callback(functools.partial(_chain, target=user_future))
            self._final = pending.future
            return
        if not self.checkpoint_settings.enabled or coordinator._checkpoint_root is None:
            self._final = _done_future()
            return
        self._final = coordinator.trigger(wall_clock_ms()).future

    def on_message(self, slot_id: str, message: tuple[Any, ...]) -> None:
        kind, attempt = message[0], message[2]
        if attempt != self.attempt or self.phase == "DONE":
            return  # a stale report of an earlier attempt
        if kind == "attempt_ended":
            self.active_slots.discard(slot_id)
            return
        if self.phase == "WAITING":
            return  # the attempt failed already; its slots are ending it
        if kind == "attempt_running":
            self.running_slots.add(slot_id)
            if self.running_slots >= set(self.assignment.values()) and self.phase == "DEPLOYING":
                self.phase = "RUNNING"
                self.status = JobStatus.RUNNING
        elif kind == "task_failed":
            self.fail_attempt(message[3], message[4])
        elif kind == "task_finished":
            self.finished_tasks.add(tuple(message[3]))
            self.coordinator.task_finished(tuple(message[3]), None)
        elif kind == "checkpoint":
            _, _, _, ckind, payload = message
            self.coordinator.post(ckind, payload)

    def handle_request(self, request: tuple[Any, ...]) -> None:
        kind = request[0]
        if kind == "job_cancel":
            if self.phase != "DONE":
                self._fail_pending_requests("the job was cancelled")
                self.failure = JobCancelledError("the job was cancelled")
                self._finish(JobStatus.CANCELED)
            return
        future: Future[str] = request[-1]
        if self.phase not in ("RUNNING",):
            future.set_exception(
                CheckpointError(
                    f"job {self.job_id} is {self.status.name} ({self.phase.lower()}); savepoints "
                    f"need a RUNNING job"
                )
            )
            return
        try:
            if kind == "job_savepoint":
                pending = self.coordinator.trigger(wall_clock_ms(), True, request[2])
                pending.future.add_done_callback(functools.partial(_chain, target=future))
            elif kind == "job_stop":
                _, _, target, drain, _f = request
                if drain:
                    self._drain = (target, future)
                    self._broadcast(("stop_sources", "drain"))
                else:
                    pending = self.coordinator.trigger(wall_clock_ms(), True, target, notify=True)
                    self._broadcast(("stop_sources", "suspend"))
                    self._stopping = (pending.future, future)
        except CheckpointError as exc:
            future.set_exception(exc)


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _done_future() -> Future[str]:
    f: Future[str] = Future()
    f.set_result("")
    return f


def _chain(source: Future[str], target: Future[str]) -> None:
    if target.done():
        return
    exc = source.exception()
    if exc is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


class JobManager:
    def __init__(
        self,
        rpc_host: str = "127.0.0.1",
        rpc_port: int = 0,
        heartbeat_timeout_ms: int = 10_000,
        configuration: dict[str, str] | None = None,
    ) -> None:
        self.rpc_host = rpc_host
        self.rpc_port = rpc_port
        self.heartbeat_timeout = heartbeat_timeout_ms / 1000.0
        self.configuration = dict(configuration or {})
        self.slots: dict[str, SlotInfo] = {}
        # when the RPC thread last received anything from each slot: the loop may apply
        # heartbeats late (e.g. while a checkpoint's HA record is written), and a slot is
        # lost only when nothing arrived from it for the heartbeat timeout
        self.last_seen: dict[str, float] = {}
        self.jobs: dict[str, ClusterJob] = {}
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._loop = asyncio.new_event_loop()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.leader = True  # HA replaces this with the Lease's verdict
        self.ha: HighAvailability | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> JobManager:
        t = threading.Thread(target=self._run_rpc, name="flinklet-jm-rpc", daemon=True)
        t.start()
        if not self._ready.wait(10):
            raise RuntimeError("the JobManager RPC server did not start")
        m = threading.Thread(target=self._main_loop, name="flinklet-jm", daemon=True)
        m.start()
        self._threads = [t, m]
        return self

    def stop(self) -> None:
        self._stop.set()
        for slot in list(self.slots.values()):
            self.send(slot.slot_id, ("shutdown",))
        self._loop.call_soon_threadsafe(self._loop.stop)
        for t in self._threads:
            t.join(5)

    def _run_rpc(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            server = await asyncio.start_server(self._serve, self.rpc_host, self.rpc_port)
            self.rpc_port = int(server.sockets[0].getsockname()[1])

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        slot_id: str | None = None
        try:
            while True:
                message = await read_message(reader)
                if message[0] == "register":
                    slot_id = message[1]["slot_id"]
                    self.last_seen[slot_id] = time.monotonic()
                    self.post(("register", message[1], writer))
                elif slot_id is not None:
                    self.last_seen[slot_id] = time.monotonic()
                    self.post(("slot", slot_id, message))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            if slot_id is not None:
                self.last_seen.pop(slot_id, None)
                self.post(("slot_lost", slot_id, "its connection closed (process died?)"))
            writer.close()

    def post(self, message: tuple[Any, ...]) -> None:
        self._inbox.put(message)

    def suspend_jobs(self, reason: str) -> None:
        """Thread-safe: suspend every job (leadership was lost)."""
        self.post(("suspend_all", reason))

    def send(self, slot_id: str, message: tuple[Any, ...]) -> None:
        slot = self.slots.get(slot_id)
        if slot is None or not slot.alive:
            return
        data = frame(message)
        self._loop.call_soon_threadsafe(slot.writer.write, data)

    # -- the loop ------------------------------------------------------------------------

    def _main_loop(self) -> None:
        while not self._stop.is_set():
            deadline = time.monotonic() + 0.02
            while True:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    message = self._inbox.get(timeout=timeout)
                except queue.Empty:
                    break
                try:
                    self._handle(message)
                except Exception:
                    log.exception("JobManager failed to handle %s", message[0])
            now = time.monotonic()
            self._check_heartbeats(now)
            for job in list(self.jobs.values()):
                try:
                    job.tick(now)
                except Exception as exc:
                    log.exception("job %s", job.job_id)
                    job.fail_attempt(f"JobManager error: {exc!r}")

    def _check_heartbeats(self, now: float) -> None:
        for slot in list(self.slots.values()):
            seen = max(slot.last_heartbeat, self.last_seen.get(slot.slot_id, 0.0))
            if slot.alive and now - seen > self.heartbeat_timeout:
                self._slot_lost(slot.slot_id, f"no heartbeat for {self.heartbeat_timeout:.0f} s")

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "register":
            info, writer = message[1], message[2]
            self.slots[info["slot_id"]] = SlotInfo(
                info["slot_id"],
                info["tm_id"],
                info["index"],
                info["host"],
                info["data_port"],
                info["pid"],
                writer,
                wall_clock_ms(),
                time.monotonic(),
            )
            log.info("Slot %s registered (TaskManager %s)", info["slot_id"], info["tm_id"])
        elif kind == "slot":
            slot_id, inner = message[1], message[2]
            slot = self.slots.get(slot_id)
            if slot is None:
                return
            if inner[0] == "heartbeat":
                slot.last_heartbeat = time.monotonic()
                slot.tasks = inner[2]
                self._record_task_metrics(inner[2])
                return
            job = self.jobs.get(inner[1])
            if job is not None:
                job.on_message(slot_id, inner)
        elif kind == "slot_lost":
            self._slot_lost(message[1], message[2])
        elif kind == "submit":
            job = message[1]
            self.jobs[job.job_id] = job
        elif kind == "suspend_all":
            for job in self.jobs.values():
                job.suspend(message[1])
        elif kind in ("job_cancel", "job_savepoint", "job_stop"):
            job = self.jobs.get(message[1])
            if job is not None:
                job.handle_request(message)
            elif kind != "job_cancel":
                message[-1].set_exception(CheckpointError(f"unknown job {message[1]}"))

    def _record_task_metrics(self, reports: dict[str, list[dict[str, Any]]]) -> None:
        """Task counters reported by slots, as the job's metrics (Flink's names)."""
        from flinklet._private.metrics import Gauge

        for key, tasks in reports.items():
            job_id, _, _attempt = key.partition(":")
            job = self.jobs.get(job_id)
            if job is None:
                continue
            for r in tasks:
                scope = f"{job_id}.task.{r['vertex_id']}.{r['subtask']}"
                values = {
                    "numRecordsIn": r["records_in"],
                    "numRecordsOut": r["records_out"],
                    "backPressuredSteps": r["backpressured"],
                    "currentInputWatermark": r["watermark"],
                }
                for name, value in values.items():
                    job.registry.register(f"{scope}.{name}", Gauge(_constant(value)))

    def _slot_lost(self, slot_id: str, reason: str) -> None:
        slot = self.slots.get(slot_id)
        if slot is None or not slot.alive:
            return
        slot.alive = False
        log.warning("Lost slot %s of TaskManager %s: %s", slot_id, slot.tm_id, reason)
        for job in self.jobs.values():
            if (
                job.phase != "DONE"
                and job.phase != "WAITING"
                and slot_id in job.assignment.values()
            ):
                job.fail_attempt(
                    f"TaskManager {slot.tm_id} (slot {slot_id}) was lost: {reason}", "TaskManager"
                )
        del self.slots[slot_id]
        self.last_seen.pop(slot_id, None)
        # a slot that is lost while its connection is open (no heartbeat) would otherwise
        # keep running its tasks unseen and never offer itself again: disconnect it, so
        # that its process exits (cancelling them) and its TaskManager starts a new one
        self._loop.call_soon_threadsafe(slot.writer.close)

    def available_slots(self) -> list[SlotInfo]:
        """Alive slots not used by another running job, interleaved across TaskManagers
        so that a job spreads over as many of them as it can."""
        busy = {
            s
            for j in self.jobs.values()
            if j.phase not in ("DONE", "WAITING")
            for s in j.assignment.values()
        }
        by_tm: dict[str, list[SlotInfo]] = {}
        for slot in sorted(self.slots.values(), key=lambda s: (s.tm_id, s.index)):
            if slot.alive and slot.slot_id not in busy:
                by_tm.setdefault(slot.tm_id, []).append(slot)
        out: list[SlotInfo] = []
        while any(by_tm.values()):
            for tm in sorted(by_tm):
                if by_tm[tm]:
                    out.append(by_tm[tm].pop(0))
        return out

    # -- submission -------------------------------------------------------------------------

    def submit(
        self,
        job_graph: JobGraph,
        settings: ExecutionSettings,
        checkpoint_settings: CheckpointSettings,
        restore_from: str | None = None,
        allow_non_restored_state: bool = False,
        sys_path: list[str] | None = None,
        job_id: str | None = None,
        recovered: CompletedCheckpoint | None = None,
    ) -> ClusterJob:
        job = ClusterJob(
            self,
            job_graph,
            settings,
            checkpoint_settings,
            restore_from,
            allow_non_restored_state,
            sys_path or [],
            job_id,
            recovered,
        )
        self.post(("submit", job))
        return job
