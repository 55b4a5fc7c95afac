"""The manifests the operator applies, compared whole (pure builders, no cluster)."""

from __future__ import annotations

from typing import Any

import yaml
from operator_builders import job, spec

from flinklet_operator.models import FlinkJob
from flinklet_operator.resources import (
    Restore,
    build_all,
    build_config_map,
    build_jobmanager_deployment,
    build_service,
    build_taskmanager_deployment,
    flink_configuration,
    jobmanager_args,
    merge_pod_template,
    rest_url,
)

OWNER = {
    "apiVersion": "flinklet.io/v1alpha1",
    "kind": "FlinkJob",
    "name": "wc",
    "uid": "uid-1",
    "controller": True,
    "blockOwnerDeletion": True,
}


def labels(component: str | None) -> dict[str, str]:
    result = {"app.kubernetes.io/name": "flinklet", "app.kubernetes.io/instance": "wc"}
    if component:
        result["app.kubernetes.io/component"] = component
    result.update({"app.kubernetes.io/managed-by": "flinklet-operator", "flinklet.io/job": "wc"})
    return result


def selector(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "flinklet",
        "app.kubernetes.io/instance": "wc",
        "app.kubernetes.io/component": component,
    }


ENV: list[dict[str, Any]] = [
    {"name": "FLINKLET_CONF_DIR", "value": "/opt/flinklet/conf"},
    {"name": "FLINKLET_JOBMANAGER_ADDRESS", "value": "wc-rest.jobs"},
    {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
    },
    {
        "name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
    },
    {
        "name": "POD_IP",
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
    },
]

CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 9999,
    "runAsGroup": 9999,
    "fsGroup": 9999,
    "seccompProfile": {"type": "RuntimeDefault"},
}
VOLUMES = [
    {"name": "flinklet-conf", "configMap": {"name": "wc-config"}},
    {"name": "tmp", "emptyDir": {}},
]
MOUNTS = [
    {"name": "flinklet-conf", "mountPath": "/opt/flinklet/conf", "readOnly": True},
    {"name": "tmp", "mountPath": "/tmp"},
]


def stateless_job(**overrides: Any) -> FlinkJob:
    base = {
        "image": "flinklet:1",
        "job": {"entrypoint": "jobs.wc:main", "parallelism": 5, "args": ["--rate", "10"]},
        "taskManager": {"slots": 2},
    }
    base.update(overrides)
    return job(base)


def test_jobmanager_deployment_exact() -> None:
    manifest = build_jobmanager_deployment(stateless_job(), Restore(path="s3://b/savepoint-1"))
    assert manifest == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "wc-jobmanager",
            "namespace": "jobs",
            "labels": labels("jobmanager"),
            "ownerReferences": [OWNER],
            "annotations": {"flinklet.io/spec-generation": "1"},
        },
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector("jobmanager")},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {
                    "labels": labels("jobmanager"),
                    "annotations": {"flinklet.io/spec-generation": "1"},
                },
                "spec": {
                    "securityContext": POD_SECURITY,
                    "automountServiceAccountToken": True,
                    "containers": [
                        {
                            "name": "flinklet-main-container",
                            "image": "flinklet:1",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["flinklet"],
                            "args": [
                                "jobmanager",
                                "--job-entrypoint",
                                "jobs.wc:main",
                                "-p",
                                "5",
                                "--from-savepoint",
                                "s3://b/savepoint-1",
                                "--job-args",
                                "--rate",
                                "10",
                            ],
                            "env": ENV,
                            "ports": [
                                {"name": "rpc", "containerPort": 6123, "protocol": "TCP"},
                                {"name": "rest", "containerPort": 8081, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 9249, "protocol": "TCP"},
                            ],
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "500m", "memory": "1Gi"},
                            },
                            "securityContext": CONTAINER_SECURITY,
                            "volumeMounts": MOUNTS,
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "rest"},
                                "initialDelaySeconds": 2,
                                "periodSeconds": 5,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "rest"},
                                "initialDelaySeconds": 15,
                                "periodSeconds": 10,
                                "failureThreshold": 6,
                            },
                        }
                    ],
                    "volumes": VOLUMES,
                },
            },
        },
    }


