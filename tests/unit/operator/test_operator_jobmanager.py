"""The JobManager REST client: Flink's paths and shapes in, typed observations out,
errors mapped to unavailable / request errors (httpx MockTransport, no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from flinklet_operator.errors import JobManagerRequestError, JobManagerUnavailableError
from flinklet_operator.jobmanager import HttpJobManager, http_jobmanager_factory
from flinklet_operator.observed import CheckpointObservation, SavepointOperation


class Recorder:
    def __init__(self, routes: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.raw_path.decode()
        self.requests.append((request.method, path, body))
        status, payload = self.routes.get((request.method, path), (404, {"errors": ["nope"]}))
        if isinstance(payload, Exception):
            raise payload
        return httpx.Response(status, json=payload)


def client(routes: dict[tuple[str, str], tuple[int, Any]]) -> tuple[HttpJobManager, Recorder]:
    recorder = Recorder(routes)
    return HttpJobManager("http://jm:8081", transport=httpx.MockTransport(recorder)), recorder


def test_list_jobs_newest_first_with_parallelism_from_the_details() -> None:
    jm, _ = client(
        {
            ("GET", "/jobs/overview"): (
                200,
                {
                    "jobs": [
                        {"jid": "old", "name": "wc", "state": "FINISHED", "start-time": 1000},
                        {
                            "jid": "new",
                            "name": "wc",
                            "state": "RUNNING",
                            "start-time": 1714564800000,
                        },
                    ]
                },
            ),
            ("GET", "/jobs/new"): (
                200,
                {"jid": "new", "vertices": [{"parallelism": 2}, {"parallelism": 4}]},
            ),
        }
    )
    jobs = jm.list_jobs()
    assert [j.job_id for j in jobs] == ["new", "old"]
    assert jobs[0].state == "RUNNING"
    assert jobs[0].start_time == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert jobs[0].parallelism == 4
    assert jobs[1].parallelism is None


def test_checkpoints_latest_completed() -> None:
    jm, _ = client(
        {
            ("GET", "/jobs/j/checkpoints"): (
                200,
                {
                    "counts": {"completed": 3},
                    "latest": {
                        "completed": {
                            "id": 3,
                            "external_path": "s3://b/j/chk-3",
                            "latest_ack_timestamp": 1714564800000,
                        }
                    },
                },
            )
        }
    )
    assert jm.checkpoints("j") == CheckpointObservation(
        "s3://b/j/chk-3", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    )


def test_no_completed_checkpoint_yet() -> None:
    jm, _ = client({("GET", "/jobs/j/checkpoints"): (200, {"latest": {"completed": None}})})
    assert jm.checkpoints("j") is None


def test_savepoint_trigger_body_and_status_shapes() -> None:
    jm, rec = client(
        {
            ("POST", "/jobs/j/savepoints"): (202, {"request-id": "r1"}),
            ("GET", "/jobs/j/savepoints/r1"): (200, {"status": {"id": "IN_PROGRESS"}}),
        }
    )
    assert jm.trigger_savepoint("j", "s3://b/sp") == "r1"
    assert rec.requests[0] == (
        "POST",
        "/jobs/j/savepoints",
        {"cancel-job": False, "target-directory": "s3://b/sp"},
    )
    assert jm.savepoint_status("j", "r1") == SavepointOperation("IN_PROGRESS")


def test_stop_with_savepoint_body() -> None:
    jm, rec = client({("POST", "/jobs/j/stop"): (202, {"request-id": "r2"})})
    assert jm.stop_with_savepoint("j", "s3://b/sp") == "r2"
    assert rec.requests[0][2] == {"drain": False, "targetDirectory": "s3://b/sp"}


def test_savepoint_completed_and_failed() -> None:
    jm, _ = client(
        {
            ("GET", "/jobs/j/savepoints/ok"): (
                200,
                {"status": {"id": "COMPLETED"}, "operation": {"location": "s3://b/sp/savepoint-1"}},
            ),
            ("GET", "/jobs/j/savepoints/bad"): (
                200,
                {
                    "status": {"id": "COMPLETED"},
                    "operation": {
                        "failure-cause": {
                            "class": "java.io.IOException",
                            "stack-trace": "IOException: no space\n\tat x",
                        }
                    },
                },
            ),
        }
    )
    assert jm.savepoint_status("j", "ok") == SavepointOperation(
        "COMPLETED", "s3://b/sp/savepoint-1"
    )
    failed = jm.savepoint_status("j", "bad")
    assert failed.failed and failed.failure == "IOException: no space"


def test_an_unknown_trigger_is_unknown() -> None:
    jm, _ = client({})
    assert jm.savepoint_status("j", "gone") == SavepointOperation("UNKNOWN")


def test_cancel_uses_patch_mode_cancel() -> None:
    jm, rec = client({("PATCH", "/jobs/j?mode=cancel"): (202, {})})
    jm.cancel("j")
    assert rec.requests == [("PATCH", "/jobs/j?mode=cancel", None)]


def test_exception_summary_is_the_first_line() -> None:
    jm, _ = client(
        {
            ("GET", "/jobs/j/exceptions"): (
                200,
                {"root-exception": "ValueError: bad record\n  File x", "all-exceptions": []},
            )
        }
    )
    assert jm.exception_summary("j") == "ValueError: bad record"
    jm2, _ = client(
        {
            ("GET", "/jobs/j/exceptions"): (
                200,
                {
                    "exceptionHistory": {
                        "entries": [
                            {"exceptionName": "KeyError", "stacktrace": "KeyError: 'k'\n..."}
                        ]
                    }
                },
            )
        }
    )
    assert jm2.exception_summary("j") == "KeyError: 'k'"


def test_connection_errors_are_unavailable() -> None:
    jm, _ = client({("GET", "/jobs/overview"): (0, httpx.ConnectError("refused"))})
    with pytest.raises(JobManagerUnavailableError, match="not reachable"):
        jm.list_jobs()


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_unavailable(status: int) -> None:
    jm, _ = client({("GET", "/jobs/overview"): (status, {})})
    with pytest.raises(JobManagerUnavailableError):
        jm.list_jobs()


def test_other_errors_carry_status_and_flink_error_text() -> None:
    jm, _ = client({("POST", "/jobs/j/stop"): (409, {"errors": ["Job is not running"]})})
    with pytest.raises(JobManagerRequestError) as caught:
        jm.stop_with_savepoint("j", None)
    assert caught.value.status == 409
    assert "Job is not running" in str(caught.value)


def test_a_trigger_without_request_id_is_an_error() -> None:
    jm, _ = client({("POST", "/jobs/j/savepoints"): (202, {})})
    with pytest.raises(JobManagerRequestError, match="request-id"):
        jm.trigger_savepoint("j", None)


def test_factory_fills_the_url_template() -> None:
    make = http_jobmanager_factory()
    assert make("jobs", "wc").base_url == "http://wc-rest.jobs:8081"  # type: ignore[attr-defined]
