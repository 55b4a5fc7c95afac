"""The Kubernetes walkthrough end to end, locally: a real kube-apiserver, controller-manager
and scheduler, the node agent running pods as processes, MinIO for S3, the operator as a
process, and the real runtime in the JobManager and TaskManager pods.

``kubectl apply`` a FlinkJob (last-state upgrades, S3 checkpoints and savepoints, a job
shipped in a ConfigMap) -> RUNNING -> ``kubectl scale --replicas 3`` -> suspend -> resume
-> an upgrade in last-state mode -> SIGKILL of the JobManager, then deletion of its pod
(each replacement restores from the HA ConfigMap's checkpoint) -> suspend -> delete. Every
step asserts the status, the Deployments, the events and S3; at the end the committed
output is exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.infra.binaries import REPO_ROOT
from tests.infra.controlplane import ControlPlane
from tests.infra.kubehttp import KubeHTTPError
from tests.infra.procs import free_port
from tests.integration.operator.conftest import (
    FJ_PATH,
    OperatorProcess,
    delete_namespace,
    install_crd,
    make_namespace,
)

pytestmark = [pytest.mark.e2e, pytest.mark.k8s, pytest.mark.s3, pytest.mark.slow]

JOB = Path(__file__).with_name("lifecycle_job.py")
NAME = "wordcount"
RATE = 40  # records per second: a few thousand over the whole lifecycle
REST = "http://127.0.0.1:8081"  # the JobManager's REST port on the shared loopback
OUTPUT = "/opt/flinklet/output"  # the job's FileSink directory inside the pods
SUSPEND = '{"spec":{"job":{"state":"suspended"}}}'
RESUME = '{"spec":{"job":{"state":"running"}}}'


class LocalJobManagerUrl:
    """What the operator gets as its JobManager URL template: on the node agent's loopback
    network the JobManager pod's REST port is the host's."""

    url_template = REST


def wait_for(
    what: str, condition: Callable[[], Any], timeout: float, diag: Callable[[], str]
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (KubeHTTPError, httpx.HTTPError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})\n{diag()}"
    )


class Walkthrough:
    def __init__(
        self, cluster: ControlPlane, namespace: str, operator: OperatorProcess, out: Path
    ) -> None:
        self.cluster, self.ns, self.operator, self.out = cluster, namespace, operator, out
        self.path = f"{FJ_PATH.format(ns=namespace)}/{NAME}"
        self.steps: list[tuple[str, float]] = []

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        if stdin is not None:
            tmp = self.out.parent / "stdin.yaml"
            tmp.write_text(stdin)
            args = tuple(a if a != "-" else str(tmp) for a in args)
        result = self.cluster.kubectl("-n", self.ns, *args, timeout=240)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def fj(self) -> dict[str, Any]:
        return self.cluster.http.get(self.path)

    def status(self) -> dict[str, Any]:
        return self.fj().get("status") or {}

    def deployment(self, component: str) -> dict[str, Any] | None:
        return self.cluster.http.get_or_none(
            f"/apis/apps/v1/namespaces/{self.ns}/deployments/{NAME}-{component}"
        )

    def pods(self, component: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cluster.http.get(
            f"/api/v1/namespaces/{self.ns}/pods",
            params={"labelSelector": f"app.kubernetes.io/component={component}"},
        )["items"]
        return items

    def events(self) -> list[str]:
        items = self.cluster.http.get(f"/api/v1/namespaces/{self.ns}/events")["items"]
        return [e.get("reason", "") for e in items if e["involvedObject"].get("kind") == "FlinkJob"]

    def diag(self) -> str:
        status = json.dumps(self.status(), indent=1)[:3000]
        pods = {
            p["metadata"]["name"]: (
                p["status"].get("phase"),
                p["metadata"].get("deletionTimestamp"),
            )
            for p in self.pods("jobmanager") + self.pods("taskmanager")
        }
        logs = []
        for f in sorted((self.cluster.run_dir / "pods").rglob("output.log")):
            if f"{self.ns}_{NAME}" in str(f):
                logs.append(f"--- {f}\n" + "\n".join(f.read_text().splitlines()[-25:]))
        return (
            f"status: {status}\npods: {pods}\nevents: {self.events()}\n"
            f"operator log:\n{self.operator.log(40)}\n" + "\n".join(logs[-4:])
        )

    def wait(self, what: str, condition: Callable[[], Any], timeout: float = 120) -> Any:
        started = time.monotonic()
        value = wait_for(what, condition, timeout, self.diag)
        self.steps.append((what, time.monotonic() - started))
        return value

    def running(self, parallelism: int, generation: int | None = None) -> Callable[[], bool]:
        def check() -> bool:
            fj = self.fj()
            st = fj.get("status") or {}
            job = st.get("jobStatus") or {}
            return (
                st.get("lifecycleState") == "STABLE"
                and job.get("state") == "RUNNING"
                and job.get("parallelism") == parallelism
                and (generation is None or st.get("observedGeneration") == generation)
            )

        return check

    def checkpoints_after(self, count: int) -> Callable[[], bool]:
        """The running job completes ``count`` more checkpoints (asked of its REST API)."""
        jid = self.status()["jobStatus"]["jobId"]
        first: list[int] = []

        def check() -> bool:
            done = self.completed_checkpoints(jid)
            if not first:
                first.append(done)
            return done >= first[0] + count

        return check

    @staticmethod
    def completed_checkpoints(jid: str) -> int:
        answer = httpx.get(f"{REST}/jobs/{jid}/checkpoints", timeout=5)
        answer.raise_for_status()  # a JobManager still starting does not know the job yet
        counts = answer.json()["counts"]
        return int(counts["completed"])


def running_jobs() -> list[str]:
    """The ids of the jobs the JobManager on the loopback's REST port runs."""
    answer = httpx.get(f"{REST}/jobs/overview", timeout=5)
    answer.raise_for_status()
    return [j["jid"] for j in answer.json()["jobs"] if j["state"] == "RUNNING"]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"  # a zombie is gone too


