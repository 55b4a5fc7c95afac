"""Jobs and clusters as Flink's REST API shows them: pure functions, job-like -> model.

Everything here reads a :class:`~flinklet._private.rest.service.JobLike` (or the service)
and builds the response models of ``models.py``; nothing changes state, nothing does I/O.
Where Flinklet does not know what Flink would report (e.g. when a state was entered
that the job does not record) the value is Flink's "unknown" (``-1``, ``0`` or ``null``
as Flink uses it for that field), never an invented one.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from flinklet._private.checkpoint.storage import parse_storage_uri
from flinklet._private.exec.timers import wall_clock_ms
from flinklet._private.metrics.prometheus import JOB_FAMILY, Exposition, job_scopes
from flinklet._private.metrics.task_metrics import operator_scope, task_scope
from flinklet._private.rest import models as m
from flinklet._private.rest.service import ClusterService, JobLike, TaskLike, TaskManagerInfo
from flinklet.common.job_status import JobStatus
from flinklet.errors import StorageError

__all__ = [
    "EXECUTION_STATES",
    "checkpoint_config",
    "checkpoint_statistics",
    "cluster_overview",
    "job_details",
    "job_exceptions",
    "job_metrics",
    "job_overview",
    "job_plan",
    "prometheus_exposition",
    "subtask_states",
    "taskmanager_details",
    "taskmanager_info",
    "vertex_metrics",
]

#: Flink's ExecutionState names, in Flink's order.
EXECUTION_STATES = (
    "CREATED",
    "SCHEDULED",
    "DEPLOYING",
    "RUNNING",
    "FINISHED",
    "CANCELING",
    "CANCELED",
    "FAILED",
    "RECONCILING",
    "INITIALIZING",
)

_TERMINAL_TASK_STATES = frozenset({"FINISHED", "CANCELED", "FAILED"})


def _end_or_minus_one(end_time: int) -> int:
    return end_time if end_time > 0 else -1


def _duration(start: int, end: int, now: int) -> int:
    if start <= 0:
        return 0
    return (end if end > 0 else now) - start


def last_modification(job: JobLike) -> int:
    """The latest moment the job is known to have changed state."""
    stamps = [job.start_time, job.end_time]
    stamps.extend(int(e.get("timestamp", 0)) for e in job.exceptions)
    return max(stamps)


# -- tasks and vertices --------------------------------------------------------------------


def _effective_task_state(task_state: str, job_status: JobStatus) -> str:
    """A task's execution state, given that the job may have ended around it."""
    if task_state in _TERMINAL_TASK_STATES:
        return task_state
    if job_status is JobStatus.CANCELLING:
        return "CANCELING"
    if job_status in (
        JobStatus.CANCELED,
        JobStatus.FAILED,
        JobStatus.RESTARTING,
        JobStatus.SUSPENDED,
    ):
        return "CANCELED"
    if job_status is JobStatus.FINISHED:
        return "FINISHED"
    return task_state if task_state in EXECUTION_STATES else "RUNNING"


def _undeployed_state(job_status: JobStatus) -> str:
    if job_status is JobStatus.FINISHED:
        return "FINISHED"
    if job_status in (JobStatus.CANCELED, JobStatus.SUSPENDED):
        return "CANCELED"
    if job_status is JobStatus.FAILED:
        return "FAILED"
    return "CREATED"


def deployed_tasks(job: JobLike) -> dict[tuple[int, int], TaskLike]:
    deployment = job.deployment
    if deployment is None:
        return {}
    return {(t.vertex_id, t.subtask_index): t for t in deployment.tasks}


def subtask_states(job: JobLike) -> dict[tuple[int, int], str]:
    """(vertex id, subtask index) -> Flink execution state, for every subtask."""
    tasks = deployed_tasks(job)
    status = job.status
    out: dict[tuple[int, int], str] = {}
    for v in job.job_graph.vertices:
        for idx in range(v.parallelism):
            task = tasks.get((v.id, idx))
            out[(v.id, idx)] = (
                _effective_task_state(task.state, status)
                if task is not None
                else _undeployed_state(status)
            )
    return out


def _aggregate_state(counts: Mapping[str, int], total: int) -> str:
    """A vertex's state from its subtasks' (Flink's aggregation rule)."""
    if total and counts.get("FINISHED", 0) == total:
        return "FINISHED"
    for state in ("FAILED", "CANCELING", "CANCELED", "RUNNING"):
        if counts.get(state, 0):
            return state
    if counts.get("FINISHED", 0):
        return "RUNNING"
    return "CREATED"


