"""Whole rounds (read, observe, decide, act, publish) against in-memory Kubernetes,
JobManager and savepoint storage."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from operator_builders import spec
from prometheus_client import CollectorRegistry

from flinklet_operator.controller import Controller
from flinklet_operator.errors import InvalidSpecError, JobManagerRequestError, KubernetesError
from flinklet_operator.metrics import OperatorMetrics
from flinklet_operator.observed import CheckpointObservation, JobObservation
from flinklet_operator.s3 import S3Access
from flinklet_operator.storage import InMemorySavepointStore
from flinklet_operator.testing import InMemoryJobManager, InMemoryKube

FJ = ("flinklet.io/v1alpha1", "FlinkJob")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class World:
    """A FlinkJob in an in-memory cluster with an in-memory JobManager."""

    def __init__(self, raw_spec: dict[str, Any] | None = None) -> None:
        self.kube = InMemoryKube()
        self.jm = InMemoryJobManager()
        self.store = InMemorySavepointStore()
        self.store_requests: list[tuple[str, S3Access | None]] = []
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.controller = Controller(
            self.kube,
            lambda namespace, name: self.jm,
            stores=self._store,
            metrics=OperatorMetrics(self.registry),
            clock=self.clock,
            retry_delay=3.0,
        )
        self.kube.add(
            {
                "apiVersion": FJ[0],
                "kind": FJ[1],
                "metadata": {"name": "wc", "namespace": "jobs"},
                "spec": raw_spec if raw_spec is not None else spec(),
            }
        )

    def _store(self, location: str, access: S3Access | None) -> InMemorySavepointStore:
        self.store_requests.append((location, access))
        return self.store

    @property
    def body(self) -> dict[str, Any]:
        found = self.kube.get(*FJ, "jobs", "wc")
        assert found is not None
        return found

    @property
    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.body.get("status", {})
        return result

    def set_spec(self, raw: dict[str, Any]) -> None:
        self.kube.update_spec(*FJ, "jobs", "wc", raw)

    def reconcile(self) -> Any:
        return self.controller.reconcile("jobs", "wc")

    def cluster_up(self, parallelism: int = 2) -> str:
        """What the Deployment controller and the runtime would do after an apply."""
        self.kube.set_rollout_complete("jobs", "wc-jobmanager")
        self.kube.set_rollout_complete("jobs", "wc-taskmanager")
        return self.jm.submit(parallelism=parallelism)

    def stable(self) -> str:
        self.reconcile()
        job_id = self.cluster_up()
        self.reconcile()
        assert self.status["lifecycleState"] == "STABLE"
        return job_id

    def metric(self, metric: str, **labels: str) -> float:
        value = self.registry.get_sample_value(metric, labels)
        return 0.0 if value is None else value


def test_create_applies_the_children_and_publishes_status_and_events() -> None:
    world = World()
    outcome = world.reconcile()
    assert outcome.retry_after is None
    assert world.kube.names_of("Deployment", "jobs") == ["wc-jobmanager", "wc-taskmanager"]
    assert world.kube.names_of("Service", "jobs") == ["wc-rest"]
    assert world.kube.names_of("ConfigMap", "jobs") == ["wc-config"]
    assert world.status["lifecycleState"] == "DEPLOYED"
    assert world.status["observedGeneration"] == 1
    assert world.kube.event_reasons() == ["Submitted"]
    event = world.kube.events[0]
    assert event["involvedObject"]["kind"] == "FlinkJob"
    assert event["involvedObject"]["uid"] == world.body["metadata"]["uid"]
    assert world.jm.calls == []  # no JobManager Deployment was observed: no REST calls
    assert world.metric("flinklet_operator_reconcile_total", kind="reconcile", outcome="ok") == 1


def test_the_job_running_makes_it_stable_with_job_status() -> None:
    world = World()
    world.reconcile()
    job_id = world.cluster_up()
    world.jm.checkpoint = CheckpointObservation(
        "s3://ckpts/chk-1", datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    )
    world.reconcile()
    assert world.status["lifecycleState"] == "STABLE"
    assert world.status["jobStatus"]["jobId"] == job_id
    assert world.status["jobStatus"]["state"] == "RUNNING"
    assert world.status["jobStatus"]["parallelism"] == 2
    assert world.status["jobStatus"]["lastCheckpoint"] == {
        "path": "s3://ckpts/chk-1",
        "timestamp": "2024-05-01T11:59:00Z",
    }
    assert world.kube.event_reasons() == ["Submitted", "Deployed"]
    assert (
        world.metric(
            "flinklet_operator_flinkjob_lifecycle", namespace="jobs", name="wc", state="STABLE"
        )
        == 1
    )
    assert (
        world.metric(
            "flinklet_operator_lifecycle_transitions_total",
            from_state="DEPLOYED",
            to_state="STABLE",
        )
        == 1
    )


def test_an_unchanged_round_writes_nothing() -> None:
    world = World()
    world.stable()
    world.kube.calls.clear()
    world.clock.advance(10)
    world.reconcile()
    assert "patch_status" not in world.kube.calls
    assert "apply" not in world.kube.calls


def test_rescale_records_the_trigger_then_redeploys_from_the_savepoint() -> None:
    world = World()
    job_id = world.stable()
    world.set_spec(spec(job={"parallelism": 4}))
    world.reconcile()
    pending = world.status["savepointInfo"]["pendingTrigger"]
    assert pending["triggerId"] == "t1" and pending["kind"] == "stop"
    assert world.jm.calls[-1] == (
        "stop_with_savepoint",
        job_id,
        "s3://ckpts/flink/jobs/wc/savepoints",
    )
    world.reconcile()  # in progress: nothing new
    assert world.status["lifecycleState"] == "UPGRADING"
    world.jm.complete("t1")
    world.reconcile()
    location = "s3://ckpts/flink/jobs/wc/savepoints/savepoint-000001"
    assert world.status["savepointInfo"]["lastSavepoint"]["location"] == location
    tm = world.kube.get("apps/v1", "Deployment", "jobs", "wc-taskmanager")
    assert tm is not None and tm["spec"]["replicas"] == 4
    jm = world.kube.get("apps/v1", "Deployment", "jobs", "wc-jobmanager")
    assert jm is not None
    args = jm["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("-p") + 1] == "4" and args[-2:] == ["--from-savepoint", location]
    world.kube.set_rollout_complete("jobs", "wc-jobmanager")
    world.kube.set_rollout_complete("jobs", "wc-taskmanager")
    world.jm.submit(parallelism=4)
    world.reconcile()
    assert world.status["lifecycleState"] == "STABLE"
    assert world.status["jobStatus"]["parallelism"] == 4
    assert "Rescaled" in world.kube.event_reasons()


def test_an_unreachable_jobmanager_asks_for_a_retry_but_keeps_the_phase_and_deadline() -> None:
    world = World()
    world.stable()
    world.set_spec(spec(image="flinklet:2"))
    world.jm.available = False
    outcome = world.reconcile()
    assert outcome.retry_after == 3.0
    # the JobManager pod is ready, so the job may be running: the upgrade waits for it
    assert world.status["lifecycleState"] == "UPGRADING"
    assert world.status["reconciliation"]["phase"] == "StoppingWithSavepoint"
    assert "triggerId" not in world.status["savepointInfo"]["pendingTrigger"]
    world.jm.available = True
    assert world.reconcile().retry_after is None
    assert world.status["savepointInfo"]["pendingTrigger"]["triggerId"] == "t1"


def test_a_crashed_jobmanager_does_not_block_an_upgrade() -> None:
    world = World()
    world.stable()
    world.set_spec(spec(image="flinklet:2"))
    world.jm.available = False
    world.kube.set_rollout_complete("jobs", "wc-jobmanager", ready=False)
    world.reconcile()
    assert world.status["lifecycleState"] == "DEPLOYED"
    jm = world.kube.get("apps/v1", "Deployment", "jobs", "wc-jobmanager")
    assert jm is not None
    assert jm["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--last-state"


def test_a_trigger_the_jobmanager_rejects_is_retried_within_the_deadline() -> None:
    world = World()
    world.stable()
    world.set_spec(spec(image="flinklet:2"))
    world.jm.trigger_error = JobManagerRequestError("busy", status=409)
    outcome = world.reconcile()
    assert outcome.retry_after == 3.0
    status = world.status
    assert status["reconciliation"]["phase"] == "StoppingWithSavepoint"
    assert "triggerId" not in status["savepointInfo"]["pendingTrigger"]
    assert "StopWithSavepoint failed, retrying" in status["error"]
    world.jm.trigger_error = None
    world.clock.advance(10)
    assert world.reconcile().retry_after is None
    assert world.status["savepointInfo"]["pendingTrigger"]["triggerId"] == "t1"
    assert "error" not in world.status


def test_an_invalid_spec_is_recorded_once_and_raised() -> None:
    world = World({"image": "i", "job": {"entrypoint": "a:b", "parallelism": 0}})
    with pytest.raises(InvalidSpecError):
        world.reconcile()
    assert world.status["lifecycleState"] == "FAILED"
    assert "spec.job.parallelism" in world.status["error"]
    degraded = next(c for c in world.status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "InvalidSpec"
    assert world.kube.event_reasons() == ["InvalidSpec"]
    with pytest.raises(InvalidSpecError):
        world.reconcile()
    assert world.kube.event_reasons() == ["InvalidSpec"]
    assert (
        world.metric("flinklet_operator_reconcile_total", kind="reconcile", outcome="invalid") == 2
    )


def test_a_failed_apply_raises_after_writing_the_status() -> None:
    world = World()
    world.kube.failures["apply"] = KubernetesError("apply failed: 500", status=500)
    with pytest.raises(KubernetesError):
        world.reconcile()
    assert world.status["reconciliation"]["phase"] == "Deploying"
    assert "apply failed" in world.status["error"]
    world.reconcile()  # the JobManager Deployment is missing: applied again
    assert world.kube.names_of("Deployment", "jobs") == ["wc-jobmanager", "wc-taskmanager"]


def test_events_are_best_effort() -> None:
    world = World()
    world.kube.failures["create_event"] = KubernetesError("forbidden", status=403)
    world.reconcile()
    assert world.status["lifecycleState"] == "DEPLOYED"


def test_a_vanished_flinkjob_is_a_no_op() -> None:
    world = World()
    world.kube.delete(*FJ, "jobs", "wc")
    assert world.reconcile().message == "FlinkJob jobs/wc is gone"


def test_a_deleting_flinkjob_is_left_to_the_delete_handler() -> None:
    world = World()
    world.reconcile()
    world.kube.mark_deleting(*FJ, "jobs", "wc")
    world.kube.calls.clear()
    world.reconcile()
    assert world.kube.calls == ["get"]


def test_failed_job_status_carries_the_exception_summary() -> None:
    world = World()
    job_id = world.stable()
    world.jm.set_state(job_id, "FAILED")
    world.jm.exceptions[job_id] = "ZeroDivisionError: division by zero"
    world.reconcile()
    assert world.status["lifecycleState"] == "FAILED"
    assert world.status["error"] == f"job {job_id} FAILED: ZeroDivisionError: division by zero"
    failed = [e for e in world.kube.events if e["reason"] == "JobFailed"]
    assert failed[0]["type"] == "Warning"


def test_pod_restarts_are_observed() -> None:
    world = World()
    world.stable()
    for index in range(2):
        world.kube.add(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"wc-taskmanager-{index}",
                    "namespace": "jobs",
                    "labels": {
                        "app.kubernetes.io/name": "flinklet",
                        "app.kubernetes.io/instance": "wc",
                        "app.kubernetes.io/component": "taskmanager",
                    },
                    "annotations": {"flinklet.io/spec-generation": "1"},
                },
                "status": {"containerStatuses": [{"restartCount": 2, "ready": False}]},
            }
        )
    world.reconcile()
    degraded = next(c for c in world.status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RestartLoop")


def test_retention_disposes_through_the_store_with_s3_credentials_from_the_secret() -> None:
    raw = spec(
        savepoints={"retention": {"maxCount": 1}},
        checkpointStorage={
            "s3": {
                "endpoint": "http://minio:9000",
                "pathStyleAccess": True,
                "credentialsSecret": {"name": "s3"},
            }
        },
    )
    world = World(raw)
    world.kube.add(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3", "namespace": "jobs"},
            "stringData": {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"},
        }
    )
    world.stable()
    for nonce in (1, 2):
        world.set_spec({**raw, "job": {**raw["job"], "savepointTriggerNonce": nonce}})
        world.reconcile()
        world.jm.complete(f"t{nonce}")
        world.clock.advance(60)
        world.reconcile()
    world.clock.advance(60)
    world.reconcile()
    first = "s3://ckpts/flink/jobs/wc/savepoints/savepoint-000001"
    assert world.store.disposed == [first]
    location, access = world.store_requests[0]
    assert location == first
    assert access == S3Access(
        endpoint="http://minio:9000", path_style=True, access_key="ak", secret_key="sk"
    )
    history = world.status["savepointInfo"]["history"]
    assert [h["location"] for h in history] == [
        "s3://ckpts/flink/jobs/wc/savepoints/savepoint-000002"
    ]
    assert "SavepointDisposed" in world.kube.event_reasons()


def test_a_failed_disposal_is_reported() -> None:
    world = World(spec(savepoints={"retention": {"maxCount": 1}}))
    world.stable()
    world.store.failing.add("s3://ckpts/flink/jobs/wc/savepoints/savepoint-000001")
    for nonce in (1, 2):
        world.set_spec(
            spec(savepoints={"retention": {"maxCount": 1}}, job={"savepointTriggerNonce": nonce})
        )
        world.reconcile()
        world.jm.complete(f"t{nonce}")
        world.clock.advance(60)
        world.reconcile()
    world.reconcile()
    assert "SavepointDisposalFailed" in world.kube.event_reasons()


def test_rounds_for_one_flinkjob_never_overlap() -> None:
    world = World()
    world.stable()
    world.set_spec(spec(job={"parallelism": 3}))
    original = world.jm.stop_with_savepoint

    def slow_stop(job_id: str, target: str | None, drain: bool = False) -> str:
        time.sleep(0.2)
        return original(job_id, target, drain)

    world.jm.stop_with_savepoint = slow_stop  # type: ignore[method-assign]
    threads = [threading.Thread(target=world.reconcile) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [c[0] for c in world.jm.calls].count("stop_with_savepoint") == 1


# ----------------------------------------------------------------------------- deletion


def test_delete_removes_children_and_ha_leftovers_only() -> None:
    world = World()
    world.stable()
    for name, labels in (
        ("wc-leader", {"flinklet.io/cluster-id": "wc"}),
        ("wc-flink-ha", {"app": "wc", "configmap-type": "high-availability"}),
        ("other-leader", {"flinklet.io/cluster-id": "other"}),
    ):
        world.kube.add(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "jobs", "labels": labels},
            }
        )
    world.kube.add(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "wc-jobmanager-leader", "namespace": "jobs"},
        }
    )
    world.kube.mark_deleting(*FJ, "jobs", "wc")
    outcome = world.controller.delete("jobs", "wc")
    assert outcome.done
    assert world.kube.names_of("Lease", "jobs") == []
    assert world.kube.names_of("Deployment", "jobs") == []
    assert world.kube.names_of("Service", "jobs") == []
    assert world.kube.names_of("ConfigMap", "jobs") == ["other-leader"]
    assert world.status["lifecycleState"] == "DELETING"
    assert "Deleting" in world.kube.event_reasons()


def test_delete_with_savepoint_waits_then_cleans_up() -> None:
    world = World(spec(job={"savepointOnDeletion": True}))
    world.stable()
    world.kube.mark_deleting(*FJ, "jobs", "wc")
    first = world.controller.delete("jobs", "wc")
    assert not first.done
    assert world.kube.names_of("Deployment", "jobs") == ["wc-jobmanager", "wc-taskmanager"]
    world.jm.complete("t1")
    second = world.controller.delete("jobs", "wc")
    assert second.done
    assert world.kube.names_of("Deployment", "jobs") == []
    assert world.status["savepointInfo"]["lastSavepoint"]["type"] == "DELETION"


def test_cleanup_errors_after_the_deletion_deadline_are_left_to_the_gc() -> None:
    world = World(spec(job={"savepointOnDeletion": True}, deadlines={"deletion": "1m"}))
    world.stable()
    world.kube.mark_deleting(*FJ, "jobs", "wc")
    world.controller.delete("jobs", "wc")
    world.clock.advance(61)
    world.kube.failures["delete"] = KubernetesError("etcd is slow", status=500)
    outcome = world.controller.delete("jobs", "wc")
    assert outcome.done
    assert "CleanupFailed" in world.kube.event_reasons()
    assert "DeletionTimedOut" in world.kube.event_reasons()


def test_cleanup_errors_before_the_deadline_are_retried() -> None:
    world = World()
    world.stable()
    world.kube.mark_deleting(*FJ, "jobs", "wc")
    world.kube.failures["delete"] = KubernetesError("etcd is slow", status=500)
    with pytest.raises(KubernetesError):
        world.controller.delete("jobs", "wc")
    assert world.controller.delete("jobs", "wc").done


def test_delete_of_an_invalid_spec_still_cleans_up_by_name() -> None:
    world = World()
    world.reconcile()
    world.kube.objects[(*FJ, "jobs", "wc")]["spec"]["job"]["parallelism"] = 0
    world.kube.mark_deleting(*FJ, "jobs", "wc")
    assert world.controller.delete("jobs", "wc").done
    assert world.kube.names_of("Deployment", "jobs") == []


def test_jobs_newest_first_pick_the_current_incarnation() -> None:
    world = World()
    world.reconcile()
    world.kube.set_rollout_complete("jobs", "wc-jobmanager")
    world.kube.set_rollout_complete("jobs", "wc-taskmanager")
    old = world.jm.submit(state="FINISHED")
    new = world.jm.submit()
    assert world.jm.list_jobs()[0] == JobObservation(
        job_id=new,
        name="job",
        state="RUNNING",
        start_time=datetime(2024, 1, 2, tzinfo=UTC),
        parallelism=1,
    )
    world.reconcile()
    assert world.status["jobStatus"]["jobId"] == new != old
