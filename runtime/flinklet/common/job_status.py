"""The states a Flink job moves through, with Flink's names.

The JobManager, the REST API (``GET /jobs/:id`` ``state``), the CLI and the Kubernetes
operator all report a job's state with these names, so they must be Flink's exactly.

>>> JobStatus.FINISHED.is_globally_terminal_state(), JobStatus.SUSPENDED.is_terminal_state()
(True, True)
"""

from __future__ import annotations

import enum

__all__ = ["JobStatus"]


class JobStatus(enum.Enum):
    """A job's state; the value is Flink's name for it."""

    INITIALIZING = "INITIALIZING"
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    FAILING = "FAILING"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELED = "CANCELED"
    FINISHED = "FINISHED"
    RESTARTING = "RESTARTING"
    SUSPENDED = "SUSPENDED"
    RECONCILING = "RECONCILING"

    def is_globally_terminal_state(self) -> bool:
        """Done for good, in every JobManager: finished, failed or cancelled."""
        return self in _GLOBALLY_TERMINAL

    def is_terminal_state(self) -> bool:
        """Done in this JobManager: globally terminal, or suspended (another one may
        resume the job from HA storage)."""
        return self in _GLOBALLY_TERMINAL or self is JobStatus.SUSPENDED


_GLOBALLY_TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED})
