"""The FlinkJob resource as typed Python: its spec and status, parsed from the body.

The CRD (``crds/flinkjob.yaml``) rejects most bad manifests at the API server; these models
check the same rules again (the operator may run against an older CRD, and unit tests build
specs directly) and turn pydantic's errors into lines that name the field and say what to
write instead. Field names are the CRD's camelCase on the wire and snake_case in Python.

>>> job = FlinkJob.from_body({
...     "metadata": {"name": "wc", "namespace": "jobs", "uid": "u1", "generation": 1},
...     "spec": {"image": "flinklet:0.1", "job": {"entrypoint": "examples.word_count:main"}},
... })
>>> (job.spec.job.parallelism, job.spec.job.upgrade_mode, job.status.lifecycle_state)
(1, 'stateless', 'CREATED')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from flinklet_operator.errors import InvalidSpecError

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "CheckpointRef",
    "CheckpointStorage",
    "Condition",
    "CredentialsSecret",
    "Deadlines",
    "FlinkJob",
    "FlinkJobSpec",
    "FlinkJobStatus",
    "JobManagerSpec",
    "JobSpec",
    "JobStatus",
    "LifecycleState",
    "PendingTrigger",
    "Reconciliation",
    "Resources",
    "Retention",
    "S3Storage",
    "Savepoint",
    "SavepointInfo",
    "SavepointsSpec",
    "TaskManagerSpec",
    "format_time",
    "parse_duration",
    "parse_time",
]

GROUP = "flinklet.io"
VERSION = "v1alpha1"
KIND = "FlinkJob"
PLURAL = "flinkjobs"
API_VERSION = f"{GROUP}/{VERSION}"

UpgradeMode = Literal["stateless", "savepoint", "last-state"]
DesiredState = Literal["running", "suspended"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
LifecycleState = Literal[
    "CREATED", "DEPLOYED", "STABLE", "UPGRADING", "SUSPENDED", "FAILED", "DELETING"
]
LIFECYCLE_STATES: tuple[LifecycleState, ...] = (
    "CREATED",
    "DEPLOYED",
    "STABLE",
    "UPGRADING",
    "SUSPENDED",
    "FAILED",
    "DELETING",
)
#: What a savepoint was taken for (Flink's SnapshotTriggerType, plus DELETION).
SavepointType = Literal["MANUAL", "PERIODIC", "UPGRADE", "DELETION"]
#: The operator's intermediate phases; each one has a deadline.
Phase = Literal["Deploying", "Cancelling", "StoppingWithSavepoint", "Deleting"]
#: Why the current phase was started (events and lifecycle naming).
Purpose = Literal["create", "upgrade", "rescale", "suspend", "resume", "recover", "delete"]

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
ENTRYPOINT_PATTERN = rf"^({_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}|\S+\.py)$"
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"

#: flinkConfiguration keys the operator owns, and where to set them instead.
RESERVED_KEYS: dict[str, str] = {
    "taskmanager.numberOfTaskSlots": "set spec.taskManager.slots instead",
    "parallelism.default": "set spec.job.parallelism instead",
    "jobmanager.rpc.address": "the operator points it at the JobManager Service",
    "jobmanager.rpc.port": "the operator fixes it at 6123 (the Service's rpc port)",
    "rest.port": "the operator fixes it at 8081 (the Service's rest port and the probes)",
    "kubernetes.namespace": "the operator sets the FlinkJob's namespace",
    "high-availability.cluster-id": "the operator sets the FlinkJob's name",
}

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")


def parse_duration(text: str) -> timedelta:
    """A duration such as ``30s``, ``10m``, ``1h30m``, ``500ms`` or ``2d``.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"must be a duration such as 30s, 10m, 1h30m or 2d, got {text!r}")
    seconds = sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, second precision (Kubernetes' own format)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time` (also accepts offsets and fractions)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_entrypoint(text: str) -> str:
    if not re.fullmatch(ENTRYPOINT_PATTERN, text):
        raise ValueError(f"must be 'package.module:function' or a path to a .py file, got {text!r}")
    return text


def _quantity(value: object) -> object:
    if isinstance(value, bool):
        return value  # rejected by the str type below
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_quantity(text: str) -> str:
    if not re.fullmatch(QUANTITY_PATTERN, text):
        raise ValueError(f"must be a Kubernetes quantity such as 500m, 2, 1Gi, got {text!r}")
    return text


def _check_bucket(text: str) -> str:
    if not re.fullmatch(BUCKET_PATTERN, text):
        raise ValueError(
            f"must be an S3 bucket name (3-63 lowercase letters, digits, '.' or '-'), got {text!r}"
        )
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]
Entrypoint = Annotated[str, AfterValidator(_check_entrypoint)]
Quantity = Annotated[str, BeforeValidator(_quantity), AfterValidator(_check_quantity)]
Bucket = Annotated[str, AfterValidator(_check_bucket)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )


