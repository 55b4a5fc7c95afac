"""Keyed running aggregation: ``key_by`` + a rolling sum per key, every update emitted.

Input: the pairs ``(i % 1000, i)`` for ``i`` in ``0 .. n-1`` (1,000 keys, prebuilt
outside the timed region). The job keys by the first field and keeps a running sum of
the second per key; in streaming mode each record emits its key's updated
``(key, sum)``, and the sink counts the emitted records and sums their running sums. The
figure is the engine's per-record cost of a keyed stateful operator: the key selector,
the keyed-state read and write, building the updated record, and the sink.

Three variants:

- ``keyed_sum``: the built-in ``.sum(1)``;
- ``keyed_reduce``: ``.reduce(add_values)`` with a user function;
- ``keyed_reduce_many_keys``: the same reduce over ``n / 20`` keys (100,000 in full
  mode) instead of 1,000, so that costs growing with the amount of keyed state show;
- ``keyed_state_1m_keys``: a ``KeyedProcessFunction`` keeping a running sum in
  ``ValueState`` over ``n / 2`` keys: 1,000,000 keys in full mode (100,000 with
  ``--quick``), each seen twice.

The baseline is the loop a user would write instead: a dict from key to running sum,
the same key selector (and, for ``keyed_reduce``, the same reduce function), each running
sum added to the checksum.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from benchmarks.inputs import keyed_pairs
from benchmarks.registry import Outcome, Workload, register
from benchmarks.workloads.tally import Tally, job_environment
from flinklet.common import Types
from flinklet.datastream import KeyedProcessFunction, RuntimeContext, ValueStateDescriptor

KEYS = 1_000
FULL_RECORDS = 2_000_000
QUICK_RECORDS = 200_000
TARGET_RATIO = 3.0

Record = tuple[int, int]


RECORDS_PER_KEY = 20  # keyed_reduce_many_keys


def pairs(n: int, keys: int) -> list[Record]:
    return keyed_pairs(n, keys)


def running_sums(n: int, keys: int) -> Outcome:
    """Key k gets the values k + keys*j for j < c = its record count; its running sums
    add up to k*c(c+1)/2 + keys*(c-1)c(c+1)/6."""
    total = 0
    for k in range(min(n, keys)):
        c = (n - k + keys - 1) // keys
        total += k * c * (c + 1) // 2 + keys * (c - 1) * c * (c + 1) // 6
    return Outcome(n, total)


def many_keys(n: int) -> int:
    return max(1, n // RECORDS_PER_KEY)


def keyed_input(n: int) -> list[Record]:
    return pairs(n, KEYS)


def expected(n: int) -> Outcome:
    return running_sums(n, KEYS)


def many_keys_input(n: int) -> list[Record]:
    return pairs(n, many_keys(n))


def many_keys_expected(n: int) -> Outcome:
    return running_sums(n, many_keys(n))


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


register(
    Workload(
        name="keyed_reduce_many_keys",
        family="keyed",
        description=f"from_collection((i % (n/{RECORDS_PER_KEY}), i)) -> key_by -> reduce(fn) "
        f"-> sink",
        prepare=many_keys_input,
        engine=reduce_engine,
        baseline=reduce_baseline,
        target_ratio=TARGET_RATIO,
        full_records=FULL_RECORDS,
        quick_records=QUICK_RECORDS,
        expected=many_keys_expected,
    )
)


# --------------------------------------------- KeyedProcessFunction, 1M keys


RECORDS_PER_STATE_KEY = 2  # keyed_state_1m_keys: 2,000,000 records -> 1,000,000 keys


def state_keys(n: int) -> int:
    return max(1, n // RECORDS_PER_STATE_KEY)


def state_input(n: int) -> list[Record]:
    return pairs(n, state_keys(n))


def state_expected(n: int) -> Outcome:
    return running_sums(n, state_keys(n))


class RunningSum(KeyedProcessFunction):
    """The running sum of the values per key, in ``ValueState``; emits ``(key, sum)``."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.sum = runtime_context.get_state(ValueStateDescriptor("sum", Types.LONG()))

    def process_element(self, value: Record, ctx: Any) -> Iterator[Record]:
        running = (self.sum.value() or 0) + value[1]
        self.sum.update(running)
        yield (value[0], running)


def state_engine(records: list[Record]) -> Outcome:
    tally = Tally()
    env = job_environment()
    env.from_collection(records).key_by(key_of).process(RunningSum()).add_sink(tally.add_second)
    env.execute("bench: keyed_state_1m_keys")
    return tally.outcome()


register(
    Workload(
        name="keyed_state_1m_keys",
        family="keyed",
        description=f"from_collection((i % (n/{RECORDS_PER_STATE_KEY}), i)) -> key_by -> "
        f"KeyedProcessFunction with ValueState -> sink (1M keys in full mode)",
        prepare=state_input,
        engine=state_engine,
        baseline=sum_baseline,
        target_ratio=TARGET_RATIO,
        full_records=2 * 1_000_000,
        quick_records=200_000,
        expected=state_expected,
    )
)