def test_taskmanager_deployment_exact() -> None:
    manifest = build_taskmanager_deployment(stateless_job())
    assert manifest == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "wc-taskmanager",
            "namespace": "jobs",
            "labels": labels("taskmanager"),
            "ownerReferences": [OWNER],
            "annotations": {"flinklet.io/spec-generation": "1"},
        },
        "spec": {
            "replicas": 3,  # ceil(5 / 2)
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector("taskmanager")},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {
                    "labels": labels("taskmanager"),
                    "annotations": {"flinklet.io/spec-generation": "1"},
                },
                "spec": {
                    "securityContext": POD_SECURITY,
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "flinklet-main-container",
                            "image": "flinklet:1",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["flinklet"],
                            "args": ["taskmanager"],
                            "env": ENV,
                            "ports": [
                                {"name": "metrics", "containerPort": 9249, "protocol": "TCP"}
                            ],
                            "resources": {
                                "requests": {"cpu": "1", "memory": "2Gi"},
                                "limits": {"cpu": "1", "memory": "2Gi"},
                            },
                            "securityContext": CONTAINER_SECURITY,
                            "volumeMounts": MOUNTS,
                        }
                    ],
                    "volumes": VOLUMES,
                },
            },
        },
    }


def test_service_exact() -> None:
    assert build_service(stateless_job()) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "wc-rest",
            "namespace": "jobs",
            "labels": labels("jobmanager"),
            "ownerReferences": [OWNER],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector("jobmanager"),
            "ports": [
                {"name": "rest", "port": 8081, "targetPort": "rest", "protocol": "TCP"},
                {"name": "rpc", "port": 6123, "targetPort": "rpc", "protocol": "TCP"},
            ],
        },
    }
    assert rest_url("wc", "jobs") == "http://wc-rest.jobs:8081"


def test_config_map_holds_the_flat_configuration() -> None:
    manifest = build_config_map(stateless_job(flinkConfiguration={"state.backend.type": "rocksdb"}))
    assert manifest["metadata"] == {
        "name": "wc-config",
        "namespace": "jobs",
        "labels": labels(None),
        "ownerReferences": [OWNER],
    }
    conf = yaml.safe_load(manifest["data"]["flinklet-conf.yaml"])
    assert conf == {
        "jobmanager.rpc.address": "wc-rest.jobs",
        "jobmanager.rpc.port": "6123",
        "rest.address": "wc-rest.jobs",
        "rest.bind-address": "0.0.0.0",
        "jobmanager.bind-host": "0.0.0.0",
        "rest.port": "8081",
        "taskmanager.numberOfTaskSlots": "2",
        "parallelism.default": "5",
        "kubernetes.namespace": "jobs",
        "kubernetes.cluster-id": "wc",
        "high-availability.cluster-id": "wc",
        "metrics.reporter.prom.port": "9249",
        "state.backend.type": "rocksdb",
        "execution.shutdown-on-application-finish": "false",
    }


def test_s3_storage_configuration_never_contains_credentials() -> None:
    flinkjob = job(
        spec(
            job={"upgradeMode": "last-state"},
            checkpointStorage={
                "s3": {
                    "bucket": "ckpts",
                    "prefix": "/flink/",
                    "endpoint": "http://minio:9000",
                    "pathStyleAccess": True,
                    "credentialsSecret": {"name": "s3-creds"},
                }
            },
        )
    )
    conf = flink_configuration(flinkjob)
    assert conf["execution.checkpointing.dir"] == "s3://ckpts/flink/jobs/wc/checkpoints"
    assert conf["execution.checkpointing.savepoint-dir"] == "s3://ckpts/flink/jobs/wc/savepoints"
    assert conf["execution.checkpointing.interval"] == "60s"
    assert conf["high-availability.type"] == "kubernetes"
    assert conf["high-availability.storageDir"] == "s3://ckpts/flink/jobs/wc/ha"
    assert conf["s3.endpoint"] == "http://minio:9000"
    assert conf["s3.path.style.access"] == "true"
    assert not any("key" in k for k in conf)
    env = build_jobmanager_deployment(flinkjob, Restore())["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert env[-2:] == [
        {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}},
        },
        {
            "name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}},
        },
    ]


def test_user_configuration_overrides_defaults_but_not_owned_keys() -> None:
    flinkjob = job(
        spec(
            flinkConfiguration={
                "execution.checkpointing.interval": "5s",
                "metrics.reporter.prom.port": "9999",
            }
        )
    )
    conf = flink_configuration(flinkjob)
    assert conf["execution.checkpointing.interval"] == "5s"
    assert conf["metrics.reporter.prom.port"] == "9999"
    assert conf["parallelism.default"] == "2"


def test_filesystem_storage_is_used_as_written() -> None:
    raw = spec(jobManager={"replicas": 2})
    raw["checkpointStorage"] = {"checkpointDir": "file:///data/ckpt"}
    flinkjob = job(raw)
    conf = flink_configuration(flinkjob)
    assert conf["execution.checkpointing.dir"] == "file:///data/ckpt"
    assert conf["execution.checkpointing.savepoint-dir"] == "file:///data/ckpt/savepoints"
    assert conf["high-availability.type"] == "kubernetes"
    assert conf["high-availability.storageDir"] == "file:///data/ckpt/ha"


