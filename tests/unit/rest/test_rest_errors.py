"""Error answers of the REST API: Flink's ``{"errors": [...]}`` body and status codes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rest_support import wait_for

from flinklet._private.rest.app import create_app
from flinklet._private.rest.minicluster import MiniClusterService

UNKNOWN = "0" * 32

Submit = Callable[..., str]


def assert_error(response: Any, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["errors"]
    (message,) = body["errors"]
    for fragment in fragments:
        assert fragment in message
    return str(message)


def wait_state(client: TestClient, job_id: str, state: str) -> None:
    """Wait for ``state``; for a terminal one also for its end time (the job records it
    just after the state)."""

    def reached() -> bool:
        details = client.get(f"/jobs/{job_id}").json()
        ended = state not in ("FINISHED", "CANCELED", "FAILED") or details["end-time"] > 0
        return bool(details["state"] == state and ended)

    wait_for(reached, what=f"job {job_id} to be {state}")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/{id}"),
        ("GET", "/jobs/{id}/status"),
        ("GET", "/jobs/{id}/plan"),
        ("GET", "/jobs/{id}/checkpoints"),
        ("GET", "/jobs/{id}/checkpoints/config"),
        ("GET", "/jobs/{id}/exceptions"),
        ("GET", "/jobs/{id}/metrics"),
        ("GET", "/jobs/{id}/vertices/1/metrics"),
        ("GET", "/jobs/{id}/vertices/1/backpressure"),
        ("GET", "/jobs/{id}/savepoints/abc"),
        ("PATCH", "/jobs/{id}"),
        ("POST", "/jobs/{id}/savepoints"),
        ("POST", "/jobs/{id}/stop"),
    ],
)
def test_unknown_job_is_404(client: TestClient, method: str, path: str) -> None:
    kwargs: dict[str, Any] = {"json": {}} if method == "POST" else {}
    response = client.request(method, path.format(id=UNKNOWN), **kwargs)
    assert_error(response, 404, f"Job {UNKNOWN} not found")


def test_unknown_vertex_is_404(client: TestClient, running_job: str) -> None:
    response = client.get(f"/jobs/{running_job}/vertices/999/backpressure")
    assert_error(response, 404, "Vertex 999 not found")


def test_unknown_trigger_is_404(client: TestClient, running_job: str) -> None:
    response = client.get(f"/jobs/{running_job}/savepoints/{'f' * 32}")
    assert_error(response, 404, "no savepoint operation with triggerId=" + "f" * 32)


def test_unknown_taskmanager_is_404(client: TestClient) -> None:
    assert_error(client.get("/taskmanagers/nope"), 404, "TaskManager nope not found")


def test_unknown_path_is_404_in_flinks_shape(client: TestClient) -> None:
    assert_error(client.get("/no/such/path"), 404, "Not found: /no/such/path")


def test_wrong_method_is_405_in_flinks_shape(client: TestClient) -> None:
    assert_error(client.delete("/jobs"), 405, "DELETE")


def test_malformed_json_body_is_400(client: TestClient, running_job: str) -> None:
    response = client.post(
        f"/jobs/{running_job}/savepoints",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "Bad request")


def test_wrongly_typed_field_is_400(client: TestClient, running_job: str) -> None:
    response = client.post(f"/jobs/{running_job}/stop", json={"drain": "sometimes"})
    assert_error(response, 400, "Bad request", "drain")


def test_unknown_field_is_400(client: TestClient, running_job: str) -> None:
    response = client.post(f"/jobs/{running_job}/savepoints", json={"targetDirectory": "/x"})
    assert_error(response, 400, "targetDirectory")


def test_native_savepoint_format_is_400(client: TestClient, running_job: str) -> None:
    response = client.post(f"/jobs/{running_job}/savepoints", json={"formatType": "NATIVE"})
    assert_error(response, 400, "formatType")


def test_savepoint_without_any_directory_is_400(tmp_path: Path, programs: dict[str, str]) -> None:
    service = MiniClusterService({"execution.checkpointing.dir": f"file://{tmp_path}/ck"})
    try:
        client = TestClient(create_app(service))
        job_id = client.post("/jobs", json={"entrypoint": programs["unbounded.py"]}).json()["jobid"]
        response = client.post(f"/jobs/{job_id}/savepoints", json={})
        assert_error(response, 400, "No savepoint directory", "savepoint-dir")
    finally:
        service.shutdown()


def test_savepoint_directory_below_a_file_is_400(
    client: TestClient, running_job: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    response = client.post(
        f"/jobs/{running_job}/savepoints", json={"target-directory": str(blocker / "sp")}
    )
    assert_error(response, 400, "is not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only directories")
def test_unwritable_savepoint_directory_is_400(
    client: TestClient, running_job: str, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    response = client.post(
        f"/jobs/{running_job}/stop", json={"targetDirectory": str(locked / "sp")}
    )
    assert_error(response, 400, "not writable")


def test_invalid_savepoint_uri_is_400(client: TestClient, running_job: str) -> None:
    response = client.post(
        f"/jobs/{running_job}/savepoints", json={"target-directory": "ftp://host/dir"}
    )
    assert_error(response, 400, "invalid savepoint directory", "ftp://host/dir")


def test_savepoint_of_a_finished_job_is_409(client: TestClient, submit: Submit) -> None:
    job_id = submit("bounded.py")
    wait_state(client, job_id, "FINISHED")
    assert_error(client.post(f"/jobs/{job_id}/savepoints", json={}), 409, "FINISHED")


def test_stop_of_a_failed_job_is_409(client: TestClient, submit: Submit) -> None:
    job_id = submit("failing.py")
    wait_state(client, job_id, "FAILED")
    assert_error(client.post(f"/jobs/{job_id}/stop", json={}), 409, "FAILED")


def test_cancel_of_a_finished_job_is_409(client: TestClient, submit: Submit) -> None:
    job_id = submit("bounded.py")
    wait_state(client, job_id, "FINISHED")
    assert_error(client.patch(f"/jobs/{job_id}?mode=cancel"), 409, "FINISHED")


def test_cancel_of_a_cancelled_job_is_accepted_again(client: TestClient, running_job: str) -> None:
    client.patch(f"/jobs/{running_job}?mode=cancel")
    wait_state(client, running_job, "CANCELED")
    assert client.patch(f"/jobs/{running_job}?mode=cancel").status_code == 202


def test_unsupported_termination_mode_is_400(client: TestClient, running_job: str) -> None:
    assert_error(client.patch(f"/jobs/{running_job}?mode=stop"), 400, "mode=cancel", "/stop")


def test_checkpoint_config_without_checkpointing_is_404(client: TestClient, submit: Submit) -> None:
    job_id = submit("backpressured.py")
    response = client.get(f"/jobs/{job_id}/checkpoints/config")
    assert_error(response, 404, "Checkpointing is not enabled")


def test_negative_max_exceptions_is_400(client: TestClient, running_job: str) -> None:
    response = client.get(f"/jobs/{running_job}/exceptions?maxExceptions=-1")
    assert_error(response, 400, "maxExceptions")


# -- POST /jobs ---------------------------------------------------------------------------------


def test_submit_without_entrypoint_is_400(client: TestClient) -> None:
    assert_error(client.post("/jobs", json={}), 400, "entrypoint")


def test_submit_of_a_missing_file_is_400(client: TestClient, tmp_path: Path) -> None:
    missing = tmp_path / "missing.py"
    assert_error(client.post("/jobs", json={"entrypoint": str(missing)}), 400, "does not exist")


def test_submit_of_an_unimportable_module_is_400(client: TestClient) -> None:
    response = client.post("/jobs", json={"entrypoint": "no_such_module_xyz:main"})
    assert_error(response, 400, "cannot import 'no_such_module_xyz'")


def test_submit_of_a_program_failing_before_execute_is_400(
    client: TestClient, programs: dict[str, str]
) -> None:
    response = client.post("/jobs", json={"entrypoint": programs["raises.py"]})
    assert_error(response, 400, "failed before it submitted", "cannot read the input topic")


def test_submit_of_a_program_without_execute_is_400(
    client: TestClient, programs: dict[str, str]
) -> None:
    response = client.post("/jobs", json={"entrypoint": programs["no_execute.py"]})
    assert_error(response, 400, "without submitting a job", "env.execute()")


def test_submit_with_a_misspelled_configuration_key_is_400(
    client: TestClient, programs: dict[str, str]
) -> None:
    response = client.post(
        "/jobs",
        json={
            "entrypoint": programs["bounded.py"],
            "flinkConfiguration": {"paralellism.default": "2"},
        },
    )
    assert_error(response, 400, "Did you mean 'parallelism.default'")


def test_submit_with_zero_parallelism_is_400(client: TestClient, programs: dict[str, str]) -> None:
    response = client.post("/jobs", json={"entrypoint": programs["bounded.py"], "parallelism": 0})
    assert_error(response, 400, "parallelism")
