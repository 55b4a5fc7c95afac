"""Window joins, co-groups and interval joins through the public API."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from flinklet.common.time import Duration, Time
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    CoGroupFunction,
    JoinFunction,
    OutputTag,
    ProcessJoinFunction,
    StreamExecutionEnvironment,
)
from flinklet.datastream.window import (
    CountTrigger,
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
)
from flinklet.errors import ApiUsageError

Collect = Callable[..., list[Any]]

ORDERS = [("o1", "alice", 1000), ("o2", "bob", 3000), ("o3", "alice", 7000), ("o4", "carol", 500)]
PAYMENTS = [("alice", "p1", 2000), ("alice", "p2", 6000), ("bob", "p3", 11000), ("dave", "p4", 1)]


def _env(parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


def _ts(index: int) -> WatermarkStrategy:
    return WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda e, ts: e[index]
    )


def inputs(parallelism: int) -> tuple[Any, Any]:
    env = _env(parallelism)
    orders = env.from_collection(sorted(ORDERS, key=lambda o: o[2]))
    payments = env.from_collection(sorted(PAYMENTS, key=lambda p: p[2]))
    return (
        orders.assign_timestamps_and_watermarks(_ts(2)),
        payments.assign_timestamps_and_watermarks(_ts(2)),
    )


class _Pair(JoinFunction[Any, Any, Any]):
    def join(self, first: Any, second: Any) -> Any:
        return (first[0], second[1])


@pytest.mark.parametrize("parallelism", [1, 4])
def test_window_join_pairs_elements_of_the_same_key_and_window(
    parallelism: int, collect: Collect
) -> None:
    orders, payments = inputs(parallelism)
    joined = (
        orders.join(payments)
        .where(lambda o: o[1])
        .equal_to(lambda p: p[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(5)))
        .apply(_Pair())
    )
    # 5 s windows: alice [0,5000) has o1 and p1; alice [5000,10000) has o3 and p2; bob's o2
    # (3000) and p3 (11000) are in different windows; carol and dave have no partner
    assert sorted(collect(joined, timestamps=True)) == [
        (("o1", "p1"), 4999),
        (("o3", "p2"), 9999),
    ]


def test_window_join_is_a_cross_product_per_window(collect: Collect) -> None:
    env = _env(2)
    left = env.from_collection([("k", 1, "a"), ("k", 2, "b")]).assign_timestamps_and_watermarks(
        _ts(1)
    )
    right = env.from_collection([("k", 3, "x"), ("k", 4, "y")]).assign_timestamps_and_watermarks(
        _ts(1)
    )
    joined = (
        left.join(right)
        .where(lambda e: e[0])
        .equal_to(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(10))
        .apply(lambda a, b: a[2] + b[2])
    )
    assert sorted(collect(joined)) == ["ax", "ay", "bx", "by"]


class _Summaries(CoGroupFunction[Any, Any, Any]):
    def co_group(self, first: Any, second: Any) -> Any:
        firsts, seconds = list(first), list(second)
        key = (firsts or seconds)[0]
        key = key[1] if firsts else key[0]
        yield key, sorted(o[0] for o in firsts), sorted(p[1] for p in seconds)


@pytest.mark.parametrize("parallelism", [1, 4])
def test_co_group_sees_both_sides_even_when_one_is_empty(
    parallelism: int, collect: Collect
) -> None:
    orders, payments = inputs(parallelism)
    grouped = (
        orders.co_group(payments)
        .where(lambda o: o[1])
        .equal_to(lambda p: p[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(5)))
        .apply(_Summaries())
    )
    assert sorted(collect(grouped)) == [
        ("alice", ["o1"], ["p1"]),
        ("alice", ["o3"], ["p2"]),
        ("bob", [], ["p3"]),
        ("bob", ["o2"], []),
        ("carol", ["o4"], []),
        ("dave", [], ["p4"]),
    ]


def test_join_with_sliding_windows_joins_pairs_once_per_shared_window(collect: Collect) -> None:
    env = _env(2)
    left = env.from_collection([("k", 1000, "a")]).assign_timestamps_and_watermarks(_ts(1))
    right = env.from_collection([("k", 1500, "x")]).assign_timestamps_and_watermarks(_ts(1))
    joined = (
        left.join(right)
        .where(lambda e: e[0])
        .equal_to(lambda e: e[0])
        .window(SlidingEventTimeWindows.of(2000, 1000))
        .apply(lambda a, b: a[2] + b[2])
    )
    # 1000 and 1500 share [0,2000) and [1000,3000): the pair is emitted in both
    assert sorted(collect(joined, timestamps=True)) == [("ax", 1999), ("ax", 2999)]


def test_join_with_a_custom_trigger_and_lateness(collect: Collect) -> None:
    env = _env(1)
    left = env.from_collection([("k", 1, "a"), ("k", 2, "b")]).assign_timestamps_and_watermarks(
        _ts(1)
    )
    right = env.from_collection([("k", 3, "x")]).assign_timestamps_and_watermarks(_ts(1))
    joined = (
        left.join(right)
        .where(lambda e: e[0])
        .equal_to(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(100))
        .trigger(CountTrigger.of(100))  # never reached: the session never fires
        .allowed_lateness(Duration.of_millis(10))
        .apply(lambda a, b: a[2] + b[2])
    )
    assert collect(joined) == []


# ---------------------------------------------------------------------- interval join


class _Matched(ProcessJoinFunction[Any, Any, Any]):
    def process_element(self, left: Any, right: Any, ctx: Any) -> Any:
        yield left[0], right[1], ctx.get_left_timestamp(), ctx.get_right_timestamp()


def interval(parallelism: int, configure: Callable[[Any], Any]) -> Any:
    orders, payments = inputs(parallelism)
    joined = orders.key_by(lambda o: o[1]).interval_join(payments.key_by(lambda p: p[0]))
    return configure(joined.between(Time.seconds(-1), Time.seconds(1))).process(_Matched())


@pytest.mark.parametrize("parallelism", [1, 4])
def test_interval_join_with_inclusive_bounds(parallelism: int, collect: Collect) -> None:
    result = interval(parallelism, lambda j: j)
    # alice: o1 (1000) joins payments in [0, 2000] -> p1 (2000, exactly on the upper
    # bound); o3 (7000) joins [6000, 8000] -> p2 (6000, exactly on the lower bound)
    assert sorted(collect(result, timestamps=True)) == [
        (("o1", "p1", 1000, 2000), 2000),
        (("o3", "p2", 7000, 6000), 7000),
    ]


def test_interval_join_with_exclusive_bounds(collect: Collect) -> None:
    assert collect(interval(2, lambda j: j.upper_bound_exclusive())) == [("o3", "p2", 7000, 6000)]
    assert collect(interval(2, lambda j: j.lower_bound_exclusive())) == [("o1", "p1", 1000, 2000)]
    both = interval(2, lambda j: j.lower_bound_exclusive().upper_bound_exclusive())
    assert collect(both) == []


def test_interval_join_late_data_side_output(punctuated: Any, collect: Collect) -> None:
    env = _env(2)
    late = OutputTag("late-left")
    left = env.from_collection([("k", 100, "a"), ("k", 50, "late")])
    right = env.from_collection([("k", 150, "x")])
    # left's watermark jumps to 100 after its first record; right's follows its record
    left = left.assign_timestamps_and_watermarks(punctuated({0: 100}))
    right = right.assign_timestamps_and_watermarks(punctuated({0: 150}))
    joined = (
        left.key_by(lambda e: e[0])
        .interval_join(right.key_by(lambda e: e[0]))
        .between(-100, 100)
        .side_output_left_late_data(late)
        .process(lambda left, right, ctx: [(left[2], right[2])])
    )
    out = collect(
        joined.map(lambda v: ("main", v)).union(
            joined.get_side_output(late).map(lambda v: ("late", v))
        )
    )
    main = [v for tag, v in out if tag == "main"]
    assert ("a", "x") in main
    # whether "late" is behind the join's watermark depends on when the right input's
    # watermark arrives; either it is joined (50 is within 150 - 100) or side-output
    lates = [v for tag, v in out if tag == "late"]
    assert sorted(main + [(v[2], "x") for v in lates]) == [("a", "x"), ("late", "x")]


def test_interval_join_matches_a_nested_loop_at_parallelism_four(collect: Collect) -> None:
    rnd = random.Random(7)
    left = sorted(
        ((f"k{rnd.randint(0, 4)}", rnd.randint(0, 5000), i) for i in range(150)), key=lambda e: e[1]
    )
    right = sorted(
        ((f"k{rnd.randint(0, 4)}", rnd.randint(0, 5000), i) for i in range(150)), key=lambda e: e[1]
    )
    expected = sorted(
        (a[2], b[2])
        for a in left
        for b in right
        if a[0] == b[0] and a[1] - 200 <= b[1] <= a[1] + 50
    )
    env = _env(4)
    ls = env.from_collection(left).assign_timestamps_and_watermarks(_ts(1))
    rs = env.from_collection(right).assign_timestamps_and_watermarks(_ts(1))
    # monotonous inputs and the join's watermark being the minimum of both: nothing is late
    result = (
        ls.key_by(lambda e: e[0])
        .interval_join(rs.key_by(lambda e: e[0]))
        .between(Duration.of_millis(-200), Duration.of_millis(50))
        .process(lambda a, b, ctx: [(a[2], b[2])])
    )
    assert sorted(collect(result)) == expected
    assert len(expected) > 20


def test_interval_join_api_errors() -> None:
    env = _env(1)
    a = env.from_collection([("k", 1)])
    b = env.from_collection([("k", 1)])
    with pytest.raises(ApiUsageError, match="KeyedStreams"):
        a.key_by(lambda e: e[0]).interval_join(b)  # type: ignore[arg-type]
    joined = a.key_by(lambda e: e[0]).interval_join(b.key_by(lambda e: e[0]))
    with pytest.raises(ApiUsageError, match="lowerBound <= upperBound"):
        joined.between(Time.seconds(1), Time.seconds(-1))
    with pytest.raises(ApiUsageError, match="event time"):
        joined.in_processing_time()
    with pytest.raises(ApiUsageError, match="ProcessJoinFunction"):
        joined.between(0, 1).process(42)
