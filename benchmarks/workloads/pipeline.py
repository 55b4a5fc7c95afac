"""Chained stateless pipeline: ``map -> filter -> map`` into a checksumming sink.

Input: the integers ``0 .. n-1``. The job triples each, keeps the even results and adds
one; the sink counts the records and sums them. With parallelism 1 the whole job is one
chain (source, three operators, sink), so the figure is the engine's per-record cost:
batching, operator dispatch, the sink call and job setup, on top of the user functions.

The baseline is the loop a user would write instead: the same three user functions in
one ``for`` loop, accumulating count and sum inline.

Two sources: ``pipeline_collection`` reads a prebuilt list (``env.from_collection``),
``pipeline_numbers`` generates the numbers (``NumberSequenceSource``, its baseline
iterating ``range(n)``).
"""

from __future__ import annotations

from benchmarks.registry import Outcome, Workload, register
from benchmarks.workloads.tally import Tally, job_environment
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream.connectors import NumberSequenceSource

FULL_RECORDS = 2_000_000
QUICK_RECORDS = 200_000
TARGET_RATIO = 2.0


def triple(x: int) -> int:
    return x * 3


def is_even(x: int) -> bool:
    return x % 2 == 0


def increment(x: int) -> int:
    return x + 1


def expected(n: int) -> Outcome:
    """3x is even exactly for even x = 2j, j < m = ceil(n/2): sum(6j + 1) = 3m(m-1) + m."""
    m = (n + 1) // 2
    return Outcome(m, 3 * m * (m - 1) + m)


# ----------------------------------------------------------------- from_collection


def collection_input(n: int) -> list[int]:
    return list(range(n))


def collection_engine(data: list[int]) -> Outcome:
    tally = Tally()
    env = job_environment()
    env.from_collection(data).map(triple).filter(is_even).map(increment).add_sink(tally.add)
    env.execute("bench: pipeline_collection")
    return tally.outcome()


def collection_baseline(data: list[int]) -> Outcome:
    count = total = 0
    for x in data:
        y = triple(x)
        if is_even(y):
            count += 1
            total += increment(y)
    return Outcome(count, total)


register(
    Workload(
        name="pipeline_collection",
        family="pipeline",
        description="from_collection(list) -> map -> filter -> map -> sink (count, sum)",
        prepare=collection_input,
        engine=collection_engine,
        baseline=collection_baseline,
        target_ratio=TARGET_RATIO,
        full_records=FULL_RECORDS,
        quick_records=QUICK_RECORDS,
        expected=expected,
    )
)


# ----------------------------------------------------------- NumberSequenceSource


def numbers_input(n: int) -> int:
    return n


def numbers_engine(n: int) -> Outcome:
    tally = Tally()
    env = job_environment()
    source = NumberSequenceSource(0, n - 1)  # inclusive bounds, as in Flink
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "numbers")
        .map(triple)
        .filter(is_even)
        .map(increment)
        .add_sink(tally.add)
    )
    env.execute("bench: pipeline_numbers")
    return tally.outcome()


def numbers_baseline(n: int) -> Outcome:
    count = total = 0
    for x in range(n):
        y = triple(x)
        if is_even(y):
            count += 1
            total += increment(y)
    return Outcome(count, total)


register(
    Workload(
        name="pipeline_numbers",
        family="pipeline",
        description="NumberSequenceSource -> map -> filter -> map -> sink (count, sum)",
        prepare=numbers_input,
        engine=numbers_engine,
        baseline=numbers_baseline,
        target_ratio=TARGET_RATIO,
        full_records=FULL_RECORDS,
        quick_records=QUICK_RECORDS,
        expected=expected,
    )
)
