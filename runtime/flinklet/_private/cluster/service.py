"""The JobManager process: RPC for slots, the REST API, and running job programs.

``JobManagerService`` is the ``ClusterService`` the REST API talks to. Programs (the
application's entrypoint, or session-mode submissions) run on their own threads with a
context that makes ``env.execute()`` submit the job to this JobManager, and with the
cluster's configuration as their environments' defaults.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from flinklet import __version__
from flinklet._private.checkpoint.coordinator import CheckpointSettings, CompletedCheckpoint
from flinklet._private.cluster.jobmanager import ClusterJob, JobManager
from flinklet._private.exec.executor import ExecutionSettings
from flinklet._private.graph.stream_graph import JobGraph
from flinklet._private.rest.program import (
    ARGV_LOCK,
    check_entrypoint,
    is_file_entrypoint,
    run_program,
)
from flinklet._private.rest.service import Hardware, JobLike, JobSubmission, TaskManagerInfo
from flinklet.common.configuration import Configuration
from flinklet.errors import ClusterError

if TYPE_CHECKING:
    from flinklet._private.cluster.ha import KubernetesHighAvailability

log = logging.getLogger(__name__)

FLINK_API_VERSION = "2.0.0"


class JobManagerService:
    def __init__(self, jm: JobManager, conf: Configuration) -> None:
        self.jm = jm
        self.conf = conf
        self._submitted: dict[int, list[ClusterJob]] = {}
        self._lock = threading.Lock()
        self._installed = False
        self.ha: KubernetesHighAvailability | None = None  # set by HA when enabled
        self._programs: dict[int, tuple[str, list[str], JobSubmission | None]] = {}

    # -- ClusterService ------------------------------------------------------------------

    @property
    def flink_version(self) -> str:
        return FLINK_API_VERSION

    @property
    def flink_commit(self) -> str:
        return f"flinklet-{__version__}"

    def jobs(self) -> list[JobLike]:
        return list(self.jm.jobs.values())

    def job(self, job_id: str) -> JobLike | None:
        return self.jm.jobs.get(job_id)

    def configuration(self) -> dict[str, str]:
        return self.conf.to_dict()

    def is_ready(self) -> bool:
        return bool(self.jm.leader)

    def taskmanagers(self) -> list[TaskManagerInfo]:
        busy = {
            s
            for j in self.jm.jobs.values()
            if j.phase not in ("DONE", "WAITING")
            for s in j.assignment.values()
        }
        by_tm: dict[str, list[Any]] = {}
        for slot in self.jm.slots.values():
            if slot.alive:
                by_tm.setdefault(slot.tm_id, []).append(slot)
        out = []
        for tm_id, slots in sorted(by_tm.items()):
            first = min(slots, key=lambda s: s.index)
            out.append(
                TaskManagerInfo(
                    id=tm_id,
                    path=f"{first.host}:{first.data_port}",
                    data_port=first.data_port,
                    slots_total=len(slots),
                    slots_free=sum(1 for s in slots if s.slot_id not in busy),
                    hardware=Hardware(os.cpu_count() or 1, 0, 0, 0),
                    last_heartbeat=int(max(s.last_heartbeat for s in slots) * 1000),
                    metrics={},
                )
            )
        return out

    def submit(self, submission: JobSubmission) -> str:
        check_entrypoint(submission.entrypoint)
        if not self.jm.leader:
            raise ClusterError(
                "this JobManager is a standby (high availability): submit to the leader, the "
                "replica whose /readyz answers ok"
            )
        done = threading.Event()
        errors: list[BaseException] = []
        holder: list[ClusterJob] = []

        def program() -> None:
            ident = threading.get_ident()
            with self._lock:
                self._submitted[ident] = holder
            try:
                self.run_program(submission.entrypoint, submission.args, submission)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=program, name="flinklet-program", daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if holder:
                return holder[0].job_id
            if done.is_set():
                if errors:
                    raise ClusterError(f"the program failed before submitting a job: {errors[0]}")
                raise ClusterError("the program ended without submitting a job (no env.execute()?)")
            time.sleep(0.02)
        raise ClusterError("the program did not submit a job within 60 s")

    # -- running programs --------------------------------------------------------------

    def install_context(self) -> None:
        from flinklet.datastream import stream_execution_environment as see

        see.set_context_configuration(self.conf)
        see.set_context_executor(self._execute)
        self._installed = True

    def run_program(
        self, entrypoint: str, args: Any, submission: JobSubmission | None = None
    ) -> None:
        if not self._installed:
            self.install_context()
        ident = threading.get_ident()
        with self._lock:
            self._submitted.setdefault(ident, [])
            self._programs[ident] = (entrypoint, list(args), submission)
        # a session-mode submission's parallelism, savepoint and configuration become
        # the defaults of the program's environments
        from flinklet.datastream.stream_execution_environment import (
            ProgramContext,
            reset_program_context,
            set_program_context,
        )

        overrides = Configuration()
        if submission is not None:
            for key, value in submission.configuration.items():
                overrides.set_string(key, value)
            if submission.parallelism is not None:
                overrides.set_integer("parallelism.default", submission.parallelism)
            if submission.savepoint_path:
                overrides.set_string("execution.state-recovery.path", submission.savepoint_path)
            if submission.allow_non_restored_state:
                overrides.set_string("execution.state-recovery.ignore-unclaimed-state", "true")
        token = set_program_context(ProgramContext(overrides))
        try:
            run_program(entrypoint, list(args))
        finally:
            reset_program_context(token)
            with self._lock:
                self._programs.pop(ident, None)

    def _execute(
        self,
        job_graph: JobGraph,
        settings: ExecutionSettings,
        checkpoint_settings: CheckpointSettings,
        restore_from: str | None,
        allow_non_restored_state: bool,
    ) -> ClusterJob:
        # slots import the program's modules by the same paths (same image / machine)
        import sys

        sys_path = [os.getcwd(), *_program_dirs(), *(p for p in sys.path if p and os.path.isdir(p))]
        job_id, recovered = uuid.uuid4().hex, None
        if self.ha is not None:
            job_id, recovered = self._ha_record(
                job_graph, checkpoint_settings, restore_from, allow_non_restored_state
            )
        job = self.jm.submit(
            job_graph,
            settings,
            checkpoint_settings,
            restore_from,
            allow_non_restored_state,
            list(dict.fromkeys(sys_path)),
            job_id,
            recovered,
        )
        with self._lock:
            holder = self._submitted.get(threading.get_ident())
        if holder is not None:
            holder.append(job)
        with contextlib.suppress(RuntimeError):
            ARGV_LOCK.release()
        return job

    def _ha_record(
        self,
        job_graph: JobGraph,
        checkpoint_settings: CheckpointSettings,
        restore_from: str | None,
        allow_non_restored_state: bool,
    ) -> tuple[str, CompletedCheckpoint | None]:
        """HA: the job's id and recovered checkpoint (a resumed job keeps both), after
        recording the job in the HA ConfigMap (raises ClusterError if not the leader)."""
        from flinklet._private.cluster.ha import ProgramInfo

        ha = self.ha
        if ha is None:
            raise ClusterError("high availability is not enabled")
        recovery = ha.take_recovery()
        job_id = recovery.job_id if recovery is not None else uuid.uuid4().hex
        recovered = None
        if recovery is not None:
            recovered = recovery.load_checkpoint(checkpoint_settings.storage_options)
        with self._lock:
            entrypoint, args, sub = self._programs.get(threading.get_ident(), ("", [], None))
        parallelism = sub.parallelism if sub is not None else None
        program = ProgramInfo(
            entrypoint,
            tuple(args),
            parallelism or self.conf.get_integer("parallelism.default", 1),
            restore_from,
            allow_non_restored_state,
        )
        ha.job_submitted(job_id, job_graph.job_name, program)
        return job_id, recovered


def _program_dirs() -> list[str]:
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return [os.path.dirname(os.path.abspath(path))] if path else []


class ClusterHandle:
    def __init__(
        self, jm: JobManager, service: JobManagerService, rest: Any, rest_host: str, rest_port: int
    ) -> None:
        self.jm = jm
        self.service = service
        self.rest = rest
        self.rest_host = rest_host
        self.rest_port = rest_port

    def run_application(self, entrypoint: str, args: list[str]) -> None:
        try:
            if is_file_entrypoint(entrypoint) and not os.path.isabs(entrypoint):
                entrypoint = os.path.abspath(entrypoint)
            if self.service.ha is not None:  # waits for leadership; may resume the job
                self.service.ha.run_application(entrypoint, args)
                return
            self.service.run_program(entrypoint, args)
        except BaseException as exc:
            log.error("the application's program failed: %s", exc)

    def stop(self) -> None:
        if self.service.ha is not None:
            self.service.ha.stop()  # step down first: a standby takes over at once
        if self.rest is not None:
            self.rest.stop()
        self.jm.stop()


def start_jobmanager_process(
    conf: Configuration, rest: bool = True, application: tuple[str, list[str]] | None = None
) -> ClusterHandle:
    """Start the JobManager (RPC, REST). With ``high-availability.type: kubernetes`` it
    starts as a standby; ``application`` is the application mode's (entrypoint, args)."""
    from flinklet._private.cluster.ha import HaSettings, KubernetesHighAvailability

    ha_settings = HaSettings.from_configuration(conf)  # invalid HA settings fail first
    rpc_host = conf.get_string("jobmanager.bind-host", "127.0.0.1")
    rpc_port = conf.get_integer("jobmanager.rpc.port", 6123)
    timeout = conf.get_string("heartbeat.timeout", "10000")
    jm = JobManager(rpc_host, rpc_port, int(str(timeout).split()[0]), conf.to_dict()).start()
    jm.leader = ha_settings is None  # with HA: a standby until the Lease says otherwise
    service = JobManagerService(jm, conf)
    service.install_context()
    server = None
    rest_host = conf.get_string("rest.bind-address", "127.0.0.1")
    rest_port = conf.get_integer("rest.port", 8081)
    if rest:
        from flinklet._private.rest.server import RestServer

        server = RestServer(service, rest_host, rest_port)
        server.start()
        rest_port = server.port
    handle = ClusterHandle(jm, service, server, rest_host, rest_port)
    if ha_settings is not None:
        KubernetesHighAvailability(ha_settings).start(handle, application)
    return handle
