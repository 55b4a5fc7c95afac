"""The operator process against the real control plane (kube-apiserver, etcd,
kube-controller-manager, kube-scheduler and the node agent): FlinkJobs become Deployments,
Services and ConfigMaps; status, scale subresource, suspend/resume, failures, retention,
the finalizer and owner garbage collection.

The JobManager's REST API is the StubJobManager (see its docstring) until the runtime's
JobManager is deployable; the pods are sleepers run by the node agent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flinklet_operator.models import FlinkJob
from flinklet_operator.resources import (
    Restore,
    build_config_map,
    build_jobmanager_deployment,
    build_taskmanager_deployment,
)
from tests.infra.controlplane import ControlPlane
from tests.infra.procs import wait_for
from tests.integration.operator.conftest import (
    FJ_PATH,
    OperatorProcess,
    delete_namespace,
    flinkjob,
    make_namespace,
)
from tests.integration.operator.stub_jobmanager import StubJobManager

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

TIMEOUT = 90.0


def fj_url(namespace: str, name: str = "wc") -> str:
    return f"{FJ_PATH.format(ns=namespace)}/{name}"


def deployment(cluster: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    return cluster.http.get_or_none(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")


def events(cluster: ControlPlane, namespace: str, name: str = "wc") -> list[str]:
    items = cluster.http.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    return [
        e["reason"]
        for e in items
        if e["involvedObject"].get("name") == name and e["involvedObject"].get("kind") == "FlinkJob"
    ]


def wait_events(cluster: ControlPlane, namespace: str, *reasons: str, name: str = "wc") -> None:
    """Events are posted after the status is written: wait for them."""
    wait_for(
        f"events {reasons} of FlinkJob {name}",
        lambda: set(reasons) <= set(events(cluster, namespace, name)),
        timeout=30,
    )


def wait_status(
    cluster: ControlPlane,
    operator: OperatorProcess,
    namespace: str,
    what: str,
    predicate: Callable[[dict[str, Any]], bool],
    name: str = "wc",
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """Wait until the FlinkJob satisfies ``predicate``; on timeout, fail with its status and
    the end of the operator's log."""

    def probe() -> dict[str, Any] | None:
        body = cluster.http.get_or_none(fj_url(namespace, name))
        return body if body is not None and predicate(body) else None

    try:
        return wait_for(what, probe, timeout=timeout, check=operator.process.check_alive)
    except TimeoutError as exc:
        body = cluster.http.get_or_none(fj_url(namespace, name))
        status = yaml.safe_dump((body or {}).get("status"), sort_keys=False)
        pytest.fail(
            f"{exc}\nstatus:\n{status}\nevents: {events(cluster, namespace, name)}\n"
            f"operator log:\n{operator.log(80)}"
        )