def _count(states: Sequence[str]) -> dict[str, int]:
    counts = dict.fromkeys(EXECUTION_STATES, 0)
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    return counts


# -- jobs ----------------------------------------------------------------------------------


def job_overview(job: JobLike, now: int | None = None) -> m.JobOverview:
    now = wall_clock_ms() if now is None else now
    counts = _count(list(subtask_states(job).values()))
    tasks = {"total": sum(counts.values())}
    tasks.update({state.lower(): n for state, n in counts.items()})
    return m.JobOverview(
        jid=job.job_id,
        name=job.job_graph.job_name,
        state=job.status.value,
        start_time=job.start_time if job.start_time > 0 else -1,
        end_time=_end_or_minus_one(job.end_time),
        duration=_duration(job.start_time, job.end_time, now),
        last_modification=last_modification(job),
        tasks=tasks,
    )


def job_plan(job: JobLike) -> dict[str, Any]:
    """Flink's JSON plan (``/jobs/:jobid/plan``'s ``plan``) of the job graph."""
    graph = job.job_graph
    return {
        "jid": job.job_id,
        "name": graph.job_name,
        "type": "BATCH" if job.settings.batch_mode else "STREAMING",
        "nodes": [
            {
                "id": str(v.id),
                "parallelism": v.parallelism,
                "operator": "",
                "operator_strategy": "",
                "description": " -> ".join(n.name for n in v.nodes),
                "inputs": [
                    {
                        "num": i,
                        "id": str(e.source.id),
                        "ship_strategy": str(e.partitioner),
                        "exchange": "pipelined_bounded",
                    }
                    for i, e in enumerate(v.inputs)
                ],
                "optimizer_properties": {},
            }
            for v in graph.vertices
        ],
    }


def job_details(job: JobLike, now: int | None = None) -> m.JobDetailsInfo:
    now = wall_clock_ms() if now is None else now
    states = subtask_states(job)
    tasks = deployed_tasks(job)
    vertices: list[m.JobVertexDetails] = []
    vertex_states: list[str] = []
    for v in job.job_graph.vertices:
        counts = _count([states[(v.id, i)] for i in range(v.parallelism)])
        status = _aggregate_state(counts, v.parallelism)
        vertex_states.append(status)
        read = written = 0
        for i in range(v.parallelism):
            task = tasks.get((v.id, i))
            if task is not None:
                read += task.num_records_in
                written += sum(w.num_records_out for w in task.writers)
        complete = all((v.id, i) in tasks for i in range(v.parallelism))
        ended = status in _TERMINAL_TASK_STATES and job.end_time > 0
        end = job.end_time if ended else -1
        vertices.append(
            m.JobVertexDetails(
                id=str(v.id),
                name=v.name,
                max_parallelism=v.max_parallelism,
                parallelism=v.parallelism,
                status=status,
                start_time=job.start_time if job.start_time > 0 else -1,
                end_time=end,
                duration=_duration(job.start_time, end, now),
                tasks=counts,
                metrics=m.IOMetrics(
                    read_records=read,
                    read_records_complete=complete,
                    write_records=written,
                    write_records_complete=complete,
                ),
            )
        )
    return m.JobDetailsInfo(
        jid=job.job_id,
        name=job.job_graph.job_name,
        is_stoppable=job.status is JobStatus.RUNNING,
        state=job.status.value,
        job_type="BATCH" if job.settings.batch_mode else "STREAMING",
        start_time=job.start_time if job.start_time > 0 else -1,
        end_time=_end_or_minus_one(job.end_time),
        duration=_duration(job.start_time, job.end_time, now),
        max_parallelism=max((v.max_parallelism for v in job.job_graph.vertices), default=-1),
        now=now,
        timestamps=status_timestamps(job),
        vertices=vertices,
        status_counts=_count(vertex_states),
        plan=job_plan(job),
    )


def status_timestamps(job: JobLike) -> dict[str, int]:
    """When the job entered each state; 0 for states it never entered or did not record."""
    stamps = dict.fromkeys((s.value for s in JobStatus), 0)
    if job.start_time > 0:
        stamps[JobStatus.RUNNING.value] = job.start_time
    if job.num_restarts and job.exceptions:
        stamps[JobStatus.RESTARTING.value] = int(job.exceptions[-1].get("timestamp", 0))
    if job.status.is_terminal_state() and job.end_time > 0:
        stamps[job.status.value] = job.end_time
    return stamps