def committed(directory: Path) -> list[str]:
    lines: list[str] = []
    for f in sorted(directory.rglob("*")):
        if f.is_file() and not f.name.startswith((".", "_")):
            lines.extend(f.read_text().splitlines())
    return lines


def assert_exactly_once(lines: list[str]) -> dict[int, int]:
    """No source record twice; per key the counts are exactly 1..m. Returns {key: m}."""
    records = Counter(int(line.split(",")[2]) for line in lines)
    twice = [i for i, c in records.items() if c > 1]
    assert not twice, f"records committed twice: {sorted(twice)[:20]}"
    per_key: dict[int, list[int]] = defaultdict(list)
    for line in lines:
        key, n, _ = (int(x) for x in line.split(","))
        per_key[key].append(n)
    for key, ns in per_key.items():
        assert sorted(ns) == list(range(1, len(ns) + 1)), f"key {key}: gaps or repeats"
    return {k: len(v) for k, v in per_key.items()}


def s3_keys(s3: Any, prefix: str) -> list[str]:
    client = s3.client()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def manifest(namespace: str, s3: Any, out: Path) -> str:
    job_code = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{NAME}-job"},
        "data": {"lifecycle_job.py": JOB.read_text()},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-credentials"},
        "type": "Opaque",
        "stringData": {"access-key": s3.access_key, "secret-key": s3.secret_key},
    }
    usrlib = {
        "spec": {
            "containers": [
                {
                    "name": "flinklet-main-container",
                    "volumeMounts": [
                        {"name": "job-code", "mountPath": "/opt/flinklet/usrlib", "readOnly": True},
                        {"name": "output", "mountPath": OUTPUT},
                    ],
                }
            ],
            "volumes": [
                {"name": "job-code", "configMap": {"name": f"{NAME}-job"}},
                # a volume all pods share, as a ReadWriteMany PersistentVolume would be
                {"name": "output", "hostPath": {"path": str(out), "type": "DirectoryOrCreate"}},
            ],
        }
    }
    flinkjob = {
        "apiVersion": "flinklet.io/v1alpha1",
        "kind": "FlinkJob",
        "metadata": {"name": NAME},
        "spec": {
            "image": "flinklet-runtime:0.1.0",
            "serviceAccount": "flinklet",
            "job": {
                "entrypoint": "/opt/flinklet/usrlib/lifecycle_job.py",
                "args": [OUTPUT, str(RATE)],
                "parallelism": 2,
                "upgradeMode": "last-state",
                "state": "running",
            },
            "jobManager": {"resources": {"cpu": "250m", "memory": "512Mi"}, "podTemplate": usrlib},
            "taskManager": {
                "slots": 1,
                "resources": {"cpu": "250m", "memory": "512Mi"},
                "podTemplate": usrlib,
            },
            "flinkConfiguration": {
                "execution.checkpointing.interval": "1s",
                "high-availability.kubernetes.leader-election.lease-duration": "4 s",
                "high-availability.kubernetes.leader-election.renew-deadline": "3 s",
                "high-availability.kubernetes.leader-election.retry-period": "500 ms",
                "heartbeat.timeout": "5000",
            },
            "checkpointStorage": {
                "s3": {
                    "bucket": s3.bucket,
                    "prefix": "e2e",
                    "endpoint": s3.endpoint,
                    "region": s3.region,
                    "pathStyleAccess": True,
                    "credentialsSecret": {
                        "name": "s3-credentials",
                        "accessKeyKey": "access-key",
                        "secretKeyKey": "secret-key",
                    },
                }
            },
        },
    }
    return yaml.safe_dump_all([job_code, secret, flinkjob], sort_keys=False)