def lifecycle(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: (body.get("status") or {}).get("lifecycleState") == state


def create(cluster: ControlPlane, namespace: str, body: dict[str, Any]) -> None:
    cluster.http.post(FJ_PATH.format(ns=namespace), body)


def stable(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str, body: dict[str, Any]
) -> dict[str, Any]:
    create(cluster, namespace, body)
    return wait_status(
        cluster,
        operator,
        namespace,
        "the FlinkJob to be STABLE",
        lifecycle("STABLE"),
        name=body["metadata"]["name"],
    )


@pytest.fixture
def root(stub: StubJobManager, namespace: str) -> Path:
    return stub.savepoint_root / namespace


def test_apply_creates_children_with_the_right_specs_and_reports_status(
    cluster: ControlPlane,
    operator: OperatorProcess,
    stub: StubJobManager,
    namespace: str,
    root: Path,
) -> None:
    body = stable(cluster, operator, namespace, flinkjob("wc", root))
    expected_job = FlinkJob.from_body(body)

    jm = deployment(cluster, namespace, "wc-jobmanager")
    tm = deployment(cluster, namespace, "wc-taskmanager")
    assert jm is not None and tm is not None
    want_jm = build_jobmanager_deployment(expected_job, Restore())
    want_tm = build_taskmanager_deployment(expected_job)
    for got, want in ((jm, want_jm), (tm, want_tm)):
        assert got["metadata"]["ownerReferences"] == want["metadata"]["ownerReferences"]
        assert got["metadata"]["labels"] == want["metadata"]["labels"]
        assert got["spec"]["replicas"] == want["spec"]["replicas"]
        assert got["spec"]["selector"] == want["spec"]["selector"]
        assert got["spec"]["strategy"] == {"type": "Recreate"}
        got_c = got["spec"]["template"]["spec"]["containers"][0]
        want_c = want["spec"]["template"]["spec"]["containers"][0]
        for key in (
            "image",
            "command",
            "args",
            "env",
            "resources",
            "securityContext",
            "volumeMounts",
        ):
            assert got_c.get(key) == want_c.get(key), key
        assert [p["containerPort"] for p in got_c["ports"]] == [
            p["containerPort"] for p in want_c["ports"]
        ]
        assert (
            got["spec"]["template"]["spec"]["securityContext"]
            == (want["spec"]["template"]["spec"]["securityContext"])
        )
    assert jm["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "jobmanager",
        "--job-entrypoint",
        "examples.word_count:main",
        "-p",
        "2",
    ]
    assert tm["spec"]["replicas"] == 2
    service = cluster.http.get(f"/api/v1/namespaces/{namespace}/services/wc-rest")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("rest", 8081),
        ("rpc", 6123),
    ]
    assert service["spec"]["selector"] == jm["spec"]["selector"]["matchLabels"]
    config = cluster.http.get(f"/api/v1/namespaces/{namespace}/configmaps/wc-config")
    assert config["data"] == build_config_map(expected_job)["data"]

    status = body["status"]
    current = stub.current(namespace, "wc")
    assert current is not None
    assert status["jobStatus"]["jobId"] == current.job_id
    assert status["jobStatus"]["state"] == "RUNNING"
    assert status["jobStatus"]["parallelism"] == 2
    assert status["observedGeneration"] == 1
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "JobRunning")
    assert "flinklet.io/finalizer" in body["metadata"]["finalizers"]
    wait_events(cluster, namespace, "Submitted", "Deployed")
    columns = cluster.kubectl("get", "fj", "-n", namespace, "--no-headers").stdout.split()
    assert columns[:4] == ["wc", "RUNNING", "STABLE", "2"]
    assert "flinklet_operator_reconcile_total" in operator.metrics()


def test_scale_subresource_rescales_through_a_savepoint(
    cluster: ControlPlane,
    operator: OperatorProcess,
    stub: StubJobManager,
    namespace: str,
    root: Path,
) -> None:
    stable(cluster, operator, namespace, flinkjob("wc", root))
    result = cluster.kubectl("scale", "-n", namespace, "fj/wc", "--replicas=3")
    assert result.returncode == 0, result.stderr
    body = wait_status(
        cluster,
        operator,
        namespace,
        "parallelism 3, STABLE",
        lambda b: (
            lifecycle("STABLE")(b) and (b["status"].get("jobStatus") or {}).get("parallelism") == 3
        ),
    )
    savepoint = body["status"]["savepointInfo"]["lastSavepoint"]
    assert savepoint["type"] == "UPGRADE"
    assert Path(savepoint["location"].removeprefix("file://"), "_metadata").exists()
    history = stub.history(namespace, "wc")
    assert [inc.job.parallelism for inc in history] == [2, 3]
    assert history[-1].job.restored_from == savepoint["location"]
    tm = deployment(cluster, namespace, "wc-taskmanager")
    assert tm is not None and tm["spec"]["replicas"] == 3
    scale = cluster.http.get(f"{fj_url(namespace)}/scale")
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    wait_events(
        cluster, namespace, "SpecChanged", "SavepointTriggered", "SavepointCompleted", "Rescaled"
    )


