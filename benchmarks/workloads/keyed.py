"""Keyed running aggregation: ``key_by`` + a rolling sum per key, every update emitted.

Input: the pairs ``(i % 1000, i)`` for ``i`` in ``0 .. n-1`` (1,000 keys, prebuilt
outside the timed region). The job keys by the first field and keeps a running sum of
the second per key; in streaming mode each record emits its key's updated
``(key, sum)``, and the sink counts the emitted records and sums their running sums. The
figure is the engine's per-record cost of a keyed stateful operator: the key selector,
the keyed-state read and write, building the updated record, and the sink.

Two forms of the same aggregation:

- ``keyed_sum``: the built-in ``.sum(1)``;
- ``keyed_reduce``: ``.reduce(add_values)`` with a user function.

The baseline is the loop a user would write instead: a dict from key to running sum,
the same key selector (and, for ``keyed_reduce``, the same reduce function), each running
sum added to the checksum.
"""

from __future__ import annotations

from benchmarks.registry import Outcome, Workload, register
from benchmarks.workloads.tally import Tally, job_environment

KEYS = 1_000
FULL_RECORDS = 2_000_000
QUICK_RECORDS = 200_000
TARGET_RATIO = 3.0

Record = tuple[int, int]


def keyed_input(n: int) -> list[Record]:
    return [(i % KEYS, i) for i in range(n)]


def expected(n: int) -> Outcome:
    """Key k gets the values k + KEYS*j for j < c = its record count; its running sums
    add up to k*c(c+1)/2 + KEYS*(c-1)c(c+1)/6."""
    total = 0
    for k in range(min(n, KEYS)):
        c = (n - k + KEYS - 1) // KEYS
        total += k * c * (c + 1) // 2 + KEYS * (c - 1) * c * (c + 1) // 6
    return Outcome(n, total)


def key_of(record: Record) -> int:
    return record[0]


def add_values(acc: Record, record: Record) -> Record:
    return (acc[0], acc[1] + record[1])


# ----------------------------------------------------------------------- .sum(1)


def sum_engine(records: list[Record]) -> Outcome:
    tally = Tally()
    env = job_environment()
    env.from_collection(records).key_by(key_of).sum(1).add_sink(tally.add_second)
    env.execute("bench: keyed_sum")
    return tally.outcome()


def sum_baseline(records: list[Record]) -> Outcome:
    sums: dict[int, int] = {}
    get = sums.get
    count = total = 0
    for record in records:
        key = key_of(record)
        running = get(key, 0) + record[1]
        sums[key] = running
        count += 1
        total += running
    return Outcome(count, total)


register(
    Workload(
        name="keyed_sum",
        family="keyed",
        description=f"from_collection((i % {KEYS}, i)) -> key_by -> sum(1) -> sink",
        prepare=keyed_input,
        engine=sum_engine,
        baseline=sum_baseline,
        target_ratio=TARGET_RATIO,
        full_records=FULL_RECORDS,
        quick_records=QUICK_RECORDS,
        expected=expected,
    )
)


# ----------------------------------------------------------------- .reduce(fn)


def reduce_engine(records: list[Record]) -> Outcome:
    tally = Tally()
    env = job_environment()
    env.from_collection(records).key_by(key_of).reduce(add_values).add_sink(tally.add_second)
    env.execute("bench: keyed_reduce")
    return tally.outcome()


def reduce_baseline(records: list[Record]) -> Outcome:
    latest: dict[int, Record] = {}
    get = latest.get
    count = total = 0
    for record in records:
        key = key_of(record)
        old = get(key)
        new = record if old is None else add_values(old, record)
        latest[key] = new
        count += 1
        total += new[1]
    return Outcome(count, total)


register(
    Workload(
        name="keyed_reduce",
        family="keyed",
        description=f"from_collection((i % {KEYS}, i)) -> key_by -> reduce(fn) -> sink",
        prepare=keyed_input,
        engine=reduce_engine,
        baseline=reduce_baseline,
        target_ratio=TARGET_RATIO,
        full_records=FULL_RECORDS,
        quick_records=QUICK_RECORDS,
        expected=expected,
    )
)
