"""Request and response bodies of the REST API, with Flink's JSON field names.

Field names follow Flink's REST API (``start-time``, ``isStoppable``, ``state_size``
... spelled as Flink spells them, inconsistencies included), declared as aliases so the
Python attributes stay snake_case (serialization aliases on responses, validation aliases
on requests, which keeps mypy's view of the constructors right without a plugin). They
make the OpenAPI schema at ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AsynchronousOperationResult",
    "CheckpointConfigInfo",
    "CheckpointingStatistics",
    "ClusterOverview",
    "ConfigEntry",
    "DashboardConfiguration",
    "ErrorResponse",
    "HealthStatus",
    "JobDetailsInfo",
    "JobExceptions",
    "JobIdsWithStatus",
    "JobStatusInfo",
    "JobSubmitRequest",
    "JobSubmitResponse",
    "MetricValue",
    "MultipleJobsDetails",
    "SavepointTriggerRequest",
    "StopWithSavepointRequest",
    "TaskManagerDetails",
    "TaskManagersInfo",
    "TriggerResponse",
    "VertexBackPressure",
]


class _Model(BaseModel):
    """A response: Flink's names are serialization aliases (so the OpenAPI schema and
    the JSON use them) while Python code constructs it with the snake_case names."""

    model_config = ConfigDict(serialize_by_alias=True)


class _Request(BaseModel):
    """A request body: Flink's names are validation aliases; unknown fields are refused."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, extra="forbid")


class ErrorResponse(_Model):
    errors: list[str]


class HealthStatus(_Model):
    status: str


# -- cluster -----------------------------------------------------------------------------


class ClusterOverview(_Model):
    taskmanagers: int
    slots_total: int = Field(serialization_alias="slots-total")
    slots_available: int = Field(serialization_alias="slots-available")
    jobs_running: int = Field(serialization_alias="jobs-running")
    jobs_finished: int = Field(serialization_alias="jobs-finished")
    jobs_cancelled: int = Field(serialization_alias="jobs-cancelled")
    jobs_failed: int = Field(serialization_alias="jobs-failed")
    flink_version: str = Field(serialization_alias="flink-version")
    flink_commit: str = Field(serialization_alias="flink-commit")


class DashboardFeatures(_Model):
    web_submit: bool = Field(serialization_alias="web-submit")
    web_cancel: bool = Field(serialization_alias="web-cancel")
    web_rescale: bool = Field(serialization_alias="web-rescale")
    web_history: bool = Field(serialization_alias="web-history")


class DashboardConfiguration(_Model):
    refresh_interval: int = Field(serialization_alias="refresh-interval")
    timezone_name: str = Field(serialization_alias="timezone-name")
    timezone_offset: int = Field(serialization_alias="timezone-offset")
    flink_version: str = Field(serialization_alias="flink-version")
    flink_revision: str = Field(serialization_alias="flink-revision")
    features: DashboardFeatures


class ConfigEntry(_Model):
    key: str
    value: str


class HardwareDescription(_Model):
    cpu_cores: int = Field(serialization_alias="cpuCores")
    physical_memory: int = Field(serialization_alias="physicalMemory")
    free_memory: int = Field(serialization_alias="freeMemory")
    managed_memory: int = Field(serialization_alias="managedMemory")


class TaskManagerInfoModel(_Model):
    id: str
    path: str
    data_port: int = Field(serialization_alias="dataPort")
    time_since_last_heartbeat: int = Field(
        serialization_alias="timeSinceLastHeartbeat",
        description="Epoch ms of the latest heartbeat (Flink's name, Flink's meaning)",
    )
    slots_number: int = Field(serialization_alias="slotsNumber")
    free_slots: int = Field(serialization_alias="freeSlots")
    hardware: HardwareDescription
    blocked: bool


class TaskManagersInfo(_Model):
    taskmanagers: list[TaskManagerInfoModel]


class TaskManagerDetails(TaskManagerInfoModel):
    metrics: dict[str, float | int]


# -- jobs ------------------------------------------------------------------------------


class JobIdWithStatus(_Model):
    id: str
    status: str


class JobIdsWithStatus(_Model):
    jobs: list[JobIdWithStatus]


