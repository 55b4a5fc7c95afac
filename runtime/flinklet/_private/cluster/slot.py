"""A TaskManager slot: one OS process that runs its share of every job's subtasks.

The slot registers with the JobManager over the control connection, heartbeats, and
runs each deployed execution attempt on a ``JobRunner`` thread: the same tasks and
cooperative scheduler as a local job, with TCP channels to subtasks in other processes.
Checkpoint triggers, completion notices, stop and cancel requests arrive as control
messages and are applied on the runner's scheduler thread between rounds.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import cloudpickle

from flinklet._private.checkpoint.persist import write_task_state
from flinklet._private.checkpoint.restore import plan_restore
from flinklet._private.cluster.channels import slot_channels
from flinklet._private.cluster.network import NetworkService
from flinklet._private.cluster.protocol import frame, loads
from flinklet._private.exec.checkpointing import TaskCheckpointing
from flinklet._private.exec.executor import (
    ExecutionSettings,
    Scheduler,
    _open_pointer,
    _storage_for,
    deploy_tasks,
)
from flinklet._private.metrics import MetricRegistry
from flinklet.errors import JobCancelledError, UserFunctionError

if TYPE_CHECKING:
    from flinklet._private.cluster.ha_metadata import LeaderInfo, LeaderRetriever

log = logging.getLogger(__name__)


# how long a cancelled attempt may take to end (its tasks closed) before this process exits
# (its TaskManager starts it again): the JobManager deploys the next attempt only after
# the old one ended in every slot, so a runner that never ends must not block the job
# forever (Flink's task.cancellation.timeout)
CANCELLATION_TIMEOUT_S = 180.0


def _of_attempt(key: Any, job_id: str, attempt: int) -> bool:
    return bool(key[0] == job_id and key[1] == attempt)


class ControlConnection:
    """Blocking, framed messages to and from the JobManager."""

    def __init__(self, address: tuple[str, int], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: OSError | None = None
        while True:
            try:
                self.sock = socket.create_connection(address, timeout=5)
                break
            except OSError as exc:
                last = exc
                if time.monotonic() > deadline:
                    raise ConnectionError(
                        f"cannot reach the JobManager at {address[0]}:{address[1]} ({last}); "
                        f"check jobmanager.rpc.address / jobmanager.rpc.port"
                    ) from exc
                time.sleep(0.5)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._lock = threading.Lock()
        self._file = self.sock.makefile("rb")

    def send(self, message: Any) -> None:
        data = frame(message)
        with self._lock:
            self.sock.sendall(data)

    def receive(self) -> Any:
        header = self._file.read(4)
        if len(header) < 4:
            raise ConnectionError("the JobManager closed the control connection")
        length = int.from_bytes(header, "big")
        return loads(self._file.read(length))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in receive()
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class _Pending:
    checkpoint_id: int
    timestamp: int
    is_savepoint: bool
    storage: Any
    pointer: str


class _CoordinatorProxy:
    """What ``TaskCheckpointing`` needs from a coordinator, forwarded to the JobManager."""

    def __init__(self, runner: JobRunner, exactly_once: bool) -> None:
        self.runner = runner
        self.settings = SimpleNamespace(exactly_once=exactly_once)
        self.finished: dict[tuple[int, int], Any] = {}
        self.trigger_sources: Any = None
        self.notify_complete: Any = None
        self.notify_aborted: Any = None

    def reset_tasks(self, tasks: set[tuple[int, int]]) -> None:
        self.finished = {}

    def post(self, kind: str, payload: Any) -> None:
        self.runner.send(("checkpoint", self.runner.job_id, self.runner.attempt, kind, payload))

    def task_finished(
        self, key: tuple[int, int], lazy_snapshot: Any, snapshotted: Any = ()
    ) -> None:
        self.finished[key] = lazy_snapshot
        self.runner.send(("task_finished", self.runner.job_id, self.runner.attempt, key))


class JobRunner(threading.Thread):
    """One execution attempt of one job in this slot."""

    def __init__(self, slot: SlotProcess, spec: dict[str, Any]) -> None:
        super().__init__(name=f"flinklet-job-{spec['job_id'][:8]}-{spec['attempt']}", daemon=True)
        self.slot = slot
        self.spec = spec
        self.job_id: str = spec["job_id"]
        self.attempt: int = spec["attempt"]
        self.requests: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.scheduler: Scheduler | None = None
        self.tasks: list[Any] = []
        self.closed = threading.Event()
        self.cancelled = threading.Event()
        self.cancel_requested = threading.Event()
        self.registry = MetricRegistry()
        self.peers: set[Any] = set()

    def send(self, message: Any) -> None:
        self.slot.send(message)

    def run(self) -> None:
        try:
            self._run()
        except JobCancelledError:
            pass
        except UserFunctionError as exc:
            self.send(("task_failed", self.job_id, self.attempt, str(exc), exc.operator_name))
        except Exception as exc:
            detail = "".join(traceback.format_exception(exc))
            self.send(("task_failed", self.job_id, self.attempt, detail, "deployment"))
        finally:
            self.slot.network.release(
                functools.partial(_of_attempt, job_id=self.job_id, attempt=self.attempt)
            )
            for t in self.tasks:
                try:
                    t.close()
                except Exception as exc:  # closing must reach every task
                    log.warning("closing %s failed: %s", t.display_name, exc)
            self.slot.runners.pop((self.job_id, self.attempt), None)
            # after every report of the attempt: the JobManager deploys the next attempt
            # (or ends the job) only once each slot ended this one
            self.send(("attempt_ended", self.job_id, self.attempt, self.slot.slot_id))

    def _run(self) -> None:
        spec = self.spec
        for entry in spec.get("sys_path", []):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        job_graph = cloudpickle.loads(spec["job_graph"])
        settings: ExecutionSettings = cloudpickle.loads(spec["settings"])
        me = self.slot.slot_id
        assignment: dict[tuple[int, int], str] = spec["assignment"]
        plan = None
        if self.cancel_requested.is_set():  # cancelled before it restored anything
            raise JobCancelledError("cancelled before it started")
        if spec.get("restore"):
            pointer, allow = spec["restore"]
            storage, resolved = _open_pointer(pointer, spec["checkpoint_settings"])
            plan = plan_restore(
                storage,
                resolved,
                job_graph,
                allow,
                options=spec["checkpoint_settings"].storage_options,
            )
        self.peers = {tuple(a) for sid, a in spec["addresses"].items() if sid != me}
        scheduler_wakeup = threading.Event()
        self.slot.wakeups.append(scheduler_wakeup)
        channels = slot_channels(
            job_graph,
            self.job_id,
            self.attempt,
            assignment,
            spec["addresses"],
            me,
            self.slot.network,
            settings.channel_capacity,
        )
        deployment = deploy_tasks(
            self.job_id,
            job_graph,
            settings,
            self.attempt,
            channels,
            subtasks=lambda v, i: assignment[(v.id, i)] == me,
            registry=self.registry,
            restore=plan,
        )
        self.tasks = deployment.tasks
        scheduler = Scheduler(deployment.tasks, settings)
        scheduler.wakeup = scheduler_wakeup
        self.scheduler = scheduler
        proxy = _CoordinatorProxy(self, spec["checkpoint_settings"].exactly_once)
        self.proxy = proxy
        checkpointing = TaskCheckpointing(proxy, deployment.tasks)  # type: ignore[arg-type]
        checkpointing.remote = True
        options = spec["checkpoint_settings"].storage_options
        checkpointing.resolve_storage = lambda pointer: _storage_for(pointer, options)
        checkpointing.wake = scheduler_wakeup.set
        self.checkpointing = checkpointing
        scheduler.before_round = self._before_round
        if self.cancelled.is_set() or self.cancel_requested.is_set():
            raise JobCancelledError("cancelled before it started")
        for t in deployment.tasks:
            scheduler._guard(t, t.open)
        self.send(("attempt_running", self.job_id, self.attempt, me))
        try:
            scheduler.run()
            # every local task finished; serve checkpoint requests until the JobManager
            # closes the attempt (the final checkpoint commits sinks)
            while not self.closed.is_set():
                if self.cancelled.is_set():
                    raise JobCancelledError("cancelled")
                self._before_round()
                scheduler_wakeup.wait(0.05)
                scheduler_wakeup.clear()
        finally:
            checkpointing.close()
            if scheduler_wakeup in self.slot.wakeups:
                self.slot.wakeups.remove(scheduler_wakeup)

    def _before_round(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelledError("cancelled by the JobManager")
        failures = self.slot.network.peer_failures
        if failures:
            for address in self.peers:
                if address in failures:
                    raise ConnectionError(failures[address])
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            self._apply(request)

    def _apply(self, request: tuple[Any, ...]) -> None:
        kind = request[0]
        cp = self.checkpointing
        if kind == "trigger":
            _, cid, ts, is_savepoint, pointer = request
            storage = _storage_for(pointer, self.spec["checkpoint_settings"].storage_options)
            pending = _Pending(cid, ts, is_savepoint, storage, pointer)
            cp._trigger_sources(pending)  # type: ignore[arg-type]  # duck-typed pending
            for key, lazy in list(self.proxy.finished.items()):
                snapshots = lazy(cid, ts) if callable(lazy) else lazy
                self.proxy.finished[key] = snapshots
                cp.writer.submit(self._write_finished, storage, key, snapshots, cid)
        elif kind == "notify":
            _, cid, complete = request
            (cp._notify_complete if complete else cp._notify_aborted)(cid)
        elif kind == "stop_sources":
            for t in self.tasks:
                if t.is_source and not t.finished:
                    t.stop_requested = request[1]
        elif kind == "resume_sources":
            for t in self.tasks:
                t.stop_requested = None
        elif kind == "close":
            self.closed.set()
        elif kind == "cancel":
            raise JobCancelledError("cancelled by the JobManager")

    def _write_finished(self, storage: Any, key: tuple[int, int], snapshots: Any, cid: int) -> None:
        try:
            ack = write_task_state(storage, key, snapshots, finished=True)
        except Exception as exc:
            self.proxy.post("decline", (cid, f"finished task {key}: {exc}"))
            return
        self.proxy.post("ack", (cid, ack))

    def task_report(self) -> list[dict[str, Any]]:
        out = []
        for t in list(self.tasks):
            out.append(
                {
                    "vertex_id": t.vertex_id,
                    "subtask": t.subtask_index,
                    "state": t.state,
                    "records_in": t.num_records_in,
                    "records_out": sum(w.num_records_out for w in t.writers),
                    "backpressured": t.backpressured_steps,
                    "watermark": max((v.last_output for v in t.valves), default=None),
                }
            )
        return out


class SlotProcess:
    def __init__(
        self,
        tm_id: str,
        index: int,
        jobmanager: tuple[str, int],
        host: str = "127.0.0.1",
        bind_host: str | None = None,
        heartbeat_interval: float = 1.0,
        leader_retriever: LeaderRetriever | None = None,
        leader_poll_interval: float = 2.0,
    ) -> None:
        self.tm_id = tm_id
        self.index = index
        self.slot_id = f"{tm_id}-{index}-{uuid.uuid4().hex[:6]}"
        self.jobmanager = jobmanager
        self.host = host
        self.heartbeat_interval = heartbeat_interval
        self.runners: dict[tuple[str, int], JobRunner] = {}
        self.wakeups: list[threading.Event] = []
        self.network = NetworkService(bind_host or host, self.slot_id, self._wake_all)
        self.control: ControlConnection | None = None
        self._stop = threading.Event()
        # HA: the JobManager is whichever leads; the slot leaves when the leader changes
        self.retriever = leader_retriever
        self.leader_poll_interval = leader_poll_interval
        self.leader: LeaderInfo | None = None

    def _wake_all(self) -> None:
        for w in list(self.wakeups):
            w.set()

    def send(self, message: Any) -> None:
        if self.control is not None:
            try:
                self.control.send(message)
            except OSError as exc:
                log.warning("lost the JobManager connection: %s", exc)
                self._stop.set()

    def run(self) -> None:
        self.network.start()
        if self.retriever is None:
            self.control = ControlConnection(self.jobmanager)
        else:
            self.control = self._connect_to_leader()
            if self.control is None:
                self.network.stop()
                return
            threading.Thread(
                target=self._follow_leader, name="flinklet-leader", daemon=True
            ).start()
        self.send(
            (
                "register",
                {
                    "slot_id": self.slot_id,
                    "tm_id": self.tm_id,
                    "index": self.index,
                    "host": self.host,
                    "data_port": self.network.port,
                    "pid": os.getpid(),
                },
            )
        )
        threading.Thread(target=self._heartbeats, name="flinklet-heartbeat", daemon=True).start()
        try:
            while not self._stop.is_set():
                message = self.control.receive()
                self._dispatch(message)
        except (ConnectionError, OSError) as exc:
            log.error("slot %s: the JobManager went away (%s); exiting", self.slot_id, exc)
        finally:
            for r in list(self.runners.values()):
                r.cancelled.set()
            self.network.stop()

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "deploy":
            spec = message[1]
            runner = JobRunner(self, spec)
            self.runners[(spec["job_id"], spec["attempt"])] = runner
            runner.start()
        elif kind == "cancel":
            _, job_id, attempt = message
            for (j, a), r in list(self.runners.items()):
                if j == job_id and (attempt is None or a <= attempt):
                    # in order after earlier requests (a completion notice must be applied
                    # before the cancel); forced if the runner does not get to it
                    r.cancel_requested.set()
                    r.requests.put(("cancel",))
                    threading.Timer(5.0, r.cancelled.set).start()
                    watchdog = threading.Timer(
                        CANCELLATION_TIMEOUT_S, self._cancellation_watchdog, (r,)
                    )
                    watchdog.daemon = True
                    watchdog.start()
                    self._wake_all()
        elif kind in ("trigger", "notify", "stop_sources", "resume_sources", "close"):
            job_id, attempt = message[1], message[2]
            maybe_runner = self.runners.get((job_id, attempt))
            if maybe_runner is not None:
                maybe_runner.requests.put((kind, *message[3:]))
                self._wake_all()
        elif kind == "shutdown":
            self._stop.set()

    def _cancellation_watchdog(self, runner: JobRunner) -> None:
        if not runner.is_alive():
            return
        log.error(
            "slot %s: attempt %d of job %s did not end within %.0f s of its cancellation; "
            "the slot process exits (its TaskManager starts it again)",
            self.slot_id,
            runner.attempt,
            runner.job_id,
            CANCELLATION_TIMEOUT_S,
        )
        logging.shutdown()
        os._exit(1)

    def _connect_to_leader(self) -> ControlConnection | None:
        """HA: connect to the JobManager the HA ConfigMap names, re-reading it while the
        named one cannot be reached (it may have died before a successor took over)."""
        if self.retriever is None:
            return None
        while not self._stop.is_set():
            leader = self.retriever.wait(self._stop, self.leader_poll_interval)
            if leader is None:
                return None
            try:
                control = ControlConnection(leader.rpc, timeout=self.leader_poll_interval)
            except ConnectionError as exc:
                log.warning(
                    "slot %s: leader %s unreachable: %s", self.slot_id, leader.identity, exc
                )
                self._stop.wait(self.leader_poll_interval)
                continue
            self.jobmanager, self.leader = leader.rpc, leader
            log.info(
                "slot %s: JobManager leader %s (term %d) at %s",
                self.slot_id,
                leader.identity,
                leader.epoch,
                leader.rpc_address,
            )
            return control
        return None

    def _follow_leader(self) -> None:
        """HA: leave (the process exits, its TaskManager starts it again) when another
        JobManager leads; the old one may be paused rather than dead."""
        if self.retriever is None or self.leader is None:
            return
        while not self._stop.wait(self.leader_poll_interval):
            current = self.retriever.current()
            if current is None or (current.identity, current.epoch) == (
                self.leader.identity,
                self.leader.epoch,
            ):
                continue
            log.warning(
                "slot %s: JobManager %s leads now (term %d); leaving %s",
                self.slot_id,
                current.identity,
                current.epoch,
                self.leader.identity,
            )
            self._stop.set()
            if self.control is not None:
                self.control.close()
            return

    def _heartbeats(self) -> None:
        while not self._stop.is_set():
            tasks = {f"{j}:{a}": r.task_report() for (j, a), r in list(self.runners.items())}
            self.send(("heartbeat", self.slot_id, tasks))
            self._stop.wait(self.heartbeat_interval)


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the TaskManager process that started us dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="flinklet slot")
    parser.add_argument("--tm-id", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--jobmanager", required=True, help="host:port of the JobManager RPC")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--bind-host", default=None)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--ha-cluster-id", help="HA: find the leading JobManager of this cluster")
    parser.add_argument("--ha-namespace", default="default")
    parser.add_argument("--ha-poll-interval", type=float, default=2.0)
    parser.add_argument(
        "--metrics-port",
        default=None,
        help="serve Prometheus metrics on this port or the first free one of a range a-b",
    )
    ns = parser.parse_args(argv)
    if os.environ.get("FLINKLET_DIE_WITH_PARENT") == "1":
        _die_with_parent()
    logging.basicConfig(
        level=os.environ.get("FLINKLET_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s slot: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not every HA ConfigMap poll
    host, _, port = ns.jobmanager.rpartition(":")
    retriever = None
    if ns.ha_cluster_id:
        from flinklet._private.cluster.ha_metadata import HaSettings, LeaderRetriever

        retriever = LeaderRetriever(HaSettings(ns.ha_cluster_id, ns.ha_namespace))
    slot = SlotProcess(
        ns.tm_id,
        ns.index,
        (host, int(port)),
        ns.host,
        ns.bind_host,
        ns.heartbeat_interval,
        retriever,
        ns.ha_poll_interval,
    )
    if ns.metrics_port:
        from flinklet._private.metrics.prometheus import PrometheusServer, render_all

        server = PrometheusServer(
            lambda: render_all([(r.registry, ()) for r in list(slot.runners.values())]),
            host=ns.bind_host or ns.host,
            port=ns.metrics_port,
        ).start()
        logging.getLogger(__name__).info("Prometheus metrics on port %d", server.port)
    slot.run()
    return 0