class _StatusModel(_Model):
    model_config = ConfigDict(extra="ignore")


# --------------------------------------------------------------------------- spec


class Resources(_Model):
    """CPU and memory of one pod (requests = limits)."""

    cpu: Quantity = "1"
    memory: Quantity = "1Gi"


class JobSpec(_Model):
    """What runs, how wide, and how its state moves across upgrades."""

    entrypoint: Entrypoint
    args: list[str] = Field(default_factory=list)
    parallelism: int = Field(default=1, ge=1)
    upgrade_mode: UpgradeMode = "stateless"
    state: DesiredState = "running"
    initial_savepoint_path: NonEmpty | None = None
    allow_non_restored_state: bool = False
    savepoint_trigger_nonce: int | None = None
    restart_nonce: int | None = None
    savepoint_on_deletion: bool = False


class JobManagerSpec(_Model):
    replicas: int = Field(default=1, ge=1)
    resources: Resources = Field(default_factory=lambda: Resources(cpu="500m", memory="1Gi"))
    pod_template: dict[str, Any] | None = None


class TaskManagerSpec(_Model):
    slots: int = Field(default=1, ge=1)
    resources: Resources = Field(default_factory=lambda: Resources(cpu="1", memory="2Gi"))
    pod_template: dict[str, Any] | None = None


class CredentialsSecret(_Model):
    """A Secret in the FlinkJob's namespace holding the S3 access key and secret key."""

    name: NonEmpty
    access_key_key: NonEmpty = "AWS_ACCESS_KEY_ID"
    secret_key_key: NonEmpty = "AWS_SECRET_ACCESS_KEY"


class S3Storage(_Model):
    bucket: Bucket
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    path_style_access: bool = False
    credentials_secret: CredentialsSecret | None = None


class CheckpointStorage(_Model):
    """Either ``s3`` (per-job directories are made under bucket/prefix) or a filesystem
    ``checkpointDir`` (+ optional ``savepointDir``) used exactly as written."""

    s3: S3Storage | None = None
    checkpoint_dir: NonEmpty | None = None
    savepoint_dir: NonEmpty | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CheckpointStorage:
        if self.s3 is not None and (self.checkpoint_dir or self.savepoint_dir):
            raise ValueError("set either s3 or checkpointDir/savepointDir, not both")
        if self.s3 is None and self.checkpoint_dir is None:
            raise ValueError("set s3 (bucket, prefix, ...) or checkpointDir")
        return self


class Retention(_Model):
    """How many savepoints (and how old) to keep; older ones are disposed of."""

    max_count: int = Field(default=10, ge=1, le=100)
    max_age: Duration | None = None


class SavepointsSpec(_Model):
    periodic_interval: Duration | None = None
    retention: Retention = Field(default_factory=Retention)


class Deadlines(_Model):
    """How long each intermediate phase may take before the FlinkJob goes FAILED."""

    deploy: Duration = "5m"
    savepoint: Duration = "10m"
    stop: Duration = "10m"
    cancel: Duration = "2m"
    deletion: Duration = "5m"

    def of(self, which: str) -> timedelta:
        value: str = getattr(self, which)
        return parse_duration(value)