class JobStatusInfo(_Model):
    status: str


class JobOverview(_Model):
    jid: str
    name: str
    state: str
    start_time: int = Field(serialization_alias="start-time")
    end_time: int = Field(serialization_alias="end-time")
    duration: int
    last_modification: int = Field(serialization_alias="last-modification")
    tasks: dict[str, int] = Field(
        description="'total' and the number of subtasks per execution state, lower case"
    )


class MultipleJobsDetails(_Model):
    jobs: list[JobOverview]


class IOMetrics(_Model):
    read_records: int = Field(serialization_alias="read-records")
    read_records_complete: bool = Field(serialization_alias="read-records-complete")
    write_records: int = Field(serialization_alias="write-records")
    write_records_complete: bool = Field(serialization_alias="write-records-complete")


class JobVertexDetails(_Model):
    id: str
    name: str
    max_parallelism: int = Field(serialization_alias="maxParallelism")
    parallelism: int
    status: str
    start_time: int = Field(serialization_alias="start-time")
    end_time: int = Field(serialization_alias="end-time")
    duration: int
    tasks: dict[str, int] = Field(description="subtasks per execution state (upper case)")
    metrics: IOMetrics


class JobDetailsInfo(_Model):
    jid: str
    name: str
    is_stoppable: bool = Field(serialization_alias="isStoppable")
    state: str
    job_type: str = Field(serialization_alias="job-type")
    start_time: int = Field(serialization_alias="start-time")
    end_time: int = Field(serialization_alias="end-time")
    duration: int
    max_parallelism: int = Field(serialization_alias="maxParallelism")
    now: int
    timestamps: dict[str, int]
    vertices: list[JobVertexDetails]
    status_counts: dict[str, int] = Field(serialization_alias="status-counts")
    plan: dict[str, Any]


class JobPlan(_Model):
    plan: dict[str, Any]


# -- checkpoints ---------------------------------------------------------------------------


class CheckpointCounts(_Model):
    restored: int
    total: int
    in_progress: int
    completed: int
    failed: int


class StatsSummary(_Model):
    min: int
    max: int
    avg: int
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float


class CheckpointStatisticsSummary(_Model):
    checkpointed_size: StatsSummary
    state_size: StatsSummary
    end_to_end_duration: StatsSummary


class CheckpointStatistics(_Model):
    class_name: Literal["completed", "failed", "in_progress"] = Field(
        serialization_alias="className"
    )
    id: int
    status: Literal["COMPLETED", "FAILED", "IN_PROGRESS"]
    is_savepoint: bool
    checkpoint_type: str
    trigger_timestamp: int
    latest_ack_timestamp: int | None
    checkpointed_size: int | None
    state_size: int | None
    end_to_end_duration: int | None
    num_subtasks: int
    num_acknowledged_subtasks: int | None
    tasks: dict[str, Any]
    external_path: str | None = None
    discarded: bool | None = None
    failure_timestamp: int | None = None
    failure_message: str | None = None


class RestoredCheckpointStatistics(_Model):
    id: int
    restore_timestamp: int
    is_savepoint: bool
    external_path: str


class LatestCheckpoints(_Model):
    completed: CheckpointStatistics | None
    savepoint: CheckpointStatistics | None
    failed: CheckpointStatistics | None
    restored: RestoredCheckpointStatistics | None


class CheckpointingStatistics(_Model):
    counts: CheckpointCounts
    summary: CheckpointStatisticsSummary
    latest: LatestCheckpoints
    history: list[CheckpointStatistics]


class ExternalizedCheckpointInfo(_Model):
    enabled: bool
    delete_on_cancellation: bool


class CheckpointConfigInfo(_Model):
    mode: Literal["exactly_once", "at_least_once"]
    interval: int
    timeout: int
    min_pause: int
    max_concurrent: int
    externalization: ExternalizedCheckpointInfo
    state_backend: str
    checkpoint_storage: str
    unaligned_checkpoints: bool
    tolerable_failed_checkpoints: int
    checkpoints_after_tasks_finish: bool


# -- savepoints ------------------------------------------------------------------------------


