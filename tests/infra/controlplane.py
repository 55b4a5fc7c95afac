"""A real Kubernetes control plane on 127.0.0.1: etcd + kube-apiserver, and on request
kube-controller-manager, kube-scheduler and the local node agent.

Everything listens on free loopback ports, authenticates with static bearer tokens, and is
authorized by RBAC. Logs, certificates and the etcd data live in ``run_dir``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.infra import pki
from tests.infra.binaries import REPO_ROOT, require_binaries
from tests.infra.kubehttp import KubeHTTP, KubeHTTPError
from tests.infra.procs import LOOPBACK, ManagedProcess, free_port, tail, wait_for

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

SERVICE_CIDR = "10.0.0.0/24"  # required by kube-apiserver; nothing ever dials it
FIRST_SERVICE_IP = "10.0.0.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_NODE_NAME = "flinklet-node-0"


class ControlPlane:
    """Start with :meth:`start`; add controllers with :meth:`start_controllers` and a node
    with :meth:`start_node_agent`; :meth:`stop` tears everything down (also on failure)."""

    def __init__(
        self,
        bin_dir: Path,
        run_dir: Path,
        *,
        startup_timeout: float = 120.0,
        apiserver_extra_args: tuple[str, ...] = (),
    ) -> None:
        self.bin_dir = bin_dir
        self.run_dir = run_dir
        self.startup_timeout = startup_timeout
        self.apiserver_extra_args = apiserver_extra_args
        self.token = secrets.token_hex(24)
        self._cm_token = secrets.token_hex(24)
        self._sched_token = secrets.token_hex(24)
        self._agent_token = secrets.token_hex(24)
        self.etcd_port = 0
        self.apiserver_port = 0
        self.server = ""
        self.kubeconfig = run_dir / "kubeconfig"
        self.ca_file = run_dir / "pki" / "ca.crt"
        self.logs_dir = run_dir / "logs"
        self.node_name: str | None = None
        self._procs: dict[str, ManagedProcess] = {}
        self._http: KubeHTTP | None = None
        self._pki: pki.PKIFiles | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """etcd + kube-apiserver; returns once /readyz is ok and namespace default exists."""
        require_binaries(("etcd", "kube-apiserver"), self.bin_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._pki = pki.generate(
                self.run_dir / "pki",
                ip_sans=(LOOPBACK, FIRST_SERVICE_IP),
                dns_sans=(
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ),
            )
            self._write_token_file()
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfigs()
            self._wait_apiserver_ready()
        except BaseException:
            self.stop()
            raise

    def start_controllers(self) -> None:
        """kube-controller-manager and kube-scheduler, waiting until each holds its leader
        lease (that is, it has connected and is running its controllers)."""
        if "kube-controller-manager" in self._procs:
            return
        require_binaries(("kube-controller-manager", "kube-scheduler"), self.bin_dir)
        assert self._pki is not None, "start() first"
        try:
            self._start_controller_manager()
            self._start_scheduler()
            self._wait_lease("kube-controller-manager", self._procs["kube-controller-manager"])
            self._wait_lease("kube-scheduler", self._procs["kube-scheduler"])
            # The service-account controller creating "default" proves the controllers run.
            wait_for(
                "the default ServiceAccount (created by kube-controller-manager)",
                lambda: self.http.get_or_none("/api/v1/namespaces/default/serviceaccounts/default"),
                timeout=self.startup_timeout,
                check=self._procs["kube-controller-manager"].check_alive,
            )
        except BaseException:
            self.stop()
            raise

    def start_node_agent(self, node_name: str = DEFAULT_NODE_NAME) -> None:
        """Register a Node and run its pods as local processes (see tests/infra/nodeagent.py).

        Returns once the Node is Ready and schedulable (the node lifecycle controller has
        removed the not-ready taint the TaintNodesByCondition admission plugin adds)."""
        if "nodeagent" in self._procs:
            return
        pods_dir = self.run_dir / "pods"
        pods_dir.mkdir(parents=True, exist_ok=True)
        agent = ManagedProcess(
            "nodeagent",
            [
                sys.executable,
                "-m",
                "tests.infra.nodeagent",
                "--kubeconfig",
                str(self.run_dir / "nodeagent.kubeconfig"),
                "--node-name",
                node_name,
                "--pods-dir",
                str(pods_dir),
                "--apiserver-port",
                str(self.apiserver_port),
            ],
            self.logs_dir / "nodeagent.log",
            cwd=REPO_ROOT,
            stop_timeout=40.0,
        )
        self._procs["nodeagent"] = agent
        self.node_name = node_name
        try:
            agent.start()

            def schedulable() -> bool:
                node = self.http.get_or_none(f"/api/v1/nodes/{node_name}")
                if node is None:
                    return False
                conds = {
                    c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])
                }
                taints = [
                    t
                    for t in node.get("spec", {}).get("taints", []) or []
                    if t.get("effect") in ("NoSchedule", "NoExecute")
                ]
                return conds.get("Ready") == "True" and not taints

            wait_for(
                f"node {node_name} Ready and untainted",
                schedulable,
                timeout=self.startup_timeout,
                check=agent.check_alive,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process this control plane started, newest first."""
        for name in reversed(list(self._procs)):
            with contextlib.suppress(Exception):
                self._procs[name].stop()
        self._procs.clear()
        _kill_leftover_pod_processes(self.run_dir / "pods")
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    @property
    def http(self) -> KubeHTTP:
        """An admin (system:masters) REST client."""
        if self._http is None:
            self._http = KubeHTTP(self.server, self.token, self.ca_file)
        return self._http

    def api_client(self) -> ApiClient:
        """A fresh official ``kubernetes.client.ApiClient`` for the admin user."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.verify_ssl = True
        configuration.api_key = {"authorization": self.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        api: ApiClient = client.ApiClient(configuration)
        return api

    def env(self) -> dict[str, str]:
        """Environment for tools run against this cluster: ``KUBECONFIG``, and ``PATH`` with
        the cached binaries (kubectl and helm of the pinned versions) first."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def kubectl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the cached kubectl (same version as the server) against this cluster."""
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env(),
        )

    def log_paths(self) -> dict[str, Path]:
        return {name: proc.log_path for name, proc in self._procs.items()}

    def describe(self) -> str:
        lines = [f"control plane {self.server} (run dir {self.run_dir})"]
        lines += [f"  {name}: {path}" for name, path in self.log_paths().items()]
        return "\n".join(lines)

    def process_ids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._procs.items() if proc.alive()}

    # ------------------------------------------------------------------ internals
    def _write_token_file(self) -> None:
        # token,user,uid,"group1,group2"
        rows = [
            f'{self.token},flinklet-admin,flinklet-admin,"system:masters"',
            f"{self._cm_token},system:kube-controller-manager,system:kube-controller-manager",
            f"{self._sched_token},system:kube-scheduler,system:kube-scheduler",
            f'{self._agent_token},flinklet-node-agent,flinklet-node-agent,"system:masters"',
        ]
        path = self.run_dir / "pki" / "tokens.csv"
        path.write_text("\n".join(rows) + "\n")
        path.chmod(0o600)

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        self.etcd_port = client_port
        client_url = f"http://{LOOPBACK}:{client_port}"
        peer_url = f"http://{LOOPBACK}:{peer_port}"
        etcd = ManagedProcess(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name",
                "flinklet-test",
                "--data-dir",
                str(self.run_dir / "etcd"),
                "--listen-client-urls",
                client_url,
                "--advertise-client-urls",
                client_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"flinklet-test={peer_url}",
                "--initial-cluster-state",
                "new",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(2 * 1024**3),
                "--log-level",
                "warn",
            ],
            self.logs_dir / "etcd.log",
        )
        self._procs["etcd"] = etcd
        etcd.start()

        def healthy() -> bool:
            import httpx

            resp = httpx.get(f"{client_url}/health", timeout=2)
            return resp.status_code == 200 and resp.json().get("health") == "true"

        wait_for("etcd /health", healthy, timeout=self.startup_timeout, check=etcd.check_alive)

    def _start_apiserver(self) -> None:
        assert self._pki is not None
        self.apiserver_port = free_port()
        self.server = f"https://{LOOPBACK}:{self.apiserver_port}"
        p = self._pki
        apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://{LOOPBACK}:{self.etcd_port}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self.apiserver_port}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--tls-cert-file={p.serving_cert}",
                f"--tls-private-key-file={p.serving_key}",
                f"--client-ca-file={p.ca_cert}",
                f"--token-auth-file={self.run_dir / 'pki' / 'tokens.csv'}",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                f"--api-audiences={SA_ISSUER}",
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                "--allow-privileged=true",
                # The `kubernetes` Service's Endpoints would hold the loopback advertise
                # address, which Endpoints validation rejects; nothing needs them here.
                "--endpoint-reconciler-type=none",
                f"--cert-dir={self.run_dir / 'apiserver-certs'}",
                "--profiling=false",
                "--v=1",
                *self.apiserver_extra_args,
            ],
            self.logs_dir / "kube-apiserver.log",
        )
        self._procs["kube-apiserver"] = apiserver
        apiserver.start()

    def _kubeconfig(self, path: Path, user: str, token: str) -> None:
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "flinklet-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "flinklet-test",
                    "context": {"cluster": "flinklet-test", "user": user, "namespace": "default"},
                }
            ],
            "current-context": "flinklet-test",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def _write_kubeconfigs(self) -> None:
        self._kubeconfig(self.kubeconfig, "flinklet-admin", self.token)
        self._kubeconfig(
            self.run_dir / "controller-manager.kubeconfig",
            "system:kube-controller-manager",
            self._cm_token,
        )
        self._kubeconfig(
            self.run_dir / "scheduler.kubeconfig", "system:kube-scheduler", self._sched_token
        )
        self._kubeconfig(
            self.run_dir / "nodeagent.kubeconfig", "flinklet-node-agent", self._agent_token
        )

    def _wait_apiserver_ready(self) -> None:
        apiserver = self._procs["kube-apiserver"]

        def ready() -> bool:
            try:
                if self.http.get_text("/readyz").strip() != "ok":
                    return False
            except KubeHTTPError:
                return False
            return self.http.get_or_none("/api/v1/namespaces/default") is not None

        wait_for(
            "kube-apiserver /readyz and namespace default",
            ready,
            timeout=self.startup_timeout,
            interval=0.25,
            check=apiserver.check_alive,
        )

    def _start_controller_manager(self) -> None:
        assert self._pki is not None
        kcm = ManagedProcess(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.run_dir / 'controller-manager.kubeconfig'}",
                f"--service-account-private-key-file={self._pki.sa_key}",
                f"--root-ca-file={self._pki.ca_cert}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--bind-address={LOOPBACK}",
                "--secure-port=0",
                "--leader-elect=true",
                "--concurrent-deployment-syncs=5",
                "--concurrent-gc-syncs=10",
                "--profiling=false",
                "--v=1",
            ],
            self.logs_dir / "kube-controller-manager.log",
        )
        self._procs["kube-controller-manager"] = kcm
        kcm.start()

    def _start_scheduler(self) -> None:
        sched = ManagedProcess(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={self.run_dir / 'scheduler.kubeconfig'}",
                f"--bind-address={LOOPBACK}",
                "--secure-port=0",
                "--leader-elect=true",
                "--profiling=false",
                "--v=1",
            ],
            self.logs_dir / "kube-scheduler.log",
        )
        self._procs["kube-scheduler"] = sched
        sched.start()

    def _wait_lease(self, name: str, proc: ManagedProcess) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}"

        def held() -> bool:
            lease = self.http.get_or_none(path)
            return bool(lease and lease.get("spec", {}).get("holderIdentity"))

        wait_for(
            f"{name} to hold its leader lease",
            held,
            timeout=self.startup_timeout,
            interval=0.3,
            check=proc.check_alive,
        )


def _kill_leftover_pod_processes(pods_dir: Path) -> None:
    """Kill pod processes the node agent could not (it was SIGKILLed): each pod container's
    directory holds a ``pid`` file; only processes whose environment carries the matching
    ``FLINKLET_NODE_AGENT_CONTAINER_ID`` are touched, so a recycled pid is never hit."""
    from tests.infra.procs import kill_process_group

    if not pods_dir.is_dir():
        return
    for pid_file in pods_dir.glob("*/*/pid"):
        try:
            pid = int(pid_file.read_text().strip())
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except (OSError, ValueError):
            continue
        marker = f"FLINKLET_NODE_AGENT_CONTAINER_ID={pid_file.parent}".encode()
        if marker in environ.split(b"\0"):
            kill_process_group(pid, timeout=5)
    # Give the kernel a moment to reap; nothing here blocks for long.
    time.sleep(0.05)


def tail_logs(control_plane: ControlPlane, lines: int = 20) -> str:
    """The end of every component log, for failure messages."""
    parts = []
    for name, path in control_plane.log_paths().items():
        parts.append(f"--- {name} ({path}) ---\n{tail(path, lines)}")
    return "\n".join(parts)
