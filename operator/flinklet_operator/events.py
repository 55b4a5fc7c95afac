"""Kubernetes Events the operator posts on a FlinkJob: what happened, in its words.

``kubectl describe fj NAME`` shows them. Reconcile code returns :class:`Event` values; the
controller turns them into ``core/v1`` Event objects with :func:`event_body` and posts them
through :mod:`flinklet_operator.k8s`.

=========================  =======  ====================================================
reason                     type     when
=========================  =======  ====================================================
Submitted                  Normal   a new FlinkJob's cluster was deployed
Deployed                   Normal   the job reached RUNNING after a create or upgrade
SpecChanged                Normal   a new spec generation is being rolled out
SavepointTriggered         Normal   a savepoint / stop-with-savepoint was requested
SavepointCompleted         Normal   ... and completed (location in the message)
SavepointFailed            Warning  ... and failed, timed out, or could not be taken
SavepointDisposed          Normal   retention deleted an old savepoint
SavepointDisposalFailed    Warning  ... and could not
Rescaled                   Normal   the job runs at its new parallelism
Suspended                  Normal   the job was stopped and scaled to zero
Resumed                    Normal   a suspended job runs again
JobFailed                  Warning  the job is FAILED (root exception in the message)
JobManagerLost             Warning  the JobManager Deployment vanished; recreating it
Recovered                  Normal   the job runs again after a loss or a failure
Degraded                   Warning  pods restart in a loop, or the job keeps restarting
DeadlineExceeded           Warning  a phase took longer than its deadline
Deleting                   Normal   deletion started (final savepoint or not)
DeletionTimedOut           Warning  deletion went ahead without what it waited for
CleanupFailed              Warning  children could not be deleted; left to the GC
InvalidSpec                Warning  the spec cannot be deployed (what to fix is in the message)
=========================  =======  ====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flinklet_operator.models import format_time

__all__ = ["REASONS", "Event", "event_body"]

REASONS = (
    "Submitted",
    "Deployed",
    "SpecChanged",
    "SavepointTriggered",
    "SavepointCompleted",
    "SavepointFailed",
    "SavepointDisposed",
    "SavepointDisposalFailed",
    "Rescaled",
    "Suspended",
    "Resumed",
    "JobFailed",
    "JobManagerLost",
    "Recovered",
    "Degraded",
    "DeadlineExceeded",
    "Deleting",
    "DeletionTimedOut",
    "CleanupFailed",
    "InvalidSpec",
)

COMPONENT = "flinklet-operator"
_MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown event reason {self.reason!r}; add it to events.REASONS")


def event_body(
    involved: dict[str, Any], event: Event, now: datetime, instance: str = ""
) -> dict[str, Any]:
    """A ``core/v1`` Event about the object ``involved`` refers to.

    >>> from flinklet_operator.models import FlinkJob
    >>> from datetime import datetime, UTC
    >>> job = FlinkJob.from_body({"metadata": {"name": "wc", "namespace": "ns", "uid": "u"},
    ...     "spec": {"image": "i", "job": {"entrypoint": "m:f"}}})
    >>> when = datetime(2024, 1, 1, tzinfo=UTC)
    >>> body = event_body(job.object_reference(), Event("Suspended", "stopped"), when)
    >>> (body["reason"], body["involvedObject"]["kind"], body["lastTimestamp"])
    ('Suspended', 'FlinkJob', '2024-01-01T00:00:00Z')
    """
    message = event.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": involved["namespace"]},
        "involvedObject": involved,
        "reason": event.reason,
        "message": message,
        "type": event.type,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance or COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
