"""In-memory stand-ins for the operator's external systems, for tests (like kopf.testing).

- :class:`InMemoryKube` implements :class:`~flinklet_operator.k8s.KubeApi`: objects in a
  dict, server-side apply as replace-but-keep-status, merge-patched status, events kept in
  a list, injectable failures;
- :class:`InMemoryJobManager` implements :class:`~flinklet_operator.jobmanager.JobManagerApi`:
  jobs, checkpoints and savepoint operations you script from the test;
- :class:`~flinklet_operator.storage.InMemorySavepointStore` (in ``storage``) for disposal.

>>> kube = InMemoryKube()
>>> kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
...             "metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "v"}})
>>> kube.get("v1", "ConfigMap", "ns", "c")["data"]
{'k': 'v'}
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from typing import Any

from flinklet_operator.errors import (
    JobManagerRequestError,
    JobManagerUnavailableError,
    KubernetesError,
)
from flinklet_operator.observed import CheckpointObservation, JobObservation, SavepointOperation
from flinklet_operator.patching import apply_merge_patch

__all__ = ["InMemoryJobManager", "InMemoryKube"]

Key = tuple[str, str, str, str]


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class InMemoryKube:
    """A namespaced object store with the :class:`KubeApi` verbs."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: list[str] = []
        #: verb ("get", "apply", "patch_status", "delete", ...) -> error to raise once.
        self.failures: dict[str, KubernetesError] = {}
        self._uids = itertools.count(1)

    # ------------------------------------------------------------------ helpers for tests
    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store ``body`` as if created (uid, generation 1)."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("generation", 1)
        meta.setdefault("namespace", "default")
        self.objects[self._key(obj)] = obj
        return obj

    def update_spec(
        self, api_version: str, kind: str, namespace: str, name: str, spec: dict[str, Any]
    ) -> None:
        """Replace the spec, bumping ``metadata.generation`` as the API server does."""
        obj = self.objects[(api_version, kind, namespace, name)]
        if obj.get("spec") != spec:
            obj["spec"] = copy.deepcopy(spec)
            obj["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1

    def mark_deleting(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        meta = self.objects[(api_version, kind, namespace, name)]["metadata"]
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"

    def set_rollout_complete(self, namespace: str, name: str, ready: bool = True) -> None:
        """Make Deployment ``name`` look fully rolled out (as kube-controller-manager would)."""
        obj = self.objects[("apps/v1", "Deployment", namespace, name)]
        replicas = int(obj["spec"].get("replicas", 1))
        obj["status"] = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas if ready else 0,
        }

    def names_of(self, kind: str, namespace: str) -> list[str]:
        return sorted(k[3] for k in self.objects if k[1] == kind and k[2] == namespace)

    def event_reasons(self) -> list[str]:
        return [e["reason"] for e in self.events]

    # ------------------------------------------------------------------ KubeApi
    @staticmethod
    def _key(obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], meta.get("namespace", "default"), meta["name"])

    def _maybe_fail(self, verb: str) -> None:
        self.calls.append(verb)
        error = self.failures.pop(verb, None)
        if error is not None:
            raise error

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._maybe_fail("get")
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        self._maybe_fail("list")
        return [
            copy.deepcopy(obj)
            for (v, k, ns, _), obj in sorted(self.objects.items())
            if v == api_version
            and k == kind
            and ns == namespace
            and _matches(obj["metadata"].get("labels") or {}, label_selector)
        ]

    def apply(self, manifest: dict[str, Any]) -> None:
        self._maybe_fail("apply")
        key = self._key(manifest)
        existing = self.objects.get(key)
        obj = copy.deepcopy(manifest)
        meta = obj["metadata"]
        if existing is None:
            meta["uid"] = f"uid-{next(self._uids)}"
            meta["generation"] = 1
        else:
            old_meta = existing["metadata"]
            meta["uid"] = old_meta["uid"]
            changed = existing.get("spec") != obj.get("spec")
            meta["generation"] = int(old_meta.get("generation", 1)) + (1 if changed else 0)
            if "status" in existing:
                obj["status"] = existing["status"]
        self.objects[key] = obj

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        self._maybe_fail("patch_status")
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            raise KubernetesError(f"{kind} {namespace}/{name} not found", status=404)
        obj = self.objects[key]
        obj["status"] = apply_merge_patch(obj.get("status") or {}, patch)

    def scale(self, namespace: str, deployment: str, replicas: int) -> None:
        self._maybe_fail("scale")
        obj = self.objects.get(("apps/v1", "Deployment", namespace, deployment))
        if obj is not None and obj["spec"].get("replicas") != replicas:
            obj["spec"]["replicas"] = replicas
            obj["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self._maybe_fail("delete")
        return self.objects.pop((api_version, kind, namespace, name), None) is not None

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        self._maybe_fail("read_secret")
        secret = self.objects.get(("v1", "Secret", namespace, name))
        if secret is None:
            raise KubernetesError(f"Secret {namespace}/{name} does not exist", status=404)
        return dict(secret.get("stringData") or {})

    def create_event(self, body: dict[str, Any]) -> None:
        self._maybe_fail("create_event")
        self.events.append(copy.deepcopy(body))


class InMemoryJobManager:
    """A scripted JobManager. ``available = False`` makes every call fail as unreachable.

    >>> jm = InMemoryJobManager()
    >>> job = jm.submit(parallelism=2)
    >>> trigger = jm.trigger_savepoint(job, "s3://b/sp")
    >>> jm.savepoint_status(job, trigger).status
    'IN_PROGRESS'
    >>> jm.complete(trigger)
    >>> jm.savepoint_status(job, trigger).location
    's3://b/sp/savepoint-000001'
    """

    def __init__(self) -> None:
        self.available = True
        self.jobs: dict[str, JobObservation] = {}
        self.checkpoint: CheckpointObservation | None = None
        self.exceptions: dict[str, str] = {}
        self.operations: dict[str, SavepointOperation] = {}
        self.targets: dict[str, tuple[str, str | None, bool]] = {}
        self.calls: list[tuple[str, ...]] = []
        #: When set, triggers answer with this error instead.
        self.trigger_error: JobManagerRequestError | None = None
        self._ids = itertools.count(1)
        self.closed = 0

    # ------------------------------------------------------------------ scripting
    def submit(
        self, job_id: str | None = None, *, parallelism: int | None = 1, state: str = "RUNNING"
    ) -> str:
        jid = job_id or f"{next(self._ids):032x}"
        self.jobs[jid] = JobObservation(
            job_id=jid,
            name="job",
            state=state,
            start_time=datetime(2024, 1, 1, tzinfo=UTC)
            if not self.jobs
            else datetime(2024, 1, 1 + len(self.jobs), tzinfo=UTC),
            parallelism=parallelism,
        )
        return jid

    def set_state(self, job_id: str, state: str) -> None:
        job = self.jobs[job_id]
        self.jobs[job_id] = JobObservation(
            job.job_id, job.name, state, job.start_time, job.parallelism
        )

    def complete(self, trigger_id: str, location: str | None = None) -> None:
        """Complete a trigger; a stop-with-savepoint also finishes its job."""
        job_id, target, stop = self.targets[trigger_id]
        where = location or f"{target or 'mem://savepoints'}/savepoint-{int(trigger_id[1:]):06d}"
        self.operations[trigger_id] = SavepointOperation(status="COMPLETED", location=where)
        if stop:
            self.set_state(job_id, "FINISHED")

    def fail(self, trigger_id: str, cause: str = "java.lang.Exception: injected") -> None:
        self.operations[trigger_id] = SavepointOperation(status="COMPLETED", failure=cause)

    # ------------------------------------------------------------------ JobManagerApi
    def _call(self, *what: str) -> None:
        self.calls.append(what)
        if not self.available:
            raise JobManagerUnavailableError("the in-memory JobManager is unavailable")

    def list_jobs(self) -> list[JobObservation]:
        self._call("list_jobs")
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(self.jobs.values(), key=lambda j: j.start_time or epoch, reverse=True)

    def checkpoints(self, job_id: str) -> CheckpointObservation | None:
        self._call("checkpoints", job_id)
        return self.checkpoint

    def exception_summary(self, job_id: str) -> str | None:
        self._call("exception_summary", job_id)
        return self.exceptions.get(job_id)

    def cancel(self, job_id: str) -> None:
        self._call("cancel", job_id)
        self._job(job_id)

    def _job(self, job_id: str) -> JobObservation:
        if job_id not in self.jobs:
            raise JobManagerRequestError(f"job {job_id} not found", status=404)
        return self.jobs[job_id]

    def _new_trigger(self, job_id: str, target: str | None, stop: bool) -> str:
        if self.trigger_error is not None:
            raise self.trigger_error
        self._job(job_id)
        trigger = f"t{len(self.targets) + 1}"
        self.targets[trigger] = (job_id, target, stop)
        self.operations[trigger] = SavepointOperation(status="IN_PROGRESS")
        return trigger

    def trigger_savepoint(self, job_id: str, target_directory: str | None) -> str:
        self._call("trigger_savepoint", job_id, str(target_directory))
        return self._new_trigger(job_id, target_directory, stop=False)

    def stop_with_savepoint(
        self, job_id: str, target_directory: str | None, drain: bool = False
    ) -> str:
        self._call("stop_with_savepoint", job_id, str(target_directory))
        return self._new_trigger(job_id, target_directory, stop=True)

    def savepoint_status(self, job_id: str, trigger_id: str) -> SavepointOperation:
        self._call("savepoint_status", job_id, trigger_id)
        return self.operations.get(trigger_id, SavepointOperation(status="UNKNOWN"))

    def close(self) -> None:
        self.closed += 1
