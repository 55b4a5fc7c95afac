"""What the REST API needs from the cluster behind it.

The REST app (``app.py``) talks to a :class:`ClusterService` only: the distributed
JobManager implements it for its jobs and TaskManagers, and
:class:`~flinklet._private.rest.minicluster.MiniClusterService` implements it by running
submitted programs in this process. Jobs are seen through :class:`JobLike`, the interface
:class:`~flinklet._private.exec.executor.LocalJob` has and the JobManager's jobs share.
All members are read-only properties so that plain attributes satisfy them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from flinklet._private.checkpoint.coordinator import (
    CheckpointSettings,
    CheckpointStats,
    CompletedCheckpoint,
)
from flinklet._private.exec.executor import ExecutionSettings
from flinklet._private.graph.stream_graph import JobGraph
from flinklet._private.metrics import MetricRegistry
from flinklet.common.job_status import JobStatus

__all__ = [
    "FLINK_API_VERSION",
    "ClusterService",
    "CoordinatorLike",
    "DeploymentLike",
    "Hardware",
    "JobLike",
    "JobSubmission",
    "TaskLike",
    "TaskManagerInfo",
    "WriterLike",
]

#: The Flink version whose REST API (paths, JSON shapes) Flinklet serves.
FLINK_API_VERSION = "2.0.0"


class WriterLike(Protocol):
    """One output (record writer) of a task."""

    @property
    def num_records_out(self) -> int: ...


class TaskLike(Protocol):
    """One running subtask, as the JobManager sees it."""

    @property
    def vertex_id(self) -> int: ...

    @property
    def subtask_index(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str:
        """CREATED, RUNNING, FINISHED, FAILED or CANCELED."""
        ...

    @property
    def num_records_in(self) -> int: ...

    @property
    def backpressured_steps(self) -> int:
        """How many times the task could not run because an output channel was full."""
        ...

    @property
    def writers(self) -> Sequence[WriterLike]: ...


class DeploymentLike(Protocol):
    """The tasks of a job's current execution attempt."""

    @property
    def tasks(self) -> Sequence[TaskLike]: ...


class CoordinatorLike(Protocol):
    """The job's checkpoint coordinator: statistics, latest checkpoint, settings."""

    @property
    def stats(self) -> CheckpointStats: ...

    @property
    def latest(self) -> CompletedCheckpoint | None: ...

    @property
    def settings(self) -> CheckpointSettings: ...


class JobLike(Protocol):
    """A job as the REST API reports and controls it (``LocalJob``'s interface)."""

    @property
    def job_id(self) -> str: ...

    @property
    def job_graph(self) -> JobGraph: ...

    @property
    def status(self) -> JobStatus: ...

    @property
    def start_time(self) -> int:
        """Epoch ms the job started running (0 before)."""
        ...

    @property
    def end_time(self) -> int:
        """Epoch ms the job ended (0 while it has not)."""
        ...

    @property
    def net_runtime_ms(self) -> int: ...

    @property
    def coordinator(self) -> CoordinatorLike: ...

    @property
    def settings(self) -> ExecutionSettings:
        """Execution settings (the state backend is reported from them)."""
        ...

    @property
    def exceptions(self) -> Sequence[Mapping[str, Any]]:
        """Failures so far, oldest first: ``{"timestamp", "exception", "taskName"}``."""
        ...

    @property
    def failure(self) -> BaseException | None: ...

    @property
    def registry(self) -> MetricRegistry: ...

    @property
    def deployment(self) -> DeploymentLike | None: ...

    @property
    def restored_from(self) -> str | None: ...

    @property
    def num_restarts(self) -> int: ...

    def cancel(self) -> None: ...

    def trigger_savepoint(self, target_directory: str | None = None) -> Future[str]: ...

    def stop_with_savepoint(
        self, target_directory: str | None = None, drain: bool = False
    ) -> Future[str]: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class JobSubmission:
    """A session-mode submission: a Python job program on the JobManager's filesystem.

    ``entrypoint`` is a ``.py`` file or ``package.module:function`` importable there;
    ``args`` become the program's ``sys.argv[1:]``; ``parallelism`` is the default
    parallelism (``parallelism.default``); ``savepoint_path`` and
    ``allow_non_restored_state`` restore the job (``execution.state-recovery.*``);
    ``configuration`` holds further Flink keys for the program's environments.
    """

    entrypoint: str
    args: tuple[str, ...] = ()
    parallelism: int | None = None
    savepoint_path: str | None = None
    allow_non_restored_state: bool = False
    configuration: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hardware:
    """What a TaskManager runs on (Flink's ``HardwareDescription``; bytes)."""

    cpu_cores: int
    physical_memory: int
    free_memory: int
    managed_memory: int


@dataclass(frozen=True)
class TaskManagerInfo:
    """One TaskManager as the JobManager knows it.

    ``path`` is its address (``host:port`` of its RPC endpoint, or a process path for
    the mini cluster); ``last_heartbeat`` the epoch ms of its latest heartbeat;
    ``metrics`` its process metrics by name.
    """

    id: str
    path: str
    data_port: int
    slots_total: int
    slots_free: int
    hardware: Hardware
    last_heartbeat: int
    metrics: Mapping[str, float | int] = field(default_factory=dict)


class ClusterService(Protocol):
    """The cluster behind the REST API."""

    @property
    def flink_version(self) -> str:
        """The Flink version whose API this cluster speaks (``/overview``'s flink-version)."""
        ...

    @property
    def flink_commit(self) -> str:
        """The build's revision (``/overview``'s flink-commit)."""
        ...

    def jobs(self) -> list[JobLike]:
        """Every job this JobManager knows: running and finished."""
        ...

    def job(self, job_id: str) -> JobLike | None: ...

    def submit(self, submission: JobSubmission) -> str:
        """Run the program and return the id of the (first) job it submits.

        Raises :class:`~flinklet.errors.ClusterError` when the program cannot be found or
        fails before it submits a job (the REST API answers 400 with the message).
        """
        ...

    def taskmanagers(self) -> list[TaskManagerInfo]: ...

    def configuration(self) -> dict[str, str]:
        """The cluster's effective configuration (``/jobmanager/config``)."""
        ...

    def is_ready(self) -> bool:
        """Whether this JobManager serves requests (e.g. it is the HA leader)."""
        ...