def job_rbac(cluster: ControlPlane, namespace: str) -> str:
    """The chart's ServiceAccount, Role and RoleBinding for the jobs' pods, rendered by
    helm for this namespace."""
    result = subprocess.run(
        [
            str(cluster.bin_dir / "helm"),
            "template",
            "flinklet",
            str(REPO_ROOT / "charts" / "flinklet-operator"),
            "--show-only",
            "templates/job-serviceaccount.yaml",
            "--kube-version",
            "1.34.4",
            "--set",
            f"watchNamespaces={{{namespace}}}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def walkthrough(
    k8s_full_control_plane: ControlPlane, s3_server: Any, tmp_path: Path
) -> Iterator[Walkthrough]:
    cluster = k8s_full_control_plane
    install_crd(cluster)
    namespace = make_namespace(cluster, "flinklet-e2e-", need_service_account=True)
    operator = OperatorProcess(cluster, LocalJobManagerUrl(), tmp_path, watch=namespace)  # type: ignore[arg-type]
    assert operator.process.env is not None
    operator.process.env.update(s3_server.env())  # retention and disposal talk to S3 too
    out = tmp_path / "out"
    out.mkdir()
    walk = Walkthrough(cluster, namespace, operator, out)
    operator.start()
    try:
        yield walk
    finally:
        operator.stop()
        delete_namespace(cluster, namespace)


def test_flinkjob_lifecycle_on_a_local_control_plane(
    walkthrough: Walkthrough, s3_server: Any
) -> None:
    w, ns = walkthrough, walkthrough.ns
    started = time.monotonic()
    assert free_port()  # the loopback network is up
    w.kubectl("apply", "-f", "-", stdin=job_rbac(w.cluster, ns))
    w.kubectl("apply", "-f", "-", stdin=manifest(ns, s3_server, w.out))
    base = f"e2e/{ns}/{NAME}"

    # 1. RUNNING, with real JobManager and TaskManager pods, checkpoints in S3
    w.wait("the job runs (parallelism 2)", w.running(2), timeout=180)
    table = w.kubectl("get", "fj", NAME)
    assert "RUNNING" in table and "STABLE" in table, table
    assert (w.deployment("taskmanager") or {}).get("spec", {}).get("replicas") == 2
    w.wait("two checkpoints", w.checkpoints_after(2), timeout=60)
    assert any(k.endswith("/_metadata") for k in s3_keys(s3_server, f"{base}/checkpoints/"))
    first_job = w.status()["jobStatus"]["jobId"]

    # 2. kubectl scale: savepoint (or last-state checkpoint) and restart with parallelism 3
    w.kubectl("scale", f"fj/{NAME}", "--replicas", "3")
    generation = w.fj()["metadata"]["generation"]
    w.wait("the job runs with parallelism 3", w.running(3, generation), timeout=180)
    assert (w.deployment("taskmanager") or {}).get("spec", {}).get("replicas") == 3
    assert len([p for p in w.pods("taskmanager") if p["status"].get("phase") == "Running"]) >= 3
    scale = w.kubectl("get", "fj", NAME, "-o", "jsonpath={.status.jobStatus.parallelism}")
    assert scale == "3"
    w.wait("a checkpoint at parallelism 3", w.checkpoints_after(1), timeout=60)

    # 3. suspend: stop with a savepoint, the cluster goes away
    w.kubectl("patch", "fj", NAME, "--type", "merge", "-p", SUSPEND)
    w.wait(
        "SUSPENDED with a savepoint",
        lambda: (
            w.status().get("lifecycleState") == "SUSPENDED"
            and ((w.status().get("savepointInfo") or {}).get("lastSavepoint") or {}).get("location")
        ),
        timeout=120,
    )
    savepoint = w.status()["savepointInfo"]["lastSavepoint"]["location"]
    assert savepoint.startswith(f"s3://{s3_server.bucket}/{base}/savepoints/"), savepoint
    key = savepoint.removeprefix(f"s3://{s3_server.bucket}/").rstrip("/") + "/_metadata"
    assert key in s3_keys(s3_server, savepoint.removeprefix(f"s3://{s3_server.bucket}/"))
    w.wait("no JobManager pods", lambda: not w.pods("jobmanager"), timeout=60)
    suspended = assert_exactly_once(committed(w.out))
    assert sum(suspended.values()) > 0
    time.sleep(2)
    assert assert_exactly_once(committed(w.out)) == suspended  # nothing runs while suspended

    # 4. resume from the savepoint: counts continue where they stopped
    w.kubectl("patch", "fj", NAME, "--type", "merge", "-p", RESUME)
    w.wait("the job runs again", w.running(3), timeout=180)
    w.wait("a checkpoint after resuming", w.checkpoints_after(1), timeout=60)
    resumed = assert_exactly_once(committed(w.out))
    assert all(resumed[k] >= m for k, m in suspended.items())
    assert sum(resumed.values()) > sum(suspended.values())

    # 5. an upgrade in last-state mode (new job arguments: a faster source)
    w.kubectl(
        "patch",
        "fj",
        NAME,
        "--type",
        "json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/job/args/1", "value": str(RATE * 2)}]),
    )
    generation = w.fj()["metadata"]["generation"]
    w.wait("the upgraded job runs", w.running(3, generation), timeout=180)
    jm_pod = w.pods("jobmanager")[0]
    assert str(RATE * 2) in jm_pod["spec"]["containers"][0]["args"]
    w.wait("a checkpoint after the upgrade", w.checkpoints_after(2), timeout=60)

    # 6. kill the leading JobManager: the container restarts and restores last state
    pid_file = next((w.cluster.run_dir / "pods").glob(f"{ns}_{jm_pod['metadata']['name']}_*/*/pid"))
    before = assert_exactly_once(committed(w.out))
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    w.wait(
        "the JobManager container restarted",
        lambda: (
            (w.pods("jobmanager")[0]["status"].get("containerStatuses") or [{}])[0].get(
                "restartCount", 0
            )
            >= 1
        ),
        timeout=60,
    )
    w.wait("the restarted JobManager runs the job", running_jobs, timeout=120)
    w.wait("the job runs after the JobManager was killed", w.running(3), timeout=180)
    w.wait("a checkpoint after the failover", w.checkpoints_after(2), timeout=90)
    after_kill = assert_exactly_once(committed(w.out))
    assert sum(after_kill.values()) > sum(before.values())

    # 6b. delete the leading JobManager's pod: the Deployment's new pod takes over
    old_pod = jm_pod["metadata"]["name"]
    old_pid = int(next((w.cluster.run_dir / "pods").glob(f"{ns}_{old_pod}_*/*/pid")).read_text())
    w.kubectl("delete", "pod", old_pod, "--grace-period=0", "--force")
    w.wait("the old JobManager process is gone", lambda: not process_alive(old_pid), timeout=60)
    w.wait(
        "a new JobManager pod runs the job",
        lambda: (
            [p for p in w.pods("jobmanager") if p["metadata"]["name"] != old_pod] and running_jobs()
        ),
        timeout=120,
    )
    w.wait("a checkpoint on the new JobManager pod", w.checkpoints_after(2), timeout=90)
    after = assert_exactly_once(committed(w.out))
    assert sum(after.values()) > sum(after_kill.values())

    # 7. suspend again: the whole history is exactly once
    w.kubectl("patch", "fj", NAME, "--type", "merge", "-p", SUSPEND)
    w.wait("SUSPENDED again", lambda: w.status().get("lifecycleState") == "SUSPENDED", timeout=120)
    final = assert_exactly_once(committed(w.out))
    assert sum(final.values()) >= sum(after.values())
    # The stop-with-savepoint committed everything; what stays in progress (hidden, never
    # read as output) is the open files of the attempt the JobManager's SIGKILL cut short.
    assert len(list(w.out.rglob(".*inprogress*"))) <= 3

    # 8. delete: the finalizer runs, the owned objects go, the S3 history is kept
    w.kubectl("delete", "fj", NAME, "--wait=false")
    w.wait("the FlinkJob is gone", lambda: w.cluster.http.get_or_none(w.path) is None, timeout=120)
    w.wait(
        "the Deployments are gone",
        lambda: w.deployment("jobmanager") is None and w.deployment("taskmanager") is None,
        timeout=120,
    )
    assert any(k.endswith("/_metadata") for k in s3_keys(s3_server, f"{base}/savepoints/"))

    reasons = set(w.events())
    assert {"Submitted", "Rescaled", "Suspended", "Resumed", "Deleting"} <= reasons, reasons
    assert first_job
    total = time.monotonic() - started
    print("\nlocal e2e lifecycle: " + ", ".join(f"{what} {s:.1f} s" for what, s in w.steps))
    print(f"local e2e lifecycle: {total:.0f} s in all, {sum(final.values())} records exactly once")


