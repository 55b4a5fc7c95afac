"""Fixtures for the operator against the real control plane: the CRD, namespaces, the
StubJobManager and the operator process (``python -m flinklet_operator``)."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.infra.binaries import REPO_ROOT
from tests.infra.controlplane import ControlPlane
from tests.infra.kubehttp import KubeHTTP, KubeHTTPError
from tests.infra.procs import ManagedProcess, free_port, tail, wait_for
from tests.integration.operator.stub_jobmanager import StubJobManager

CRD_FILE = REPO_ROOT / "crds" / "flinkjob.yaml"
FJ_PATH = "/apis/flinklet.io/v1alpha1/namespaces/{ns}/flinkjobs"
#: The operator process of this module watches namespaces matching this glob.
WATCHED_PREFIX = "flinklet-op-"


def install_crd(cluster: ControlPlane) -> None:
    result = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    assert result.returncode == 0, result.stderr
    result = cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/flinkjobs.flinklet.io"
    )
    assert result.returncode == 0, result.stderr

    def discoverable() -> bool:
        # Established is not enough for clients that discover resources (kopf does).
        served = cluster.http.get_or_none("/apis/flinklet.io/v1alpha1") or {}
        return any(r.get("name") == "flinkjobs" for r in served.get("resources", []))

    wait_for("flinkjobs in API discovery", discoverable, timeout=60)


def make_namespace(cluster: ControlPlane, prefix: str, *, need_service_account: bool) -> str:
    name = f"{prefix}{secrets.token_hex(3)}"
    cluster.http.post("/api/v1/namespaces", {"metadata": {"name": name}})
    if need_service_account:
        wait_for(
            f"ServiceAccount {name}/default",
            lambda: cluster.http.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
            timeout=60,
        )
    return name


def delete_namespace(cluster: ControlPlane, name: str) -> None:
    """Delete the namespace; FlinkJobs left in it lose their finalizer first (the operator
    of the module may already be gone)."""
    try:
        items = cluster.http.get(FJ_PATH.format(ns=name))["items"]
    except KubeHTTPError:
        items = []
    for item in items:
        with contextlib.suppress(KubeHTTPError):
            cluster.http.patch(
                f"{FJ_PATH.format(ns=name)}/{item['metadata']['name']}",
                {"metadata": {"finalizers": None}},
            )
    with contextlib.suppress(KubeHTTPError):
        cluster.http.delete(f"/api/v1/namespaces/{name}")


class OperatorProcess:
    """``python -m flinklet_operator`` against the test cluster."""

    def __init__(
        self,
        cluster: ControlPlane,
        stub: StubJobManager,
        log_dir: Path,
        watch: str,
        name: str = "flinklet-operator",
    ) -> None:
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "WATCH_NAMESPACES": watch,
            "FLINKLET_OPERATOR_POLL_INTERVAL": "1",
            "FLINKLET_OPERATOR_RETRY_DELAY": "1",
            "FLINKLET_OPERATOR_JOBMANAGER_URL": stub.url_template,
            "FLINKLET_OPERATOR_JOBMANAGER_TIMEOUT": "2",
            "FLINKLET_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "FLINKLET_OPERATOR_METRICS_ADDRESS": "127.0.0.1",
            "FLINKLET_OPERATOR_LIVENESS": f"http://127.0.0.1:{self.liveness_port}/healthz",
            "PYTHONUNBUFFERED": "1",
        }
        self.process = ManagedProcess(
            name,
            [sys.executable, "-m", "flinklet_operator", "--verbose"],
            log_dir / f"{name}.log",
            env=env,
            cwd=REPO_ROOT,
        )

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def start(self) -> None:
        self.process.start()

        def live() -> bool:
            return (
                httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).status_code
                == 200
            )

        wait_for(
            "the operator's liveness endpoint", live, timeout=60, check=self.process.check_alive
        )

    def stop(self) -> None:
        self.process.stop()

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


@pytest.fixture(scope="module")
def cluster(k8s_full_control_plane: ControlPlane) -> ControlPlane:
    install_crd(k8s_full_control_plane)
    return k8s_full_control_plane


@pytest.fixture(scope="module")
def stub(
    cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StubJobManager]:
    kube = KubeHTTP.from_kubeconfig(cluster.kubeconfig)
    with StubJobManager(kube, tmp_path_factory.mktemp("stub-savepoints")) as server:
        yield server
    kube.close()


@pytest.fixture(scope="module")
def operator(
    cluster: ControlPlane, stub: StubJobManager, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        cluster, stub, tmp_path_factory.mktemp("operator"), watch=f"{WATCHED_PREFIX}*"
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def namespace(cluster: ControlPlane, operator: OperatorProcess) -> Iterator[str]:
    name = make_namespace(cluster, WATCHED_PREFIX, need_service_account=True)
    yield name
    delete_namespace(cluster, name)


def sleeper_template() -> dict[str, Any]:
    """Pods that stand in for the runtime until it is deployable: the main container sleeps
    (the node agent runs it as a local process) and has no HTTP probes."""
    return {
        "spec": {
            "containers": [
                {
                    "name": "flinklet-main-container",
                    "command": [sys.executable, "-c", "import time; time.sleep(3600)"],
                    "readinessProbe": None,
                    "livenessProbe": None,
                }
            ]
        }
    }


def flinkjob(name: str, savepoint_root: Path, **spec: Any) -> dict[str, Any]:
    job = {
        "entrypoint": "examples.word_count:main",
        "parallelism": 2,
        "upgradeMode": "savepoint",
        **spec.pop("job", {}),
    }
    body: dict[str, Any] = {
        "apiVersion": "flinklet.io/v1alpha1",
        "kind": "FlinkJob",
        "metadata": {"name": name},
        "spec": {
            "image": "flinklet:test",
            "job": job,
            "jobManager": {"podTemplate": sleeper_template()},
            "taskManager": {"podTemplate": sleeper_template()},
            "checkpointStorage": {
                "checkpointDir": f"file://{savepoint_root}/{name}/checkpoints",
                "savepointDir": f"file://{savepoint_root}/{name}/savepoints",
            },
            **spec,
        },
    }
    return body
