"""Flinklet on Kubernetes: a small API client and Lease-based leader election.

Public so that both the runtime (JobManager high availability) and the operator
(``flinklet_operator``) use one implementation.

- :class:`KubernetesClient` / :class:`KubeConfig` (``client.py``): Leases and ConfigMaps
  over httpx, with credentials from a kubeconfig or a pod's service account;
  :class:`KubernetesApi` is the protocol it implements, and
  :class:`flinklet.kubernetes.testing.InMemoryKubernetes` the in-memory one for tests.
- :class:`LeaderElector` (``leader.py``): client-go's leader election on a Lease, with the
  Lease's ``leaseTransitions`` as a fencing epoch and :meth:`LeaderElector.check_fence`.
- ``errors.py``: the errors, rooted at :class:`flinklet.errors.ClusterError`.

    from flinklet.kubernetes import KubernetesClient, LeaderElector

    with LeaderElector(KubernetesClient(), "default", "my-lease", "me") as elector:
        if elector.wait_for_leadership(timeout=30):
            ...  # lead; call elector.check_fence() before writes only a leader may make
"""

from __future__ import annotations

from flinklet.kubernetes.client import KubeConfig, KubeObject, KubernetesApi, KubernetesClient
from flinklet.kubernetes.errors import (
    ApiStatusError,
    ApiUnavailableError,
    ConflictError,
    FencedError,
    InvalidError,
    KubeConfigError,
    KubernetesError,
    NotFoundError,
)
from flinklet.kubernetes.leader import LeaderElectionRecord, LeaderElector, LeaseTimings

__all__ = [
    "ApiStatusError",
    "ApiUnavailableError",
    "ConflictError",
    "FencedError",
    "InvalidError",
    "KubeConfig",
    "KubeConfigError",
    "KubeObject",
    "KubernetesApi",
    "KubernetesClient",
    "KubernetesError",
    "LeaderElectionRecord",
    "LeaderElector",
    "LeaseTimings",
    "NotFoundError",
]
