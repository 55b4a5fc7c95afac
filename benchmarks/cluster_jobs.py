"""The jobs of the cluster experiments, and the sinks that report back from the slots.

Everything a cluster job runs lives here (not in ``__main__`` or a closure), so that the
slot processes import it by reference. A job's sink runs in a slot process: it reports
through files in a directory the benchmark reads afterwards.

- ``SummarySink`` counts and checksums the records of one subtask and writes
  ``summary-*.json`` when the task closes;
- ``ProgressSink`` writes ``progress-*.log`` lines ``<opened at> <now> <records>`` at most
  every 20 ms while records arrive, with the wall-clock time its instance was opened:
  the first line of an instance opened after a TaskManager was killed is the moment
  processing resumed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.inputs import BASE_TIME_MS, WORD_KEYS, mix
from benchmarks.registry import Outcome
from benchmarks.workloads.windows import (
    SLIDE_MS,
    WINDOW_MS,
    CountSum,
    EmitCountSum,
    EmitWordCount,
    add_counts,
    last_as_time,
    one,
    second_as_time,
    word_of,
)
from flinklet.common import RestartStrategies, Time, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    KeyedProcessFunction,
    RuntimeContext,
    SinkFunction,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
from flinklet.datastream.window import SlidingEventTimeWindows, TumblingEventTimeWindows

PROGRESS_EVERY_S = 0.02


# ------------------------------------------------------------------------- generators


def word_record(i: int) -> tuple[str, int]:
    """Record ``i`` of ``benchmarks.inputs.words``."""
    return (f"w{mix(i) % WORD_KEYS}", BASE_TIME_MS + i)


def word_value_record(i: int) -> tuple[str, int, int]:
    """Record ``i`` of ``benchmarks.inputs.word_values``."""
    return (f"w{mix(i) % WORD_KEYS}", i % 100, BASE_TIME_MS + i)


class ModuloKey:
    """Record ``i`` is ``(i % keys, 1)``."""

    def __init__(self, keys: int) -> None:
        self.keys = keys

    def __call__(self, i: int) -> tuple[int, int]:
        return (i % self.keys, 1)


# ------------------------------------------------------------------------------ sinks


def window_count_value(result: tuple[Any, ...]) -> int:
    return int(result[2] * (result[1] // 1000))


def window_count_sum_value(result: tuple[Any, ...]) -> int:
    return int((result[2] + result[3]) * (result[1] // 1000))


def second_value(record: tuple[Any, ...]) -> int:
    return int(record[1])


class SummarySink(SinkFunction):
    """Counts the records of its subtask and sums ``value(record)``; on close writes
    ``{"count": C, "checksum": S}`` to a new file in ``directory``."""

    def __init__(self, directory: str, value: Callable[[Any], int]) -> None:
        self.directory = directory
        self.value = value

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = 0
        self.total = 0

    def invoke(self, value: Any, context: Any) -> None:
        self.count += 1
        self.total += self.value(value)

    def close(self) -> None:
        path = Path(self.directory) / f"summary-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps({"count": self.count, "checksum": self.total}))


def read_summaries(directory: Path, sinks: int, timeout: float = 30.0) -> Outcome:
    """The added-up summaries of ``sinks`` sink subtasks. A job is FINISHED before its
    slots have closed its tasks, so this waits for the files to appear."""
    deadline = time.monotonic() + timeout
    while len(list(directory.glob("summary-*.json"))) < sinks and time.monotonic() < deadline:
        time.sleep(0.02)
    count = total = 0
    for path in directory.glob("summary-*.json"):
        data = json.loads(path.read_text())
        count += data["count"]
        total += data["checksum"]
    return Outcome(count, total)


class ProgressSink(SinkFunction):
    """Appends ``<opened at> <now> <records so far>`` (``time.time()``) to its own file
    at most every 20 ms while records arrive."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def open(self, runtime_context: RuntimeContext) -> None:
        self.opened = time.time()
        self.count = 0
        self.last = 0.0
        name = f"progress-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"
        self.file = open(Path(self.directory) / name, "a", buffering=1)  # noqa: SIM115

    def invoke(self, value: Any, context: Any) -> None:
        self.count += 1
        now = time.time()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.file.write(f"{self.opened} {now} {self.count}\n")

    def close(self) -> None:
        self.file.write(f"{self.opened} {time.time()} {self.count}\n")
        self.file.close()


