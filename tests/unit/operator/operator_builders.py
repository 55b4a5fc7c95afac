"""Builders shared by the operator's unit tests: FlinkJobs, observations, a clock."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flinklet_operator.models import FlinkJob, FlinkJobStatus
from flinklet_operator.observed import (
    CheckpointObservation,
    DeploymentObservation,
    JobObservation,
    Observed,
    SavepointOperation,
)
from flinklet_operator.reconcile import Decision, reconcile

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NAME = "wc"
NAMESPACE = "jobs"


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "image": "flinklet:1",
        "job": {"entrypoint": "jobs.wc:main", "parallelism": 2, "upgradeMode": "savepoint"},
        "checkpointStorage": {"s3": {"bucket": "ckpts", "prefix": "flink"}},
    }
    return deep_merge(base, overrides)


def job(
    spec_: dict[str, Any] | None = None,
    status: FlinkJobStatus | None = None,
    *,
    generation: int = 1,
    deleting: bool = False,
) -> FlinkJob:
    body: dict[str, Any] = {
        "apiVersion": "flinklet.io/v1alpha1",
        "kind": "FlinkJob",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": "uid-1",
            "generation": generation,
        },
        "spec": spec_ if spec_ is not None else spec(),
    }
    if deleting:
        body["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    parsed = FlinkJob.from_body(body)
    if status is not None:
        parsed = replace(parsed, status=status.model_copy(deep=True))
    return parsed


def deployment(
    name: str,
    *,
    replicas: int = 1,
    generation: str = "1",
    ready: bool = True,
    rolled_out: bool = True,
) -> DeploymentObservation:
    return DeploymentObservation(
        name=name,
        replicas=replicas,
        generation=3,
        observed_generation=3 if rolled_out else 2,
        updated_replicas=replicas if rolled_out else 0,
        ready_replicas=replicas if ready else 0,
        total_replicas=replicas,
        spec_generation=generation,
    )


def cluster(generation: str = "1", *, tm_replicas: int = 2, **kw: Any) -> Observed:
    """JobManager + TaskManager Deployments present and rolled out; no REST answer."""
    return Observed(
        jobmanager=deployment(f"{NAME}-jobmanager", generation=generation, **kw),
        taskmanager=deployment(f"{NAME}-taskmanager", replicas=tm_replicas, generation=generation),
    )


def running(
    generation: str = "1",
    *,
    state: str = "RUNNING",
    job_id: str = "j1",
    parallelism: int | None = 2,
    checkpoint: CheckpointObservation | None = None,
    savepoint: SavepointOperation | None = None,
    exception: str | None = None,
    **kw: Any,
) -> Observed:
    """The cluster of ``generation`` rolled out, its REST API answering with one job."""
    base = cluster(generation, **kw)
    return replace(
        base,
        rest_reachable=True,
        job=JobObservation(
            job_id=job_id, name="wc", state=state, start_time=NOW, parallelism=parallelism
        ),
        checkpoint=checkpoint,
        savepoint=savepoint,
        exception=exception,
    )


def step(flinkjob: FlinkJob, observed: Observed, now: datetime = NOW) -> tuple[FlinkJob, Decision]:
    """Reconcile once and return the FlinkJob carrying the new status."""
    decision = reconcile(flinkjob, observed, now)
    return replace(flinkjob, status=decision.status), decision


def stable(spec_: dict[str, Any] | None = None) -> FlinkJob:
    """A FlinkJob (generation 1) that was deployed and is STABLE."""
    created, _ = step(job(spec_), Observed())
    ready, decision = step(created, running())
    assert ready.status.lifecycle_state == "STABLE", decision
    return ready


def with_spec(flinkjob: FlinkJob, new_spec: dict[str, Any]) -> FlinkJob:
    """The same FlinkJob after a spec change (next generation)."""
    return replace(job(new_spec, flinkjob.status, generation=flinkjob.generation + 1))


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


def kinds(decision: Decision) -> list[str]:
    return [type(a).__name__ for a in decision.actions]
