"""Fixtures for the REST API tests: job programs written to a temp dir, a mini cluster
running them in this process, and FastAPI's TestClient over the app."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette's TestClient warns about httpx on import
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from rest_support import PROGRAMS, wait_for

from flinklet._private.rest.app import create_app
from flinklet._private.rest.minicluster import MiniClusterService


@pytest.fixture()
def programs(tmp_path: Path) -> dict[str, str]:
    """Program name -> absolute path of the written program."""
    directory = tmp_path / "programs"
    directory.mkdir()
    out = {}
    for name, source in PROGRAMS.items():
        (directory / name).write_text(source)
        out[name] = str(directory / name)
    return out


@pytest.fixture()
def savepoint_dir(tmp_path: Path) -> Path:
    return tmp_path / "savepoints"


@pytest.fixture()
def service(tmp_path: Path, savepoint_dir: Path) -> Iterator[MiniClusterService]:
    svc = MiniClusterService(
        {
            "execution.checkpointing.dir": f"file://{tmp_path / 'checkpoints'}",
            "execution.checkpointing.savepoint-dir": f"file://{savepoint_dir}",
            "taskmanager.numberOfTaskSlots": "4",
        }
    )
    yield svc
    svc.shutdown()


@pytest.fixture()
def client(service: MiniClusterService) -> TestClient:
    return TestClient(create_app(service, backpressure_samples=10, backpressure_interval_s=0.01))


@pytest.fixture()
def submit(client: TestClient, programs: dict[str, str]) -> Callable[..., str]:
    """Submit a program by name through ``POST /jobs``; the job id."""

    def go(name: str, **body: Any) -> str:
        response = client.post("/jobs", json={"entrypoint": programs[name], **body})
        assert response.status_code == 200, response.text
        return str(response.json()["jobid"])

    return go


@pytest.fixture()
def running_job(client: TestClient, submit: Callable[..., str], service: MiniClusterService) -> str:
    """An unbounded job, running, with at least one completed checkpoint."""
    job_id = submit("unbounded.py", parallelism=2)
    wait_for(
        lambda: client.get(f"/jobs/{job_id}/checkpoints").json()["counts"]["completed"] > 0,
        what="a completed checkpoint",
    )
    return job_id
