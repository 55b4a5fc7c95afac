"""Event-time window aggregations over 1,000 keys: a windowed word count (10 s tumbling
windows) and a sliding-window aggregate (10 s windows every 5 s).

Input (``benchmarks.inputs``): one record per millisecond of event time, its word one of
1,000 chosen by a hash of the record's index; the sliding aggregate's records also carry
a value (``i % 100``). Timestamps come from the records with monotonous watermarks, so
no record is late and every window's contents are deterministic.

- ``window_word_count``: ``map((word, 1))`` -> ``key_by(word)`` -> 10 s tumbling windows
  -> ``reduce(add counts)`` with a window function emitting ``(word, window end,
  count)``;
- ``window_sliding_sum``: ``key_by(word)`` -> 10 s windows sliding by 5 s (every record
  in two windows) -> an ``AggregateFunction`` keeping ``(count, sum)`` -> ``(word,
  window end, count, sum)``.

The baseline is the dict a user would fill instead: ``(word, window start) -> count``
(for the sliding windows, each record added to both of its windows). The checksum
weighs each window's count by its window number, so counts moved between windows
change it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchmarks.inputs import word_values, words
from benchmarks.registry import Outcome, Workload, register
from benchmarks.workloads.tally import Tally, job_environment
from flinklet.common import Time
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import AggregateFunction, ProcessWindowFunction, WindowFunction
from flinklet.datastream.window import (
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
)

FULL_RECORDS = 300_000  # the word count; the sliding sum (2 windows per record) runs half
QUICK_RECORDS = 50_000
TARGET_RATIO = 3.0
WINDOW_MS = 10_000
SLIDE_MS = 5_000

WordCount = tuple[str, int]


class WindowTally(Tally):
    """Counts results and adds up ``count * window number`` (window end / 1 s)."""

    __slots__ = ()

    def add_window_count(self, result: tuple[Any, ...]) -> None:
        self.count += 1
        self.total += result[2] * (result[1] // 1000)

    def add_window_count_sum(self, result: tuple[str, int, int, int]) -> None:
        self.count += 1
        self.total += (result[2] + result[3]) * (result[1] // 1000)


def second_as_time(record: tuple[Any, ...], _ts: int | None) -> int:
    return record[1]


def last_as_time(record: tuple[Any, ...], _ts: int | None) -> int:
    return record[-1]


def word_of(record: tuple[Any, ...]) -> str:
    return record[0]


def one(record: tuple[str, int]) -> WordCount:
    return (record[0], 1)


def add_counts(a: WordCount, b: WordCount) -> WordCount:
    return (a[0], a[1] + b[1])


class EmitWordCount(WindowFunction):
    def apply(self, key: str, window: TimeWindow, inputs: Iterable[WordCount]) -> Iterable[Any]:
        for word, count in inputs:
            yield (word, window.end, count)


# ------------------------------------------------------------------- word count


def word_count_engine(records: list[tuple[str, int]]) -> Outcome:
    tally = WindowTally()
    env = job_environment()
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(second_as_time)
    (
        env.from_collection(records)
        .assign_timestamps_and_watermarks(strategy)
        .map(one)
        .key_by(word_of)
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .reduce(add_counts, window_function=EmitWordCount())
        .add_sink(tally.add_window_count)
    )
    env.execute("bench: window_word_count")
    return tally.outcome()


def word_count_baseline(records: list[tuple[str, int]]) -> Outcome:
    counts: dict[tuple[str, int], int] = {}
    get = counts.get
    for word, ts in records:
        key = (word, ts - ts % WINDOW_MS)
        counts[key] = get(key, 0) + 1
    tally = WindowTally()
    add = tally.add_window_count
    for (word, start), count in counts.items():
        add((word, start + WINDOW_MS, count))
    return tally.outcome()


register(
    Workload(
        name="window_word_count",
        family="windows",
        description="(word, ts) -> map -> key_by -> 10 s tumbling event-time windows -> "
        "reduce (1,000 keys)",
        prepare=words,
        engine=word_count_engine,
        baseline=word_count_baseline,
        target_ratio=TARGET_RATIO,
        full_records=FULL_RECORDS,
        quick_records=QUICK_RECORDS,
    )
)


# ---------------------------------------------------------------- sliding sum


class CountSum(AggregateFunction):
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: tuple[str, int, int], accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + 1, accumulator[1] + value[1])

    def get_result(self, accumulator: tuple[int, int]) -> tuple[int, int]:
        return accumulator

    def merge(self, acc_a: tuple[int, int], acc_b: tuple[int, int]) -> tuple[int, int]:
        return (acc_a[0] + acc_b[0], acc_a[1] + acc_b[1])


class EmitCountSum(ProcessWindowFunction):
    def process(self, key: str, context: Any, elements: Iterable[tuple[int, int]]) -> Any:
        end = context.window().end
        for count, total in elements:
            yield (key, end, count, total)


def sliding_engine(records: list[tuple[str, int, int]]) -> Outcome:
    tally = WindowTally()
    env = job_environment()
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(last_as_time)
    (
        env.from_collection(records)
        .assign_timestamps_and_watermarks(strategy)
        .key_by(word_of)
        .window(
            SlidingEventTimeWindows.of(Time.milliseconds(WINDOW_MS), Time.milliseconds(SLIDE_MS))
        )
        .aggregate(CountSum(), window_function=EmitCountSum())
        .add_sink(tally.add_window_count_sum)
    )
    env.execute("bench: window_sliding_sum")
    return tally.outcome()


def sliding_baseline(records: list[tuple[str, int, int]]) -> Outcome:
    accs: dict[tuple[str, int], list[int]] = {}
    get = accs.get
    per_record = WINDOW_MS // SLIDE_MS
    for word, value, ts in records:
        last_start = ts - ts % SLIDE_MS
        for k in range(per_record):
            key = (word, last_start - k * SLIDE_MS)
            acc = get(key)
            if acc is None:
                accs[key] = [1, value]
            else:
                acc[0] += 1
                acc[1] += value
    tally = WindowTally()
    add = tally.add_window_count_sum
    for (word, start), (count, total) in accs.items():
        add((word, start + WINDOW_MS, count, total))
    return tally.outcome()


register(
    Workload(
        name="window_sliding_sum",
        family="windows",
        description="(word, value, ts) -> key_by -> 10 s windows sliding by 5 s -> "
        "aggregate (count, sum) (1,000 keys)",
        prepare=word_values,
        engine=sliding_engine,
        baseline=sliding_baseline,
        target_ratio=TARGET_RATIO,
        full_records=FULL_RECORDS // 2,
        quick_records=QUICK_RECORDS // 2,
    )
)
