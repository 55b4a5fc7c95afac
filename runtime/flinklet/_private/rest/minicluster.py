"""``MiniClusterService``: a session cluster inside this process.

Each submitted program runs on its own thread under a
:class:`~flinklet.datastream.stream_execution_environment.ProgramContext` that gives its
environments the cluster's configuration (plus the submission's parallelism, savepoint
and keys) and hands every job the program builds to the service before it runs; the
program's ``env.execute()`` then runs the job as a
:class:`~flinklet._private.exec.executor.LocalJob` on that thread. This is what the REST
API serves without a distributed cluster (and what its tests use).

    service = MiniClusterService({"execution.checkpointing.savepoint-dir": "/tmp/sp"})
    job_id = service.submit(JobSubmission("examples/word_count.py"))
    service.job(job_id).wait(30)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping

from flinklet import __version__
from flinklet._private.exec.executor import Deployment, LocalJob
from flinklet._private.exec.timers import wall_clock_ms
from flinklet._private.metrics.task_metrics import register_task_metrics, task_metric_group
from flinklet._private.rest.program import ARGV_LOCK, check_entrypoint, run_program
from flinklet._private.rest.service import (
    FLINK_API_VERSION,
    Hardware,
    JobLike,
    JobSubmission,
    TaskManagerInfo,
)
from flinklet.common.config_options import (
    CoreOptions,
    StateRecoveryOptions,
    TaskManagerOptions,
)
from flinklet.common.configuration import Configuration, validate_configuration
from flinklet.datastream.stream_execution_environment import (
    ProgramContext,
    reset_program_context,
    set_program_context,
)
from flinklet.errors import ClusterError, ConfigurationError, JobCancelledError

__all__ = ["MiniClusterService", "deploy_task_metrics"]

log = logging.getLogger(__name__)


def deploy_task_metrics(job: LocalJob, deployment: Deployment) -> None:
    """Register Flink's task metrics for every task of a (re)deployed job."""
    for task in deployment.tasks:
        register_task_metrics(task, task_metric_group(job.registry, job.job_id, task))


class _Submission:
    """What the submitting request waits for: the first job, or the program's end."""

    def __init__(self) -> None:
        self.first_job = threading.Event()
        self.job_ids: list[str] = []
        self.error: BaseException | None = None
        self.ended = False


class _SessionContext(ProgramContext):
    def __init__(
        self, service: MiniClusterService, configuration: Configuration, state: _Submission
    ) -> None:
        super().__init__(configuration)
        self.service = service
        self.state = state
        self.holds_argv = False

    def on_job(self, job: LocalJob) -> None:
        job.on_deploy = deploy_task_metrics
        self.service.register(job)
        self.state.job_ids.append(job.job_id)
        self.release_argv()  # the program has read its arguments by now
        self.state.first_job.set()

    def release_argv(self) -> None:
        if self.holds_argv:
            self.holds_argv = False
            ARGV_LOCK.release()


