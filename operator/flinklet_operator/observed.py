"""What the operator saw of one FlinkJob's world in one round: its Deployments and pods
(from Kubernetes) and its job, checkpoints and savepoint operation (from the JobManager's
REST API).

Plain frozen values, so :mod:`flinklet_operator.reconcile` stays pure: tests build these
by hand, and :mod:`flinklet_operator.controller` fills them from the real systems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "CheckpointObservation",
    "DeploymentObservation",
    "JobObservation",
    "Observed",
    "PodObservation",
    "SavepointOperation",
]


@dataclass(frozen=True)
class DeploymentObservation:
    """A Deployment's spec and rollout status."""

    name: str
    replicas: int
    generation: int = 1
    observed_generation: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    total_replicas: int = 0
    #: The FlinkJob generation the Deployment was built from (its annotation).
    spec_generation: str | None = None

    @property
    def rollout_complete(self) -> bool:
        """Kubernetes' own "rollout complete": the controller saw this spec, every pod runs
        it, no old pod is left and all are ready."""
        return (
            self.observed_generation >= self.generation
            and self.updated_replicas >= self.replicas
            and self.total_replicas == self.updated_replicas
            and self.ready_replicas >= self.replicas
            and self.replicas > 0
        )


@dataclass(frozen=True)
class PodObservation:
    name: str
    component: str
    spec_generation: str | None
    restarts: int
    ready: bool = False


@dataclass(frozen=True)
class JobObservation:
    """One job as ``GET /jobs/overview`` (+ ``/jobs/{id}``) reported it."""

    job_id: str
    name: str
    state: str
    start_time: datetime | None = None
    parallelism: int | None = None


@dataclass(frozen=True)
class CheckpointObservation:
    """The latest completed checkpoint (``GET /jobs/{id}/checkpoints``)."""

    path: str
    timestamp: datetime | None = None


@dataclass(frozen=True)
class SavepointOperation:
    """The state of a savepoint or stop-with-savepoint trigger.

    ``UNKNOWN`` means the JobManager does not know the trigger id (it restarted)."""

    status: Literal["IN_PROGRESS", "COMPLETED", "UNKNOWN"]
    location: str | None = None
    failure: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "COMPLETED" and self.failure is None and bool(self.location)

    @property
    def failed(self) -> bool:
        return self.status == "UNKNOWN" or (self.status == "COMPLETED" and not self.succeeded)


@dataclass(frozen=True)
class Observed:
    jobmanager: DeploymentObservation | None = None
    taskmanager: DeploymentObservation | None = None
    pods: tuple[PodObservation, ...] = ()
    rest_reachable: bool = False
    job: JobObservation | None = None
    checkpoint: CheckpointObservation | None = None
    savepoint: SavepointOperation | None = None
    exception: str | None = None
    errors: tuple[str, ...] = field(default=())