# -- checkpoints ---------------------------------------------------------------------------


def _percentile(ordered: Sequence[int], q: float) -> float:
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def _summary(values: Sequence[int]) -> m.StatsSummary:
    ordered = sorted(values)
    if not ordered:
        return m.StatsSummary(min=0, max=0, avg=0, p50=0, p90=0, p95=0, p99=0, p999=0)
    return m.StatsSummary(
        min=ordered[0],
        max=ordered[-1],
        avg=sum(ordered) // len(ordered),
        p50=_percentile(ordered, 0.5),
        p90=_percentile(ordered, 0.9),
        p95=_percentile(ordered, 0.95),
        p99=_percentile(ordered, 0.99),
        p999=_percentile(ordered, 0.999),
    )


def _num_subtasks(job: JobLike) -> int:
    return sum(v.parallelism for v in job.job_graph.vertices)


def _retained_ids(job: JobLike) -> set[int]:
    coordinator = job.coordinator
    latest = coordinator.latest
    if latest is None:
        return set()
    keep = max(1, coordinator.settings.num_retained)
    ids = [
        int(e["id"])
        for e in coordinator.stats.history
        if e.get("status") == "COMPLETED"
        and not e.get("is_savepoint")
        and int(e["id"]) <= latest.checkpoint_id
    ]
    return set(sorted(ids, reverse=True)[:keep])


def checkpoint_entry(
    job: JobLike, entry: Mapping[str, Any], retained: set[int]
) -> m.CheckpointStatistics:
    """One history entry of the coordinator in Flink's CheckpointStatistics shape."""
    failed = entry.get("status") == "FAILED"
    is_savepoint = bool(entry.get("is_savepoint"))
    size = entry.get("state_size")
    n = _num_subtasks(job)
    return m.CheckpointStatistics(
        class_name="failed" if failed else "completed",
        id=int(entry["id"]),
        status="FAILED" if failed else "COMPLETED",
        is_savepoint=is_savepoint,
        checkpoint_type="SAVEPOINT" if is_savepoint else "CHECKPOINT",
        trigger_timestamp=int(entry["trigger_timestamp"]),
        latest_ack_timestamp=entry.get("latest_ack_timestamp"),
        checkpointed_size=entry.get("checkpointed_size", size),
        state_size=size,
        end_to_end_duration=entry.get("end_to_end_duration"),
        num_subtasks=n,
        num_acknowledged_subtasks=None if failed else n,
        tasks={},
        external_path=entry.get("external_path"),
        discarded=None if failed else (not is_savepoint and int(entry["id"]) not in retained),
        failure_timestamp=entry.get("failure_timestamp"),
        failure_message=entry.get("failure_message"),
    )


def checkpoint_statistics(job: JobLike) -> m.CheckpointingStatistics:
    stats = job.coordinator.stats
    retained = _retained_ids(job)
    history = [checkpoint_entry(job, e, retained) for e in stats.history]
    completed = [h for h in history if h.status == "COMPLETED"]
    latest_completed = next((h for h in completed if not h.is_savepoint), None)
    latest_savepoint = next((h for h in completed if h.is_savepoint), None)
    failed = stats.latest_failed
    restored = stats.latest_restored
    return m.CheckpointingStatistics(
        counts=m.CheckpointCounts(
            restored=stats.restored,
            total=stats.triggered,
            in_progress=stats.in_progress,
            completed=stats.completed,
            failed=stats.failed,
        ),
        summary=m.CheckpointStatisticsSummary(
            checkpointed_size=_summary([h.checkpointed_size or 0 for h in completed]),
            state_size=_summary([h.state_size or 0 for h in completed]),
            end_to_end_duration=_summary([h.end_to_end_duration or 0 for h in completed]),
        ),
        latest=m.LatestCheckpoints(
            completed=latest_completed,
            savepoint=latest_savepoint,
            failed=checkpoint_entry(job, failed, retained) if failed is not None else None,
            restored=(
                m.RestoredCheckpointStatistics(
                    id=int(restored["id"]),
                    restore_timestamp=int(restored["restore_timestamp"]),
                    is_savepoint=bool(restored["is_savepoint"]),
                    external_path=str(restored["external_path"]),
                )
                if restored is not None
                else None
            ),
        ),
        history=history,
    )


