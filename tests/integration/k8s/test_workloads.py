"""The whole control plane with the local node agent: Deployment -> ReplicaSet -> Pods ->
scheduled -> running local processes; garbage collection; restart policies; probes."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.infra.controlplane import ControlPlane
from tests.infra.procs import free_port, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

MARKER = "flinklet-infra-sleeper"
SLEEPER = f"import time, sys; sys.argv.append('{MARKER}'); time.sleep(3600)"


@pytest.fixture(scope="module")
def cluster(k8s_full_control_plane: ControlPlane) -> ControlPlane:
    return k8s_full_control_plane


@pytest.fixture(scope="module")
def api(cluster: ControlPlane) -> Iterator[client.ApiClient]:
    with cluster.api_client() as api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient, cluster: ControlPlane) -> Iterator[str]:
    name = f"workloads-{secrets.token_hex(3)}"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    # The ServiceAccount admission plugin needs the "default" ServiceAccount, which
    # kube-controller-manager creates for every new namespace.
    wait_for(
        f"ServiceAccount {name}/default",
        lambda: cluster.http.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout=60,
    )
    yield name
    client.CoreV1Api(api).delete_namespace(name)


def _pid_of(pod: dict[str, Any], container: int = 0) -> int:
    container_id: str = pod["status"]["containerStatuses"][container]["containerID"]
    assert container_id.startswith("flinklet://"), container_id
    return int(container_id.removeprefix("flinklet://"))


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode().partition("=") for item in raw if item)
    return {k: v for k, _, v in pairs}


def _process_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _pods(cluster: ControlPlane, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.http.get(
        f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
    )["items"]
    return items


def _phase_is(
    cluster: ControlPlane, namespace: str, name: str, phase: str
) -> dict[str, Any] | None:
    pod = cluster.http.get_or_none(f"/api/v1/namespaces/{namespace}/pods/{name}")
    return pod if pod is not None and pod.get("status", {}).get("phase") == phase else None


def test_deployment_runs_pods_as_local_processes_and_gc_cleans_up(
    api: client.ApiClient, cluster: ControlPlane, namespace: str
) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": "sleeper"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="sleeper", labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    termination_grace_period_seconds=5,
                    containers=[
                        client.V1Container(
                            name="main",
                            image="python:3.11-slim",  # ignored by the node agent
                            command=[sys.executable, "-c", SLEEPER],
                            env=[
                                client.V1EnvVar(name="GREETING", value="hello"),
                                client.V1EnvVar(
                                    name="GREETING_TWICE", value="$(GREETING) $(GREETING)"
                                ),
                                client.V1EnvVar(
                                    name="MY_POD_NAME",
                                    value_from=client.V1EnvVarSource(
                                        field_ref=client.V1ObjectFieldSelector(
                                            field_path="metadata.name"
                                        )
                                    ),
                                ),
                                client.V1EnvVar(
                                    name="MY_NAMESPACE",
                                    value_from=client.V1EnvVarSource(
                                        field_ref=client.V1ObjectFieldSelector(
                                            field_path="metadata.namespace"
                                        )
                                    ),
                                ),
                                client.V1EnvVar(
                                    name="MY_POD_IP",
                                    value_from=client.V1EnvVarSource(
                                        field_ref=client.V1ObjectFieldSelector(
                                            field_path="status.podIP"
                                        )
                                    ),
                                ),
                            ],
                        )
                    ],
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(namespace, deployment)
    assert created.metadata is not None
    deployment_uid = created.metadata.uid

    # kube-controller-manager: Deployment -> ReplicaSet owned by it.
    def replica_set() -> dict[str, Any] | None:
        items = cluster.http.get(f"/apis/apps/v1/namespaces/{namespace}/replicasets")["items"]
        return items[0] if items else None

    rs = wait_for("the ReplicaSet", replica_set, timeout=60)
    owner = rs["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Deployment", "sleeper", deployment_uid)
    assert owner["controller"] is True
    assert rs["spec"]["replicas"] == 2

    # ReplicaSet -> 2 Pods, scheduled onto the node, running, ready.
    def running_pods() -> list[dict[str, Any]] | None:
        pods = _pods(cluster, namespace, "app=sleeper")
        ready = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        return ready if len(ready) == 2 and len(pods) == 2 else None

    pods = wait_for("2 Running and Ready pods", running_pods, timeout=90)
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["spec"]["nodeName"] == cluster.node_name  # bound by kube-scheduler
        assert pod["status"]["podIP"] == "127.0.0.1"
        status = pod["status"]["containerStatuses"][0]
        assert status["name"] == "main"
        assert status["ready"] is True
        assert status["restartCount"] == 0
        assert "running" in status["state"]

    pids = {pod["metadata"]["name"]: _pid_of(pod) for pod in pods}
    assert len(set(pids.values())) == 2
    for name, pid in pids.items():
        assert _process_running(pid)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].decode() == sys.executable
        env = _environ(pid)
        assert env["MY_POD_NAME"] == name
        assert env["MY_NAMESPACE"] == namespace
        assert env["MY_POD_IP"] == "127.0.0.1"
        assert env["GREETING_TWICE"] == "hello hello"
        assert env["FLINKLET_HOST_OVERRIDE"] == "127.0.0.1"
        # The default ServiceAccount's bound token, as a kubeconfig.
        assert Path(env["KUBECONFIG"]).is_file()

    # The Deployment controller sees the pods become available.
    def available() -> bool:
        status = apps.read_namespaced_deployment_status("sleeper", namespace).status
        return status is not None and status.available_replicas == 2

    wait_for("Deployment availableReplicas == 2", available, timeout=60)

    # Delete the owner: the garbage collector removes the ReplicaSet and the Pods, and the
    # node agent stops the processes and confirms the pod deletions.
    apps.delete_namespaced_deployment("sleeper", namespace)
    wait_for("the ReplicaSet to be garbage-collected", lambda: replica_set() is None, timeout=60)
    wait_for(
        "the Pods to be deleted", lambda: not _pods(cluster, namespace, "app=sleeper"), timeout=60
    )
    wait_for(
        "the processes to exit",
        lambda: not any(_process_running(pid) for pid in pids.values()),
        timeout=30,
    )
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("sleeper", namespace)
    assert gone.value.status == 404


def _bare_pod(
    name: str, command: list[str], restart_policy: str, **container: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": name}},
        "spec": {
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": "ignored", "command": command, **container}],
        },
    }


def test_restart_policy_and_exit_codes(cluster: ControlPlane, namespace: str) -> None:
    http = cluster.http
    base = f"/api/v1/namespaces/{namespace}/pods"
    http.post(base, _bare_pod("ok-once", [sys.executable, "-c", "print('done')"], "Never"))
    http.post(base, _bare_pod("fails", [sys.executable, "-c", "raise SystemExit(3)"], "Never"))
    http.post(base, _bare_pod("crashloop", [sys.executable, "-c", "raise SystemExit(1)"], "Always"))
    http.post(base, _bare_pod("no-command", [], "Always"))

    ok = wait_for(
        "ok-once Succeeded",
        lambda: _phase_is(cluster, namespace, "ok-once", "Succeeded"),
        timeout=60,
    )
    terminated = ok["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    assert terminated["reason"] == "Completed"

    failed = wait_for(
        "fails Failed", lambda: _phase_is(cluster, namespace, "fails", "Failed"), timeout=60
    )
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"

    def restarted_twice() -> dict[str, Any] | None:
        pod = http.get(f"{base}/crashloop")
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        return pod if statuses[0].get("restartCount", 0) >= 2 else None

    crash = wait_for("crashloop restarted twice", restarted_twice, timeout=60)
    assert crash["status"]["phase"] == "Running"
    last = crash["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 1

    no_cmd = http.get(f"{base}/no-command")
    assert no_cmd["status"]["phase"] == "Pending"
    waiting = no_cmd["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert "command" in waiting["message"]


def test_readiness_probe_gates_ready(cluster: ControlPlane, namespace: str) -> None:
    http = cluster.http
    port = free_port()
    # Serves nothing until the file "go" appears in its working directory, then 200s.
    server = (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200 if os.path.exists('go') else 503)\n"
        "        self.end_headers()\n"
        "    def log_message(self, *a):\n"
        "        pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    pod = _bare_pod(
        "web",
        [sys.executable, "-c", server],
        "Always",
        ports=[{"name": "http", "containerPort": port}],
        readinessProbe={
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    )
    http.post(f"/api/v1/namespaces/{namespace}/pods", pod)
    running = wait_for(
        "web Running", lambda: _phase_is(cluster, namespace, "web", "Running"), timeout=60
    )
    time.sleep(3)  # a few failing probes
    current = http.get(f"/api/v1/namespaces/{namespace}/pods/web")
    ready = {c["type"]: c["status"] for c in current["status"]["conditions"]}
    assert ready["Ready"] == "False"
    assert current["status"]["containerStatuses"][0]["ready"] is False

    pid = _pid_of(running)
    workdir = Path(os.readlink(f"/proc/{pid}/cwd"))
    (workdir / "go").touch()

    def is_ready() -> bool:
        pod = http.get(f"/api/v1/namespaces/{namespace}/pods/web")
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"]
        )

    wait_for("web Ready", is_ready, timeout=30)

    http.delete(f"/api/v1/namespaces/{namespace}/pods/web")
    wait_for(
        "web deleted",
        lambda: http.get_or_none(f"/api/v1/namespaces/{namespace}/pods/web") is None,
        timeout=30,
    )
    assert not _process_running(pid)


WORKLOAD = """
import json, os, ssl, urllib.request, urllib.error
pod_dir = os.environ["FLINKLET_POD_DIR"]
config = json.load(open(os.environ["KUBECONFIG"]))
cluster = config["clusters"][0]["cluster"]
token = open(config["users"][0]["user"]["tokenFile"]).read()
ns = os.environ["FLINKLET_POD_NAMESPACE"]