def test_suspend_scales_to_zero_and_resume_restores(
    cluster: ControlPlane,
    operator: OperatorProcess,
    stub: StubJobManager,
    namespace: str,
    root: Path,
) -> None:
    stable(cluster, operator, namespace, flinkjob("wc", root))
    cluster.http.patch(fj_url(namespace), {"spec": {"job": {"state": "suspended"}}})
    body = wait_status(cluster, operator, namespace, "SUSPENDED", lifecycle("SUSPENDED"))
    location = body["status"]["savepointInfo"]["lastSavepoint"]["location"]
    for name in ("wc-jobmanager", "wc-taskmanager"):
        found = deployment(cluster, namespace, name)
        assert found is not None and found["spec"]["replicas"] == 0
    cluster.http.patch(fj_url(namespace), {"spec": {"job": {"state": "running"}}})
    wait_status(cluster, operator, namespace, "STABLE again", lifecycle("STABLE"))
    current = stub.current(namespace, "wc")
    assert current is not None and current.restored_from == location
    wait_events(cluster, namespace, "Suspended", "Resumed")


def test_job_failure_is_reported_and_a_restart_nonce_recovers(
    cluster: ControlPlane,
    operator: OperatorProcess,
    stub: StubJobManager,
    namespace: str,
    root: Path,
) -> None:
    stable(cluster, operator, namespace, flinkjob("wc", root))
    stub.fail_current_job(namespace, "wc")
    body = wait_status(cluster, operator, namespace, "FAILED", lifecycle("FAILED"))
    assert "RuntimeError: injected by StubJobManager" in body["status"]["error"]
    degraded = next(c for c in body["status"]["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "JobFailed")
    wait_events(cluster, namespace, "JobFailed")
    cluster.http.patch(fj_url(namespace), {"spec": {"job": {"restartNonce": 1}}})
    wait_status(cluster, operator, namespace, "STABLE after restartNonce", lifecycle("STABLE"))
    current = stub.current(namespace, "wc")
    assert current is not None and current.restored_from is not None  # the last checkpoint


def test_manual_and_periodic_savepoints_with_retention(
    cluster: ControlPlane,
    operator: OperatorProcess,
    stub: StubJobManager,
    namespace: str,
    root: Path,
) -> None:
    body = flinkjob("wc", root, savepoints={"periodicInterval": "2s", "retention": {"maxCount": 2}})
    stable(cluster, operator, namespace, body)
    cluster.http.patch(fj_url(namespace), {"spec": {"job": {"savepointTriggerNonce": 1}}})
    wait_status(
        cluster,
        operator,
        namespace,
        "a manual savepoint",
        lambda b: any(
            h["type"] == "MANUAL"
            for h in (b.get("status") or {}).get("savepointInfo", {}).get("history", [])
        ),
    )

    def disposed_some(b: dict[str, Any]) -> bool:
        return "SavepointDisposed" in events(cluster, namespace)

    body = wait_status(cluster, operator, namespace, "retention to dispose of one", disposed_some)
    history = body["status"]["savepointInfo"]["history"]
    assert len(history) <= 2
    on_disk = sorted(p.name for p in (root / "wc" / "savepoints").iterdir())
    kept = sorted(
        h["location"].rsplit("/", 1)[1]
        for h in cluster.http.get(fj_url(namespace))["status"]["savepointInfo"]["history"]
    )
    assert set(kept) <= set(on_disk)
    assert len(on_disk) <= len(kept) + 1  # at most one newer savepoint not yet in status


def test_the_finalizer_holds_deletion_until_the_final_savepoint(
    cluster: ControlPlane,
    operator: OperatorProcess,
    stub: StubJobManager,
    namespace: str,
    root: Path,
) -> None:
    stable(cluster, operator, namespace, flinkjob("wc", root, job={"savepointOnDeletion": True}))
    cluster.http.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "wc-leader", "labels": {"flinklet.io/cluster-id": "wc"}}},
    )
    cluster.http.post(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
        {"metadata": {"name": "wc-jobmanager-leader"}, "spec": {"holderIdentity": "jm-0"}},
    )
    stub.hold_savepoints = True
    try:
        cluster.http.delete(fj_url(namespace))
        body = wait_status(cluster, operator, namespace, "DELETING", lifecycle("DELETING"))
        assert body["metadata"].get("deletionTimestamp")
        assert "flinklet.io/finalizer" in body["metadata"]["finalizers"]
        time.sleep(3)
        assert cluster.http.get_or_none(fj_url(namespace)) is not None
        assert deployment(cluster, namespace, "wc-jobmanager") is not None
    finally:
        stub.release()
    wait_for(
        "the FlinkJob to be deleted",
        lambda: cluster.http.get_or_none(fj_url(namespace)) is None,
        timeout=TIMEOUT,
    )
    assert deployment(cluster, namespace, "wc-jobmanager") is None
    assert deployment(cluster, namespace, "wc-taskmanager") is None
    for path in ("services/wc-rest", "configmaps/wc-config", "configmaps/wc-leader"):
        assert cluster.http.get_or_none(f"/api/v1/namespaces/{namespace}/{path}") is None, path
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/wc-jobmanager-leader"
    assert cluster.http.get_or_none(lease) is None
    wait_events(cluster, namespace, "Deleting", "SavepointTriggered", "SavepointCompleted")
    final = [inc for inc in stub.history(namespace, "wc")][-1].job
    assert final.state == "FINISHED"


