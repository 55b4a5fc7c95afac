"""What a reconcile round asks to be done: plain values, carried out by the controller.

:func:`flinklet_operator.reconcile.reconcile` returns these; the controller applies them in
order through :mod:`flinklet_operator.k8s`, :mod:`flinklet_operator.jobmanager` and
:mod:`flinklet_operator.storage`. A round asks for at most one JobManager call, and asks
for it alone, so a JobManager that is not reachable never leaves half a round done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Action",
    "ApplyResources",
    "CancelJob",
    "DeleteConfigMaps",
    "DeleteResources",
    "DisposeSavepoints",
    "ResourceRef",
    "ScaleDeployments",
    "StopWithSavepoint",
    "TriggerSavepoint",
]


@dataclass(frozen=True)
class ResourceRef:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class ApplyResources:
    """Server-side apply these manifests (create or update)."""

    manifests: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ScaleDeployments:
    names: tuple[str, ...]
    replicas: int


@dataclass(frozen=True)
class DeleteResources:
    """Delete these objects of the FlinkJob's namespace; absent ones are fine."""

    refs: tuple[ResourceRef, ...]


@dataclass(frozen=True)
class DeleteConfigMaps:
    """Delete every ConfigMap matching ``label_selector`` (HA leftovers)."""

    label_selector: str


@dataclass(frozen=True)
class CancelJob:
    job_id: str


@dataclass(frozen=True)
class TriggerSavepoint:
    """``POST /jobs/{id}/savepoints``; the trigger id goes to ``pendingTrigger``."""

    job_id: str
    target_directory: str | None


@dataclass(frozen=True)
class StopWithSavepoint:
    """``POST /jobs/{id}/stop``; the trigger id goes to ``pendingTrigger``."""

    job_id: str
    target_directory: str | None
    drain: bool = False


@dataclass(frozen=True)
class DisposeSavepoints:
    """Delete these savepoint directories from storage (retention)."""

    locations: tuple[str, ...]


Action = (
    ApplyResources
    | ScaleDeployments
    | DeleteResources
    | DeleteConfigMaps
    | CancelJob
    | TriggerSavepoint
    | StopWithSavepoint
    | DisposeSavepoints
)

JOBMANAGER_ACTIONS = (CancelJob, TriggerSavepoint, StopWithSavepoint)