def test_stateless_single_jobmanager_has_no_high_availability() -> None:
    assert "high-availability.type" not in flink_configuration(stateless_job())


def test_taskmanagers_get_a_token_exactly_when_they_read_the_ha_configmap() -> None:
    """With HA the slots find the leading JobManager in the HA ConfigMap (found by the local
    end-to-end test: without a token they never found it)."""
    raw = spec(jobManager={"replicas": 2})
    raw["checkpointStorage"] = {"checkpointDir": "file:///data/ckpt"}
    ha_pods = build_taskmanager_deployment(job(raw))["spec"]["template"]["spec"]
    plain_pods = build_taskmanager_deployment(stateless_job())["spec"]["template"]["spec"]
    assert (
        ha_pods["automountServiceAccountToken"],
        plain_pods["automountServiceAccountToken"],
    ) == (
        True,
        False,
    )


def test_jobmanager_args_for_each_restore() -> None:
    flinkjob = job(spec(job={"allowNonRestoredState": True}))
    assert jobmanager_args(flinkjob, Restore()) == [
        "jobmanager",
        "--job-entrypoint",
        "jobs.wc:main",
        "-p",
        "2",
    ]
    assert jobmanager_args(flinkjob, Restore(last_state=True))[-2:] == [
        "--last-state",
        "--allow-non-restored-state",
    ]
    assert jobmanager_args(flinkjob, Restore(path="/sp/savepoint-1"))[-3:] == [
        "--from-savepoint",
        "/sp/savepoint-1",
        "--allow-non-restored-state",
    ]


def test_service_account_and_pull_policy_reach_the_pods() -> None:
    flinkjob = job(spec(serviceAccount="flinklet-job", imagePullPolicy="Always"))
    for manifest in build_all(flinkjob, Restore())[2:]:
        pod = manifest["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "flinklet-job"
        assert pod["containers"][0]["imagePullPolicy"] == "Always"


def test_every_object_is_owned_and_labelled() -> None:
    for manifest in build_all(stateless_job(), Restore()):
        assert manifest["metadata"]["ownerReferences"] == [OWNER]
        assert manifest["metadata"]["labels"]["flinklet.io/job"] == "wc"
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == "wc"


def test_pod_template_merges_over_the_operators() -> None:
    template = {
        "metadata": {
            "labels": {"team": "data", "app.kubernetes.io/component": "hacked"},
            "annotations": {"prometheus.io/scrape": "true"},
        },
        "spec": {
            "nodeSelector": {"pool": "flink"},
            "securityContext": {"fsGroup": 2000},
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "ckpt"}}],
            "containers": [
                {
                    "name": "flinklet-main-container",
                    "env": [{"name": "EXTRA", "value": "1"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "readinessProbe": {"httpGet": None, "exec": {"command": ["true"]}},
                },
                {"name": "sidecar", "image": "fluent-bit"},
            ],
        },
    }
    flinkjob = job(spec(jobManager={"podTemplate": template}))
    pod = build_jobmanager_deployment(flinkjob, Restore())["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "data"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "jobmanager"
    assert pod["metadata"]["annotations"] == {
        "flinklet.io/spec-generation": "1",
        "prometheus.io/scrape": "true",
    }
    assert pod["spec"]["nodeSelector"] == {"pool": "flink"}
    assert pod["spec"]["securityContext"]["fsGroup"] == 2000
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["flinklet-conf", "tmp", "data"]
    main, sidecar = pod["spec"]["containers"]
    assert main["image"] == "flinklet:1"
    assert main["env"][-1] == {"name": "EXTRA", "value": "1"}
    assert [m["name"] for m in main["volumeMounts"]] == ["flinklet-conf", "tmp", "data"]
    assert main["readinessProbe"] == {
        "initialDelaySeconds": 2,
        "periodSeconds": 5,
        "failureThreshold": 3,
        "exec": {"command": ["true"]},
    }
    assert sidecar == {"name": "sidecar", "image": "fluent-bit"}


def test_merge_replaces_unnamed_lists_and_keeps_the_base_intact() -> None:
    base = {"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c"}]}}
    merged = merge_pod_template(base, {"spec": {"tolerations": [{"key": "b"}]}})
    assert merged["spec"]["tolerations"] == [{"key": "b"}]
    assert base["spec"]["tolerations"] == [{"key": "a"}]
    assert merge_pod_template(base, None) == base


def test_generation_annotation_rolls_the_pods_on_every_new_generation() -> None:
    first = build_taskmanager_deployment(job(spec(), generation=1))
    second = build_taskmanager_deployment(job(spec(), generation=2))
    assert first["spec"]["template"]["metadata"]["annotations"] == {
        "flinklet.io/spec-generation": "1"
    }
    assert second["spec"]["template"]["metadata"]["annotations"] == {
        "flinklet.io/spec-generation": "2"
    }
