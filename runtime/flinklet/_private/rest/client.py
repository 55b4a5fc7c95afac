"""``RestClient``: the CLI's client of a JobManager's REST API (httpx, with timeouts).

Every failure becomes a :class:`~flinklet.errors.ClusterError` with a one-line message
that says what happened and what to do::

    cannot reach the JobManager at 127.0.0.1:8081: connection refused; is the cluster
    running? (flinklet cluster start)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from flinklet.errors import ClusterError

__all__ = ["DEFAULT_ADDRESS", "RestClient", "SavepointFailedError"]

DEFAULT_ADDRESS = "127.0.0.1:8081"


class SavepointFailedError(ClusterError):
    """The JobManager reported the savepoint (or stop-with-savepoint) as failed."""


def _base_url(address: str) -> tuple[str, str]:
    """``host:port`` or ``http(s)://host:port`` -> (base URL, how to name it)."""
    text = address.strip().rstrip("/")
    if not text:
        raise ClusterError("empty JobManager address; pass --jobmanager host:port")
    if "://" in text:
        return text, text.split("://", 1)[1]
    if ":" not in text.rsplit("]", 1)[-1]:
        text = f"{text}:8081"
    return f"http://{text}", text


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


class RestClient:
    """Talks to one JobManager. ``timeout_s`` bounds every HTTP request."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url, self.address = _base_url(address)
        self.timeout_s = timeout_s
        self._http = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout_s), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON body, or ClusterError."""
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.ConnectError as exc:
            reason = str(exc) or type(exc).__name__
            if "refused" in reason.lower():
                reason = "connection refused"
            raise ClusterError(
                f"cannot reach the JobManager at {self.address}: {reason}; is the cluster "
                f"running? (flinklet cluster start)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ClusterError(
                f"the JobManager at {self.address} did not answer {method} {path} within "
                f"{self.timeout_s:g} s; it may be overloaded: retry, or raise --timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise ClusterError(f"cannot talk to the JobManager at {self.address}: {exc}") from exc
        try:
            payload = response.json() if response.content else {}
        except ValueError as exc:
            raise ClusterError(
                f"{self.address} answered {method} {path} with {response.status_code} and no "
                f"JSON; is it a Flinklet JobManager's REST port?"
            ) from exc
        if response.status_code >= 400:
            errors = payload.get("errors") if isinstance(payload, dict) else None
            detail = _first_line(str(errors[0])) if errors else response.reason_phrase
            raise ClusterError(
                f"the JobManager refused {method} {path} ({response.status_code}): {detail}"
            )
        return payload

    # -- the API -----------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        return dict(self.request("GET", "/overview"))

    def jobs_overview(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/jobs/overview")["jobs"])

    def job_details(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/jobs/{job_id}"))

    def job_status(self, job_id: str) -> str:
        return str(self.request("GET", f"/jobs/{job_id}/status")["status"])

    def job_exceptions(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/jobs/{job_id}/exceptions"))

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/jobs/{job_id}/checkpoints"))

    def submit(
        self,
        entrypoint: str,
        args: Sequence[str] = (),
        parallelism: int | None = None,
        savepoint_path: str | None = None,
        allow_non_restored_state: bool = False,
        configuration: Mapping[str, str] | None = None,
    ) -> str:
        """``POST /jobs``: the id of the job the program submitted."""
        body: dict[str, Any] = {
            "entrypoint": entrypoint,
            "programArgsList": list(args),
            "allowNonRestoredState": allow_non_restored_state,
            "flinkConfiguration": dict(configuration or {}),
        }
        if parallelism is not None:
            body["parallelism"] = parallelism
        if savepoint_path:
            body["savepointPath"] = savepoint_path
        return str(self.request("POST", "/jobs", body)["jobid"])

    def cancel(self, job_id: str) -> None:
        self.request("PATCH", f"/jobs/{job_id}", params={"mode": "cancel"})

    def trigger_savepoint(
        self, job_id: str, target_directory: str | None = None, cancel_job: bool = False
    ) -> str:
        body: dict[str, Any] = {"cancel-job": cancel_job}
        if target_directory:
            body["target-directory"] = target_directory
        return str(self.request("POST", f"/jobs/{job_id}/savepoints", body)["request-id"])

    def stop_with_savepoint(
        self, job_id: str, target_directory: str | None = None, drain: bool = False
    ) -> str:
        body: dict[str, Any] = {"drain": drain}
        if target_directory:
            body["targetDirectory"] = target_directory
        return str(self.request("POST", f"/jobs/{job_id}/stop", body)["request-id"])

    def savepoint_status(self, job_id: str, trigger_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/jobs/{job_id}/savepoints/{trigger_id}"))

    def wait_for_savepoint(
        self, job_id: str, trigger_id: str, timeout_s: float = 600.0, poll_s: float = 0.2
    ) -> str:
        """Poll the operation until it completes; its location, or SavepointFailedError."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.savepoint_status(job_id, trigger_id)
            if result.get("status", {}).get("id") == "COMPLETED":
                operation = result.get("operation") or {}
                cause = operation.get("failure-cause")
                if cause is not None:
                    trace = str(cause.get("stack-trace", ""))
                    lines = [ln for ln in trace.splitlines() if ln.strip()]
                    detail = lines[-1].strip() if lines else str(cause.get("class", "failed"))
                    raise SavepointFailedError(f"the savepoint of job {job_id} failed: {detail}")
                return str(operation["location"])
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the savepoint of job {job_id} did not complete within {timeout_s:g} s; "
                    f"it may still complete: GET /jobs/{job_id}/savepoints/{trigger_id}"
                )
            time.sleep(poll_s)

    def wait_for_terminal(self, job_id: str, timeout_s: float, poll_s: float = 0.2) -> str:
        """Poll until the job reaches a terminal state; that state (or ClusterError)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.job_status(job_id)
            if status in ("FINISHED", "CANCELED", "FAILED", "SUSPENDED"):
                return status
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"job {job_id} is still {status} after {timeout_s:g} s; check it with "
                    f"flinklet list"
                )
            time.sleep(poll_s)
