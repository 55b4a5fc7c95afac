"""Errors of the Kubernetes client and of Lease leader election, in one tree.

They extend :class:`flinklet.errors.ClusterError`, so code that handles cluster failures
in general handles these too. Answers of the API server are mapped to a class by their
HTTP status; connection failures, timeouts, 429 and 5xx are
:class:`ApiUnavailableError` (worth retrying).

::

    ClusterError (flinklet.errors)
    ├── KubernetesError               the Kubernetes API could not be used
    │   ├── KubeConfigError           no usable kubeconfig or in-cluster credentials
    │   ├── ApiUnavailableError       unreachable, timed out, 429 or 5xx: retry later
    │   └── ApiStatusError            the API server refused the request (4xx)
    │       ├── NotFoundError         404: the object does not exist
    │       ├── ConflictError         409: it already exists, or a stale resourceVersion
    │       └── InvalidError          422: the object failed validation
    └── FencedError                   this process no longer leads with the epoch it acts for
"""

from __future__ import annotations

from flinklet.errors import ClusterError

__all__ = [
    "ApiStatusError",
    "ApiUnavailableError",
    "ConflictError",
    "FencedError",
    "InvalidError",
    "KubeConfigError",
    "KubernetesError",
    "NotFoundError",
]


class KubernetesError(ClusterError):
    """The Kubernetes API could not be used; the message names the request."""


class KubeConfigError(KubernetesError):
    """No usable credentials: set ``FLINKLET_KUBECONFIG`` or ``KUBECONFIG``, write
    ``~/.kube/config``, or run in a pod with a service account."""


class ApiUnavailableError(KubernetesError):
    """The API server was unreachable, timed out, throttled (429) or failed (5xx)."""


class ApiStatusError(KubernetesError):
    """The API server answered with an error status; ``status``, ``reason`` (Kubernetes'
    ``Status.reason``, e.g. ``AlreadyExists``) and ``api_message`` say which."""

    def __init__(self, message: str, status: int, reason: str = "", api_message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.api_message = api_message


class NotFoundError(ApiStatusError):
    """404: the object (or its namespace) does not exist."""


class ConflictError(ApiStatusError):
    """409: creating an object that exists (``reason == "AlreadyExists"``), or writing with
    a ``resourceVersion`` someone else changed since it was read: read it again."""


class InvalidError(ApiStatusError):
    """422: the object failed the API server's validation (the message says which field)."""


class FencedError(ClusterError):
    """This process acted for a leadership epoch it no longer holds: another process took
    the Lease over. The write was refused; the process must stop acting as the leader."""

    def __init__(self, message: str, epoch: int | None = None, holder: str | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.holder = holder
