"""One reconcile round, end to end: read, observe, decide, act, publish.

The kopf handlers call :meth:`Controller.reconcile` and :meth:`Controller.delete`; all
I/O goes through the injected :class:`~flinklet_operator.k8s.KubeApi`, JobManager factory
and savepoint-store factory, so the whole round runs in unit tests against
:mod:`flinklet_operator.testing`'s in-memory implementations.

A round:

1. reads the FlinkJob fresh from the API (timers and change handlers may both fire; a per-
   object lock serialises them, and the fresh read means neither acts on a stale status);
2. observes its Deployments and pods, and its job through the JobManager's REST API
   (only when a JobManager Deployment with replicas exists: no pointless timeouts);
3. calls the pure :func:`~flinklet_operator.reconcile.reconcile`;
4. carries out the actions in order, stopping at the first failure (the JobManager call
   of a round always comes alone, so nothing is left half done);
5. patches the status subresource with the minimal merge patch, posts the events and
   updates the metrics. The status is written even when an action failed, so deadlines
   keep running and nothing waits forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flinklet_operator.actions import (
    Action,
    ApplyResources,
    CancelJob,
    DeleteConfigMaps,
    DeleteResources,
    DisposeSavepoints,
    ScaleDeployments,
    StopWithSavepoint,
    TriggerSavepoint,
)
from flinklet_operator.errors import (
    InvalidSpecError,
    JobManagerError,
    KubernetesError,
    SavepointDisposalError,
)
from flinklet_operator.events import Event, event_body
from flinklet_operator.jobmanager import JobManagerApi, JobManagerFactory
from flinklet_operator.k8s import KubeApi
from flinklet_operator.metrics import OperatorMetrics
from flinklet_operator.models import (
    API_VERSION,
    KIND,
    Condition,
    FlinkJob,
    FlinkJobStatus,
    format_time,
    parse_status,
    parse_time,
)
from flinklet_operator.observed import (
    CheckpointObservation,
    DeploymentObservation,
    JobObservation,
    Observed,
    PodObservation,
    SavepointOperation,
)
from flinklet_operator.patching import merge_patch
from flinklet_operator.reconcile import Decision, cleanup_actions, reconcile, reconcile_deletion
from flinklet_operator.resources import GENERATION_ANNOTATION, names
from flinklet_operator.s3 import S3Access, S3SavepointStore
from flinklet_operator.storage import FilesystemSavepointStore, SavepointStore

__all__ = ["Controller", "Outcome", "SavepointStoreFactory", "default_store_factory"]

log = logging.getLogger(__name__)

#: Makes the store that disposes of ``location`` (S3 access settings given for S3 jobs).
SavepointStoreFactory = Callable[[str, S3Access | None], SavepointStore]


def default_store_factory(location: str, access: S3Access | None) -> SavepointStore:
    if location.startswith(("s3://", "s3a://", "s3p://")):
        return S3SavepointStore(access or S3Access())
    return FilesystemSavepointStore()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What a round did. ``retry_after`` (seconds) asks the handler to retry soon;
    ``done`` is False while a deletion still waits for its final savepoint."""

    status: FlinkJobStatus | None = None
    events: tuple[Event, ...] = ()
    retry_after: float | None = None
    message: str = ""
    done: bool = True


