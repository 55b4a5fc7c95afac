"""The FlinkJob spec/status models: defaults, layout helpers, and readable errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from operator_builders import job, spec

from flinklet_operator.errors import InvalidSpecError
from flinklet_operator.models import (
    FlinkJob,
    FlinkJobStatus,
    parse_duration,
    parse_spec,
    parse_status,
)


def problems(raw: dict[str, object]) -> list[str]:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(raw)
    return caught.value.problems


def minimal(**job_fields: object) -> dict[str, object]:
    return {"image": "flinklet:1", "job": {"entrypoint": "jobs.wc:main", **job_fields}}


def test_defaults_match_the_crd() -> None:
    parsed = parse_spec(minimal())
    assert parsed.job.parallelism == 1
    assert parsed.job.upgrade_mode == "stateless"
    assert parsed.job.state == "running"
    assert parsed.image_pull_policy == "IfNotPresent"
    assert parsed.job_manager.replicas == 1
    assert (parsed.job_manager.resources.cpu, parsed.job_manager.resources.memory) == (
        "500m",
        "1Gi",
    )
    assert parsed.task_manager.slots == 1
    assert (parsed.task_manager.resources.cpu, parsed.task_manager.resources.memory) == ("1", "2Gi")
    assert parsed.savepoints.retention.max_count == 10
    assert parsed.deadlines.of("deploy") == timedelta(minutes=5)


def test_camel_case_on_the_wire() -> None:
    parsed = parse_spec(
        {
            **minimal(upgradeMode="savepoint", savepointTriggerNonce=4),
            "checkpointStorage": {"checkpointDir": "/ckpt"},
        }
    )
    assert parsed.job.upgrade_mode == "savepoint"
    dumped = parsed.model_dump(mode="json", by_alias=True)
    assert dumped["job"]["savepointTriggerNonce"] == 4
    assert dumped["checkpointStorage"]["checkpointDir"] == "/ckpt"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            minimal(parallelism=0),
            "spec.job.parallelism: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            minimal(upgradeMode="sometimes"),
            "spec.job.upgradeMode: Input should be 'stateless', 'savepoint' or 'last-state' "
            "(got 'sometimes')",
        ),
        ({"job": {"entrypoint": "a:b"}}, "spec.image: is required"),
        (
            minimal(entrypoint="not a module"),
            "spec.job.entrypoint: must be 'package.module:function' or a path to a .py file, "
            "got 'not a module'",
        ),
        (
            {**minimal(), "taskManager": {"slots": 0}},
            "spec.taskManager.slots: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            minimal(paralelism=3),
            "spec.job.paralelism: is not a FlinkJob field (check the spelling against "
            "crds/flinkjob.yaml)",
        ),
        (
            {**minimal(), "deadlines": {"deploy": "5 minutes"}},
            "spec.deadlines.deploy: must be a duration such as 30s, 10m, 1h30m or 2d, "
            "got '5 minutes'",
        ),
        (
            {**minimal(), "checkpointStorage": {"s3": {"bucket": "Bad_Bucket"}}},
            "spec.checkpointStorage.s3.bucket: must be an S3 bucket name (3-63 lowercase letters, "
            "digits, '.' or '-'), got 'Bad_Bucket'",
        ),
        (
            {**minimal(), "jobManager": {"resources": {"cpu": "lots"}}},
            "spec.jobManager.resources.cpu: must be a Kubernetes quantity such as 500m, 2, 1Gi, "
            "got 'lots'",
        ),
    ],
)
def test_validation_messages_name_the_field_and_the_fix(
    raw: dict[str, object], expected: str
) -> None:
    assert problems(raw) == [expected]


def test_cross_field_rules_explain_what_to_set() -> None:
    assert problems(minimal(upgradeMode="last-state")) == [
        "spec: job.upgradeMode 'last-state' restores from checkpoints: set checkpointStorage "
        "(or flinkConfiguration['execution.checkpointing.dir'])"
    ]
    [reserved] = problems({**minimal(), "flinkConfiguration": {"parallelism.default": "3"}})
    assert (
        "flinkConfiguration['parallelism.default'] is managed by the operator: "
        "set spec.job.parallelism instead" in reserved
    )
    [both] = problems(
        {**minimal(), "checkpointStorage": {"checkpointDir": "/c", "s3": {"bucket": "abc"}}}
    )
    assert both == "spec.checkpointStorage: set either s3 or checkpointDir/savepointDir, not both"
    [periodic] = problems({**minimal(), "savepoints": {"periodicInterval": "1h"}})
    assert "savepoints.periodicInterval needs somewhere to write savepoints" in periodic


def test_several_problems_are_all_reported() -> None:
    found = problems({"job": {"entrypoint": "a:b", "parallelism": -1}})
    assert len(found) == 2
    assert str(InvalidSpecError(found)).startswith("invalid FlinkJob spec: ")


def test_python_file_entrypoints_are_accepted() -> None:
    assert parse_spec(minimal(entrypoint="/opt/jobs/word_count.py")).job.entrypoint.endswith(".py")


def test_numeric_quantities_become_strings() -> None:
    parsed = parse_spec({**minimal(), "taskManager": {"resources": {"cpu": 2, "memory": "4Gi"}}})
    assert parsed.task_manager.resources.cpu == "2"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_storage_layout_for_s3_is_per_job() -> None:
    flinkjob = job(spec())
    assert flinkjob.spec.checkpoint_dir("jobs", "wc") == "s3://ckpts/flink/jobs/wc/checkpoints"
    assert flinkjob.spec.savepoint_dir("jobs", "wc") == "s3://ckpts/flink/jobs/wc/savepoints"
    assert flinkjob.spec.ha_dir("jobs", "wc") == "s3://ckpts/flink/jobs/wc/ha"


def test_taskmanager_replicas_round_up() -> None:
    assert (
        job(spec(job={"parallelism": 5}, taskManager={"slots": 2})).spec.taskmanager_replicas() == 3
    )
    assert (
        job(spec(job={"parallelism": 4}, taskManager={"slots": 2})).spec.taskmanager_replicas() == 2
    )


def test_from_body_reads_identity_and_deletion() -> None:
    parsed = FlinkJob.from_body(
        {
            "metadata": {
                "name": "a",
                "namespace": "b",
                "uid": "c",
                "generation": 7,
                "deletionTimestamp": "2024-01-01T00:00:00Z",
            },
            "spec": minimal(),
            "status": {"lifecycleState": "STABLE", "observedGeneration": 6, "kopf": {"x": 1}},
        }
    )
    assert (parsed.name, parsed.namespace, parsed.uid, parsed.generation) == ("a", "b", "c", 7)
    assert parsed.deleting
    assert parsed.status.lifecycle_state == "STABLE"


def test_a_damaged_status_reads_as_empty() -> None:
    assert parse_status({"lifecycleState": "NOT-A-STATE"}) == FlinkJobStatus()


def test_status_to_body_is_camel_case_without_nulls() -> None:
    status = FlinkJobStatus()
    status.job_status.job_id = "j1"
    body = status.to_body()
    assert body["lifecycleState"] == "CREATED"
    assert body["jobStatus"] == {"jobId": "j1"}
    assert "error" not in body