_STORAGE_CLASSES = {
    "file": "FileSystemCheckpointStorage",
    "s3": "S3CheckpointStorage",
    "memory": "InMemoryCheckpointStorage",
}


def _storage_class(uri: str | None) -> str:
    if uri is None:
        return "none"
    try:
        return _STORAGE_CLASSES.get(parse_storage_uri(uri).scheme, "none")
    except StorageError:
        return "none"


def _state_backend_name(job: JobLike) -> str:
    owner = getattr(job.settings.keyed_backend_factory, "__self__", None)
    # ExecutionSettings' default factory is a function creating heap (hashmap) backends
    return type(owner).__name__ if owner is not None else "HashMapStateBackend"


def checkpoint_config(job: JobLike) -> m.CheckpointConfigInfo:
    s = job.coordinator.settings
    return m.CheckpointConfigInfo(
        mode="exactly_once" if s.exactly_once else "at_least_once",
        interval=int(s.interval_ms or 0),
        timeout=s.timeout_ms,
        min_pause=s.min_pause_ms,
        max_concurrent=s.max_concurrent,
        externalization=m.ExternalizedCheckpointInfo(
            enabled=s.retention != "NO_EXTERNALIZED_CHECKPOINTS",
            delete_on_cancellation=s.retention != "RETAIN_ON_CANCELLATION",
        ),
        state_backend=_state_backend_name(job),
        checkpoint_storage=_storage_class(s.storage_uri),
        unaligned_checkpoints=bool(getattr(s, "unaligned", False)),
        tolerable_failed_checkpoints=s.tolerable_failures,
        checkpoints_after_tasks_finish=True,
    )


# -- exceptions ----------------------------------------------------------------------------


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()


def job_exceptions(job: JobLike, max_exceptions: int = 20) -> m.JobExceptions:
    """The job's failures, newest first (Flink's JobExceptionsInfoWithHistory)."""
    entries = [dict(e) for e in job.exceptions]
    failure = job.failure
    if failure is not None and not entries:
        entries.append(
            {
                "timestamp": job.end_time or wall_clock_ms(),
                "exception": _exception_text(failure),
                "taskName": None,
                "exceptionName": _qualified_name(failure),
            }
        )
    elif failure is not None:
        entries[-1].setdefault("exceptionName", _qualified_name(failure))
    newest_first = list(reversed(entries))
    shown = newest_first[: max(0, max_exceptions)]
    history = [
        m.RootExceptionInfo(
            exception_name=e.get("exceptionName"),
            stacktrace=str(e.get("exception", "")),
            timestamp=int(e.get("timestamp", 0)),
            task_name=e.get("taskName"),
            endpoint=e.get("endpoint"),
            task_manager_id=e.get("taskManagerId"),
            failure_labels={},
            concurrent_exceptions=[],
        )
        for e in shown
    ]
    root = newest_first[0] if newest_first else None
    return m.JobExceptions(
        root_exception=str(root.get("exception", "")) if root is not None else None,
        timestamp=int(root.get("timestamp", 0)) if root is not None else None,
        all_exceptions=[
            m.ExecutionExceptionInfo(
                exception=h.stacktrace,
                task=h.task_name or "",
                location=h.endpoint,
                timestamp=h.timestamp,
                task_manager_id=h.task_manager_id,
            )
            for h in history
        ],
        truncated=len(newest_first) > len(shown),
        exception_history=m.JobExceptionHistory(
            entries=history, truncated=len(newest_first) > len(shown)
        ),
    )


