"""The REST API of a JobManager: Flink's paths and JSON shapes over a ClusterService.

``create_app(service)`` builds the FastAPI application; :mod:`.server` runs it. Paths,
methods, status codes and field names follow Flink's REST API (also under ``/v1``), so
Flink's clients (curl scripts, the Flink Kubernetes Operator's observers) read it.
Flinklet's own additions: ``POST /jobs`` (session-mode submission of a Python program,
where Flink has ``/jars/upload`` + ``/jars/:jarid/run`` for Java jars), ``GET /metrics``
(Prometheus), ``GET /healthz`` and ``GET /readyz``.

Every error is ``{"errors": ["..."]}``: 400 for malformed requests (FastAPI's 422 is
turned into 400, as Flink answers), 404 for unknown jobs, vertices, triggers and paths,
409 for savepoint/stop/cancel requests a job's state does not allow, 503 from
``/readyz`` when the service is not ready.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
import traceback
import uuid
from concurrent.futures import Future
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from flinklet import __version__
from flinklet._private.checkpoint.storage import parse_storage_uri
from flinklet._private.exec.timers import wall_clock_ms
from flinklet._private.metrics.prometheus import CONTENT_TYPE
from flinklet._private.metrics.task_metrics import (
    BACKPRESSURED,
    BUSY,
    IDLE,
    classify,
    sample_counters,
)
from flinklet._private.rest import models as m
from flinklet._private.rest import views
from flinklet._private.rest.service import ClusterService, JobLike, JobSubmission
from flinklet.common.job_status import JobStatus
from flinklet.errors import ClusterError, StorageError

__all__ = ["backpressure_level", "create_app"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": m.ErrorResponse, "description": "malformed request"},
    404: {"model": m.ErrorResponse, "description": "no such job (or vertex, trigger)"},
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": m.ErrorResponse, "description": "the job's state does not allow this"},
}

#: Flink's back-pressure levels: ratio <= 0.10 ok, <= 0.5 low, above high.
LOW_THRESHOLD, HIGH_THRESHOLD = 0.10, 0.5


BackPressureLevel = Literal["ok", "low", "high"]


def backpressure_level(ratio: float) -> BackPressureLevel:
    if ratio <= LOW_THRESHOLD:
        return "ok"
    return "low" if ratio <= HIGH_THRESHOLD else "high"


class _Operations:
    """Savepoint/stop operations by (job id, trigger id); the oldest are forgotten."""

    def __init__(self, limit: int = 1000) -> None:
        self._lock = threading.Lock()
        self._ops: collections.OrderedDict[tuple[str, str], Future[str]] = collections.OrderedDict()
        self._limit = limit

    def get(self, job_id: str, trigger_id: str) -> Future[str] | None:
        with self._lock:
            return self._ops.get((job_id, trigger_id))

    def add(self, job_id: str, trigger_id: str, future: Future[str]) -> None:
        with self._lock:
            self._ops[(job_id, trigger_id)] = future
            while len(self._ops) > self._limit:
                self._ops.popitem(last=False)


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _not_found(job_id: str) -> HTTPException:
    return _error(404, f"Job {job_id} not found")


def _check_savepoint_target(job: JobLike, target: str | None) -> None:
    """400 now, rather than a failed operation later, for a directory that cannot work."""
    directory = target or job.coordinator.settings.savepoint_dir
    if not directory:
        raise _error(
            400,
            "No savepoint directory: pass one (target-directory / targetDirectory in the "
            "request body) or set execution.checkpointing.savepoint-dir",
        )
    try:
        uri = parse_storage_uri(directory)
    except StorageError as exc:
        raise _error(400, f"invalid savepoint directory: {exc}") from exc
    if uri.scheme != "file":
        return  # object stores are checked when the savepoint is written
    path = os.sep + os.sep.join(uri.path)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise _error(400, f"savepoint directory {directory}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _error(
            400,
            f"savepoint directory {directory} is not writable ({existing} is not writable "
            f"by the JobManager); choose another directory",
        )


def _check_running(job: JobLike, what: str) -> None:
    if job.status.is_terminal_state():
        raise _error(
            409,
            f"Job {job.job_id} is {job.status.value}; {what} needs a job that is not "
            f"finished, cancelled or failed",
        )


def _failure_cause(exc: BaseException) -> m.SerializedThrowable:
    cls = type(exc)
    return m.SerializedThrowable(
        class_name=f"{cls.__module__}.{cls.__qualname__}",
        stack_trace="".join(traceback.format_exception(exc)).rstrip(),
    )


def create_app(
    service: ClusterService,
    backpressure_samples: int | None = None,
    backpressure_interval_s: float | None = None,
) -> FastAPI:
    """The REST application over ``service``.

    Back pressure is sampled ``backpressure_samples`` times, ``backpressure_interval_s``
    apart, per request (``web.backpressure.num-samples`` /
    ``web.backpressure.delay-between-samples`` in ms from the service's configuration;
    10 and 20 ms by default).
    """
    conf = service.configuration()
    samples = backpressure_samples or int(conf.get("web.backpressure.num-samples", "10"))
    interval = (
        backpressure_interval_s
        if backpressure_interval_s is not None
        else int(conf.get("web.backpressure.delay-between-samples", "20")) / 1000.0
    )
    operations = _Operations()
    app = FastAPI(
        title="Flinklet REST API",
        version=__version__,
        description=(
            "Flink's REST API (paths and JSON field names of Flink "
            f"{service.flink_version}) served by a Flinklet JobManager."
        ),
    )
    router = APIRouter()

    def job_or_404(job_id: str) -> JobLike:
        job = service.job(job_id)
        if job is None:
            raise _not_found(job_id)
        return job

    # -- errors as Flink writes them ---------------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"Not found: {request.url.path}"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"Method {request.method} is not allowed on {request.url.path}"
        return JSONResponse({"errors": [detail]}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            messages.append(f"{where or 'body'}: {e.get('msg', 'invalid')}")
        return JSONResponse({"errors": [f"Bad request: {'; '.join(messages)}"]}, status_code=400)

    # -- health (Flinklet's) -----------------------------------------------------------

    @app.get("/healthz", response_model=m.HealthStatus, tags=["health"])
    def healthz() -> m.HealthStatus:
        """Liveness: the process serves HTTP."""
        return m.HealthStatus(status="ok")

    @app.get(
        "/readyz",
        response_model=m.HealthStatus,
        responses={503: {"model": m.ErrorResponse}},
        tags=["health"],
    )
    def readyz() -> Any:
        """Readiness: the service (e.g. the HA leader) serves requests."""
        if service.is_ready():
            return m.HealthStatus(status="ready")
        return JSONResponse(
            {"errors": ["this JobManager is not ready (not the leader, or shutting down)"]},
            status_code=503,
        )

    @app.get("/metrics", response_class=PlainTextResponse, tags=["metrics"])
    def metrics() -> Response:
        """Prometheus text exposition of every running job's metrics."""
        return Response(views.prometheus_exposition(service), media_type=CONTENT_TYPE)

    # -- cluster ---------------------------------------------------------------------------

    @router.get("/overview", response_model=m.ClusterOverview, tags=["cluster"])
    def overview() -> m.ClusterOverview:
        return views.cluster_overview(service)

    @router.get("/config", response_model=m.DashboardConfiguration, tags=["cluster"])
    def dashboard_config() -> m.DashboardConfiguration:
        local = time.localtime()
        return m.DashboardConfiguration(
            refresh_interval=3000,
            timezone_name=local.tm_zone or "UTC",
            timezone_offset=int(local.tm_gmtoff) * 1000,
            flink_version=service.flink_version,
            flink_revision=service.flink_commit,
            features=m.DashboardFeatures(
                web_submit=False, web_cancel=True, web_rescale=False, web_history=False
            ),
        )

    @router.get("/jobmanager/config", response_model=list[m.ConfigEntry], tags=["cluster"])
    def jobmanager_config() -> list[m.ConfigEntry]:
        return [m.ConfigEntry(key=k, value=v) for k, v in sorted(service.configuration().items())]

    @router.get("/taskmanagers", response_model=m.TaskManagersInfo, tags=["cluster"])
    def taskmanagers() -> m.TaskManagersInfo:
        return m.TaskManagersInfo(
            taskmanagers=[views.taskmanager_info(t) for t in service.taskmanagers()]
        )

    @router.get(
        "/taskmanagers/{taskmanagerid}",
        response_model=m.TaskManagerDetails,
        responses=_ERRORS,
        tags=["cluster"],
    )
    def taskmanager(taskmanagerid: str) -> m.TaskManagerDetails:
        for t in service.taskmanagers():
            if t.id == taskmanagerid:
                return views.taskmanager_details(t)
        raise _error(404, f"TaskManager {taskmanagerid} not found")

    # -- jobs ------------------------------------------------------------------------------

    @router.get("/jobs", response_model=m.JobIdsWithStatus, tags=["jobs"])
    def jobs() -> m.JobIdsWithStatus:
        return m.JobIdsWithStatus(
            jobs=[m.JobIdWithStatus(id=j.job_id, status=j.status.value) for j in service.jobs()]
        )

    @router.post(
        "/jobs",
        response_model=m.JobSubmitResponse,
        responses=_ERRORS,
        tags=["jobs"],
        summary="Run a Python job program (Flinklet; not a Flink path)",
    )
    def submit(body: m.JobSubmitRequest) -> m.JobSubmitResponse:
        """Session-mode submission: the JobManager runs ``entrypoint`` (a ``.py`` file or
        ``package.module:function`` on its filesystem) and answers with the id of the
        first job the program submits. Flink submits Java jars through ``/jars/upload``
        and ``/jars/:jarid/run`` instead; the body's field names follow the latter."""
        submission = JobSubmission(
            entrypoint=body.entrypoint,
            args=tuple(body.program_args_list),
            parallelism=body.parallelism,
            savepoint_path=body.savepoint_path,
            allow_non_restored_state=body.allow_non_restored_state,
            configuration=dict(body.flink_configuration),
        )
        try:
            return m.JobSubmitResponse(jobid=service.submit(submission))
        except ClusterError as exc:
            raise _error(400, str(exc)) from exc

    @router.get("/jobs/overview", response_model=m.MultipleJobsDetails, tags=["jobs"])
    def jobs_overview() -> m.MultipleJobsDetails:
        now = wall_clock_ms()
        return m.MultipleJobsDetails(jobs=[views.job_overview(j, now) for j in service.jobs()])

    @router.get("/jobs/{jobid}", response_model=m.JobDetailsInfo, responses=_ERRORS, tags=["jobs"])
    def job_details(jobid: str) -> m.JobDetailsInfo:
        return views.job_details(job_or_404(jobid))

    @router.get(
        "/jobs/{jobid}/status", response_model=m.JobStatusInfo, responses=_ERRORS, tags=["jobs"]
    )
    def job_status(jobid: str) -> m.JobStatusInfo:
        return m.JobStatusInfo(status=job_or_404(jobid).status.value)

    @router.get("/jobs/{jobid}/plan", response_model=m.JobPlan, responses=_ERRORS, tags=["jobs"])
    def job_plan(jobid: str) -> m.JobPlan:
        return m.JobPlan(plan=views.job_plan(job_or_404(jobid)))

    @router.patch(
        "/jobs/{jobid}",
        status_code=202,
        responses={**_ERRORS, **_CONFLICT},
        tags=["jobs"],
    )
    def cancel(
        jobid: str,
        mode: Annotated[str | None, Query(description="'cancel' (the default)")] = None,
    ) -> dict[str, Any]:
        """Cancel the job (202). Cancelling a cancelled job is accepted again; a job that
        finished or failed answers 409."""
        job = job_or_404(jobid)
        if mode not in (None, "cancel"):
            raise _error(
                400,
                f"termination mode '{mode}' is not supported; use mode=cancel, or "
                f"POST /jobs/{jobid}/stop to stop with a savepoint",
            )
        if job.status is JobStatus.CANCELED:
            return {}
        if job.status.is_terminal_state():
            raise _error(
                409, f"Job {jobid} was not cancelled: it ended as {job.status.value} already"
            )
        job.cancel()
        return {}

    # -- checkpoints and savepoints --------------------------------------------------------

    @router.get(
        "/jobs/{jobid}/checkpoints",
        response_model=m.CheckpointingStatistics,
        responses=_ERRORS,
        tags=["checkpoints"],
    )
    def checkpoints(jobid: str) -> m.CheckpointingStatistics:
        return views.checkpoint_statistics(job_or_404(jobid))

    @router.get(
        "/jobs/{jobid}/checkpoints/config",
        response_model=m.CheckpointConfigInfo,
        responses=_ERRORS,
        tags=["checkpoints"],
    )
    def checkpoint_config(jobid: str) -> m.CheckpointConfigInfo:
        job = job_or_404(jobid)
        if not job.coordinator.settings.enabled:
            raise _error(404, f"Checkpointing is not enabled for this job ({jobid}).")
        return views.checkpoint_config(job)

    def start_operation(job: JobLike, trigger_id: str | None, start: Any) -> m.TriggerResponse:
        trigger = trigger_id or uuid.uuid4().hex
        if operations.get(job.job_id, trigger) is None:
            operations.add(job.job_id, trigger, start())
        return m.TriggerResponse(request_id=trigger)

    @router.post(
        "/jobs/{jobid}/savepoints",
        status_code=202,
        response_model=m.TriggerResponse,
        responses={**_ERRORS, **_CONFLICT},
        tags=["savepoints"],
    )
    def trigger_savepoint(
        jobid: str, body: m.SavepointTriggerRequest | None = None
    ) -> m.TriggerResponse:
        """Trigger a savepoint (202 with a ``request-id``; poll
        ``/jobs/:jobid/savepoints/:triggerid``). With ``cancel-job`` the job is cancelled
        once the savepoint completed."""
        request = body or m.SavepointTriggerRequest()
        job = job_or_404(jobid)
        _check_running(job, "a savepoint")
        _check_savepoint_target(job, request.target_directory)

        def start() -> Future[str]:
            future = job.trigger_savepoint(request.target_directory)
            if request.cancel_job:
                future.add_done_callback(lambda f: job.cancel() if f.exception() is None else None)
            return future

        return start_operation(job, request.trigger_id, start)

    @router.post(
        "/jobs/{jobid}/stop",
        status_code=202,
        response_model=m.TriggerResponse,
        responses={**_ERRORS, **_CONFLICT},
        tags=["savepoints"],
    )
    def stop_with_savepoint(
        jobid: str, body: m.StopWithSavepointRequest | None = None
    ) -> m.TriggerResponse:
        """Stop the job with a savepoint (202 with a ``request-id``; poll
        ``/jobs/:jobid/savepoints/:triggerid``). With ``drain`` the sources end and
        event time advances to the end first, firing every timer and window."""
        request = body or m.StopWithSavepointRequest()
        job = job_or_404(jobid)
        _check_running(job, "stop-with-savepoint")
        _check_savepoint_target(job, request.target_directory)
        return start_operation(
            job,
            request.trigger_id,
            lambda: job.stop_with_savepoint(request.target_directory, request.drain),
        )

    @router.get(
        "/jobs/{jobid}/savepoints/{triggerid}",
        response_model=m.AsynchronousOperationResult,
        response_model_exclude_none=True,
        responses=_ERRORS,
        tags=["savepoints"],
    )
    def savepoint_status(jobid: str, triggerid: str) -> m.AsynchronousOperationResult:
        job_or_404(jobid)
        future = operations.get(jobid, triggerid)
        if future is None:
            raise _error(
                404, f"There is no savepoint operation with triggerId={triggerid} for job {jobid}"
            )
        if not future.done():
            return m.AsynchronousOperationResult(status=m.QueueStatus(id="IN_PROGRESS"))
        exc = future.exception()
        operation = (
            m.SavepointInfo(failure_cause=_failure_cause(exc))
            if exc is not None
            else m.SavepointInfo(location=future.result())
        )
        return m.AsynchronousOperationResult(
            status=m.QueueStatus(id="COMPLETED"), operation=operation
        )

    # -- exceptions, metrics, back pressure ------------------------------------------------

    @router.get(
        "/jobs/{jobid}/exceptions",
        response_model=m.JobExceptions,
        responses=_ERRORS,
        tags=["jobs"],
    )
    def exceptions(
        jobid: str, max_exceptions: Annotated[int, Query(alias="maxExceptions", ge=0)] = 20
    ) -> m.JobExceptions:
        return views.job_exceptions(job_or_404(jobid), max_exceptions)

    def metric_list(values: dict[str, Any], get: str | None) -> list[m.MetricValue]:
        if get is None:
            return [m.MetricValue(id=k) for k in sorted(values)]
        wanted = [g.strip() for g in get.split(",") if g.strip()]
        return [
            m.MetricValue(id=k, value=views.metric_string(values[k])) for k in wanted if k in values
        ]

    @router.get(
        "/jobs/{jobid}/metrics",
        response_model=list[m.MetricValue],
        response_model_exclude_none=True,
        responses=_ERRORS,
        tags=["metrics"],
    )
    def job_metrics(
        jobid: str, get: Annotated[str | None, Query(description="ids, comma separated")] = None
    ) -> list[m.MetricValue]:
        """Job metrics: without ``get`` the available ids, with ``get=a,b`` their values."""
        return metric_list(dict(views.job_metrics(job_or_404(jobid))), get)

    def vertex_or_404(job: JobLike, vertexid: str) -> int:
        for v in job.job_graph.vertices:
            if str(v.id) == vertexid:
                return v.id
        raise _error(404, f"Vertex {vertexid} not found in job {job.job_id}")

    @router.get(
        "/jobs/{jobid}/vertices/{vertexid}/metrics",
        response_model=list[m.MetricValue],
        response_model_exclude_none=True,
        responses=_ERRORS,
        tags=["metrics"],
    )
    def vertex_metrics(
        jobid: str,
        vertexid: str,
        get: Annotated[str | None, Query(description="ids, comma separated")] = None,
    ) -> list[m.MetricValue]:
        """Task (``<subtask>.<metric>``) and operator (``<subtask>.<operator>.<metric>``)
        metrics of one vertex."""
        job = job_or_404(jobid)
        return metric_list(views.vertex_metrics(job, vertex_or_404(job, vertexid)), get)

    @router.get(
        "/jobs/{jobid}/vertices/{vertexid}/backpressure",
        response_model=m.VertexBackPressure,
        responses=_ERRORS,
        tags=["metrics"],
    )
    async def backpressure(jobid: str, vertexid: str) -> m.VertexBackPressure:
        """Back pressure of each subtask, sampled now: the share of samples in which the
        subtask could not run because an output channel was full (``ratio``), moved
        records (``busyRatio``) or had nothing to do (``idleRatio``)."""
        job = job_or_404(jobid)
        vid = vertex_or_404(job, vertexid)
        vertex = next(v for v in job.job_graph.vertices if v.id == vid)
        deployed = views.deployed_tasks(job)
        tasks = {i: deployed.get((vid, i)) for i in range(vertex.parallelism)}
        counts = {i: collections.Counter[str]() for i in tasks}
        last = {i: sample_counters(t) for i, t in tasks.items() if t is not None}
        kind = dict.fromkeys(tasks, IDLE)
        for _ in range(samples):
            await asyncio.sleep(interval)
            for i, t in tasks.items():
                if t is not None:
                    now = sample_counters(t)
                    kind[i] = classify(last[i], now, t.state == "RUNNING", kind[i])
                    last[i] = now
                counts[i][kind[i]] += 1
        subtasks = []
        for i in sorted(tasks):
            ratio = counts[i][BACKPRESSURED] / samples
            busy = counts[i][BUSY] / samples
            subtasks.append(
                m.SubtaskBackPressure(
                    subtask=i,
                    attempt_number=job.num_restarts,
                    backpressure_level=backpressure_level(ratio),
                    ratio=round(ratio, 3),
                    busy_ratio=round(busy, 3),
                    idle_ratio=round(max(0.0, 1.0 - ratio - busy), 3),
                )
            )
        worst = max((s.ratio for s in subtasks), default=0.0)
        return m.VertexBackPressure(
            status="ok",
            backpressure_level=backpressure_level(worst),
            end_timestamp=wall_clock_ms(),
            subtasks=subtasks,
        )

    app.include_router(router)
    app.include_router(router, prefix="/v1", include_in_schema=False)
    return app
