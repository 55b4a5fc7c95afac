"""Every error the operator raises on purpose, in one rooted hierarchy.

Each message says what happened and what to do about it. Errors of the libraries the
operator talks through (the Kubernetes client, httpx, boto3) are wrapped at the boundary
with ``raise ... from exc`` so the cause stays visible. The handlers translate them into
what kopf should do next: :class:`InvalidSpecError` becomes ``kopf.PermanentError`` (retrying
cannot help), :class:`JobManagerUnavailableError` and :class:`KubernetesError` become
``kopf.TemporaryError(delay=...)``.

::

    OperatorError
    ├── InvalidSpecError                 the FlinkJob's spec cannot be deployed as written
    ├── SettingsError                    the operator's own settings (environment) are wrong
    ├── KubernetesError                  a Kubernetes API call failed
    ├── JobManagerError                  a JobManager REST call failed
    │   ├── JobManagerUnavailableError   not reachable (not ready, restarting, no Service)
    │   └── JobManagerRequestError       reachable, but answered with an error
    └── SavepointDisposalError           an old savepoint could not be deleted from storage
"""

from __future__ import annotations

__all__ = [
    "InvalidSpecError",
    "JobManagerError",
    "JobManagerRequestError",
    "JobManagerUnavailableError",
    "KubernetesError",
    "OperatorError",
    "SavepointDisposalError",
    "SettingsError",
]


class OperatorError(Exception):
    """Root of every error the Flinklet operator raises on purpose."""


class InvalidSpecError(OperatorError, ValueError):
    """The FlinkJob spec is invalid; ``problems`` lists one readable line per problem.

    >>> str(InvalidSpecError(["spec.job.parallelism: must be at least 1 (got 0)"]))
    'invalid FlinkJob spec: spec.job.parallelism: must be at least 1 (got 0)'
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid FlinkJob spec: " + "; ".join(self.problems))


class SettingsError(OperatorError, ValueError):
    """An operator setting (an environment variable or option) has a bad value."""


class KubernetesError(OperatorError):
    """A Kubernetes API call failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class JobManagerError(OperatorError):
    """A call to a JobManager's REST API failed."""


class JobManagerUnavailableError(JobManagerError):
    """The JobManager's REST API could not be reached (or answered 502/503/504): it is
    starting, restarting or gone. Retried later; deadlines bound how long."""


class JobManagerRequestError(JobManagerError):
    """The JobManager answered, with an error status; ``status`` and ``body`` say which."""

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        self.status = status
        self.body = body
        super().__init__(message)


class SavepointDisposalError(OperatorError):
    """An old savepoint could not be deleted (or its location does not look like a
    savepoint directory, and the operator refuses to delete it)."""
