"""crds/flinkjob.yaml on the real kube-apiserver: it installs, defaults, serves the scale
subresource and printer columns, and rejects bad FlinkJobs with messages that say what to fix."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.controlplane import ControlPlane
from tests.infra.kubehttp import KubeHTTPError
from tests.integration.operator.conftest import (
    FJ_PATH,
    delete_namespace,
    install_crd,
    make_namespace,
)

pytestmark = pytest.mark.k8s

GOOD: dict[str, Any] = {
    "apiVersion": "flinklet.io/v1alpha1",
    "kind": "FlinkJob",
    "metadata": {"name": "wc"},
    "spec": {"image": "flinklet:0.1", "job": {"entrypoint": "examples.word_count:main"}},
}


@pytest.fixture(scope="module")
def cluster(k8s_control_plane: ControlPlane) -> ControlPlane:
    install_crd(k8s_control_plane)
    return k8s_control_plane


@pytest.fixture
def namespace(cluster: ControlPlane) -> Iterator[str]:
    name = make_namespace(cluster, "flinklet-crd-", need_service_account=False)
    yield name
    delete_namespace(cluster, name)


def manifest(**changes: Any) -> dict[str, Any]:
    """GOOD with ``changes`` applied: dotted paths (``spec.job.parallelism``) -> value;
    the value ``...`` deletes the key."""
    body = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return body


def create(cluster: ControlPlane, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return cluster.http.request(
        "POST", FJ_PATH.format(ns=namespace), body=body, params={"fieldValidation": "Strict"}
    )


BAD = [
    (
        "negative parallelism",
        manifest(spec__job__parallelism=-1),
        "spec.job.parallelism in body should be greater than or equal to 1",
    ),
    (
        "zero parallelism",
        manifest(spec__job__parallelism=0),
        "spec.job.parallelism in body should be greater than or equal to 1",
    ),
    (
        "unknown upgradeMode",
        manifest(spec__job__upgradeMode="sometimes"),
        'supported values: "stateless", "savepoint", "last-state"',
    ),
    (
        "unknown state",
        manifest(spec__job__state="paused"),
        'supported values: "running", "suspended"',
    ),
    ("missing image", manifest(spec__image=...), "spec.image: Required value"),
    ("empty image", manifest(spec__image=""), "spec.image in body should be at least 1 chars"),
    (
        "missing entrypoint",
        manifest(spec__job={"parallelism": 1}),
        "spec.job.entrypoint: Required value",
    ),
    (
        "bad entrypoint form",
        manifest(spec__job__entrypoint="run my job"),
        "job.entrypoint must be 'package.module:function' or a path to a .py file",
    ),
    (
        "entrypoint without function",
        manifest(spec__job__entrypoint="examples.word_count:"),
        "job.entrypoint must be 'package.module:function' or a path to a .py file",
    ),
    (
        "slots 0",
        manifest(spec__taskManager={"slots": 0}),
        "spec.taskManager.slots in body should be greater than or equal to 1",
    ),
    (
        "jobManager replicas 0",
        manifest(spec__jobManager={"replicas": 0}),
        "spec.jobManager.replicas in body should be greater than or equal to 1",
    ),
    (
        "last-state without storage",
        manifest(spec__job__upgradeMode="last-state"),
        "job.upgradeMode last-state restores from checkpoints: set spec.checkpointStorage",
    ),
    (
        "savepoint mode without storage",
        manifest(spec__job__upgradeMode="savepoint"),
        "job.upgradeMode savepoint needs somewhere to write savepoints",
    ),
    (
        "savepointOnDeletion without storage",
        manifest(spec__job__savepointOnDeletion=True),
        "job.savepointOnDeletion needs somewhere to write savepoints",
    ),
    (
        "reserved configuration key",
        manifest(spec__flinkConfiguration={"taskmanager.numberOfTaskSlots": "4"}),
        "flinkConfiguration must not set taskmanager.numberOfTaskSlots",
    ),
    (
        "non-string configuration value",
        manifest(spec__flinkConfiguration={"execution.checkpointing.interval": 10}),
        'spec.flinkConfiguration.execution.checkpointing.interval: Invalid value: "integer"',
    ),
    (
        "s3 and checkpointDir",
        manifest(spec__checkpointStorage={"checkpointDir": "/c", "s3": {"bucket": "ckpt"}}),
        "checkpointStorage needs exactly one of s3 or checkpointDir",
    ),
    (
        "bad bucket name",
        manifest(spec__checkpointStorage={"s3": {"bucket": "My_Bucket"}}),
        "checkpointStorage.s3.bucket must be an S3 bucket name",
    ),
    (
        "bad duration",
        manifest(spec__deadlines={"deploy": "five minutes"}),
        "must be a duration such as 30s, 10m, 1h30m or 2d",
    ),
    (
        "bad quantity",
        manifest(spec__taskManager={"resources": {"memory": "lots"}}),
        "spec.taskManager.resources.memory in body should match",
    ),
    (
        "retention maxCount 0",
        manifest(spec__savepoints={"retention": {"maxCount": 0}}),
        "spec.savepoints.retention.maxCount in body should be greater than or equal to 1",
    ),
    (
        "unknown pull policy",
        manifest(spec__imagePullPolicy="Sometimes"),
        'supported values: "Always", "IfNotPresent", "Never"',
    ),
    ("misspelled field", manifest(spec__job__paralelism=3), 'unknown field "spec.job.paralelism"'),
    (
        "name starting with a digit",
        manifest(metadata__name="1st-job"),
        "metadata.name must start with a lowercase letter",
    ),
    (
        "name too long",
        manifest(metadata__name="w" * 46),
        "metadata.name must be at most 45 characters",
    ),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_flinkjobs_are_rejected_with_clear_messages(
    cluster: ControlPlane, namespace: str, case: str, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(KubeHTTPError) as caught:
        create(cluster, namespace, body)
    assert caught.value.status in (400, 422), caught.value
    assert message in caught.value.message, f"{case}: {caught.value.message}"


def test_distinct_rejections_cover_at_least_ten_rules() -> None:
    assert len({message for _, _, message in BAD}) >= 10


def test_a_good_flinkjob_gets_the_defaults(cluster: ControlPlane, namespace: str) -> None:
    created = create(cluster, namespace, GOOD)
    spec = created["spec"]
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["job"] == {
        "entrypoint": "examples.word_count:main",
        "parallelism": 1,
        "upgradeMode": "stateless",
        "state": "running",
        "allowNonRestoredState": False,
        "savepointOnDeletion": False,
    }
    assert spec["jobManager"] == {"replicas": 1, "resources": {"cpu": "500m", "memory": "1Gi"}}
    assert spec["taskManager"] == {"slots": 1, "resources": {"cpu": "1", "memory": "2Gi"}}
    assert spec["savepoints"] == {"retention": {"maxCount": 10}}
    assert spec["deadlines"] == {
        "deploy": "5m",
        "savepoint": "10m",
        "stop": "10m",
        "cancel": "2m",
        "deletion": "5m",
    }


def test_a_complete_flinkjob_is_accepted(cluster: ControlPlane, namespace: str) -> None:
    body = manifest(
        spec__job={
            "entrypoint": "/opt/jobs/wc.py",
            "args": ["--rate", "5"],
            "parallelism": 4,
            "upgradeMode": "last-state",
            "savepointTriggerNonce": 1,
            "restartNonce": 2,
            "savepointOnDeletion": True,
            "initialSavepointPath": "s3://b/savepoint-1",
        },
        spec__checkpointStorage={
            "s3": {
                "bucket": "flink-state",
                "prefix": "prod",
                "endpoint": "http://minio:9000",
                "pathStyleAccess": True,
                "credentialsSecret": {"name": "s3-creds"},
            }
        },
        spec__savepoints={"periodicInterval": "1h", "retention": {"maxCount": 5, "maxAge": "7d"}},
        spec__jobManager={"replicas": 2, "podTemplate": {"spec": {"nodeSelector": {"a": "b"}}}},
        spec__flinkConfiguration={"state.backend.type": "rocksdb"},
        spec__serviceAccount="flinklet",
    )
    created = create(cluster, namespace, body)
    assert created["spec"]["jobManager"]["podTemplate"] == {"spec": {"nodeSelector": {"a": "b"}}}
    assert created["spec"]["checkpointStorage"]["s3"]["credentialsSecret"] == {
        "name": "s3-creds",
        "accessKeyKey": "AWS_ACCESS_KEY_ID",
        "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
    }


def test_scale_subresource_and_status(cluster: ControlPlane, namespace: str) -> None:
    create(cluster, namespace, manifest(spec__job__parallelism=3))
    path = f"{FJ_PATH.format(ns=namespace)}/wc"
    scale = cluster.http.get(f"{path}/scale")
    assert scale["spec"]["replicas"] == 3
    cluster.http.patch(
        f"{path}/status",
        {
            "status": {
                "jobStatus": {"parallelism": 3},
                "selector": "app=x",
                "lifecycleState": "STABLE",
            }
        },
    )
    scale = cluster.http.get(f"{path}/scale")
    assert scale["status"] == {"replicas": 3, "selector": "app=x"}
    result = cluster.kubectl("scale", "-n", namespace, "fj/wc", "--replicas=6")
    assert result.returncode == 0, result.stderr
    assert cluster.http.get(path)["spec"]["job"]["parallelism"] == 6
    result = cluster.kubectl("scale", "-n", namespace, "flinkjob/wc", "--replicas=0")
    assert result.returncode != 0
    assert "greater than or equal to 1" in result.stderr


def test_status_is_only_written_through_the_subresource(
    cluster: ControlPlane, namespace: str
) -> None:
    create(cluster, namespace, GOOD)
    path = f"{FJ_PATH.format(ns=namespace)}/wc"
    cluster.http.patch(path, {"status": {"lifecycleState": "STABLE"}})
    assert "status" not in cluster.http.get(path)
    with pytest.raises(KubeHTTPError) as caught:
        cluster.http.patch(f"{path}/status", {"status": {"lifecycleState": "HAPPY"}})
    assert caught.value.status == 422


def test_printer_columns(cluster: ControlPlane, namespace: str) -> None:
    create(cluster, namespace, manifest(spec__job__parallelism=2))
    path = f"{FJ_PATH.format(ns=namespace)}/wc/status"
    cluster.http.patch(
        path,
        {
            "status": {
                "lifecycleState": "STABLE",
                "jobStatus": {"state": "RUNNING"},
                "savepointInfo": {
                    "lastSavepoint": {
                        "location": "s3://b/savepoint-1",
                        "timestamp": "2024-01-01T00:00:00Z",
                        "type": "MANUAL",
                    }
                },
            }
        },
    )
    result = cluster.kubectl("get", "fj", "-n", namespace, "--no-headers")
    assert result.returncode == 0, result.stderr
    columns = result.stdout.split()
    assert columns[:5] == ["wc", "RUNNING", "STABLE", "2", "s3://b/savepoint-1"]
    header = cluster.kubectl("get", "fj", "-n", namespace).stdout.splitlines()[0]
    for title in ("JOB STATE", "LIFECYCLE", "PARALLELISM", "LAST SAVEPOINT", "AGE"):
        assert title in header