def status(path):
    request = urllib.request.Request(cluster["server"] + path,
                                     headers={"Authorization": "Bearer " + token})
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    try:
        return urllib.request.urlopen(request, context=context, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code

print(json.dumps({
    "init": open(os.path.join(pod_dir, "init-done")).read(),
    "secret": os.environ.get("FROM_SECRET"),
    "cm": {k: v for k, v in os.environ.items() if k.startswith("CM_")},
    "own_pod": status(f"/api/v1/namespaces/{ns}/pods/" + os.environ["HOSTNAME"]),
    "configmaps": status(f"/api/v1/namespaces/{ns}/configmaps"),
}))
"""


def test_init_containers_env_sources_and_service_account(
    cluster: ControlPlane, namespace: str
) -> None:
    """Init containers run first; env comes from Secrets and ConfigMaps; the workload talks
    to the API server as its own ServiceAccount, so RBAC applies to it."""
    http = cluster.http
    ns_path = f"/api/v1/namespaces/{namespace}"
    http.post(
        f"{ns_path}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "stringData": {"password": "s3cr3t"},
        },
    )
    http.post(
        f"{ns_path}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"A": "1", "B": "two"},
        },
    )
    http.post(
        f"{ns_path}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}},
    )
    # May read pods, nothing else.
    http.post(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
    )
    http.post(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "pod-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": namespace}],
        },
    )
    init_cmd = "import os; open(os.environ['FLINKLET_POD_DIR'] + '/init-done', 'w').write('yes')"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "job"},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "runner",
            "initContainers": [
                {
                    "name": "prepare",
                    "image": "ignored",
                    "command": [sys.executable, "-c", init_cmd],
                },
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "ignored",
                    "command": [sys.executable, "-c", WORKLOAD],
                    "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
                    "env": [
                        {
                            "name": "FROM_SECRET",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
                        }
                    ],
                }
            ],
        },
    }
    http.post(f"{ns_path}/pods", pod)
    done = wait_for(
        "job Succeeded", lambda: _phase_is(cluster, namespace, "job", "Succeeded"), timeout=90
    )
    init_status = done["status"]["initContainerStatuses"][0]
    assert init_status["state"]["terminated"]["exitCode"] == 0

    uid = done["metadata"]["uid"]
    output = cluster.run_dir / "pods" / f"{namespace}_job_{uid[:8]}" / "main" / "output.log"
    result = json.loads(output.read_text().splitlines()[-1])
    assert result == {
        "init": "yes",
        "secret": "s3cr3t",
        "cm": {"CM_A": "1", "CM_B": "two"},
        "own_pod": 200,
        "configmaps": 403,
    }


def test_failing_liveness_probe_restarts_the_container(
    cluster: ControlPlane, namespace: str
) -> None:
    http = cluster.http
    pod = _bare_pod(
        "unhealthy",
        [sys.executable, "-c", SLEEPER],
        "Always",
        livenessProbe={
            "exec": {"command": ["test", "-f", "healthy"]},
            "initialDelaySeconds": 1,
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
    )
    http.post(f"/api/v1/namespaces/{namespace}/pods", pod)
    first = wait_for(
        "unhealthy Running",
        lambda: _phase_is(cluster, namespace, "unhealthy", "Running"),
        timeout=60,
    )
    first_pid = _pid_of(first)

    def restarted() -> dict[str, Any] | None:
        current = http.get(f"/api/v1/namespaces/{namespace}/pods/unhealthy")
        status = current["status"]["containerStatuses"][0]
        return current if status["restartCount"] >= 1 and "running" in status["state"] else None

    current = wait_for("a liveness restart", restarted, timeout=60)
    last = current["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 137  # SIGKILL
    assert not _process_running(first_pid)
    assert _process_running(_pid_of(current))
