"""Prometheus text exposition of metric registries (checked with prometheus_client's parser)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flinklet._private.metrics import Counter, Distribution, Gauge, Meter, MetricRegistry
from flinklet._private.metrics.prometheus import (
    Exposition,
    Scope,
    job_scopes,
    parse_port_range,
    render_all,
    render_registry,
    sanitize_name,
)
from flinklet._private.metrics.task_metrics import operator_scope, task_scope
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource
from flinklet.errors import ConfigurationError

OPERATOR = Scope("job.Map.0.", "flink_taskmanager_job_task_operator", {"subtask_index": "0"})


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_counter_is_a_prometheus_counter_named_by_its_scope() -> None:
    registry = MetricRegistry()
    registry.register("job.Map.0.numLateRecordsDropped", Counter()).inc(7)
    text = render_registry(registry, [OPERATOR])
    assert "# TYPE flink_taskmanager_job_task_operator_numLateRecordsDropped counter" in text
    (sample,) = families(text)["flink_taskmanager_job_task_operator_numLateRecordsDropped"].samples
    assert sample.value == 7
    assert sample.labels == {"subtask_index": "0"}


def test_gauge_exports_numbers_and_booleans() -> None:
    registry = MetricRegistry()
    registry.register("job.Map.0.lag", Gauge(lambda: 2.5))
    registry.register("job.Map.0.stalled", Gauge(lambda: True))
    found = families(render_registry(registry, [OPERATOR]))
    assert found["flink_taskmanager_job_task_operator_lag"].type == "gauge"
    assert found["flink_taskmanager_job_task_operator_lag"].samples[0].value == 2.5
    assert found["flink_taskmanager_job_task_operator_stalled"].samples[0].value == 1


def test_non_numeric_and_failing_gauges_are_left_out() -> None:
    registry = MetricRegistry()
    registry.register("job.Map.0.path", Gauge(lambda: "s3://bucket"))

    def broken() -> int:
        raise RuntimeError("gauge bug")

    registry.register("job.Map.0.broken", Gauge(broken))
    assert render_registry(registry, [OPERATOR]) == ""


def test_meter_is_a_gauge_of_its_rate() -> None:
    registry = MetricRegistry()
    meter = registry.register("job.Map.0.eventsPerSecond", Meter())
    meter.mark_event(10)
    family = families(render_registry(registry, [OPERATOR]))[
        "flink_taskmanager_job_task_operator_eventsPerSecond"
    ]
    assert family.type == "gauge"
    assert family.samples[0].value > 0


def test_distribution_is_a_summary_with_quantiles_and_count() -> None:
    registry = MetricRegistry()
    distribution = registry.register("job.Map.0.latency", Distribution())
    for value in range(1, 101):
        distribution.update(value)
    family = families(render_registry(registry, [OPERATOR]))[
        "flink_taskmanager_job_task_operator_latency"
    ]
    assert family.type == "summary"
    quantiles = {s.labels["quantile"]: s.value for s in family.samples if "quantile" in s.labels}
    assert set(quantiles) == {"0.5", "0.75", "0.95", "0.98", "0.99", "0.999"}
    assert 45 <= quantiles["0.5"] <= 55
    count = next(s for s in family.samples if s.name.endswith("_count"))
    assert count.value == 100


def test_unscoped_names_get_the_flinklet_prefix_and_are_sanitized() -> None:
    registry = MetricRegistry()
    registry.register("process.open files", Counter()).inc()
    assert "flinklet_process_open_files" in families(render_registry(registry))


def test_the_longest_matching_scope_wins() -> None:
    registry = MetricRegistry()
    registry.register("job.Map.0.group.x", Counter()).inc()
    scopes = [OPERATOR, Scope("job.Map.0.group.", "custom", {"g": "1"})]
    (sample,) = families(render_registry(registry, scopes))["custom_x"].samples
    assert sample.labels == {"g": "1"}


def test_label_values_are_escaped() -> None:
    registry = MetricRegistry()
    registry.register("j.op.0.n", Counter()).inc()
    tricky = 'Map "quoted" \\ back\nslash'
    scope = Scope("j.op.0.", "fam", {"operator_name": tricky})
    (sample,) = families(render_registry(registry, [scope]))["fam_n"].samples
    assert sample.labels["operator_name"] == tricky


def test_the_same_name_with_two_types_stays_parseable() -> None:
    exposition = Exposition()
    exposition.add("x", "counter", 1, {"a": "1"})
    exposition.add("x", "gauge", 2.0, {"a": "2"})
    found = families(exposition.render())
    assert found["x"].samples[0].value == 1
    assert found["x_gauge"].samples[0].value == 2.0


def test_render_all_groups_samples_of_several_registries_in_one_family() -> None:
    first, second = MetricRegistry(), MetricRegistry()
    first.register("a.Map.0.n", Counter()).inc(1)
    second.register("b.Map.0.n", Counter()).inc(2)
    text = render_all(
        [
            (first, [Scope("a.Map.0.", "fam", {"job_id": "a"})]),
            (second, [Scope("b.Map.0.", "fam", {"job_id": "b"})]),
        ]
    )
    assert text.count("# TYPE fam_n counter") == 1
    assert {s.labels["job_id"]: s.value for s in families(text)["fam_n"].samples} == {
        "a": 1,
        "b": 2,
    }


def test_sanitize_name_keeps_valid_names_and_fixes_invalid_ones() -> None:
    assert sanitize_name("flink_jobmanager_job_uptime") == "flink_jobmanager_job_uptime"
    assert sanitize_name("0.numRecordsIn") == "_0_numRecordsIn"
    assert sanitize_name("a-b c.d") == "a_b_c_d"


def test_job_scopes_follow_the_executors_metric_scopes() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    source = DataGeneratorSource(lambda i: i, 10)
    env.from_source(source, WatermarkStrategy.no_watermarks(), "numbers").key_by(lambda x: x).map(
        lambda x: x
    ).name("Double").add_sink(lambda v: None)
    graph = env.get_job_graph("scoped")
    scopes = {s.prefix: s for s in job_scopes("j1", graph)}
    keyed = graph.vertices[1]
    task = scopes[task_scope("j1", keyed.id, 1) + "."]
    assert task.family == "flink_taskmanager_job_task"
    assert task.labels["task_name"] == keyed.name
    assert task.labels["subtask_index"] == "1"
    operator = scopes[operator_scope("j1", "Double", 0) + "."]
    assert operator.family == "flink_taskmanager_job_task_operator"
    assert operator.labels["operator_name"] == "Double"
    assert operator.labels["job_name"] == "scoped"


@pytest.mark.parametrize(
    ("spec", "ports"),
    [("9249", [9249]), ("9250-9252", [9250, 9251, 9252]), (0, [0]), (" 9300 ", [9300])],
)
def test_parse_port_range(spec: str | int, ports: list[int]) -> None:
    assert parse_port_range(spec) == ports


@pytest.mark.parametrize("spec", ["http", "9260-9250", "70000", "-1"])
def test_parse_port_range_rejects_nonsense(spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"metrics\.reporter\.prom\.port"):
        parse_port_range(spec)
