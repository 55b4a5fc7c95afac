"""Pure builders: a FlinkJob (+ where to restore from) -> the Kubernetes objects that run it.

Every function returns plain dicts, ready for server-side apply, and never calls the API,
so the exact manifests are unit-tested without a cluster. Four objects per FlinkJob, all
owned by it (the garbage collector deletes them with it) and labelled alike:

=====================  ==========================  ==========================================
object                 name                        what
=====================  ==========================  ==========================================
ConfigMap              ``<name>-config``           ``flinklet-conf.yaml`` (flat Flink keys)
Service                ``<name>-rest``             rest 8081 + rpc 6123 of the JobManager
Deployment             ``<name>-jobmanager``       ``flinklet jobmanager --job-entrypoint ...``
Deployment             ``<name>-taskmanager``      ``flinklet taskmanager``, ceil(p / slots) pods
=====================  ==========================  ==========================================

>>> from flinklet_operator.models import FlinkJob
>>> job = FlinkJob.from_body({"metadata": {"name": "wc", "namespace": "ns", "uid": "u"},
...     "spec": {"image": "img", "job": {"entrypoint": "jobs:main", "parallelism": 3},
...              "taskManager": {"slots": 2}}})
>>> [m["metadata"]["name"] for m in build_all(job, Restore())]
['wc-config', 'wc-rest', 'wc-jobmanager', 'wc-taskmanager']
>>> build_taskmanager_deployment(job)["spec"]["replicas"]
2
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from flinklet_operator.models import FlinkJob

__all__ = [
    "CONF_DIR",
    "CONF_FILE",
    "MAIN_CONTAINER",
    "METRICS_PORT",
    "REST_PORT",
    "RPC_PORT",
    "Names",
    "Restore",
    "build_all",
    "build_config_map",
    "build_jobmanager_deployment",
    "build_service",
    "build_taskmanager_deployment",
    "flink_configuration",
    "jobmanager_args",
    "labels",
    "merge_pod_template",
    "names",
    "rest_url",
    "selector",
]

RPC_PORT = 6123
REST_PORT = 8081
METRICS_PORT = 9249
CONF_DIR = "/opt/flinklet/conf"
CONF_FILE = "flinklet-conf.yaml"
#: The container a podTemplate's container of the same name is merged into (as in Flink).
MAIN_CONTAINER = "flinklet-main-container"
RUN_AS = 9999
DEFAULT_CHECKPOINT_INTERVAL = "60s"
GENERATION_ANNOTATION = "flinklet.io/spec-generation"
MANAGED_BY = "flinklet-operator"


@dataclass(frozen=True)
class Names:
    config_map: str
    service: str
    jobmanager: str
    taskmanager: str


@dataclass(frozen=True)
class Restore:
    """Where a (re)deployed job starts from: a savepoint/checkpoint ``path``, or
    ``last_state`` (the runtime finds the latest completed checkpoint itself), or neither
    (empty state)."""

    path: str | None = None
    last_state: bool = False


def names(name: str) -> Names:
    return Names(
        config_map=f"{name}-config",
        service=f"{name}-rest",
        jobmanager=f"{name}-jobmanager",
        taskmanager=f"{name}-taskmanager",
    )


def labels(name: str, component: str | None = None) -> dict[str, str]:
    """The labels every object of FlinkJob ``name`` carries (selector labels first)."""
    result = {"app.kubernetes.io/name": "flinklet", "app.kubernetes.io/instance": name}
    if component is not None:
        result["app.kubernetes.io/component"] = component
    result["app.kubernetes.io/managed-by"] = MANAGED_BY
    result["flinklet.io/job"] = name
    return result


def _selector_labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "flinklet",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
    }


def selector(name: str, component: str) -> str:
    """A label selector string for one component's pods (the scale subresource's)."""
    return ",".join(f"{k}={v}" for k, v in _selector_labels(name, component).items())


def rest_url(name: str, namespace: str) -> str:
    """The JobManager REST endpoint in the cluster (the Service's DNS name)."""
    return f"http://{names(name).service}.{namespace}:{REST_PORT}"


def _jobmanager_address(job: FlinkJob) -> str:
    return f"{names(job.name).service}.{job.namespace}"


def _metadata(job: FlinkJob, name: str, component: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": job.namespace,
        "labels": labels(job.name, component),
        "ownerReferences": [job.owner_reference()],
    }


# --------------------------------------------------------------------------- configuration


def high_availability(job: FlinkJob) -> bool:
    """Kubernetes HA is on with standby JobManagers or the last-state upgrade mode (which
    needs the HA ConfigMap's checkpoint pointer), given somewhere to store its metadata."""
    spec = job.spec
    return spec.ha_dir(job.namespace, job.name) is not None and (
        spec.job_manager.replicas > 1 or spec.job.upgrade_mode == "last-state"
    )


def flink_configuration(job: FlinkJob) -> dict[str, str]:
    """The flat Flink configuration the JobManager and TaskManagers read.

    Precedence: operator defaults < ``spec.flinkConfiguration`` < keys the operator owns
    (addresses, ports, slots, parallelism, namespace, cluster id, storage directories)."""
    spec, ns, name = job.spec, job.namespace, job.name
    checkpoint_dir = spec.checkpoint_dir(ns, name)
    savepoint_dir = spec.savepoint_dir(ns, name)
    conf: dict[str, str] = {
        "rest.bind-address": "0.0.0.0",
        # TaskManagers in other pods register over RPC: listen on the pod's address
        "jobmanager.bind-host": "0.0.0.0",
        "metrics.reporter.prom.port": str(METRICS_PORT),
    }
    if checkpoint_dir is not None:
        conf["execution.checkpointing.interval"] = DEFAULT_CHECKPOINT_INTERVAL
    ha_dir = spec.ha_dir(ns, name)
    if ha_dir is not None and high_availability(job):
        conf["high-availability.type"] = "kubernetes"
        conf["high-availability.storageDir"] = ha_dir
    conf.update(spec.flink_configuration)
    address = _jobmanager_address(job)
    conf.update(
        {
            "jobmanager.rpc.address": address,
            "jobmanager.rpc.port": str(RPC_PORT),
            "rest.address": address,
            "rest.port": str(REST_PORT),
            "taskmanager.numberOfTaskSlots": str(spec.task_manager.slots),
            "parallelism.default": str(spec.job.parallelism),
            "kubernetes.namespace": ns,
            "kubernetes.cluster-id": name,
            "high-availability.cluster-id": name,
            # The JobManager must keep answering after the job finished (a stop-with-
            # savepoint's result is read from it), as in the Flink Kubernetes Operator.
            "execution.shutdown-on-application-finish": "false",
        }
    )
    storage = spec.checkpoint_storage
    if storage is not None:
        if checkpoint_dir is not None:
            conf["execution.checkpointing.dir"] = checkpoint_dir
        if savepoint_dir is not None:
            conf["execution.checkpointing.savepoint-dir"] = savepoint_dir
        if storage.s3 is not None:
            if storage.s3.endpoint:
                conf["s3.endpoint"] = storage.s3.endpoint
            if storage.s3.region:
                conf["s3.region"] = storage.s3.region
            conf["s3.path.style.access"] = "true" if storage.s3.path_style_access else "false"
    return dict(sorted(conf.items()))


def build_config_map(job: FlinkJob) -> dict[str, Any]:
    text = yaml.safe_dump(flink_configuration(job), sort_keys=True, default_flow_style=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(job, names(job.name).config_map, None),
        "data": {CONF_FILE: text},
    }


# --------------------------------------------------------------------------- pods


def merge_pod_template(base: dict[str, Any], overlay: dict[str, Any] | None) -> dict[str, Any]:
    """Merge a user's ``podTemplate`` over the operator's pod template.

    JSON-merge-patch semantics (RFC 7386: dicts merge recursively, the overlay's scalars win,
    ``null`` deletes a key), except that lists of named items (``containers``, ``env``,
    ``volumes``, ``volumeMounts``, ``ports``, ...) merge item by item on ``name``.

    >>> merge_pod_template(
    ...     {"spec": {"containers": [{"name": "c", "image": "a", "env": [{"name": "X"}]}]}},
    ...     {"spec": {"containers": [{"name": "c", "env": [{"name": "Y", "value": "1"}]},
    ...                              {"name": "sidecar", "image": "s"}]}})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'spec': {'containers': [{'name': 'c', 'image': 'a',
                              'env': [{'name': 'X'}, {'name': 'Y', 'value': '1'}]},
                             {'name': 'sidecar', 'image': 's'}]}}
    """
    merged = _merge(base, overlay or {})
    return merged if isinstance(merged, dict) else {}


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def _merge(base: Any, overlay: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return copy.deepcopy(overlay)
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif (
            isinstance(out.get(key), list)
            and isinstance(value, list)
            and _named(out[key])
            and _named(value)
        ):
            by_name = {item["name"]: item for item in out[key]}
            merged_items = []
            for item in out[key]:
                match = next((v for v in value if v["name"] == item["name"]), None)
                merged_items.append(item if match is None else _merge(item, match))
            merged_items += [copy.deepcopy(v) for v in value if v["name"] not in by_name]
            out[key] = merged_items
        elif key in out:
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env(job: FlinkJob) -> list[dict[str, Any]]:
    def field(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    env: list[dict[str, Any]] = [
        {"name": "FLINKLET_CONF_DIR", "value": CONF_DIR},
        {"name": "FLINKLET_JOBMANAGER_ADDRESS", "value": _jobmanager_address(job)},
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        field("POD_IP", "status.podIP"),
    ]
    storage = job.spec.checkpoint_storage
    secret = storage.s3.credentials_secret if storage and storage.s3 else None
    if secret is not None:
        for var, key in (
            ("AWS_ACCESS_KEY_ID", secret.access_key_key),
            ("AWS_SECRET_ACCESS_KEY", secret.secret_key_key),
        ):
            env.append(
                {"name": var, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": key}}}
            )
    return env


def jobmanager_args(job: FlinkJob, restore: Restore) -> list[str]:
    """``flinklet``'s arguments for the application-mode JobManager of ``job``.

    >>> from flinklet_operator.models import FlinkJob
    >>> job = FlinkJob.from_body({"metadata": {"name": "a"}, "spec": {"image": "i",
    ...     "job": {"entrypoint": "m:f", "args": ["--in", "x"], "parallelism": 2}}})
    >>> jobmanager_args(job, Restore(path="s3://b/sp-1"))
    ['jobmanager', '--job-entrypoint', 'm:f', '-p', '2', '--from-savepoint', 's3://b/sp-1', \
'--job-args', '--in', 'x']
    """
    spec = job.spec.job
    args = ["jobmanager", "--job-entrypoint", spec.entrypoint, "-p", str(spec.parallelism)]
    if restore.path is not None:
        args += ["--from-savepoint", restore.path]
    elif restore.last_state:
        args.append("--last-state")
    if spec.allow_non_restored_state and (restore.path is not None or restore.last_state):
        args.append("--allow-non-restored-state")
    if spec.args:
        args += ["--job-args", *spec.args]
    return args


def _pod_template(
    job: FlinkJob,
    component: str,
    container: dict[str, Any],
    overlay: dict[str, Any] | None,
    *,
    service_account_token: bool,
) -> dict[str, Any]:
    spec = job.spec
    pod_spec: dict[str, Any] = {
        "securityContext": _pod_security(),
        "automountServiceAccountToken": service_account_token,
        "containers": [container],
        "volumes": [
            {"name": "flinklet-conf", "configMap": {"name": names(job.name).config_map}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if spec.service_account is not None:
        pod_spec["serviceAccountName"] = spec.service_account
    base = {
        "metadata": {
            "labels": labels(job.name, component),
            "annotations": {GENERATION_ANNOTATION: str(job.generation)},
        },
        "spec": pod_spec,
    }
    merged = merge_pod_template(base, overlay)
    # The selector labels are the Deployment's identity: a template must not change them.
    merged.setdefault("metadata", {}).setdefault("labels", {}).update(labels(job.name, component))
    return merged


def _container(
    job: FlinkJob, args: list[str], ports: list[dict[str, Any]], cpu: str, memory: str
) -> dict[str, Any]:
    return {
        "name": MAIN_CONTAINER,
        "image": job.spec.image,
        "imagePullPolicy": job.spec.image_pull_policy,
        "command": ["flinklet"],
        "args": args,
        "env": _env(job),
        "ports": ports,
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory},
        },
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "flinklet-conf", "mountPath": CONF_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _deployment(
    job: FlinkJob, name: str, component: str, replicas: int, template: dict[str, Any]
) -> dict[str, Any]:
    metadata = _metadata(job, name, component)
    metadata["annotations"] = {GENERATION_ANNOTATION: str(job.generation)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": _selector_labels(job.name, component)},
            # Never two JobManagers (or two generations of TaskManagers) at once.
            "strategy": {"type": "Recreate"},
            "template": template,
        },
    }


def build_jobmanager_deployment(job: FlinkJob, restore: Restore) -> dict[str, Any]:
    jm = job.spec.job_manager
    ports = [
        {"name": "rpc", "containerPort": RPC_PORT, "protocol": "TCP"},
        {"name": "rest", "containerPort": REST_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    ]
    container = _container(
        job, jobmanager_args(job, restore), ports, jm.resources.cpu, jm.resources.memory
    )
    container["readinessProbe"] = {
        "httpGet": {"path": "/readyz", "port": "rest"},
        "initialDelaySeconds": 2,
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    container["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "rest"},
        "initialDelaySeconds": 15,
        "periodSeconds": 10,
        "failureThreshold": 6,
    }
    template = _pod_template(
        job, "jobmanager", container, jm.pod_template, service_account_token=True
    )
    return _deployment(job, names(job.name).jobmanager, "jobmanager", jm.replicas, template)


def build_taskmanager_deployment(job: FlinkJob) -> dict[str, Any]:
    tm = job.spec.task_manager
    ports = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    container = _container(job, ["taskmanager"], ports, tm.resources.cpu, tm.resources.memory)
    # With HA the slots find the leading JobManager in the HA ConfigMap: they need a token.
    template = _pod_template(
        job,
        "taskmanager",
        container,
        tm.pod_template,
        service_account_token=high_availability(job),
    )
    return _deployment(
        job, names(job.name).taskmanager, "taskmanager", job.spec.taskmanager_replicas(), template
    )


def build_service(job: FlinkJob) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(job, names(job.name).service, "jobmanager"),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector_labels(job.name, "jobmanager"),
            "ports": [
                {"name": "rest", "port": REST_PORT, "targetPort": "rest", "protocol": "TCP"},
                {"name": "rpc", "port": RPC_PORT, "targetPort": "rpc", "protocol": "TCP"},
            ],
        },
    }


def build_all(job: FlinkJob, restore: Restore) -> list[dict[str, Any]]:
    """Everything that runs ``job``, in apply order (configuration before the pods)."""
    return [
        build_config_map(job),
        build_service(job),
        build_jobmanager_deployment(job, restore),
        build_taskmanager_deployment(job),
    ]
