"""Every error Flinklet raises on purpose, in one rooted hierarchy.

Each message says what happened and what to do about it. Errors from libraries
(rocksdict, boto3, the Kubernetes client) are wrapped at the boundary with
``raise ... from exc`` so the cause stays visible.

::

    FlinkletError
    ├── ConfigurationError            bad or misspelled configuration key / value
    ├── ApiUsageError                 the DataStream API was used in a way that cannot run
    │   ├── InvalidKeyError           key selector returned a key that cannot be partitioned
    │   └── MissingTimestampError     event-time logic on records without timestamps
    ├── StateError                    state access outside a keyed context, bad descriptor
    │   └── StateMigrationError       restored state does not fit the new job
    ├── JobExecutionError             a job failed; ``__cause__`` is the root failure
    │   └── UserFunctionError         a user function raised (operator name + traceback)
    ├── JobCancelledError             the job was cancelled before it finished
    ├── CheckpointError               a checkpoint or savepoint could not be taken/read
    │   └── SavepointRestoreError     a savepoint does not fit the job being restored
    ├── StorageError                  checkpoint storage (filesystem, S3) failed
    └── ClusterError                  JobManager / TaskManager / REST failures
"""

from __future__ import annotations

__all__ = [
    "ApiUsageError",
    "CheckpointError",
    "ClusterError",
    "ConfigurationError",
    "FlinkletError",
    "InvalidKeyError",
    "JobCancelledError",
    "JobExecutionError",
    "MissingTimestampError",
    "SavepointRestoreError",
    "StateError",
    "StateMigrationError",
    "StorageError",
    "UserFunctionError",
]


class FlinkletError(Exception):
    """Root of every error Flinklet raises on purpose."""


class ConfigurationError(FlinkletError, ValueError):
    """A configuration key or value is invalid (the message names the key and the fix)."""


class ApiUsageError(FlinkletError, TypeError):
    """The DataStream API was used in a way that cannot run; the message says what to do."""


class InvalidKeyError(ApiUsageError):
    """A key selector returned a key that cannot be hashed stably across processes."""


class MissingTimestampError(ApiUsageError):
    """Event-time logic met a record without a timestamp (no timestamp assigner upstream)."""


class StateError(FlinkletError):
    """State was used outside its scope, or a descriptor is invalid."""


class StateMigrationError(StateError):
    """Restored state is incompatible with the job that restores it."""


class JobExecutionError(FlinkletError):
    """A job failed. ``__cause__`` holds the root failure; the message names the job."""

    def __init__(self, message: str, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class UserFunctionError(JobExecutionError):
    """A user function raised. The message names the operator and the subtask, and
    carries the user's traceback; ``__cause__`` is the original exception."""

    def __init__(
        self,
        message: str,
        operator_name: str,
        subtask_index: int,
        user_traceback: str,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message, job_id)
        self.operator_name = operator_name
        self.subtask_index = subtask_index
        self.user_traceback = user_traceback


class JobCancelledError(FlinkletError):
    """The job was cancelled before it finished."""


class CheckpointError(FlinkletError):
    """A checkpoint or savepoint could not be taken, completed or read."""


class SavepointRestoreError(CheckpointError):
    """A savepoint or retained checkpoint does not fit the job being restored."""


class StorageError(FlinkletError):
    """Checkpoint storage (local filesystem or S3) failed; the message names the path."""


class ClusterError(FlinkletError):
    """A JobManager, TaskManager or REST interaction failed."""
