"""Processing-time windows on the wall clock: short windows, a paced source, and
assertions on totals (exact window boundaries depend on timing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flinklet.datastream import SourceFunction, StreamExecutionEnvironment
from flinklet.datastream.window import (
    ProcessingTimeSessionWindows,
    SlidingProcessingTimeWindows,
    TimeWindow,
    TumblingProcessingTimeWindows,
)

Collect = Callable[..., list[Any]]


class _Paced(SourceFunction[Any]):
    """Emits ``bursts`` of ``per_burst`` records per key, ``every_ms`` apart, with
    ``pause_ms`` between bursts; waits ``linger_ms`` before finishing so that the last
    processing-time windows fire (a finished input drops pending processing-time timers,
    as in Flink)."""

    def __init__(
        self,
        bursts: int,
        per_burst: int,
        every_ms: float,
        pause_ms: float = 0,
        linger_ms: float = 700,
        keys: tuple[str, ...] = ("a", "b"),
    ) -> None:
        self.bursts = bursts
        self.per_burst = per_burst
        self.every_ms = every_ms
        self.pause_ms = pause_ms
        self.linger_ms = linger_ms
        self.keys = keys
        self.running = True

    def run(self, ctx: Any) -> None:
        for burst in range(self.bursts):
            if burst:
                time.sleep(self.pause_ms / 1000)
            for _ in range(self.per_burst):
                for key in self.keys:
                    ctx.collect((key, 1))
                time.sleep(self.every_ms / 1000)
        time.sleep(self.linger_ms / 1000)

    def cancel(self) -> None:
        self.running = False


def _add(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return (a[0], a[1] + b[1])


def _window_counts(key: Any, window: Any, inputs: Any) -> list[tuple[Any, Any, int]]:
    return [(key, window, sum(v for _, v in inputs))]


def test_tumbling_processing_time_windows_count_every_record_once(collect: Collect) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    stream = env.add_source(_Paced(bursts=1, per_burst=60, every_ms=5))
    result = (
        stream.key_by(lambda r: r[0])
        .window(TumblingProcessingTimeWindows.of(100))
        .apply(_window_counts)
    )
    out = collect(result, timestamps=True)
    for key in ("a", "b"):
        rows = [(w, n, ts) for (k, w, n), ts in out if k == key]
        assert sum(n for _, n, _ in rows) == 60  # every record in exactly one window
        assert len(rows) >= 2  # ~300 ms of records span several 100 ms windows
        for window, _, ts in rows:
            assert isinstance(window, TimeWindow) and window.end - window.start == 100
            assert window.start % 100 == 0 and ts == window.end - 1


def test_sliding_processing_time_windows_count_every_record_twice(collect: Collect) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    stream = env.add_source(_Paced(bursts=1, per_burst=40, every_ms=5, keys=("a",)))
    result = (
        stream.key_by(lambda r: r[0]).window(SlidingProcessingTimeWindows.of(200, 100)).reduce(_add)
    )
    # size / slide = 2: each record is counted in two windows
    assert sum(r[1] for r in collect(result)) == 80


def test_processing_time_sessions_split_on_pauses(collect: Collect) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    source = _Paced(bursts=2, per_burst=10, every_ms=5, pause_ms=900, linger_ms=900)
    result = (
        env.add_source(source)
        .key_by(lambda r: r[0])
        .window(ProcessingTimeSessionWindows.with_gap(300))
        .reduce(_add)
    )
    # bursts of 10 records 5 ms apart, 900 ms between them: two 300 ms-gap sessions per key
    assert sorted(collect(result)) == [("a", 10), ("a", 10), ("b", 10), ("b", 10)]