Progress = tuple[float, float, int]  # (sink opened at, line written at, records so far)


def read_progress(directory: Path) -> dict[str, list[Progress]]:
    """The progress lines of every sink instance (one file each), by file name."""
    out: dict[str, list[Progress]] = {}
    for path in directory.glob("progress-*.log"):
        lines = out.setdefault(path.name, [])
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                lines.append((float(parts[0]), float(parts[1]), int(parts[2])))
    return out


def delivered(progress: dict[str, list[Progress]]) -> int:
    """Records delivered to the sinks: the last count of every sink instance, added up."""
    return sum(max((c for _o, _a, c in lines), default=0) for lines in progress.values())


def wait_delivered(directory: Path, records: int, timeout: float = 30.0) -> int:
    """Records delivered, once it reaches ``records`` (the last lines are written when the
    slots close the tasks, after the job is FINISHED) or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        got = delivered(read_progress(directory))
        if got >= records or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


# ------------------------------------------------------------------------------- jobs


def _environment(parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.set_restart_strategy(RestartStrategies.no_restart())
    return env


def word_count_job(records: int, parallelism: int, out: Path) -> StreamExecutionEnvironment:
    """``window_word_count`` with a parallel generator instead of a prebuilt list."""
    env = _environment(parallelism)
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(second_as_time)
    (
        env.from_source(DataGeneratorSource(word_record, records), strategy, "words")
        .map(one)
        .key_by(word_of)
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .reduce(add_counts, window_function=EmitWordCount())
        .add_sink(SummarySink(str(out), window_count_value))
    )
    return env


def sliding_job(records: int, parallelism: int, out: Path) -> StreamExecutionEnvironment:
    """``window_sliding_sum`` with a parallel generator instead of a prebuilt list."""
    env = _environment(parallelism)
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(last_as_time)
    (
        env.from_source(DataGeneratorSource(word_value_record, records), strategy, "values")
        .key_by(word_of)
        .window(
            SlidingEventTimeWindows.of(Time.milliseconds(WINDOW_MS), Time.milliseconds(SLIDE_MS))
        )
        .aggregate(CountSum(), window_function=EmitCountSum())
        .add_sink(SummarySink(str(out), window_count_sum_value))
    )
    return env


class RunningCount(KeyedProcessFunction):
    """Counts records per key in ``ValueState``; emits ``(key, count)``."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))

    def process_element(self, value: tuple[int, int], ctx: Any) -> Iterator[tuple[int, int]]:
        n = (self.n.value() or 0) + 1
        self.n.update(n)
        yield (value[0], n)


def first(record: tuple[Any, ...]) -> Any:
    return record[0]


def keyed_state_job(
    keys: int,
    records: int | None,
    rate: float | None,
    parallelism: int,
    out: Path,
    source_uid: str = "keys",
) -> StreamExecutionEnvironment:
    """``(i % keys, 1)`` -> ``key_by`` -> ``RunningCount`` (uid ``counts``) ->
    ``ProgressSink``; ``records=None`` for an unbounded source."""
    env = _environment(parallelism)
    limiter = RateLimiterStrategy.per_second(rate) if rate else None
    source = DataGeneratorSource(ModuloKey(keys), records, limiter)
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "keys")
        .uid(source_uid)
        .key_by(first)
        .process(RunningCount())
        .uid("counts")
        .add_sink(ProgressSink(str(out)))
        .uid("progress")
    )
    return env
