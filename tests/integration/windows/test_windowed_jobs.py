"""Window jobs through the public API on the local executor: results written by hand from
Flink's semantics, late data with punctuated watermarks, and parallelism 1 vs 4."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from flinklet.common.time import Duration, Time
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    AggregateFunction,
    OutputTag,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
    StreamExecutionEnvironment,
    WindowFunction,
)
from flinklet.datastream.window import (
    CountTrigger,
    EventTimeSessionWindows,
    GlobalWindows,
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
)
from flinklet.errors import ApiUsageError, JobExecutionError

Collect = Callable[..., list[Any]]


def env_with(parallelism: int = 1) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


def _key(r: tuple[str, int, int]) -> str:
    return r[0]


def _add(a: tuple[str, int, int], b: tuple[str, int, int]) -> tuple[str, int, int]:
    return (a[0], max(a[1], b[1]), a[2] + b[2])


# ------------------------------------------------------------ hand-derived results


def test_tumbling_windows_sum_per_key_stamped_window_end_minus_one(
    monotonous: Any, collect: Collect
) -> None:
    env = env_with(2)
    data = [("a", 1000, 1), ("b", 2000, 2), ("a", 4999, 3), ("a", 5000, 4), ("b", 12000, 5)]
    ds = env.from_collection(data).assign_timestamps_and_watermarks(monotonous)
    result = ds.key_by(_key).window(TumblingEventTimeWindows.of(Time.seconds(5))).reduce(_add)
    # 5 s windows: a has [0,5000) = 1+3 and [5000,10000) = 4; b has [0,5000) = 2 and
    # [10000,15000) = 5; each result is stamped with its window's end - 1
    assert sorted(collect(result, timestamps=True)) == [
        (("a", 4999, 4), 4999),
        (("a", 5000, 4), 9999),
        (("b", 2000, 2), 4999),
        (("b", 12000, 5), 14999),
    ]


class _MinMax(ProcessWindowFunction[Any, Any, Any, Any]):
    def process(self, key: Any, context: Any, elements: Any) -> Any:
        values = [e[2] for e in elements]
        window = context.window()
        yield key, window.start, window.end, min(values), max(values)


def test_sliding_windows_with_a_process_window_function(monotonous: Any, collect: Collect) -> None:
    env = env_with(3)
    data = [("a", 1000, 5), ("a", 6000, 7), ("a", 11000, 1)]
    ds = env.from_collection(data).assign_timestamps_and_watermarks(monotonous)
    result = (
        ds.key_by(_key)
        .window(SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5)))
        .process(_MinMax())
    )
    # windows of 10 s every 5 s: 1000 is in [-5000,5000) and [0,10000); 6000 in
    # [0,10000) and [5000,15000); 11000 in [5000,15000) and [10000,20000)
    assert sorted(collect(result)) == [
        ("a", -5000, 5000, 5, 5),
        ("a", 0, 10000, 5, 7),
        ("a", 5000, 15000, 1, 7),
        ("a", 10000, 20000, 1, 1),
    ]


class _Avg(AggregateFunction[Any, tuple[float, int], float]):
    def create_accumulator(self) -> tuple[float, int]:
        return (0.0, 0)

    def add(self, value: Any, accumulator: tuple[float, int]) -> tuple[float, int]:
        return (accumulator[0] + value[2], accumulator[1] + 1)

    def get_result(self, accumulator: tuple[float, int]) -> float:
        return accumulator[0] / accumulator[1]

    def merge(self, a: tuple[float, int], b: tuple[float, int]) -> tuple[float, int]:
        return (a[0] + b[0], a[1] + b[1])


class _WithEnd(WindowFunction[Any, Any, Any, Any]):
    def apply(self, key: Any, window: Any, inputs: Any) -> Any:
        for avg in inputs:
            yield key, window.end, avg


def test_session_windows_with_aggregate_and_window_function(
    monotonous: Any, collect: Collect
) -> None:
    env = env_with(2)
    data = [("a", 0, 2), ("a", 400, 4), ("b", 500, 9), ("a", 2000, 10)]
    ds = env.from_collection(data).assign_timestamps_and_watermarks(monotonous)
    result = (
        ds.key_by(_key)
        .window(EventTimeSessionWindows.with_gap(Time.seconds(1)))
        .aggregate(_Avg(), window_function=_WithEnd())
    )
    # a: 0 and 400 form [0,1400); 2000 starts [2000,3000). b: [500,1500)
    assert sorted(collect(result)) == [("a", 1400, 3.0), ("a", 3000, 10.0), ("b", 1500, 9.0)]


def test_reduce_with_a_process_window_function_sees_one_value(
    monotonous: Any, collect: Collect
) -> None:
    env = env_with(2)
    data = [("a", 100, 1), ("a", 200, 2)]
    ds = env.from_collection(data).assign_timestamps_and_watermarks(monotonous)
    result = (
        ds.key_by(_key)
        .window(TumblingEventTimeWindows.of(1000))
        .reduce(_add, window_function=_MinMax())
    )
    assert collect(result) == [("a", 0, 1000, 3, 3)]


def test_window_all_evaluates_the_whole_stream_in_one_subtask(
    monotonous: Any, collect: Collect
) -> None:
    class CountAll(ProcessAllWindowFunction[Any, Any, Any]):
        def process(self, context: Any, elements: Any) -> Any:
            yield context.window().start, len(list(elements))

    env = env_with(4)
    data = [(f"k{i}", i * 100, i) for i in range(25)]  # timestamps 0 .. 2400
    ds = env.from_collection(data).assign_timestamps_and_watermarks(monotonous)
    result = ds.window_all(TumblingEventTimeWindows.of(1000)).process(CountAll())
    assert sorted(collect(result)) == [(0, 10), (1000, 10), (2000, 5)]
    with pytest.raises(ApiUsageError, match="must be 1"):
        result.set_parallelism(2)


def test_count_windows_tumbling_and_sliding(collect: Collect) -> None:
    env = env_with(2)
    data = [("a", 0, i) for i in range(1, 6)] + [("b", 0, 10)]
    keyed = env.from_collection(data).key_by(_key)
    tumbling = keyed.count_window(2).reduce(_add)
    # tumbling windows of 2: a -> 1+2, 3+4 (5 waits for a partner forever); b never fills
    assert sorted(r[2] for r in collect(tumbling)) == [3, 7]
    env = env_with(2)
    sliding = env.from_collection(data).key_by(_key).count_window(3, 2).reduce(_add)
    # every 2 elements, the last 3: a fires at its 2nd (1+2) and 4th (2+3+4) element
    assert sorted(r[2] for r in collect(sliding)) == [3, 9]


def test_window_sum_min_max_conveniences(monotonous: Any, collect: Collect) -> None:
    data = [("a", 1, 5), ("a", 2, 3), ("a", 3, 9)]
    results = {}
    for name in ("sum", "min", "max", "min_by", "max_by"):
        env = env_with(1)
        windowed = (
            env.from_collection(data)
            .assign_timestamps_and_watermarks(monotonous)
            .key_by(_key)
            .window(TumblingEventTimeWindows.of(10))
        )
        results[name] = collect(getattr(windowed, name)(2))
    assert results == {
        "sum": [("a", 1, 17)],
        "min": [("a", 1, 3)],
        "max": [("a", 1, 9)],
        "min_by": [("a", 2, 3)],
        "max_by": [("a", 3, 9)],
    }


def test_global_windows_with_end_of_stream_trigger_fire_once_at_the_end(collect: Collect) -> None:
    env = env_with(2)
    data = [("a", 0, 1), ("a", 0, 2), ("b", 0, 3)]
    result = (
        env.from_collection(data)
        .key_by(_key)
        .window(GlobalWindows.create_with_end_of_stream_trigger())
        .reduce(_add)
    )
    assert sorted(collect(result)) == [("a", 0, 3), ("b", 0, 3)]


# ------------------------------------------------------------------------ late data


LATE_DATA = [
    ("a", 1000, 1),
    ("a", 9000, 2),  # then watermark 10000: [0,10000) fires with 1 + 2
    ("a", 12000, 4),
    ("a", 3000, 8),  # late, within 5 s lateness (cleanup at 9999 + 5000): fires 1+2+8
    ("a", 4000, 16),  # after watermark 15000: [0,10000) is gone, so this is dropped
]
LATE_WATERMARKS = {1: 10_000, 3: 15_000}


def late_job(punctuated: Any, side: OutputTag | None) -> tuple[Any, Any]:
    env = env_with(2)
    windowed = (
        env.from_collection(LATE_DATA)
        .assign_timestamps_and_watermarks(punctuated(LATE_WATERMARKS))
        .key_by(_key)
        .window(TumblingEventTimeWindows.of(Time.seconds(10)))
        .allowed_lateness(Duration.of_seconds(5))
    )
    if side is not None:
        windowed = windowed.side_output_late_data(side)
    return env, windowed.reduce(_add)


def test_late_firing_and_late_side_output(punctuated: Any, collect: Collect) -> None:
    late = OutputTag("late-readings")
    _, result = late_job(punctuated, late)
    main = result.map(lambda r: ("main", r))
    side = result.get_side_output(late).map(lambda r: ("late", r))
    out = collect(main.union(side), timestamps=True)
    assert sorted(out) == [
        (("late", ("a", 4000, 16)), 4000),  # a late record keeps its own timestamp
        (("main", ("a", 9000, 3)), 9999),  # on-time firing of [0,10000)
        (("main", ("a", 9000, 11)), 9999),  # late firing, updated with the late 8
        (("main", ("a", 12000, 4)), 19999),  # [10000,20000) at the final watermark
    ]


def test_dropped_late_records_are_counted(punctuated: Any, collect: Collect) -> None:
    env, result = late_job(punctuated, None)
    assert sorted(r[2] for r in collect(result)) == [3, 4, 11]
    metrics = env._last_job.registry.snapshot()
    dropped = {k: v for k, v in metrics.items() if k.endswith(".numLateRecordsDropped")}
    assert sum(dropped.values()) == 1


def test_event_time_windows_without_timestamps_fail_with_advice(collect: Collect) -> None:
    env = env_with(1)
    ds = env.from_collection([("a", 1, 1)]).key_by(_key)
    result = ds.window(TumblingEventTimeWindows.of(10)).reduce(_add)
    with pytest.raises(JobExecutionError, match="assign_timestamps_and_watermarks"):
        collect(result)


# -------------------------------------------------------------- parallelism 1 vs 4


def _readings(n: int = 600, keys: int = 7, seed: int = 3) -> list[tuple[str, int, int]]:
    """Out-of-order readings: each timestamp is up to 400 ms behind its position."""
    rnd = random.Random(seed)
    return [
        (f"k{i % keys}", max(0, i * 37 - rnd.randint(0, 400)), rnd.randint(0, 100))
        for i in range(n)
    ]


def _bounded() -> WatermarkStrategy:
    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(500)
    ).with_timestamp_assigner(lambda r, ts: r[1])


class _Summary(ProcessWindowFunction[Any, Any, Any, Any]):
    def process(self, key: Any, context: Any, elements: Any) -> Any:
        values = sorted(e[2] for e in elements)
        yield key, context.window().start, context.window().end, len(values), sum(values)


JOBS: dict[str, Callable[[Any], Any]] = {
    "tumbling-reduce": lambda ks: ks.window(TumblingEventTimeWindows.of(1000)).reduce(_add),
    "sliding-aggregate": lambda ks: ks.window(SlidingEventTimeWindows.of(2000, 500)).aggregate(
        _Avg(), window_function=_WithEnd()
    ),
    "sessions-process": lambda ks: ks.window(EventTimeSessionWindows.with_gap(150)).process(
        _Summary()
    ),
    "count-trigger": lambda ks: (
        ks.window(TumblingEventTimeWindows.of(3000)).trigger(CountTrigger.of(4)).process(_Summary())
    ),
    "count-window": lambda ks: ks.count_window(5, 3).reduce(_add),
}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_parallelism_one_and_four_give_the_same_results(job: str, collect: Collect) -> None:
    results = []
    for parallelism in (1, 4):
        env = env_with(parallelism)
        keyed = (
            env.from_collection(_readings())
            .assign_timestamps_and_watermarks(_bounded())
            .key_by(_key)
        )
        results.append(sorted(collect(JOBS[job](keyed), timestamps=True)))
    assert results[0] == results[1]
    assert len(results[0]) > 10


def test_parallel_results_match_a_direct_computation(collect: Collect) -> None:
    data = _readings()
    expected: dict[tuple[str, int], int] = {}
    for key, ts, value in data:
        start = ts - ts % 1000
        expected[(key, start)] = expected.get((key, start), 0) + value
    env = env_with(4)
    result = (
        env.from_collection(data)
        .assign_timestamps_and_watermarks(_bounded())
        .key_by(_key)
        .window(TumblingEventTimeWindows.of(1000))
        .reduce(_add)
    )
    got = {(r[0], ts - 999): r[2] for r, ts in collect(result, timestamps=True)}
    assert got == expected


# ----------------------------------------------------------------- API validation


def test_builder_rejects_what_cannot_run() -> None:
    env = env_with(1)
    keyed = env.from_collection([("a", 1, 1)]).key_by(_key)
    with pytest.raises(ApiUsageError, match="WindowAssigner"):
        keyed.window("not an assigner")
    sessions = keyed.window(EventTimeSessionWindows.with_gap(10))
    with pytest.raises(ApiUsageError, match="does not support merging"):
        sessions.trigger(_NonMerging())
    with pytest.raises(ApiUsageError, match="cannot be negative"):
        sessions.allowed_lateness(-1)
    with pytest.raises(ApiUsageError, match="OutputTag"):
        sessions.side_output_late_data("late")
    with pytest.raises(ApiUsageError, match="AggregateFunction"):
        sessions.aggregate(object())
    with pytest.raises(ApiUsageError, match="size >= 1"):
        keyed.count_window(0)
    assert isinstance(TimeWindow(0, 1), tuple)


class _NonMerging(CountTrigger):
    def can_merge(self) -> bool:
        return False

    def __init__(self) -> None:
        super().__init__(1)