def test_deletion_is_bounded_by_its_deadline(
    cluster: ControlPlane,
    operator: OperatorProcess,
    stub: StubJobManager,
    namespace: str,
    root: Path,
) -> None:
    body = flinkjob("wc", root, job={"savepointOnDeletion": True}, deadlines={"deletion": "3s"})
    stable(cluster, operator, namespace, body)
    stub.hold_savepoints = True
    try:
        cluster.http.delete(fj_url(namespace))
        wait_for(
            "the FlinkJob to be deleted despite the held savepoint",
            lambda: cluster.http.get_or_none(fj_url(namespace)) is None,
            timeout=TIMEOUT,
        )
    finally:
        stub.release()
    wait_events(cluster, namespace, "DeletionTimedOut")
    assert deployment(cluster, namespace, "wc-jobmanager") is None


def test_owner_references_let_the_garbage_collector_remove_children(
    cluster: ControlPlane, stub: StubJobManager, tmp_path: Path
) -> None:
    """Without the operator (and its finalizer), deleting a FlinkJob still removes its
    children: kube-controller-manager's garbage collector follows the owner references."""
    gc_operator = OperatorProcess(
        cluster, stub, tmp_path, watch="flinklet-gc-*", name="flinklet-operator-gc"
    )
    # The namespace and the FlinkJob exist before this operator starts (it picks them up
    # from its initial listing), which keeps this test about garbage collection.
    namespace = make_namespace(cluster, "flinklet-gc-", need_service_account=True)
    create(cluster, namespace, flinkjob("wc", tmp_path, job={"upgradeMode": "stateless"}))
    gc_operator.start()
    try:
        try:
            wait_for(
                "the children",
                lambda: deployment(cluster, namespace, "wc-taskmanager"),
                timeout=TIMEOUT,
                check=gc_operator.process.check_alive,
            )
        except TimeoutError as exc:
            pytest.fail(f"{exc}\noperator log ({gc_operator.log_path}):\n{gc_operator.log(60)}")
        gc_operator.stop()
        cluster.http.patch(fj_url(namespace), {"metadata": {"finalizers": None}})
        cluster.http.delete(fj_url(namespace))

        def all_gone() -> bool:
            paths = [
                f"/apis/apps/v1/namespaces/{namespace}/deployments/wc-jobmanager",
                f"/apis/apps/v1/namespaces/{namespace}/deployments/wc-taskmanager",
                f"/api/v1/namespaces/{namespace}/services/wc-rest",
                f"/api/v1/namespaces/{namespace}/configmaps/wc-config",
            ]
            return all(cluster.http.get_or_none(p) is None for p in paths)

        wait_for("garbage collection of the children", all_gone, timeout=TIMEOUT)
    finally:
        gc_operator.stop()
        delete_namespace(cluster, namespace)
