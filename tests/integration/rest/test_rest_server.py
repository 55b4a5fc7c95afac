"""The REST API served by real uvicorn on 127.0.0.1, talked to with httpx; the standalone
Prometheus endpoint; the CLI's REST client against both."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flinklet._private.metrics import Counter, MetricRegistry
from flinklet._private.metrics.prometheus import PrometheusServer, Scope, render_registry
from flinklet._private.rest.client import RestClient
from flinklet._private.rest.minicluster import MiniClusterService
from flinklet._private.rest.server import RestServer
from flinklet.common.configuration import Configuration
from flinklet.errors import ClusterError, ConfigurationError

PROGRAM = """
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
env = StreamExecutionEnvironment.get_execution_environment()
env.enable_checkpointing(50)
src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(2000))
(env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers")
    .key_by(lambda x: x % 4).reduce(lambda a, b: a + b).add_sink(lambda v: None))
env.execute("served")
"""


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[MiniClusterService]:
    svc = MiniClusterService(
        {
            "execution.checkpointing.dir": f"file://{tmp_path / 'checkpoints'}",
            "execution.checkpointing.savepoint-dir": f"file://{tmp_path / 'savepoints'}",
        }
    )
    yield svc
    svc.shutdown()


@pytest.fixture()
def server(service: MiniClusterService) -> Iterator[RestServer]:
    srv = RestServer(service, port=0).start()
    yield srv
    srv.stop()


@pytest.fixture()
def http(server: RestServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture()
def program(tmp_path: Path) -> str:
    path = tmp_path / "served.py"
    path.write_text(PROGRAM)
    return str(path)


def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
    return value


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_server_binds_127_0_0_1_on_a_free_port(server: RestServer) -> None:
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_overview_over_http(http: httpx.Client) -> None:
    response = http.get("/overview")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["flink-version"] == "2.0.0"
    assert http.get("/v1/overview").json() == response.json()


def test_a_job_submitted_over_http_runs_and_takes_a_savepoint(
    http: httpx.Client, program: str, tmp_path: Path
) -> None:
    job_id = http.post("/jobs", json={"entrypoint": program}).json()["jobid"]
    assert http.get(f"/jobs/{job_id}/status").json() == {"status": "RUNNING"}
    trigger = http.post(f"/jobs/{job_id}/savepoints", json={})
    assert trigger.status_code == 202

    def done() -> Any:
        body = http.get(f"/jobs/{job_id}/savepoints/{trigger.json()['request-id']}").json()
        return body if body["status"]["id"] == "COMPLETED" else None

    location = wait_for(done)["operation"]["location"]
    assert location.startswith(f"file://{tmp_path / 'savepoints'}/savepoint-")
    assert http.patch(f"/jobs/{job_id}?mode=cancel").status_code == 202
    wait_for(lambda: http.get(f"/jobs/{job_id}/status").json()["status"] == "CANCELED")


def test_prometheus_metrics_over_http(http: httpx.Client, program: str) -> None:
    job_id = http.post("/jobs", json={"entrypoint": program}).json()["jobid"]
    wait_for(lambda: f'job_id="{job_id}"' in http.get("/metrics").text)
    families = {f.name for f in text_string_to_metric_families(http.get("/metrics").text)}
    assert {"flink_jobmanager_job_uptime", "flink_taskmanager_job_task_numRecordsIn"} <= families


def test_errors_over_http_are_flinks_json(http: httpx.Client) -> None:
    response = http.get(f"/jobs/{'0' * 32}")
    assert response.status_code == 404
    assert response.json() == {"errors": [f"Job {'0' * 32} not found"]}
    bad = http.post("/jobs", content=b"[", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert list(bad.json()) == ["errors"]


def test_readyz_follows_the_service(http: httpx.Client, service: MiniClusterService) -> None:
    assert http.get("/readyz").status_code == 200
    service.shutdown()
    assert http.get("/readyz").status_code == 503
    assert http.get("/healthz").status_code == 200


def test_openapi_schema_is_published(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    assert schema["info"]["title"] == "Flinklet REST API"
    assert "/jobs/{jobid}/checkpoints" in schema["paths"]


def test_stop_frees_the_port(service: MiniClusterService) -> None:
    srv = RestServer(service, port=0).start()
    port = srv.port
    assert not refused(port)
    srv.stop()
    assert refused(port)


def test_from_configuration_reads_rest_keys(service: MiniClusterService) -> None:
    conf = Configuration()
    conf.set_string("rest.bind-address", "127.0.0.1")
    conf.set_string("rest.port", "0")
    srv = RestServer.from_configuration(service, conf).start()
    try:
        assert httpx.get(f"{srv.url}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        srv.stop()


def test_a_port_in_use_is_refused_with_advice(
    service: MiniClusterService, server: RestServer
) -> None:
    expected = r"cannot bind the REST API to 127\.0\.0\.1:\d+.*rest\.port"
    with pytest.raises(ClusterError, match=expected):
        RestServer(service, port=server.port).start()


# -- the CLI's client -------------------------------------------------------------------------


def test_rest_client_follows_a_savepoint(server: RestServer, program: str) -> None:
    with RestClient(f"127.0.0.1:{server.port}") as client:
        job_id = client.submit(program)
        trigger = client.trigger_savepoint(job_id)
        location = client.wait_for_savepoint(job_id, trigger, timeout_s=15)
        assert "/savepoint-" in location
        client.cancel(job_id)
        assert client.wait_for_terminal(job_id, 15) == "CANCELED"


def test_rest_client_times_out_on_a_silent_server() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with (
            RestClient(f"127.0.0.1:{port}", timeout_s=0.2) as client,
            pytest.raises(ClusterError, match=r"did not answer GET /overview within 0\.2 s"),
        ):
            client.overview()


def test_rest_client_notices_a_port_that_is_not_a_jobmanager() -> None:
    srv = PrometheusServer(lambda: "up 1\n", port=0).start()
    try:
        with (
            RestClient(f"127.0.0.1:{srv.port}") as client,
            pytest.raises(ClusterError, match="is it a Flinklet JobManager's REST port"),
        ):
            client.overview()
    finally:
        srv.stop()


# -- the standalone Prometheus endpoint ----------------------------------------------------------


@pytest.fixture()
def registry() -> MetricRegistry:
    reg = MetricRegistry()
    reg.register("job.task.1.0.numRecordsIn", Counter()).inc(42)
    return reg


def test_prometheus_server_serves_the_registry(registry: MetricRegistry) -> None:
    scope = Scope("job.task.1.0.", "flink_taskmanager_job_task", {"job_id": "job"})
    srv = PrometheusServer(lambda: render_registry(registry, [scope]), port=0).start()
    try:
        response = httpx.get(f"http://127.0.0.1:{srv.port}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        (family,) = text_string_to_metric_families(response.text)
        assert family.name == "flink_taskmanager_job_task_numRecordsIn"
        assert family.samples[0].value == 42
        assert httpx.get(f"http://127.0.0.1:{srv.port}/other", timeout=5).status_code == 404
    finally:
        srv.stop()


def test_prometheus_server_takes_the_next_free_port_of_a_range() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        srv = PrometheusServer(lambda: "", port=f"{busy}-{busy + 20}")
        try:
            srv.start()
        except ConfigurationError:
            pytest.skip("no free port right after the busy one on this machine")
        try:
            assert busy < srv.port <= busy + 20
        finally:
            srv.stop()


def test_prometheus_server_without_a_free_port_says_what_to_set() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=r"metrics\.reporter\.prom\.port"):
            PrometheusServer(lambda: "", port=busy).start()


def test_prometheus_server_answers_concurrent_scrapes(registry: MetricRegistry) -> None:
    srv = PrometheusServer(lambda: render_registry(registry), port=0).start()
    results: list[int] = []

    def scrape() -> None:
        results.append(httpx.get(f"http://127.0.0.1:{srv.port}/metrics", timeout=5).status_code)

    try:
        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 8
    finally:
        srv.stop()