def test_the_walkthrough_commands_on_the_word_count_example(walkthrough: Walkthrough) -> None:
    """docs/kubernetes.md's commands (steps 4-6 and 8) on ``examples/k8s/wordcount.yaml`` as
    shipped: apply, wait for RUNNING, scale to 3, suspend, resume, delete."""
    w = walkthrough
    example = str(REPO_ROOT / "examples" / "k8s" / "wordcount.yaml")
    w.kubectl("apply", "-f", example)
    w.kubectl(
        "wait",
        "fj/wordcount",
        "--for=jsonpath={.status.jobStatus.state}=RUNNING",
        "--timeout=180s",
    )
    table = w.kubectl("get", "fj")
    assert "wordcount" in table and "RUNNING" in table, table

    def printed_counts() -> list[str]:
        """What the TaskManagers' print sinks wrote (``kubectl logs`` reads the same)."""
        lines: list[str] = []
        for log in (w.cluster.run_dir / "pods").glob(
            f"{w.ns}_wordcount-taskmanager-*/*/output.log"
        ):
            lines += [x for x in log.read_text().splitlines() if "> (" in x]
        return lines

    counts = w.wait("word counts printed", printed_counts, timeout=60)
    assert any("> ('to', " in line for line in counts), counts[:5]  # Flink's "subtask> value"

    w.kubectl("scale", "fj/wordcount", "--replicas", "3")
    w.kubectl(
        "wait",
        "fj/wordcount",
        "--for=jsonpath={.status.jobStatus.parallelism}=3",
        "--timeout=180s",
    )
    replicas = w.kubectl(
        "get", "deployment", "wordcount-taskmanager", "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas == "2"  # 3 slots at 2 per TaskManager

    w.kubectl("patch", "fj/wordcount", "--type", "merge", "-p", SUSPEND)
    w.kubectl(
        "wait",
        "fj/wordcount",
        "--for=jsonpath={.status.lifecycleState}=SUSPENDED",
        "--timeout=180s",
    )
    w.wait(
        "no pods left",
        lambda: w.kubectl("get", "pods", "-l", "flinklet.io/job=wordcount", "-o", "name") == "",
        timeout=60,
    )
    w.kubectl("patch", "fj/wordcount", "--type", "merge", "-p", RESUME)
    w.kubectl(
        "wait", "fj/wordcount", "--for=jsonpath={.status.jobStatus.state}=RUNNING", "--timeout=180s"
    )
    assert w.fj()["status"]["jobStatus"]["parallelism"] == 3

    w.kubectl("delete", "fj/wordcount", "--timeout=180s")
    w.kubectl("delete", "-f", example, "--ignore-not-found")
    assert w.cluster.http.get_or_none(w.path) is None
    w.wait("the Deployments are gone", lambda: w.deployment("jobmanager") is None, timeout=60)
