"""The operator's client of a JobManager's REST API (Flink's paths and shapes).

The operator never dials pods: in the cluster it reaches the JobManager through its
Service, ``http://<name>-rest.<namespace>:8081``; tests point the URL template elsewhere
(``FLINKLET_OPERATOR_JOBMANAGER_URL``). Every call has a timeout, and every failure becomes
:class:`~flinklet_operator.errors.JobManagerUnavailableError` (not reachable, 502/503/504)
or :class:`~flinklet_operator.errors.JobManagerRequestError` (any other error status).

>>> import httpx
>>> def answer(request: httpx.Request) -> httpx.Response:
...     return httpx.Response(200, json={"jobs": [
...         {"jid": "a1", "name": "wc", "state": "RUNNING", "start-time": 1, "parallelism": 2}]})
>>> client = HttpJobManager("http://wc-rest.jobs:8081", transport=httpx.MockTransport(answer))
>>> [(job.job_id, job.state, job.parallelism) for job in client.list_jobs()]
[('a1', 'RUNNING', 2)]
>>> client.close()
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from flinklet_operator.errors import JobManagerRequestError, JobManagerUnavailableError
from flinklet_operator.observed import CheckpointObservation, JobObservation, SavepointOperation

__all__ = [
    "DEFAULT_URL_TEMPLATE",
    "HttpJobManager",
    "JobManagerApi",
    "JobManagerFactory",
    "http_jobmanager_factory",
]

DEFAULT_URL_TEMPLATE = "http://{name}-rest.{namespace}:8081"
_UNAVAILABLE = {502, 503, 504}


class JobManagerApi(Protocol):
    """What the operator asks of a JobManager."""

    def list_jobs(self) -> list[JobObservation]: ...

    def checkpoints(self, job_id: str) -> CheckpointObservation | None: ...

    def exception_summary(self, job_id: str) -> str | None: ...

    def cancel(self, job_id: str) -> None: ...

    def trigger_savepoint(self, job_id: str, target_directory: str | None) -> str: ...

    def stop_with_savepoint(
        self, job_id: str, target_directory: str | None, drain: bool = False
    ) -> str: ...

    def savepoint_status(self, job_id: str, trigger_id: str) -> SavepointOperation: ...

    def close(self) -> None: ...


#: Makes the client for FlinkJob (namespace, name).
JobManagerFactory = Callable[[str, str], JobManagerApi]


def _millis(value: Any) -> datetime | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


class HttpJobManager:
    """:class:`JobManagerApi` over HTTP with httpx."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpJobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise JobManagerUnavailableError(
                f"the JobManager at {self.base_url} is not reachable ({method} {path}: "
                f"{type(exc).__name__}: {exc}); it may be starting or restarting"
            ) from exc
        if response.status_code in _UNAVAILABLE:
            raise JobManagerUnavailableError(
                f"the JobManager at {self.base_url} answered {response.status_code} to "
                f"{method} {path}; it is not ready yet"
            )
        if response.status_code >= 400:
            raise JobManagerRequestError(
                f"the JobManager answered {response.status_code} to {method} {path}: "
                f"{_error_text(response)}",
                status=response.status_code,
                body=response.text,
            )
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise JobManagerRequestError(
                f"the JobManager answered {method} {path} with something that is not JSON",
                status=response.status_code,
                body=response.text[:500],
            ) from exc

    def _trigger(self, path: str, body: dict[str, Any]) -> str:
        answer = self._call("POST", path, body)
        trigger = answer.get("request-id") if isinstance(answer, dict) else None
        if not isinstance(trigger, str) or not trigger:
            raise JobManagerRequestError(
                f"POST {path} answered without a request-id: {answer!r}", status=200
            )
        return trigger

    # ------------------------------------------------------------------ API
    def list_jobs(self) -> list[JobObservation]:
        """Every job the JobManager knows, newest first, with parallelism where known."""
        answer = self._call("GET", "/jobs/overview")
        jobs: list[JobObservation] = []
        for item in answer.get("jobs", []) if isinstance(answer, dict) else []:
            if not isinstance(item, dict) or "jid" not in item:
                continue
            parallelism = item.get("parallelism")
            jobs.append(
                JobObservation(
                    job_id=str(item["jid"]),
                    name=str(item.get("name", "")),
                    state=str(item.get("state", "UNKNOWN")),
                    start_time=_millis(item.get("start-time")),
                    parallelism=parallelism if isinstance(parallelism, int) else None,
                )
            )
        jobs.sort(key=lambda j: j.start_time or datetime.min.replace(tzinfo=UTC), reverse=True)
        if jobs and jobs[0].parallelism is None:
            jobs[0] = self._with_parallelism(jobs[0])
        return jobs

    def _with_parallelism(self, job: JobObservation) -> JobObservation:
        try:
            details = self._call("GET", f"/jobs/{job.job_id}")
        except JobManagerRequestError:
            return job
        parallelism = details.get("parallelism") if isinstance(details, dict) else None
        if not isinstance(parallelism, int):
            vertices = details.get("vertices", []) if isinstance(details, dict) else []
            widths = [v.get("parallelism") for v in vertices if isinstance(v, dict)]
            ints = [w for w in widths if isinstance(w, int)]
            parallelism = max(ints) if ints else None
        return JobObservation(job.job_id, job.name, job.state, job.start_time, parallelism)

    def checkpoints(self, job_id: str) -> CheckpointObservation | None:
        answer = self._call("GET", f"/jobs/{job_id}/checkpoints")
        latest = answer.get("latest") if isinstance(answer, dict) else None
        completed = latest.get("completed") if isinstance(latest, dict) else None
        if not isinstance(completed, dict) or not completed.get("external_path"):
            return None
        stamp = completed.get("latest_ack_timestamp") or completed.get("trigger_timestamp")
        return CheckpointObservation(path=str(completed["external_path"]), timestamp=_millis(stamp))

    def exception_summary(self, job_id: str) -> str | None:
        answer = self._call("GET", f"/jobs/{job_id}/exceptions")
        if not isinstance(answer, dict):
            return None
        root = answer.get("root-exception")
        if isinstance(root, str) and root.strip():
            return _first_line(root)
        history = answer.get("exceptionHistory")
        entries = history.get("entries") if isinstance(history, dict) else None
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            entry = entries[0]
            name = entry.get("exceptionName") or ""
            trace = entry.get("stacktrace") or ""
            return _first_line(str(trace)) or str(name) or None
        return None

    def cancel(self, job_id: str) -> None:
        self._call("PATCH", f"/jobs/{job_id}?mode=cancel")

    def trigger_savepoint(self, job_id: str, target_directory: str | None) -> str:
        body: dict[str, Any] = {"cancel-job": False}
        if target_directory is not None:
            body["target-directory"] = target_directory
        return self._trigger(f"/jobs/{job_id}/savepoints", body)

    def stop_with_savepoint(
        self, job_id: str, target_directory: str | None, drain: bool = False
    ) -> str:
        body: dict[str, Any] = {"drain": drain}
        if target_directory is not None:
            body["targetDirectory"] = target_directory
        return self._trigger(f"/jobs/{job_id}/stop", body)

    def savepoint_status(self, job_id: str, trigger_id: str) -> SavepointOperation:
        try:
            answer = self._call("GET", f"/jobs/{job_id}/savepoints/{trigger_id}")
        except JobManagerRequestError as exc:
            if exc.status == 404:
                return SavepointOperation(status="UNKNOWN")
            raise
        status = answer.get("status", {}) if isinstance(answer, dict) else {}
        state = status.get("id") if isinstance(status, dict) else None
        if state != "COMPLETED":
            return SavepointOperation(status="IN_PROGRESS")
        operation = answer.get("operation") or {}
        location = operation.get("location") if isinstance(operation, dict) else None
        failure = operation.get("failure-cause") if isinstance(operation, dict) else None
        if failure is not None or not location:
            return SavepointOperation(status="COMPLETED", failure=_failure_text(failure))
        return SavepointOperation(status="COMPLETED", location=str(location))


def _failure_text(failure: Any) -> str:
    if isinstance(failure, dict):
        for key in ("serialized-throwable", "stack-trace", "class", "message"):
            value = failure.get(key)
            if isinstance(value, str) and value.strip():
                return _first_line(value)
        return str(failure)
    if failure is None:
        return "the JobManager reported no savepoint location"
    return _first_line(str(failure))


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return "; ".join(_first_line(str(e)) for e in body["errors"])
    return str(body)[:300]


def http_jobmanager_factory(
    template: str = DEFAULT_URL_TEMPLATE, *, timeout: float = 5.0, connect_timeout: float = 2.0
) -> JobManagerFactory:
    """Clients whose base URL is ``template`` with ``{name}`` and ``{namespace}`` filled in.

    >>> make = http_jobmanager_factory("http://127.0.0.1:8081/{namespace}/{name}")
    >>> make("jobs", "wc").base_url
    'http://127.0.0.1:8081/jobs/wc'
    """

    def make(namespace: str, name: str) -> HttpJobManager:
        url = template.format(name=name, namespace=namespace)
        return HttpJobManager(url, timeout=timeout, connect_timeout=min(connect_timeout, timeout))

    return make