def _qualified_name(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


# -- metrics -------------------------------------------------------------------------------


def _latest_completed(job: JobLike) -> Mapping[str, Any] | None:
    for entry in job.coordinator.stats.history:
        if entry.get("status") == "COMPLETED":
            return entry
    return None


def job_metrics(job: JobLike, now: int | None = None) -> dict[str, int | str]:
    """Flink's job-scope metrics (``/jobs/:jobid/metrics``, ``flink_jobmanager_job_*``)."""
    now = wall_clock_ms() if now is None else now
    status = job.status
    stats = job.coordinator.stats
    latest = _latest_completed(job)
    restored = stats.latest_restored
    if status.is_globally_terminal_state():
        uptime = downtime = -1
    elif status is JobStatus.RUNNING and job.start_time > 0:
        uptime, downtime = now - max(job.start_time, _last_failure(job)), 0
    elif status is JobStatus.RESTARTING:
        uptime, downtime = 0, now - _last_failure(job)
    else:
        uptime = downtime = 0
    values: dict[str, int | str] = {
        "numRestarts": job.num_restarts,
        "uptime": uptime,
        "downtime": downtime,
        "numberOfCompletedCheckpoints": stats.completed,
        "numberOfFailedCheckpoints": stats.failed,
        "numberOfInProgressCheckpoints": stats.in_progress,
        "totalNumberOfCheckpoints": stats.triggered,
        "lastCheckpointDuration": (
            int(latest.get("end_to_end_duration", -1)) if latest is not None else -1
        ),
        "lastCheckpointSize": int(latest.get("state_size", -1)) if latest is not None else -1,
        "lastCheckpointRestoreTimestamp": (
            int(restored["restore_timestamp"]) if restored is not None else -1
        ),
    }
    if latest is not None and latest.get("external_path"):
        values["lastCheckpointExternalPath"] = str(latest["external_path"])
    return values


def _last_failure(job: JobLike) -> int:
    return max((int(e.get("timestamp", 0)) for e in job.exceptions), default=0)


def vertex_metrics(job: JobLike, vertex_id: int) -> dict[str, Any]:
    """Task and operator metrics of one vertex, by Flink's ids (``<subtask>.<metric>``,
    ``<subtask>.<operator>.<metric>``)."""
    vertex = next((v for v in job.job_graph.vertices if v.id == vertex_id), None)
    if vertex is None:
        return {}
    prefixes: dict[str, str] = {}
    for idx in range(vertex.parallelism):
        prefixes[task_scope(job.job_id, vertex.id, idx) + "."] = f"{idx}."
        for node in vertex.nodes:
            prefixes[operator_scope(job.job_id, node.name, idx) + "."] = f"{idx}.{node.name}."
    out: dict[str, Any] = {}
    for name, value in job.registry.snapshot().items():
        best = max((p for p in prefixes if name.startswith(p)), key=len, default=None)
        if best is not None:
            out[prefixes[best] + name[len(best) :]] = value
    return out


def metric_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def prometheus_exposition(service: ClusterService) -> str:
    """Every running job's job, task and operator metrics in Prometheus' text format."""
    exposition = Exposition()
    for job in service.jobs():
        if job.status.is_terminal_state():
            continue
        labels = {"job_id": job.job_id, "job_name": job.job_graph.job_name}
        for name, value in job_metrics(job).items():
            if isinstance(value, int):
                exposition.add(f"{JOB_FAMILY}_{name}", "gauge", value, labels)
        exposition.add_registry(job.registry, job_scopes(job.job_id, job.job_graph))
    return exposition.render()


# -- cluster -------------------------------------------------------------------------------


def cluster_overview(service: ClusterService) -> m.ClusterOverview:
    jobs = service.jobs()
    tms = service.taskmanagers()

    def count(*statuses: JobStatus) -> int:
        return sum(1 for j in jobs if j.status in statuses)

    return m.ClusterOverview(
        taskmanagers=len(tms),
        slots_total=sum(t.slots_total for t in tms),
        slots_available=sum(t.slots_free for t in tms),
        jobs_running=sum(1 for j in jobs if not j.status.is_terminal_state()),
        jobs_finished=count(JobStatus.FINISHED),
        jobs_cancelled=count(JobStatus.CANCELED),
        jobs_failed=count(JobStatus.FAILED),
        flink_version=service.flink_version,
        flink_commit=service.flink_commit,
    )


def _hardware(tm: TaskManagerInfo) -> m.HardwareDescription:
    h = tm.hardware
    return m.HardwareDescription(
        cpu_cores=h.cpu_cores,
        physical_memory=h.physical_memory,
        free_memory=h.free_memory,
        managed_memory=h.managed_memory,
    )


def taskmanager_info(tm: TaskManagerInfo) -> m.TaskManagerInfoModel:
    return m.TaskManagerInfoModel(
        id=tm.id,
        path=tm.path,
        data_port=tm.data_port,
        time_since_last_heartbeat=tm.last_heartbeat,
        slots_number=tm.slots_total,
        free_slots=tm.slots_free,
        hardware=_hardware(tm),
        blocked=False,
    )


def taskmanager_details(tm: TaskManagerInfo) -> m.TaskManagerDetails:
    return m.TaskManagerDetails(
        **taskmanager_info(tm).model_dump(by_alias=False), metrics=dict(tm.metrics)
    )