class SavepointTriggerRequest(_Request):
    target_directory: str | None = Field(default=None, validation_alias="target-directory")
    cancel_job: bool = Field(default=False, validation_alias="cancel-job")
    trigger_id: str | None = Field(default=None, validation_alias="triggerId")
    format_type: Literal["CANONICAL"] | None = Field(default=None, validation_alias="formatType")


class StopWithSavepointRequest(_Request):
    target_directory: str | None = Field(default=None, validation_alias="targetDirectory")
    drain: bool = False
    trigger_id: str | None = Field(default=None, validation_alias="triggerId")
    format_type: Literal["CANONICAL"] | None = Field(default=None, validation_alias="formatType")


class TriggerResponse(_Model):
    request_id: str = Field(serialization_alias="request-id")


class QueueStatus(_Model):
    id: Literal["IN_PROGRESS", "COMPLETED"]


class SerializedThrowable(_Model):
    class_name: str = Field(serialization_alias="class")
    stack_trace: str = Field(serialization_alias="stack-trace")


class SavepointInfo(_Model):
    location: str | None = None
    failure_cause: SerializedThrowable | None = Field(
        default=None, serialization_alias="failure-cause"
    )


class AsynchronousOperationResult(_Model):
    status: QueueStatus
    operation: SavepointInfo | None = None


# -- exceptions, metrics, back pressure -----------------------------------------------------------


class ExecutionExceptionInfo(_Model):
    exception: str
    task: str
    location: str | None
    timestamp: int
    task_manager_id: str | None = Field(serialization_alias="taskManagerId")


class RootExceptionInfo(_Model):
    exception_name: str | None = Field(serialization_alias="exceptionName")
    stacktrace: str
    timestamp: int
    task_name: str | None = Field(serialization_alias="taskName")
    endpoint: str | None
    task_manager_id: str | None = Field(serialization_alias="taskManagerId")
    failure_labels: dict[str, str] = Field(serialization_alias="failureLabels")
    concurrent_exceptions: list[RootExceptionInfo] = Field(
        serialization_alias="concurrentExceptions"
    )


class JobExceptionHistory(_Model):
    entries: list[RootExceptionInfo]
    truncated: bool


class JobExceptions(_Model):
    root_exception: str | None = Field(serialization_alias="root-exception")
    timestamp: int | None
    all_exceptions: list[ExecutionExceptionInfo] = Field(serialization_alias="all-exceptions")
    truncated: bool
    exception_history: JobExceptionHistory = Field(serialization_alias="exceptionHistory")


class MetricValue(_Model):
    id: str
    value: str | None = None


class SubtaskBackPressure(_Model):
    subtask: int
    attempt_number: int = Field(serialization_alias="attempt-number")
    backpressure_level: Literal["ok", "low", "high"] = Field(
        serialization_alias="backpressureLevel"
    )
    ratio: float
    busy_ratio: float = Field(serialization_alias="busyRatio")
    idle_ratio: float = Field(serialization_alias="idleRatio")


class VertexBackPressure(_Model):
    status: Literal["ok", "deprecated"]
    backpressure_level: Literal["ok", "low", "high"] = Field(
        serialization_alias="backpressureLevel"
    )
    end_timestamp: int = Field(serialization_alias="end-timestamp")
    subtasks: list[SubtaskBackPressure]


# -- session-mode submission (Flinklet's own path) -----------------------------------------------


class JobSubmitRequest(_Request):
    """``POST /jobs``: run a Python job program that is on the JobManager's filesystem.

    Field names follow Flink's ``/jars/:jarid/run`` body where they mean the same.
    """

    entrypoint: str = Field(
        min_length=1, description="a .py file or package.module:function on the JobManager"
    )
    program_args_list: list[str] = Field(default_factory=list, validation_alias="programArgsList")
    parallelism: int | None = Field(default=None, ge=1)
    savepoint_path: str | None = Field(default=None, validation_alias="savepointPath")
    allow_non_restored_state: bool = Field(default=False, validation_alias="allowNonRestoredState")
    flink_configuration: dict[str, str] = Field(
        default_factory=dict, validation_alias="flinkConfiguration"
    )


class JobSubmitResponse(_Model):
    jobid: str