class Controller:
    def __init__(
        self,
        kube: KubeApi,
        jobmanagers: JobManagerFactory,
        *,
        stores: SavepointStoreFactory = default_store_factory,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], datetime] = _utcnow,
        retry_delay: float = 10.0,
        instance: str = "flinklet-operator",
    ) -> None:
        self.kube = kube
        self.jobmanagers = jobmanagers
        self.stores = stores
        self.metrics = metrics if metrics is not None else OperatorMetrics()
        self.clock = clock
        self.retry_delay = retry_delay
        self.instance = instance
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ------------------------------------------------------------------ entry points
    def reconcile(self, namespace: str, name: str) -> Outcome:
        """One round for a live FlinkJob. Raises :class:`InvalidSpecError` (after recording
        it in the status) and :class:`KubernetesError`."""
        return self._round("reconcile", namespace, name)

    def delete(self, namespace: str, name: str) -> Outcome:
        """One round of deleting a FlinkJob; ``done`` means the finalizer may go."""
        return self._round("delete", namespace, name)

    # ------------------------------------------------------------------ the round
    @contextmanager
    def _locked(self, namespace: str, name: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault((namespace, name), threading.Lock())
        with lock:
            yield

    def _round(self, kind: str, namespace: str, name: str) -> Outcome:
        started = time.monotonic()
        outcome_label = "error"
        try:
            with self._locked(namespace, name):
                outcome = self._round_locked(kind, namespace, name)
            outcome_label = "retry" if outcome.retry_after is not None else "ok"
            return outcome
        except InvalidSpecError:
            outcome_label = "invalid"
            raise
        except KubernetesError:
            outcome_label = "retry"
            raise
        finally:
            self.metrics.reconciles.labels(kind, outcome_label).inc()
            self.metrics.duration.labels(kind).observe(time.monotonic() - started)

    def _round_locked(self, kind: str, namespace: str, name: str) -> Outcome:
        body = self.kube.get(API_VERSION, KIND, namespace, name)
        if body is None:
            return Outcome(message=f"FlinkJob {namespace}/{name} is gone")
        try:
            job = FlinkJob.from_body(body)
        except InvalidSpecError as exc:
            if kind == "delete":
                return self._delete_unparseable(body, exc)
            self._record_invalid(body, exc)
            raise
        if kind == "reconcile" and job.deleting:
            return Outcome(message="being deleted; the deletion handler owns it")
        observed = self.observe(job)
        now = self.clock()
        if kind == "delete":
            decision = reconcile_deletion(job, observed, now)
        else:
            decision = reconcile(job, observed, now)
        outcome = self._carry_out(job, body, decision, now)
        if kind == "delete" and outcome.done:
            self.metrics.forget(namespace, name)
        return outcome

    # ------------------------------------------------------------------ observe
    def observe(self, job: FlinkJob) -> Observed:
        n = names(job.name)
        jobmanager = self._deployment(job.namespace, n.jobmanager)
        taskmanager = self._deployment(job.namespace, n.taskmanager)
        pods = self._pods(job)
        if jobmanager is None or jobmanager.replicas == 0:
            return Observed(jobmanager=jobmanager, taskmanager=taskmanager, pods=pods)
        client = self.jobmanagers(job.namespace, job.name)
        try:
            return self._observe_rest(job, client, jobmanager, taskmanager, pods)
        finally:
            client.close()

    def _observe_rest(
        self,
        job: FlinkJob,
        client: JobManagerApi,
        jobmanager: DeploymentObservation,
        taskmanager: DeploymentObservation | None,
        pods: tuple[PodObservation, ...],
    ) -> Observed:
        errors: list[str] = []
        current: JobObservation | None = None
        checkpoint: CheckpointObservation | None = None
        savepoint: SavepointOperation | None = None
        exception: str | None = None
        try:
            jobs = client.list_jobs()
        except JobManagerError as exc:
            return Observed(jobmanager, taskmanager, pods, rest_reachable=False, errors=(str(exc),))
        current = jobs[0] if jobs else None
        pending = job.status.savepoint_info.pending_trigger
        try:
            if current is not None:
                checkpoint = client.checkpoints(current.job_id)
                if current.state == "FAILED":
                    exception = client.exception_summary(current.job_id)
            if pending is not None and pending.trigger_id:
                job_id = pending.job_id or (current.job_id if current else "")
                savepoint = client.savepoint_status(job_id, pending.trigger_id)
        except JobManagerError as exc:
            errors.append(str(exc))
        return Observed(
            jobmanager=jobmanager,
            taskmanager=taskmanager,
            pods=pods,
            rest_reachable=True,
            job=current,
            checkpoint=checkpoint,
            savepoint=savepoint,
            exception=exception,
            errors=tuple(errors),
        )

    def _deployment(self, namespace: str, name: str) -> DeploymentObservation | None:
        body = self.kube.get("apps/v1", "Deployment", namespace, name)
        if body is None:
            return None
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        return DeploymentObservation(
            name=name,
            replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
            generation=int(meta.get("generation") or 1),
            observed_generation=int(status.get("observedGeneration") or 0),
            updated_replicas=int(status.get("updatedReplicas") or 0),
            ready_replicas=int(status.get("readyReplicas") or 0),
            total_replicas=int(status.get("replicas") or 0),
            spec_generation=(meta.get("annotations") or {}).get(GENERATION_ANNOTATION),
        )

    def _pods(self, job: FlinkJob) -> tuple[PodObservation, ...]:
        selector = f"app.kubernetes.io/name=flinklet,app.kubernetes.io/instance={job.name}"
        pods = []
        for pod in self.kube.list("v1", "Pod", job.namespace, selector):
            meta = pod.get("metadata") or {}
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            pods.append(
                PodObservation(
                    name=str(meta.get("name", "")),
                    component=str((meta.get("labels") or {}).get("app.kubernetes.io/component")),
                    spec_generation=(meta.get("annotations") or {}).get(GENERATION_ANNOTATION),
                    restarts=sum(int(s.get("restartCount") or 0) for s in statuses),
                    ready=bool(statuses) and all(s.get("ready") for s in statuses),
                )
            )
        return tuple(pods)

    # ------------------------------------------------------------------ act
    def _carry_out(
        self, job: FlinkJob, body: dict[str, Any], decision: Decision, now: datetime
    ) -> Outcome:
        status = decision.status.model_copy(deep=True)
        events = list(decision.events)
        retry: str | None = None
        kube_error: KubernetesError | None = None
        client: JobManagerApi | None = None
        try:
            for action in decision.actions:
                try:
                    if isinstance(action, CancelJob | TriggerSavepoint | StopWithSavepoint):
                        if client is None:
                            client = self.jobmanagers(job.namespace, job.name)
                        self._jobmanager_action(client, action, status)
                    else:
                        self._kube_action(job, action, events)
                except JobManagerError as exc:
                    retry = str(exc)
                    status.error = f"{type(action).__name__} failed, retrying: {exc}"
                    break
                except KubernetesError as exc:
                    if decision.done and job.deleting and _past(status, now):
                        events.append(
                            Event(
                                "CleanupFailed",
                                f"{exc}; the remaining children are left to the garbage collector",
                                "Warning",
                            )
                        )
                        continue
                    kube_error = exc
                    status.error = str(exc)
                    break
        finally:
            if client is not None:
                client.close()
        self._publish(job, body, status, events, now)
        if kube_error is not None:
            raise kube_error
        if retry is None and decision.waiting_for_jobmanager:
            retry = "waiting for the JobManager's REST API to answer"
        return Outcome(
            status=status,
            events=tuple(events),
            retry_after=self.retry_delay if retry is not None else None,
            message=retry or "",
            done=decision.done,
        )

    def _jobmanager_action(
        self, client: JobManagerApi, action: Action, status: FlinkJobStatus
    ) -> None:
        pending = status.savepoint_info.pending_trigger
        if isinstance(action, CancelJob):
            client.cancel(action.job_id)
        elif isinstance(action, TriggerSavepoint):
            trigger = client.trigger_savepoint(action.job_id, action.target_directory)
            if pending is not None:
                pending.trigger_id = trigger
        elif isinstance(action, StopWithSavepoint):
            trigger = client.stop_with_savepoint(
                action.job_id, action.target_directory, action.drain
            )
            if pending is not None:
                pending.trigger_id = trigger

    def _kube_action(self, job: FlinkJob, action: Action, events: list[Event]) -> None:
        ns = job.namespace
        if isinstance(action, ApplyResources):
            for manifest in action.manifests:
                self.kube.apply(manifest)
        elif isinstance(action, ScaleDeployments):
            for deployment in action.names:
                self.kube.scale(ns, deployment, action.replicas)
        elif isinstance(action, DeleteResources):
            for ref in action.refs:
                self.kube.delete(ref.api_version, ref.kind, ns, ref.name)
        elif isinstance(action, DeleteConfigMaps):
            for cm in self.kube.list("v1", "ConfigMap", ns, action.label_selector):
                self.kube.delete("v1", "ConfigMap", ns, cm["metadata"]["name"])
        elif isinstance(action, DisposeSavepoints):
            self._dispose(job, action.locations, events)

    def _dispose(self, job: FlinkJob, locations: tuple[str, ...], events: list[Event]) -> None:
        try:
            access = self._s3_access(job)
        except KubernetesError as exc:
            for location in locations:
                events.append(Event("SavepointDisposalFailed", f"{location}: {exc}", "Warning"))
            return
        for location in locations:
            try:
                self.stores(location, access).dispose(location)
            except SavepointDisposalError as exc:
                events.append(Event("SavepointDisposalFailed", str(exc), "Warning"))
            else:
                events.append(Event("SavepointDisposed", f"disposed of {location} (retention)"))

    def _s3_access(self, job: FlinkJob) -> S3Access | None:
        storage = job.spec.checkpoint_storage
        if storage is None or storage.s3 is None:
            return None
        s3 = storage.s3
        access_key = secret_key = None
        if s3.credentials_secret is not None:
            data = self.kube.read_secret(job.namespace, s3.credentials_secret.name)
            access_key = data.get(s3.credentials_secret.access_key_key)
            secret_key = data.get(s3.credentials_secret.secret_key_key)
        return S3Access(
            endpoint=s3.endpoint,
            region=s3.region,
            path_style=s3.path_style_access,
            access_key=access_key,
            secret_key=secret_key,
        )

    # ------------------------------------------------------------------ publish
    def _publish(
        self,
        job: FlinkJob,
        body: dict[str, Any],
        status: FlinkJobStatus,
        events: list[Event],
        now: datetime,
    ) -> None:
        old = body.get("status") or {}
        patch = merge_patch(old, status.to_body())
        if patch:
            self.kube.patch_status(API_VERSION, KIND, job.namespace, job.name, patch)
        self._post(job.object_reference(), events, now)
        old_state = old.get("lifecycleState") if isinstance(old, dict) else None
        self.metrics.record_status(job.namespace, job.name, old_state, status, now)

    def _post(self, ref: dict[str, Any], events: list[Event], now: datetime) -> None:
        where = f"{ref['namespace']}/{ref['name']}"
        for event in events:
            self.metrics.events.labels(event.reason, event.type).inc()
            level = logging.WARNING if event.type == "Warning" else logging.INFO
            log.log(level, "%s %s: %s", where, event.reason, event.message)
            try:
                self.kube.create_event(event_body(ref, event, now, self.instance))
            except KubernetesError as exc:  # events are best effort
                log.warning("could not post event %s for %s: %s", event.reason, where, exc)

    def _record_invalid(self, body: dict[str, Any], exc: InvalidSpecError) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        old = body.get("status") or {}
        message = str(exc)
        if old.get("error") == message and old.get("observedGeneration") == meta.get("generation"):
            return
        status = parse_status(old)
        now = self.clock()
        status.lifecycle_state = "FAILED"
        status.error = message
        status.observed_generation = int(meta.get("generation") or 1)
        status.reconciliation.failure_reason = "InvalidSpec"
        status.reconciliation.failed_generation = status.observed_generation
        status.conditions = [c for c in status.conditions if c.type != "Degraded"] + [
            Condition(
                type="Degraded",
                status="True",
                reason="InvalidSpec",
                message=message,
                last_transition_time=format_time(now),
                observed_generation=status.observed_generation,
            )
        ]
        self.kube.patch_status(
            API_VERSION, KIND, namespace, name, merge_patch(old, status.to_body())
        )
        ref = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": name,
            "namespace": namespace,
            "uid": str(meta.get("uid", "")),
        }
        self._post(ref, [Event("InvalidSpec", message, "Warning")], now)

    def _delete_unparseable(self, body: dict[str, Any], exc: InvalidSpecError) -> Outcome:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        log.warning(
            "deleting %s/%s whose spec is invalid (%s): cleaning up by name only",
            namespace,
            name,
            exc,
        )
        for action in cleanup_actions(name):
            if isinstance(action, DeleteResources):
                for ref in action.refs:
                    self.kube.delete(ref.api_version, ref.kind, namespace, ref.name)
            elif isinstance(action, DeleteConfigMaps):
                for cm in self.kube.list("v1", "ConfigMap", namespace, action.label_selector):
                    self.kube.delete("v1", "ConfigMap", namespace, cm["metadata"]["name"])
        return Outcome(message="cleaned up by name")


def _past(status: FlinkJobStatus, now: datetime) -> bool:
    deadline = status.reconciliation.phase_deadline
    return deadline is not None and now > parse_time(deadline)
