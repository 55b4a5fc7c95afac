"""The REST API against real jobs of a mini cluster: every endpoint's JSON field names are
Flink's (checked against Flink's REST API reference), and its values are the job's."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from rest_support import wait_for

from flinklet._private.rest.minicluster import MiniClusterService

# Field names of Flink's REST API responses (Flink 2.0 reference).
OVERVIEW = {
    "taskmanagers",
    "slots-total",
    "slots-available",
    "jobs-running",
    "jobs-finished",
    "jobs-cancelled",
    "jobs-failed",
    "flink-version",
    "flink-commit",
}
JOB_OVERVIEW = {
    "jid",
    "name",
    "state",
    "start-time",
    "end-time",
    "duration",
    "last-modification",
    "tasks",
}
OVERVIEW_TASKS = {
    "total",
    "created",
    "scheduled",
    "deploying",
    "running",
    "finished",
    "canceling",
    "canceled",
    "failed",
    "reconciling",
    "initializing",
}
EXECUTION_STATES = {s.upper() for s in OVERVIEW_TASKS - {"total"}}
JOB_DETAILS = {
    "jid",
    "name",
    "isStoppable",
    "state",
    "job-type",
    "start-time",
    "end-time",
    "duration",
    "maxParallelism",
    "now",
    "timestamps",
    "vertices",
    "status-counts",
    "plan",
}
JOB_STATUSES = {
    "INITIALIZING",
    "CREATED",
    "RUNNING",
    "FAILING",
    "FAILED",
    "CANCELLING",
    "CANCELED",
    "FINISHED",
    "RESTARTING",
    "SUSPENDED",
    "RECONCILING",
}
VERTEX = {
    "id",
    "name",
    "maxParallelism",
    "parallelism",
    "status",
    "start-time",
    "end-time",
    "duration",
    "tasks",
    "metrics",
}
IO_METRICS = {"read-records", "read-records-complete", "write-records", "write-records-complete"}
CHECKPOINT_COUNTS = {"restored", "total", "in_progress", "completed", "failed"}
STATS_SUMMARY = {"min", "max", "avg", "p50", "p90", "p95", "p99", "p999"}
CHECKPOINT_ENTRY = {
    "className",
    "id",
    "status",
    "is_savepoint",
    "checkpoint_type",
    "trigger_timestamp",
    "latest_ack_timestamp",
    "checkpointed_size",
    "state_size",
    "end_to_end_duration",
    "num_subtasks",
    "num_acknowledged_subtasks",
    "tasks",
    "external_path",
    "discarded",
}
CHECKPOINT_CONFIG = {
    "mode",
    "interval",
    "timeout",
    "min_pause",
    "max_concurrent",
    "externalization",
    "state_backend",
    "checkpoint_storage",
    "unaligned_checkpoints",
    "tolerable_failed_checkpoints",
    "checkpoints_after_tasks_finish",
}
EXCEPTIONS = {"root-exception", "timestamp", "all-exceptions", "truncated", "exceptionHistory"}
EXCEPTION_ENTRY = {
    "exceptionName",
    "stacktrace",
    "timestamp",
    "taskName",
    "endpoint",
    "taskManagerId",
    "failureLabels",
    "concurrentExceptions",
}
TASKMANAGER = {
    "id",
    "path",
    "dataPort",
    "timeSinceLastHeartbeat",
    "slotsNumber",
    "freeSlots",
    "hardware",
    "blocked",
}
HARDWARE = {"cpuCores", "physicalMemory", "freeMemory", "managedMemory"}
BACKPRESSURE = {"status", "backpressureLevel", "end-timestamp", "subtasks"}
SUBTASK_BACKPRESSURE = {
    "subtask",
    "attempt-number",
    "backpressureLevel",
    "ratio",
    "busyRatio",
    "idleRatio",
}

Submit = Callable[..., str]


def get(client: TestClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def wait_state(client: TestClient, job_id: str, state: str) -> None:
    """Wait for ``state``; for a terminal one also for its end time (the job records it
    just after the state)."""

    def reached() -> bool:
        details = client.get(f"/jobs/{job_id}").json()
        ended = state not in ("FINISHED", "CANCELED", "FAILED") or details["end-time"] > 0
        return bool(details["state"] == state and ended)

    wait_for(reached, what=f"job {job_id} to be {state}")


def completed_operation(client: TestClient, job_id: str, trigger: str) -> Any:
    return wait_for(
        lambda: (
            r
            if (r := get(client, f"/jobs/{job_id}/savepoints/{trigger}"))["status"]["id"]
            == "COMPLETED"
            else None
        ),
        what="the savepoint operation",
    )


def local_path(location: str) -> Path:
    return Path(location.removeprefix("file://"))


# -- cluster ------------------------------------------------------------------------------


def test_overview_counts_running_jobs_and_slots(client: TestClient, running_job: str) -> None:
    overview = get(client, "/overview")
    assert set(overview) == OVERVIEW
    assert overview["jobs-running"] == 1
    assert overview["jobs-finished"] == overview["jobs-cancelled"] == overview["jobs-failed"] == 0
    assert overview["taskmanagers"] == 1
    assert overview["slots-total"] == 4
    assert overview["slots-available"] == 2  # the job's widest vertex has parallelism 2
    assert overview["flink-version"] == "2.0.0"


def test_overview_counts_finished_failed_and_cancelled_jobs(
    client: TestClient, submit: Submit, running_job: str
) -> None:
    finished, failed = submit("bounded.py"), submit("failing.py")
    wait_state(client, finished, "FINISHED")
    wait_state(client, failed, "FAILED")
    client.patch(f"/jobs/{running_job}?mode=cancel")
    wait_state(client, running_job, "CANCELED")
    overview = get(client, "/overview")
    assert (overview["jobs-finished"], overview["jobs-failed"], overview["jobs-cancelled"]) == (
        1,
        1,
        1,
    )
    assert overview["jobs-running"] == 0


def test_taskmanagers_describe_this_process(client: TestClient) -> None:
    body = get(client, "/taskmanagers")
    assert set(body) == {"taskmanagers"}
    (tm,) = body["taskmanagers"]
    assert set(tm) == TASKMANAGER
    assert set(tm["hardware"]) == HARDWARE
    assert tm["hardware"]["cpuCores"] == os.cpu_count()
    assert tm["slotsNumber"] == 4


def test_taskmanager_details_add_process_metrics(client: TestClient) -> None:
    (tm,) = get(client, "/taskmanagers")["taskmanagers"]
    details = get(client, f"/taskmanagers/{tm['id']}")
    assert set(details) == TASKMANAGER | {"metrics"}
    assert details["metrics"]["threads"] >= 1


def test_jobmanager_config_lists_the_cluster_configuration(client: TestClient) -> None:
    entries = get(client, "/jobmanager/config")
    as_dict = {e["key"]: e["value"] for e in entries}
    assert as_dict["taskmanager.numberOfTaskSlots"] == "4"
    assert all(set(e) == {"key", "value"} for e in entries)


def test_dashboard_config_has_flinks_fields(client: TestClient) -> None:
    config = get(client, "/config")
    assert set(config) == {
        "refresh-interval",
        "timezone-name",
        "timezone-offset",
        "flink-version",
        "flink-revision",
        "features",
    }
    assert set(config["features"]) == {"web-submit", "web-cancel", "web-rescale", "web-history"}


# -- jobs ----------------------------------------------------------------------------------


def test_jobs_lists_ids_with_status(client: TestClient, running_job: str) -> None:
    assert get(client, "/jobs") == {"jobs": [{"id": running_job, "status": "RUNNING"}]}


def test_jobs_overview_counts_subtasks_per_state(client: TestClient, running_job: str) -> None:
    (job,) = get(client, "/jobs/overview")["jobs"]
    assert set(job) == JOB_OVERVIEW
    assert set(job["tasks"]) == OVERVIEW_TASKS
    assert job["jid"] == running_job
    assert job["name"] == "unbounded"
    assert job["state"] == "RUNNING"
    assert job["end-time"] == -1
    # two vertices (source->map, reduce->sink), parallelism 2 each
    assert job["tasks"]["total"] == job["tasks"]["running"] == 4


def test_job_details_has_flinks_fields(client: TestClient, running_job: str) -> None:
    details = get(client, f"/jobs/{running_job}")
    assert set(details) == JOB_DETAILS
    assert set(details["timestamps"]) == JOB_STATUSES
    assert set(details["status-counts"]) == EXECUTION_STATES
    assert details["state"] == "RUNNING"
    assert details["isStoppable"] is True
    assert details["job-type"] == "STREAMING"
    assert details["timestamps"]["RUNNING"] == details["start-time"] > 0
    assert details["end-time"] == -1
    assert details["status-counts"]["RUNNING"] == 2
    for vertex in details["vertices"]:
        assert set(vertex) == VERTEX
        assert set(vertex["metrics"]) == IO_METRICS
        assert set(vertex["tasks"]) == EXECUTION_STATES
        assert vertex["parallelism"] == 2
        assert vertex["status"] == "RUNNING"
        assert vertex["tasks"]["RUNNING"] == 2


def test_job_details_plan_links_the_vertices(client: TestClient, running_job: str) -> None:
    details = get(client, f"/jobs/{running_job}")
    plan = details["plan"]
    assert plan["jid"] == running_job
    assert plan["type"] == "STREAMING"
    ids = [v["id"] for v in details["vertices"]]
    assert [n["id"] for n in plan["nodes"]] == ids
    assert plan["nodes"][1]["inputs"][0]["id"] == ids[0]
    assert plan["nodes"][1]["inputs"][0]["ship_strategy"] == "HASH"
    assert get(client, f"/jobs/{running_job}/plan") == {"plan": plan}


def test_job_details_count_records_read_and_written(client: TestClient, running_job: str) -> None:
    def counts() -> tuple[int, int] | None:
        source, keyed = get(client, f"/jobs/{running_job}")["vertices"]
        written, read = source["metrics"]["write-records"], keyed["metrics"]["read-records"]
        return (written, read) if written > 0 and read > 0 else None

    written, read = wait_for(counts, what="records to flow")
    assert read <= written


def test_finished_job_reports_its_end(client: TestClient, submit: Submit) -> None:
    job_id = submit("bounded.py")
    wait_state(client, job_id, "FINISHED")
    details = get(client, f"/jobs/{job_id}")
    assert details["end-time"] >= details["start-time"] > 0
    assert details["duration"] == details["end-time"] - details["start-time"]
    assert details["timestamps"]["FINISHED"] == details["end-time"]
    assert details["isStoppable"] is False
    assert details["status-counts"]["FINISHED"] == len(details["vertices"])
    assert all(v["status"] == "FINISHED" for v in details["vertices"])
    source, keyed = details["vertices"]
    assert source["metrics"]["write-records"] == keyed["metrics"]["read-records"] == 500
    assert source["metrics"]["write-records-complete"] is True


def test_job_status_path_answers_the_state(client: TestClient, running_job: str) -> None:
    assert get(client, f"/jobs/{running_job}/status") == {"status": "RUNNING"}


def test_submit_applies_parallelism(client: TestClient, submit: Submit) -> None:
    job_id = submit("unbounded.py", parallelism=3)
    assert [v["parallelism"] for v in get(client, f"/jobs/{job_id}")["vertices"]] == [3, 3]


def test_submit_applies_flink_configuration(client: TestClient, submit: Submit) -> None:
    job_id = submit("unbounded.py", flinkConfiguration={"pipeline.max-parallelism": "64"})
    assert {v["maxParallelism"] for v in get(client, f"/jobs/{job_id}")["vertices"]} == {64}


def test_cancel_answers_202_and_the_job_ends_cancelled(
    client: TestClient, running_job: str
) -> None:
    response = client.patch(f"/jobs/{running_job}", params={"mode": "cancel"})
    assert response.status_code == 202
    assert response.json() == {}
    wait_state(client, running_job, "CANCELED")
    details = get(client, f"/jobs/{running_job}")
    assert details["status-counts"]["CANCELED"] == 2
    assert details["timestamps"]["CANCELED"] == details["end-time"] > 0


# -- checkpoints and savepoints -----------------------------------------------------------------


def test_checkpoint_statistics_have_flinks_fields(client: TestClient, running_job: str) -> None:
    stats = get(client, f"/jobs/{running_job}/checkpoints")
    assert set(stats) == {"counts", "summary", "latest", "history"}
    assert set(stats["counts"]) == CHECKPOINT_COUNTS
    assert set(stats["latest"]) == {"completed", "savepoint", "failed", "restored"}
    assert set(stats["summary"]) == {"checkpointed_size", "state_size", "end_to_end_duration"}
    for summary in stats["summary"].values():
        assert set(summary) == STATS_SUMMARY
    latest = stats["latest"]["completed"]
    assert set(latest) >= CHECKPOINT_ENTRY
    assert latest["className"] == "completed"
    assert latest["status"] == "COMPLETED"
    assert latest["checkpoint_type"] == "CHECKPOINT"
    assert latest["num_subtasks"] == latest["num_acknowledged_subtasks"] == 4
    assert latest["discarded"] is False
    # a full (hashmap) checkpoint writes all of its state
    assert latest["state_size"] == latest["checkpointed_size"] > 0
    assert stats["latest"]["savepoint"] is None
    assert stats["latest"]["restored"] is None
    assert stats["counts"]["completed"] >= 1
    assert stats["history"][0]["id"] >= latest["id"]


def test_checkpoint_history_marks_subsumed_checkpoints_discarded(
    client: TestClient, running_job: str
) -> None:
    history = wait_for(
        lambda: (
            h if len(h := get(client, f"/jobs/{running_job}/checkpoints")["history"]) >= 3 else None
        ),
        what="three checkpoints",
    )
    completed = [h for h in history if h["status"] == "COMPLETED"]
    assert completed[-1]["discarded"] is True  # the oldest; one checkpoint is retained


def test_checkpoint_config_describes_the_jobs_checkpointing(
    client: TestClient, running_job: str
) -> None:
    config = get(client, f"/jobs/{running_job}/checkpoints/config")
    assert set(config) == CHECKPOINT_CONFIG
    assert config["mode"] == "exactly_once"
    assert config["interval"] == 50
    assert config["timeout"] == 600_000
    assert config["max_concurrent"] == 1
    assert config["externalization"] == {"enabled": False, "delete_on_cancellation": True}
    assert config["state_backend"] == "HashMapStateBackend"
    assert config["checkpoint_storage"] == "FileSystemCheckpointStorage"


def test_savepoint_completes_with_its_location(
    client: TestClient, running_job: str, savepoint_dir: Path
) -> None:
    response = client.post(f"/jobs/{running_job}/savepoints", json={})
    assert response.status_code == 202
    assert set(response.json()) == {"request-id"}
    result = completed_operation(client, running_job, response.json()["request-id"])
    assert set(result) == {"status", "operation"}
    assert set(result["operation"]) == {"location"}
    location = local_path(result["operation"]["location"])
    assert location.parent == savepoint_dir
    assert (location / "_metadata").is_file()
    latest = get(client, f"/jobs/{running_job}/checkpoints")["latest"]["savepoint"]
    assert latest["is_savepoint"] is True
    assert latest["checkpoint_type"] == "SAVEPOINT"
    assert local_path(latest["external_path"]) == location


def test_savepoint_goes_to_the_requested_directory(
    client: TestClient, running_job: str, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    trigger = client.post(
        f"/jobs/{running_job}/savepoints", json={"target-directory": str(target)}
    ).json()["request-id"]
    location = completed_operation(client, running_job, trigger)["operation"]["location"]
    assert local_path(location).parent == target


def test_savepoint_with_cancel_job_cancels_after_it_completes(
    client: TestClient, running_job: str
) -> None:
    trigger = client.post(f"/jobs/{running_job}/savepoints", json={"cancel-job": True}).json()[
        "request-id"
    ]
    location = completed_operation(client, running_job, trigger)["operation"]["location"]
    wait_state(client, running_job, "CANCELED")
    assert (local_path(location) / "_metadata").is_file()


def test_savepoint_trigger_id_makes_the_request_idempotent(
    client: TestClient, running_job: str
) -> None:
    body = {"triggerId": "a" * 32}
    first = client.post(f"/jobs/{running_job}/savepoints", json=body).json()
    second = client.post(f"/jobs/{running_job}/savepoints", json=body).json()
    assert first == second == {"request-id": "a" * 32}
    completed_operation(client, running_job, "a" * 32)
    assert get(client, f"/jobs/{running_job}/checkpoints")["counts"]["completed"] >= 1
    history = get(client, f"/jobs/{running_job}/checkpoints")["history"]
    assert sum(1 for h in history if h["is_savepoint"]) == 1


def test_stop_with_savepoint_finishes_the_job(client: TestClient, running_job: str) -> None:
    response = client.post(f"/jobs/{running_job}/stop", json={"drain": False})
    assert response.status_code == 202
    result = completed_operation(client, running_job, response.json()["request-id"])
    assert (local_path(result["operation"]["location"]) / "_metadata").is_file()
    wait_state(client, running_job, "FINISHED")


def test_stop_with_drain_finishes_the_job(
    client: TestClient, running_job: str, tmp_path: Path
) -> None:
    target = tmp_path / "drained"
    trigger = client.post(
        f"/jobs/{running_job}/stop", json={"drain": True, "targetDirectory": str(target)}
    ).json()["request-id"]
    location = completed_operation(client, running_job, trigger)["operation"]["location"]
    assert local_path(location).parent == target
    wait_state(client, running_job, "FINISHED")


def test_failed_savepoint_reports_its_cause(
    client: TestClient, tmp_path: Path, service: MiniClusterService
) -> None:
    program = tmp_path / "fragile.py"
    program.write_text(
        "from flinklet.common.watermark_strategy import WatermarkStrategy\n"
        "from flinklet.datastream import MapFunction, StreamExecutionEnvironment\n"
        "from flinklet.datastream.functions import CheckpointedFunction\n"
        "from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy\n"
        "class Fragile(MapFunction, CheckpointedFunction):\n"
        "    def map(self, value):\n"
        "        return value\n"
        "    def initialize_state(self, context):\n"
        "        pass\n"
        "    def snapshot_state(self, context):\n"
        "        raise OSError('disk on fire')\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(500))\n"
        "env.from_source(src, WatermarkStrategy.no_watermarks(), 'n').map(Fragile())"
        ".add_sink(lambda v: None)\n"
        "env.execute('fragile')\n"
    )
    job_id = client.post("/jobs", json={"entrypoint": str(program)}).json()["jobid"]
    trigger = client.post(f"/jobs/{job_id}/savepoints", json={}).json()["request-id"]
    result = completed_operation(client, job_id, trigger)
    cause = result["operation"]["failure-cause"]
    assert set(result["operation"]) == {"failure-cause"}
    assert set(cause) == {"class", "stack-trace"}
    assert cause["class"] == "builtins.OSError"
    assert "disk on fire" in cause["stack-trace"]


def test_restore_from_a_savepoint_is_reported(
    client: TestClient, running_job: str, submit: Submit
) -> None:
    trigger = client.post(f"/jobs/{running_job}/stop", json={}).json()["request-id"]
    location = completed_operation(client, running_job, trigger)["operation"]["location"]
    restored_job = submit("unbounded.py", parallelism=2, savepointPath=location)
    restored = wait_for(
        lambda: get(client, f"/jobs/{restored_job}/checkpoints")["latest"]["restored"],
        what="the restore",
    )
    assert set(restored) == {"id", "restore_timestamp", "is_savepoint", "external_path"}
    assert restored["is_savepoint"] is True
    assert local_path(restored["external_path"]) == local_path(location)
    assert get(client, f"/jobs/{restored_job}/checkpoints")["counts"]["restored"] == 1


# -- exceptions, metrics, back pressure -----------------------------------------------------------


def test_exceptions_of_a_failed_job(client: TestClient, submit: Submit) -> None:
    job_id = submit("failing.py")
    wait_state(client, job_id, "FAILED")
    body = get(client, f"/jobs/{job_id}/exceptions")
    assert set(body) == EXCEPTIONS
    assert set(body["exceptionHistory"]) == {"entries", "truncated"}
    (entry,) = body["exceptionHistory"]["entries"]
    assert set(entry) == EXCEPTION_ENTRY
    assert "boom at 0" in body["root-exception"]
    assert "boom at 0" in entry["stacktrace"]
    assert entry["taskName"] == "Exploding Map"
    assert entry["exceptionName"] == "flinklet.errors.UserFunctionError"
    assert body["timestamp"] == entry["timestamp"] > 0
    assert body["all-exceptions"][0]["task"] == "Exploding Map"


def test_exceptions_of_a_healthy_job_are_empty(client: TestClient, running_job: str) -> None:
    body = get(client, f"/jobs/{running_job}/exceptions")
    assert body["root-exception"] is None
    assert body["exceptionHistory"] == {"entries": [], "truncated": False}


def test_job_metrics_without_get_lists_the_ids(client: TestClient, running_job: str) -> None:
    ids = {m["id"] for m in get(client, f"/jobs/{running_job}/metrics")}
    assert {
        "numRestarts",
        "uptime",
        "downtime",
        "lastCheckpointDuration",
        "lastCheckpointSize",
        "numberOfCompletedCheckpoints",
        "numberOfFailedCheckpoints",
        "totalNumberOfCheckpoints",
    } <= ids
    assert all(set(m) == {"id"} for m in get(client, f"/jobs/{running_job}/metrics"))


def test_job_metrics_with_get_answers_values_as_strings(
    client: TestClient, running_job: str
) -> None:
    metrics = get(
        client, f"/jobs/{running_job}/metrics?get=numRestarts,lastCheckpointSize,noSuchMetric"
    )
    assert [m["id"] for m in metrics] == ["numRestarts", "lastCheckpointSize"]
    values = {m["id"]: m["value"] for m in metrics}
    assert values["numRestarts"] == "0"
    assert int(values["lastCheckpointSize"]) > 0


def test_vertex_metrics_expose_task_metrics_by_subtask(
    client: TestClient, running_job: str
) -> None:
    vertex = get(client, f"/jobs/{running_job}")["vertices"][1]["id"]
    ids = {m["id"] for m in get(client, f"/jobs/{running_job}/vertices/{vertex}/metrics")}
    for subtask in (0, 1):
        for name in (
            "numRecordsIn",
            "numRecordsOut",
            "numRecordsInPerSecond",
            "backPressuredTimeMsPerSecond",
            "currentInputWatermark",
        ):
            assert f"{subtask}.{name}" in ids
    records_in = wait_for(
        lambda: int(
            get(client, f"/jobs/{running_job}/vertices/{vertex}/metrics?get=0.numRecordsIn")[0][
                "value"
            ]
        ),
        what="records in",
    )
    assert records_in > 0


def test_backpressure_of_sources_feeding_one_task_is_high(
    client: TestClient, submit: Submit
) -> None:
    job_id = submit("backpressured.py")
    sources = get(client, f"/jobs/{job_id}")["vertices"][0]
    body = wait_for(
        lambda: (
            b
            if (b := get(client, f"/jobs/{job_id}/vertices/{sources['id']}/backpressure"))[
                "backpressureLevel"
            ]
            == "high"
            else None
        ),
        what="high back pressure",
    )
    assert set(body) == BACKPRESSURE
    assert body["status"] == "ok"
    assert len(body["subtasks"]) == 4
    for subtask in body["subtasks"]:
        assert set(subtask) == SUBTASK_BACKPRESSURE
        assert subtask["ratio"] > 0.5
        assert abs(subtask["ratio"] + subtask["busyRatio"] + subtask["idleRatio"] - 1.0) < 0.01


def test_backpressure_of_the_busy_task_is_ok(client: TestClient, submit: Submit) -> None:
    job_id = submit("backpressured.py")
    sink = get(client, f"/jobs/{job_id}")["vertices"][1]["id"]
    body = get(client, f"/jobs/{job_id}/vertices/{sink}/backpressure")
    assert body["backpressureLevel"] == "ok"
    assert body["subtasks"][0]["ratio"] == 0.0


def test_prometheus_endpoint_exports_job_and_task_metrics(
    client: TestClient, running_job: str
) -> None:
    wait_for(
        lambda: int(get(client, f"/jobs/{running_job}")["vertices"][0]["metrics"]["write-records"]),
        what="records",
    )
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    restarts = families["flink_jobmanager_job_numRestarts"].samples[0]
    assert restarts.labels == {"job_id": running_job, "job_name": "unbounded"}
    assert restarts.value == 0
    assert families["flink_jobmanager_job_lastCheckpointSize"].samples[0].value > 0
    out = families["flink_taskmanager_job_task_numRecordsOut"]
    assert {s.labels["subtask_index"] for s in out.samples} >= {"0", "1"}
    assert sum(s.value for s in out.samples) > 0
    assert "flink_taskmanager_job_task_backPressuredTimeMsPerSecond" in families


def test_prometheus_endpoint_leaves_out_ended_jobs(client: TestClient, submit: Submit) -> None:
    job_id = submit("bounded.py")
    wait_state(client, job_id, "FINISHED")
    assert job_id not in client.get("/metrics").text


# -- health, versions, schema ---------------------------------------------------------------------


def test_healthz_and_readyz_answer_ok(client: TestClient) -> None:
    assert get(client, "/healthz") == {"status": "ok"}
    assert get(client, "/readyz") == {"status": "ready"}


def test_readyz_answers_503_when_the_service_is_not_ready(
    client: TestClient, service: MiniClusterService
) -> None:
    service.shutdown()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert list(response.json()) == ["errors"]
    assert client.get("/healthz").status_code == 200


def test_v1_prefix_serves_the_same_api(client: TestClient, running_job: str) -> None:
    assert get(client, "/v1/jobs") == get(client, "/jobs")
    assert get(client, f"/v1/jobs/{running_job}/status") == {"status": "RUNNING"}


def test_openapi_schema_uses_flinks_field_names(client: TestClient) -> None:
    schema = get(client, "/openapi.json")
    components = schema["components"]["schemas"]
    assert {"start-time", "isStoppable", "status-counts"} <= set(
        components["JobDetailsInfo"]["properties"]
    )
    assert {"target-directory", "cancel-job"} <= set(
        components["SavepointTriggerRequest"]["properties"]
    )
    assert {"targetDirectory", "drain"} <= set(components["StopWithSavepointRequest"]["properties"])
    assert "/jobs/{jobid}/savepoints/{triggerid}" in schema["paths"]
    assert "patch" in schema["paths"]["/jobs/{jobid}"]
