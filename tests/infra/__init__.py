"""Real test infrastructure: etcd + kube-apiserver (+ controller-manager, scheduler and a
local node agent) and an S3-compatible server, all on 127.0.0.1.

The binaries are built by ``bash hack/build-k8s.sh``; see docs/testing-infrastructure.md.
The pytest fixtures live in :mod:`tests.infra.plugin`.
"""

from tests.infra.binaries import BinariesMissingError, find_bin_dir
from tests.infra.controlplane import ControlPlane
from tests.infra.kubehttp import KubeHTTP, KubeHTTPError
from tests.infra.s3server import S3Server

__all__ = [
    "BinariesMissingError",
    "ControlPlane",
    "KubeHTTP",
    "KubeHTTPError",
    "S3Server",
    "find_bin_dir",
]
