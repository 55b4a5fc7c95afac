"""A test harness for window and join operators: feed records and watermarks by hand, move
a fake processing-time clock, and read what the operator emitted (as Flink's
``KeyedOneInputStreamOperatorTestHarness`` does)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

import flinklet.datastream  # noqa: F401  (first: importing exec.context first is circular)
from flinklet._private.exec.context import OperatorEnv
from flinklet._private.exec.operators import Output, StreamOperator
from flinklet._private.exec.timers import ProcessingTimeService
from flinklet._private.metrics import MetricRegistry, TaskMetricGroup
from flinklet._private.state.backend import OperatorStateBackend
from flinklet._private.state.heap import HeapKeyedStateBackend
from flinklet._private.state.keygroups import KeyGroupRange


class _WatermarkSink(StreamOperator):
    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    def process_watermark(self, watermark: int) -> None:
        self.seen.append(watermark)


class _AnySideOutput(dict[str, list[Callable[..., None]]]):
    """Side-output targets for every tag id: collects into ``sides[tag_id]``."""

    def __init__(self, sides: dict[str, list[tuple[Any, Any]]]) -> None:
        super().__init__()
        self._sides = sides

    def get(self, tag_id: str, default: Any = None) -> list[Callable[..., None]]:
        def collect(values: list[Any], stamps: list[Any] | None) -> None:
            self._sides[tag_id].extend(zip(values, stamps or [None] * len(values), strict=True))

        return [collect]


class Harness:
    """Runs one operator; ``emitted`` holds ``(value, timestamp)`` in emission order."""

    def __init__(self, operator: StreamOperator, now: int = 0, batch_mode: bool = False) -> None:
        self.now = now
        self.pts = ProcessingTimeService(lambda: self.now)
        self.registry = MetricRegistry()
        self.backend = HeapKeyedStateBackend(128, KeyGroupRange(0, 127))
        self.emitted: list[tuple[Any, Any]] = []
        self.sides: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
        self.watermarks: list[int] = []
        env = OperatorEnv(
            job_id="job",
            task_name="task",
            operator_name="op",
            operator_uid="op",
            subtask_index=0,
            parallelism=1,
            max_parallelism=128,
            attempt=0,
            pts=self.pts,
            metrics=TaskMetricGroup(self.registry, "job.op.0"),
            keyed_backend=self.backend,
            operator_state=OperatorStateBackend(),
            batch_mode=batch_mode,
        )
        output = Output(
            [self._collect], _AnySideOutput(self.sides), [_WatermarkSink(self.watermarks)], []
        )
        operator.name = "op"
        operator.setup(env, output)
        operator.open()
        self.op: Any = operator

    def _collect(self, values: list[Any], stamps: list[Any] | None) -> None:
        self.emitted.extend(zip(values, stamps or [None] * len(values), strict=True))

    # -- one-input operators ----------------------------------------------------------

    def element(self, value: Any, timestamp: int | None = None) -> Harness:
        self.op.process_batch([value], None if timestamp is None else [timestamp])
        return self

    def elements(self, *pairs: tuple[Any, int | None]) -> Harness:
        values = [v for v, _ in pairs]
        stamps = [t for _, t in pairs]
        self.op.process_batch(values, None if all(t is None for t in stamps) else stamps)
        return self

    def watermark(self, watermark: int) -> Harness:
        self.op.process_watermark(watermark)
        return self

    # -- two-input operators ----------------------------------------------------------

    def left(self, value: Any, timestamp: int | None) -> Harness:
        self.op.process_batch1([value], None if timestamp is None else [timestamp])
        return self

    def right(self, value: Any, timestamp: int | None) -> Harness:
        self.op.process_batch2([value], None if timestamp is None else [timestamp])
        return self

    def watermarks_both(self, watermark: int) -> Harness:
        self.op.process_watermark1(watermark)
        self.op.process_watermark2(watermark)
        return self

    # -- time and results -------------------------------------------------------------

    def set_processing_time(self, now: int) -> Harness:
        self.now = now
        self.pts.fire_due(now)
        return self

    def take(self) -> list[tuple[Any, Any]]:
        """What was emitted since the last ``take()``."""
        out, self.emitted = self.emitted, []
        return out

    def values(self) -> list[Any]:
        return [v for v, _ in self.take()]

    def counter(self, name: str) -> int:
        return int(self.registry.metrics[f"job.op.0.{name}"].count)

    def state_entries(self, state_name: str) -> int:
        """How many (namespace, key) entries a keyed state holds."""
        table = self.backend._tables.get(state_name, {})
        return sum(len(ns_table) for ns_table in table.values())

    def timers(self) -> int:
        return int(
            self.op.timers.num_event_time_timers() + self.op.timers.num_processing_time_timers()
        )


@pytest.fixture
def harness() -> type[Harness]:
    """The ``Harness`` class: ``harness(operator)`` sets the operator up and opens it."""
    return Harness
