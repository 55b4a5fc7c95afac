"""What JobManager high availability keeps in Kubernetes, and how it is read and written.

``HaSettings`` is the validated configuration (cluster id, namespace, Lease timings). The
HA ConfigMap ``<cluster-id>-cluster-config-map`` holds the leader's addresses
(:class:`LeaderInfo`) and one :class:`JobRecord` per job; :class:`MetadataStore` writes
it only as the leader of a term, through a fenced compare-and-swap, and
:class:`LeaderRetriever` is how TaskManagers read who leads. ``ha.py`` is the
JobManager's side that uses them; docs/high-availability.md describes the whole.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flinklet.common.config_options import HighAvailabilityOptions as H
from flinklet.common.config_options import KubernetesConfigOptions
from flinklet.common.configuration import Configuration
from flinklet.common.job_status import JobStatus
from flinklet.errors import ClusterError, ConfigurationError
from flinklet.kubernetes import (
    ApiUnavailableError,
    ConflictError,
    FencedError,
    KubeConfig,
    KubernetesApi,
    KubernetesClient,
    KubernetesError,
    LeaderElector,
    LeaseTimings,
    NotFoundError,
)

__all__ = [
    "EPOCH_ANNOTATION",
    "LEADER_ANNOTATION",
    "HaMetadata",
    "HaSettings",
    "JobRecord",
    "LeaderInfo",
    "LeaderRetriever",
    "MetadataStore",
    "job_key",
]

log = logging.getLogger(__name__)

EPOCH_ANNOTATION = "flinklet.io/leader-epoch"
LEADER_ANNOTATION = "flinklet.io/leader"
_FLINK_FACTORY = "org.apache.flink.kubernetes.highavailability.kuberneteshaservicesfactory"
_CLUSTER_ID = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TERMINAL = {s.value for s in JobStatus if s.is_globally_terminal_state()}


@dataclass(frozen=True)
class HaSettings:
    """HA configuration, validated: the cluster id (it names Kubernetes objects and is a
    label value), the namespace and the Lease timings."""

    cluster_id: str
    namespace: str = "default"
    timings: LeaseTimings = field(default_factory=LeaseTimings)

    def __post_init__(self) -> None:
        if len(self.cluster_id) > 63 or not _CLUSTER_ID.match(self.cluster_id):
            raise ConfigurationError(
                f"high-availability.cluster-id '{self.cluster_id}' must be at most 63 lowercase "
                f"letters, digits, '-' and '.', starting and ending alphanumeric: it names the "
                f"Lease and the ConfigMap and labels them"
            )

    @property
    def lease_name(self) -> str:
        return f"{self.cluster_id}-jobmanager-leader"

    @property
    def config_map_name(self) -> str:
        return f"{self.cluster_id}-cluster-config-map"

    @classmethod
    def from_configuration(cls, conf: Configuration) -> HaSettings | None:
        """None unless ``high-availability.type`` is ``kubernetes``."""
        mode = str(conf.get(H.HA_MODE)).strip().lower()
        if mode in ("", "none"):
            return None
        if mode not in ("kubernetes", _FLINK_FACTORY):
            raise ConfigurationError(
                f"high-availability.type '{mode}' is not supported: use NONE or KUBERNETES"
            )
        # Flink's default "/default" names the cluster "default": give each cluster its own
        cluster_id = str(conf.get(H.HA_CLUSTER_ID)).strip("/")
        timings = LeaseTimings(
            conf.get(H.KUBERNETES_LEASE_DURATION) / 1000.0,
            conf.get(H.KUBERNETES_RENEW_DEADLINE) / 1000.0,
            conf.get(H.KUBERNETES_RETRY_PERIOD) / 1000.0,
        )
        namespace = str(conf.get(KubernetesConfigOptions.NAMESPACE))
        return cls(cluster_id, namespace, timings)

    def client(self) -> KubernetesClient:
        """A client whose requests end well within the renew deadline."""
        timeout = max(1.0, min(5.0, self.timings.renew_deadline_s / 2))
        return KubernetesClient(KubeConfig.load(), timeout=timeout)


# --------------------------------------------------------------------------- the records


@dataclass(frozen=True)
class LeaderInfo:
    """Where the leading JobManager serves, and in which term."""

    identity: str
    epoch: int
    rpc_address: str  # host:port
    rest_address: str  # http://host:port

    @property
    def rpc(self) -> tuple[str, int]:
        host, _, port = self.rpc_address.rpartition(":")
        return host.strip("[]"), int(port)

    def to_json(self) -> str:
        return json.dumps(
            {
                "identity": self.identity,
                "epoch": self.epoch,
                "rpcAddress": self.rpc_address,
                "restAddress": self.rest_address,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> LeaderInfo:
        d = json.loads(raw)
        return cls(str(d["identity"]), int(d["epoch"]), str(d["rpcAddress"]), str(d["restAddress"]))


@dataclass(frozen=True)
class JobRecord:
    """What a new leader needs to resume one job."""

    job_id: str
    job_name: str
    entrypoint: str
    args: tuple[str, ...] = ()
    parallelism: int | None = None
    initial_savepoint: str | None = None
    allow_non_restored_state: bool = False
    status: str = JobStatus.RUNNING.value
    checkpoint_id: int | None = None
    checkpoint_pointer: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in _TERMINAL

    def to_json(self) -> str:
        checkpoint = None
        if self.checkpoint_pointer is not None:
            checkpoint = {"id": self.checkpoint_id, "pointer": self.checkpoint_pointer}
        return json.dumps(
            {
                "jobId": self.job_id,
                "jobName": self.job_name,
                "entrypoint": self.entrypoint,
                "args": list(self.args),
                "parallelism": self.parallelism,
                "initialSavepoint": self.initial_savepoint,
                "allowNonRestoredState": self.allow_non_restored_state,
                "status": self.status,
                "checkpoint": checkpoint,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> JobRecord:
        d = json.loads(raw)
        checkpoint = d.get("checkpoint") or {}
        return cls(
            job_id=str(d["jobId"]),
            job_name=str(d.get("jobName", "")),
            entrypoint=str(d.get("entrypoint", "")),
            args=tuple(str(a) for a in d.get("args") or ()),
            parallelism=d.get("parallelism"),
            initial_savepoint=d.get("initialSavepoint"),
            allow_non_restored_state=bool(d.get("allowNonRestoredState", False)),
            status=str(d.get("status", JobStatus.RUNNING.value)),
            checkpoint_id=checkpoint.get("id"),
            checkpoint_pointer=checkpoint.get("pointer"),
        )


def job_key(job_id: str) -> str:
    return f"job-{job_id}"


@dataclass(frozen=True)
class HaMetadata:
    """The ConfigMap, read: the leader, the jobs, and the term of its last writer."""

    leader: LeaderInfo | None = None
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    epoch: int | None = None


class MetadataStore:
    """Reads the HA ConfigMap; writes it only through fenced compare-and-swap."""

    def __init__(self, client: KubernetesApi, namespace: str, name: str, cluster_id: str) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.cluster_id = cluster_id
        self._lock = threading.Lock()

    def read(self) -> HaMetadata:
        try:
            cm = self.client.get_config_map(self.namespace, self.name)
        except NotFoundError:
            return HaMetadata()
        return _parse(cm)

    def update(
        self, elector: LeaderElector, epoch: int, change: Callable[[dict[str, str]], None]
    ) -> None:
        """Apply ``change`` to the ConfigMap's data as the leader of term ``epoch``.
        Raises :class:`FencedError` if this process no longer leads in that term (or a
        newer term wrote the ConfigMap), :class:`KubernetesError` if the API failed.
        ``change`` must be idempotent: a write whose answer was lost is made again."""
        with self._lock:
            for attempt in range(8):
                try:
                    self._update_once(elector, epoch, change)
                    return
                except ConflictError:
                    continue  # written meanwhile: read it again (and check the fence again)
                except ApiUnavailableError:
                    if attempt >= 3:
                        raise
                    time.sleep(0.1 * (attempt + 1))
            raise ClusterError(
                f"the HA ConfigMap {self.namespace}/{self.name} kept changing under 8 attempts "
                f"to update it"
            )

    def _update_once(
        self, elector: LeaderElector, epoch: int, change: Callable[[dict[str, str]], None]
    ) -> None:
        elector.check_fence(epoch)
        cm: dict[str, Any] | None
        try:
            cm = self.client.get_config_map(self.namespace, self.name)
        except NotFoundError:
            cm = None
        meta = dict((cm or {}).get("metadata") or {})
        annotations = dict(meta.get("annotations") or {})
        written = int(annotations.get(EPOCH_ANNOTATION, "-1"))
        if written > epoch:
            raise FencedError(
                f"the HA ConfigMap {self.namespace}/{self.name} was written in term "
                f"{written}, after this leader's term {epoch}: a newer leader exists",
                written,
                annotations.get(LEADER_ANNOTATION),
            )
        data = dict((cm or {}).get("data") or {})
        change(data)
        annotations[EPOCH_ANNOTATION] = str(epoch)
        annotations[LEADER_ANNOTATION] = elector.identity
        meta.update(
            name=self.name,
            namespace=self.namespace,
            annotations=annotations,
            labels={
                **(meta.get("labels") or {}),
                "app.kubernetes.io/name": "flinklet",
                "flinklet.io/cluster-id": self.cluster_id,
                "flinklet.io/config-map-type": "high-availability",
            },
        )
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
        if cm is None:
            self.client.create_config_map(self.namespace, body)
        else:  # carries the resourceVersion read above: a compare-and-swap
            self.client.replace_config_map(self.namespace, self.name, body)


def _parse(cm: dict[str, Any]) -> HaMetadata:
    data = cm.get("data") or {}
    annotations = (cm.get("metadata") or {}).get("annotations") or {}
    leader = None
    if data.get("leader"):
        try:
            leader = LeaderInfo.from_json(data["leader"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed leader entry in the HA ConfigMap: %s", exc)
    jobs: dict[str, JobRecord] = {}
    for key, raw in data.items():
        if key.startswith("job-"):
            try:
                record = JobRecord.from_json(raw)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring malformed HA job record %s: %s", key, exc)
                continue
            jobs[record.job_id] = record
    epoch = annotations.get(EPOCH_ANNOTATION)
    return HaMetadata(leader, jobs, int(epoch) if epoch is not None else None)


class LeaderRetriever:
    """How TaskManagers find the leading JobManager: the ``leader`` entry of the HA
    ConfigMap (read only)."""

    def __init__(self, settings: HaSettings, client: KubernetesApi | None = None) -> None:
        self.settings = settings
        self.client = client or settings.client()
        self.store = MetadataStore(
            self.client, settings.namespace, settings.config_map_name, settings.cluster_id
        )

    def current(self) -> LeaderInfo | None:
        """The recorded leader; None if none is recorded or the API is unreachable."""
        try:
            return self.store.read().leader
        except KubernetesError as exc:
            log.warning("cannot read the JobManager leader: %s", exc)
            return None

    def wait(self, stop: threading.Event, poll_s: float | None = None) -> LeaderInfo | None:
        """Poll until a leader is recorded (None if ``stop`` is set first)."""
        poll = poll_s or self.settings.timings.retry_period_s
        while not stop.is_set():
            leader = self.current()
            if leader is not None:
                return leader
            stop.wait(poll)
        return None