class FlinkJobSpec(_Model):
    image: NonEmpty
    image_pull_policy: PullPolicy = "IfNotPresent"
    service_account: NonEmpty | None = None
    job: JobSpec
    job_manager: JobManagerSpec = Field(default_factory=JobManagerSpec)
    task_manager: TaskManagerSpec = Field(default_factory=TaskManagerSpec)
    flink_configuration: dict[str, str] = Field(default_factory=dict)
    checkpoint_storage: CheckpointStorage | None = None
    savepoints: SavepointsSpec = Field(default_factory=SavepointsSpec)
    deadlines: Deadlines = Field(default_factory=Deadlines)

    @model_validator(mode="after")
    def _consistent(self) -> FlinkJobSpec:
        problems = [
            f"flinkConfiguration[{key!r}] is managed by the operator: {hint}"
            for key, hint in RESERVED_KEYS.items()
            if key in self.flink_configuration
        ]
        conf = self.flink_configuration
        has_checkpoints = self.checkpoint_storage is not None or (
            "execution.checkpointing.dir" in conf
        )
        has_savepoints = self.checkpoint_storage is not None or (
            "execution.checkpointing.savepoint-dir" in conf
        )
        mode = self.job.upgrade_mode
        if mode == "last-state" and not has_checkpoints:
            problems.append(
                "job.upgradeMode 'last-state' restores from checkpoints: set checkpointStorage "
                "(or flinkConfiguration['execution.checkpointing.dir'])"
            )
        if mode == "savepoint" and not has_savepoints:
            problems.append(
                "job.upgradeMode 'savepoint' needs somewhere to write savepoints: set "
                "checkpointStorage (or flinkConfiguration['execution.checkpointing.savepoint-dir'])"
            )
        if self.job.savepoint_on_deletion and not has_savepoints:
            problems.append(
                "job.savepointOnDeletion needs somewhere to write savepoints: set checkpointStorage"
            )
        if self.savepoints.periodic_interval is not None and not has_savepoints:
            problems.append(
                "savepoints.periodicInterval needs somewhere to write savepoints: set "
                "checkpointStorage"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ------------------------------------------------------------------ storage layout
    def job_base_uri(self, namespace: str, name: str) -> str | None:
        """``s3://bucket/prefix/<namespace>/<name>`` for S3 storage, else ``None``."""
        storage = self.checkpoint_storage
        if storage is None or storage.s3 is None:
            return None
        parts = [p for p in (storage.s3.prefix.strip("/"), namespace, name) if p]
        return f"s3://{storage.s3.bucket}/" + "/".join(parts)

    def checkpoint_dir(self, namespace: str, name: str) -> str | None:
        base = self.job_base_uri(namespace, name)
        if base is not None:
            return f"{base}/checkpoints"
        if self.checkpoint_storage is not None:
            return self.checkpoint_storage.checkpoint_dir
        return self.flink_configuration.get("execution.checkpointing.dir")

    def savepoint_dir(self, namespace: str, name: str) -> str | None:
        base = self.job_base_uri(namespace, name)
        if base is not None:
            return f"{base}/savepoints"
        storage = self.checkpoint_storage
        if storage is not None and storage.checkpoint_dir is not None:
            return storage.savepoint_dir or storage.checkpoint_dir.rstrip("/") + "/savepoints"
        return self.flink_configuration.get("execution.checkpointing.savepoint-dir")

    def ha_dir(self, namespace: str, name: str) -> str | None:
        base = self.job_base_uri(namespace, name)
        if base is not None:
            return f"{base}/ha"
        checkpoints = self.checkpoint_dir(namespace, name)
        return None if checkpoints is None else checkpoints.rstrip("/") + "/ha"

    def taskmanager_replicas(self) -> int:
        """Enough TaskManagers for the job's slots: ceil(parallelism / slots)."""
        return -(-self.job.parallelism // self.task_manager.slots)


# --------------------------------------------------------------------------- status


class CheckpointRef(_StatusModel):
    path: str
    timestamp: str | None = None


class JobStatus(_StatusModel):
    """The job as the JobManager last reported it."""

    job_id: str | None = None
    job_name: str | None = None
    state: str | None = None
    start_time: str | None = None
    parallelism: int | None = None
    last_checkpoint: CheckpointRef | None = None


class Savepoint(_StatusModel):
    location: str
    timestamp: str
    type: SavepointType
    trigger_nonce: int | None = None


class PendingTrigger(_StatusModel):
    """A savepoint (``kind: savepoint``) or stop-with-savepoint (``kind: stop``) in flight.

    ``trigger_id`` is ``None`` until the JobManager accepted the request."""

    type: SavepointType
    kind: Literal["savepoint", "stop"]
    trigger_id: str | None = None
    triggered_at: str
    deadline: str
    nonce: int | None = None
    job_id: str | None = None


class SavepointInfo(_StatusModel):
    last_savepoint: Savepoint | None = None
    pending_trigger: PendingTrigger | None = None
    last_trigger_nonce: int | None = None
    last_periodic_savepoint_time: str | None = None
    history: list[Savepoint] = Field(default_factory=list)


class Condition(_StatusModel):
    type: Literal["Ready", "Progressing", "Degraded"]
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class Reconciliation(_StatusModel):
    """The operator's memory between rounds: what it last deployed and where it is."""

    last_reconciled_spec: str | None = None
    last_reconciled_generation: int | None = None
    phase: Phase | None = None
    purpose: Purpose | None = None
    phase_started_at: str | None = None
    phase_deadline: str | None = None
    restore_path: str | None = None
    restore_last_state: bool = False
    failed_generation: int | None = None
    failure_reason: str | None = None
    stable_since: str | None = None


class FlinkJobStatus(_StatusModel):
    lifecycle_state: LifecycleState = "CREATED"
    job_status: JobStatus = Field(default_factory=JobStatus)
    savepoint_info: SavepointInfo = Field(default_factory=SavepointInfo)
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    error: str | None = None
    selector: str | None = None
    reconciliation: Reconciliation = Field(default_factory=Reconciliation)

    def to_body(self) -> dict[str, Any]:
        """The status as it is written to the resource (camelCase, no nulls)."""
        body: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return body


# --------------------------------------------------------------------------- the resource


def _describe(exc: ValidationError, root: str) -> list[str]:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in (root, *error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a FlinkJob field (check the spelling against crds/flinkjob.yaml)"
        elif error["type"] in ("literal_error", "greater_than_equal", "less_than_equal"):
            message = f"{message} (got {error['input']!r})"
        lines.append(f"{where}: {message}")
    return lines


def parse_spec(raw: dict[str, Any]) -> FlinkJobSpec:
    """Validate a spec dict; raises :class:`InvalidSpecError` with one line per problem.

    >>> parse_spec({"image": "x", "job": {"entrypoint": "a:b", "parallelism": 0}})
    Traceback (most recent call last):
    ...
    flinklet_operator.errors.InvalidSpecError: invalid FlinkJob spec: spec.job.parallelism: \
Input should be greater than or equal to 1 (got 0)
    """
    try:
        return FlinkJobSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSpecError(_describe(exc, "spec")) from exc


def parse_status(raw: dict[str, Any] | None) -> FlinkJobStatus:
    """The status as stored; a damaged status is treated as empty rather than fatal."""
    try:
        return FlinkJobStatus.model_validate(raw or {})
    except ValidationError:
        return FlinkJobStatus()


@dataclass(frozen=True)
class FlinkJob:
    """One FlinkJob resource: identity, validated spec and current status."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: FlinkJobSpec
    status: FlinkJobStatus
    deleting: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> FlinkJob:
        metadata = body.get("metadata") or {}
        return cls(
            name=str(metadata.get("name", "")),
            namespace=str(metadata.get("namespace", "")),
            uid=str(metadata.get("uid", "")),
            generation=int(metadata.get("generation") or 1),
            spec=parse_spec(body.get("spec") or {}),
            status=parse_status(body.get("status")),
            deleting=bool(metadata.get("deletionTimestamp")),
        )

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def object_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
        }
