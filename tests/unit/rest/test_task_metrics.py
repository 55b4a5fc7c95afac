"""Flink's task metrics read from a task's counters (register_task_metrics)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from flinklet._private.metrics import MetricRegistry, TaskMetricGroup
from flinklet._private.metrics.task_metrics import (
    BACKPRESSURED,
    BUSY,
    IDLE,
    classify,
    operator_scope,
    register_task_metrics,
    task_metric_group,
    task_scope,
)

MIN_WATERMARK = -(2**63)


@dataclass
class FakeWriter:
    num_records_out: int = 0


@dataclass
class FakeValve:
    last_output: int = MIN_WATERMARK


@dataclass(eq=False)
class FakeTask:
    """The counters a Task keeps, set by the test."""

    vertex_id: int = 3
    subtask_index: int = 1
    state: str = "RUNNING"
    num_records_in: int = 0
    backpressured_steps: int = 0
    writers: list[FakeWriter] = field(default_factory=lambda: [FakeWriter(), FakeWriter()])
    valves: list[FakeValve] = field(default_factory=lambda: [FakeValve()])


def registered(task: FakeTask) -> dict[str, object]:
    registry = MetricRegistry()
    register_task_metrics(task, task_metric_group(registry, "job", task))
    return registry.metrics


def read(task: FakeTask, registry_metrics: dict[str, object], name: str) -> Any:
    metric = registry_metrics[f"{task_scope('job', task.vertex_id, task.subtask_index)}.{name}"]
    return metric.get_value()  # type: ignore[attr-defined]


def test_scopes_are_job_task_subtask_and_job_operator_subtask() -> None:
    assert task_scope("j", 3, 1) == "j.task.3.1"
    assert operator_scope("j", "Map", 0) == "j.Map.0"
    group = task_metric_group(MetricRegistry(), "j", FakeTask())
    assert isinstance(group, TaskMetricGroup)
    assert group.scope == "j.task.3.1"


def test_records_in_and_out_read_the_tasks_counters() -> None:
    task = FakeTask()
    metrics = registered(task)
    task.num_records_in = 40
    task.writers[0].num_records_out, task.writers[1].num_records_out = 10, 5
    assert read(task, metrics, "numRecordsIn") == 40
    assert read(task, metrics, "numRecordsOut") == 15


def test_rates_are_records_per_second_since_the_previous_reads() -> None:
    task = FakeTask()
    metrics = registered(task)
    time.sleep(0.1)
    task.num_records_in = 1000
    rate = read(task, metrics, "numRecordsInPerSecond")
    assert isinstance(rate, float)
    assert 1000 < rate < 11_000


def test_current_input_watermark_is_the_minimum_over_inputs() -> None:
    task = FakeTask(valves=[FakeValve(200), FakeValve(150)])
    metrics = registered(task)
    assert read(task, metrics, "currentInputWatermark") == 150
    assert read(task, metrics, "currentInput1Watermark") == 200
    assert read(task, metrics, "currentInput2Watermark") == 150


def test_sources_have_no_input_watermark() -> None:
    task = FakeTask(valves=[])
    metrics = registered(task)
    assert f"{task_scope('job', 3, 1)}.currentInputWatermark" not in metrics


@pytest.mark.parametrize(
    ("before", "after", "running", "previous", "kind"),
    [
        ((0, 0, 0), (1, 5, 5), True, IDLE, BACKPRESSURED),
        ((0, 0, 0), (0, 5, 0), True, IDLE, BUSY),
        ((0, 0, 0), (0, 0, 5), True, BACKPRESSURED, BUSY),
        ((0, 0, 0), (0, 0, 0), True, IDLE, IDLE),
        ((0, 0, 0), (0, 0, 0), True, BACKPRESSURED, BACKPRESSURED),
        ((0, 0, 0), (0, 0, 0), True, BUSY, IDLE),
        ((0, 0, 0), (3, 3, 3), False, BACKPRESSURED, IDLE),
    ],
)
def test_classify(
    before: tuple[int, int, int],
    after: tuple[int, int, int],
    running: bool,
    previous: str,
    kind: str,
) -> None:
    assert classify(before, after, running, previous) == kind


def test_backpressured_time_is_sampled_while_it_is_read() -> None:
    task = FakeTask()
    metrics = registered(task)
    stop = threading.Event()

    def refused_all_the_time() -> None:
        while not stop.is_set():
            task.backpressured_steps += 1
            time.sleep(0.005)

    worker = threading.Thread(target=refused_all_the_time, daemon=True)
    worker.start()
    try:
        read(task, metrics, "backPressuredTimeMsPerSecond")  # starts sampling
        time.sleep(0.6)
        assert read(task, metrics, "backPressuredTimeMsPerSecond") > 800
        assert read(task, metrics, "idleTimeMsPerSecond") < 200
        assert read(task, metrics, "isBackPressured") is True
    finally:
        stop.set()
        worker.join()


def test_busy_time_counts_samples_that_moved_records() -> None:
    task = FakeTask()
    metrics = registered(task)
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            task.num_records_in += 10
            time.sleep(0.005)

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    try:
        read(task, metrics, "busyTimeMsPerSecond")
        time.sleep(0.6)
        assert read(task, metrics, "busyTimeMsPerSecond") > 800
        assert read(task, metrics, "backPressuredTimeMsPerSecond") == 0.0
    finally:
        stop.set()
        worker.join()