class MiniClusterService:
    """A :class:`~flinklet._private.rest.service.ClusterService` running every job in
    this process (one thread per program; one TaskManager: this process)."""

    def __init__(
        self,
        configuration: Configuration | Mapping[str, str] | None = None,
        slots: int | None = None,
        submission_timeout_s: float = 60.0,
    ) -> None:
        conf = Configuration()
        if isinstance(configuration, Configuration):
            conf.add_all(configuration)
        elif configuration is not None:
            for key, value in configuration.items():
                conf.set_string(key, str(value))
        validate_configuration(conf)
        self._conf = conf
        configured_slots = conf.get(TaskManagerOptions.NUM_TASK_SLOTS)
        if slots is None:
            slots = (
                configured_slots
                if "taskmanager.numberOfTaskSlots" in conf.to_dict()
                else os.cpu_count() or 1
            )
        if slots < 1:
            raise ConfigurationError(f"a mini cluster needs at least one slot, got {slots}")
        self.slots = slots
        self.submission_timeout_s = submission_timeout_s
        self._jobs: dict[str, LocalJob] = {}
        self._lock = threading.Lock()
        self._ready = True
        self._programs = 0
        self._tm_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    # -- ClusterService -------------------------------------------------------------------

    @property
    def flink_version(self) -> str:
        return FLINK_API_VERSION

    @property
    def flink_commit(self) -> str:
        return f"flinklet-{__version__}"

    def jobs(self) -> list[JobLike]:
        with self._lock:
            return list(self._jobs.values())

    def job(self, job_id: str) -> JobLike | None:
        with self._lock:
            return self._jobs.get(job_id)

    def configuration(self) -> dict[str, str]:
        return self._conf.to_dict()

    def is_ready(self) -> bool:
        return self._ready

    def taskmanagers(self) -> list[TaskManagerInfo]:
        used = sum(
            max((v.parallelism for v in job.job_graph.vertices), default=0)
            for job in self.jobs()
            if not job.status.is_terminal_state()
        )
        return [
            TaskManagerInfo(
                id=self._tm_id,
                path=f"{socket.gethostname()}/pid-{os.getpid()}",
                data_port=-1,  # no network shuffle: all channels are in-process
                slots_total=self.slots,
                slots_free=max(0, self.slots - used),
                hardware=_hardware(),
                last_heartbeat=wall_clock_ms(),
                metrics=_process_metrics(),
            )
        ]

    def submit(self, submission: JobSubmission) -> str:
        check_entrypoint(submission.entrypoint)
        conf = self._program_configuration(submission)
        state = _Submission()
        with self._lock:
            self._programs += 1
            number = self._programs
        thread = threading.Thread(
            target=self._run_program,
            args=(submission, conf, state),
            name=f"flinklet-program-{number}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + self.submission_timeout_s
        while not state.first_job.wait(0.05):
            if state.ended:
                if state.error is not None:
                    first = str(state.error).splitlines()[0] if str(state.error) else ""
                    raise ClusterError(
                        f"the program '{submission.entrypoint}' failed before it submitted "
                        f"a job: {type(state.error).__name__}: {first}"
                    ) from state.error
                raise ClusterError(
                    f"the program '{submission.entrypoint}' ended without submitting a job; "
                    f"does it call env.execute()?"
                )
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the program '{submission.entrypoint}' did not submit a job within "
                    f"{self.submission_timeout_s:g} s; it keeps running and its job will "
                    f"appear in GET /jobs when it calls env.execute()"
                )
        return state.job_ids[0]

    # -- more than the protocol ------------------------------------------------------------

    def register(self, job: LocalJob) -> None:
        """Serve ``job`` (built elsewhere in this process) through the REST API."""
        with self._lock:
            self._jobs[job.job_id] = job

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop serving: cancel every job that is still running and wait for them."""
        self._ready = False
        jobs = [j for j in self.jobs() if not j.status.is_terminal_state()]
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + timeout_s
        for job in jobs:
            job.wait(max(0.0, deadline - time.monotonic()))

    # -- running programs -----------------------------------------------------------------

    def _program_configuration(self, submission: JobSubmission) -> Configuration:
        conf = Configuration(self._conf)
        for key, value in submission.configuration.items():
            conf.set_string(key, value)
        if submission.parallelism is not None:
            conf.set(CoreOptions.DEFAULT_PARALLELISM, submission.parallelism)
        if submission.savepoint_path:
            conf.set(StateRecoveryOptions.SAVEPOINT_PATH, submission.savepoint_path)
        if submission.allow_non_restored_state:
            conf.set(StateRecoveryOptions.IGNORE_UNCLAIMED_STATE, True)
        try:
            validate_configuration(conf)
        except ConfigurationError as exc:
            raise ClusterError(f"invalid configuration for the program: {exc}") from exc
        return conf

    def _run_program(
        self, submission: JobSubmission, conf: Configuration, state: _Submission
    ) -> None:
        context = _SessionContext(self, conf, state)
        token = set_program_context(context)
        ARGV_LOCK.acquire()
        context.holds_argv = True
        try:
            run_program(submission.entrypoint, submission.args)
        except JobCancelledError:
            log.info("program %s: its job was cancelled", submission.entrypoint)
        except BaseException as exc:
            state.error = exc
            if state.job_ids:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("program %s ended with an error: %s", submission.entrypoint, first)
        finally:
            context.release_argv()
            reset_program_context(token)
            state.ended = True


def _hardware() -> Hardware:
    page = _sysconf("SC_PAGE_SIZE")
    return Hardware(
        cpu_cores=os.cpu_count() or 1,
        physical_memory=page * _sysconf("SC_PHYS_PAGES"),
        free_memory=page * _sysconf("SC_AVPHYS_PAGES"),
        managed_memory=0,  # Flinklet has no managed memory
    )


def _sysconf(name: str) -> int:
    try:
        return max(0, int(os.sysconf(name)))
    except (ValueError, OSError, AttributeError):
        return 0


def _process_metrics() -> dict[str, float | int]:
    metrics: dict[str, float | int] = {
        "threads": threading.active_count(),
        "processCpuTimeMs": int(time.process_time() * 1000),
    }
    try:
        with open("/proc/self/statm") as f:
            metrics["residentMemoryBytes"] = int(f.read().split()[1]) * _sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        pass  # not Linux: the resident size is not reported
    return metrics
