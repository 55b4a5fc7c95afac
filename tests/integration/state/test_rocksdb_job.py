"""Keyed jobs on the RocksDB state backend through StreamExecutionEnvironment: exactly-once
state across a failure, savepoints restored at another parallelism, and switching between
the hashmap and RocksDB backends through a savepoint (RocksDB in temp dirs)."""

from __future__ import annotations

import gc
import time
from collections import Counter
from pathlib import Path
from typing import Any

from flinklet.common import Configuration, RestartStrategies, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    KeyedProcessFunction,
    MapFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
from flinklet.datastream.state_backend import EmbeddedRocksDBStateBackend, HashMapStateBackend

KEYS = 5


class CountPerKey(KeyedProcessFunction[int, int, tuple[int, int]]):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value: int, ctx: Any) -> Any:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield ctx.get_current_key(), n


class FailOnce(MapFunction[int, int]):
    """Raises once, on the first attempt, after ``at`` records."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0

    def open(self, runtime_context: RuntimeContext) -> None:
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value: int) -> int:
        self.seen += 1
        if self.attempt == 0 and self.seen == self.at:
            raise RuntimeError("injected failure")
        return value


def final_counts(out: list[tuple[int, int]]) -> dict[int, int]:
    last: dict[int, int] = {}
    for key, n in out:
        last[key] = max(n, last.get(key, 0))
    return last


def rocksdb(tmp_path: Path) -> EmbeddedRocksDBStateBackend:
    return EmbeddedRocksDBStateBackend(local_dir=str(tmp_path / "rocksdb"))


def build(
    env: StreamExecutionEnvironment,
    total: int | None,
    counts: list[tuple[int, int]],
    sums: list[tuple[int, int]],
    rate: int | None = 4_000,
) -> None:
    """Per-key counts twice: a keyed process function with ValueState, and a keyed reduce
    (the engine's value table)."""
    limiter = RateLimiterStrategy.per_second(rate) if rate is not None else None
    src = (
        DataGeneratorSource(lambda i: i, total, limiter)
        if limiter is not None
        else DataGeneratorSource(lambda i: i, total)
    )
    ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").uid("src")
    ds.key_by(lambda x: x % KEYS).process(CountPerKey()).uid("counter").add_sink(counts.append)
    ds.map(lambda x: (x % KEYS, 1)).uid("pairs").key_by(lambda p: p[0]).reduce(
        lambda a, b: (a[0], a[1] + b[1])
    ).uid("reducer").add_sink(sums.append)


def run_until_savepoint(
    tmp_path: Path,
    backend: Any,
    parallelism: int,
    restore: str | None,
    counts: list[tuple[int, int]],
    sums: list[tuple[int, int]],
) -> str:
    conf = Configuration()
    if restore is not None:
        conf.set_string("execution.state-recovery.path", restore)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(parallelism)
    env.set_state_backend(backend)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    build(env, None, counts, sums)
    client = env.execute_async("rocksdb savepoints")
    time.sleep(0.3)
    path = client.stop_with_savepoint(False, str(tmp_path / "savepoints")).result(timeout=30)
    client.get_job_execution_result().result(timeout=30)
    return str(path)


def finish_from(
    tmp_path: Path,
    backend: Any,
    parallelism: int,
    savepoint: str,
    counts: list[tuple[int, int]],
    sums: list[tuple[int, int]],
) -> int:
    """Restore ``savepoint`` and run to a fixed end; return the number of inputs."""
    end = sum(final_counts(counts).values()) + 1_500
    conf = Configuration()
    conf.set_string("execution.state-recovery.path", savepoint)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(parallelism)
    env.set_state_backend(backend)
    build(env, end, counts, sums, rate=None)
    env.execute("final")
    job: Any = env._last_job
    assert job.restored_from == savepoint
    # the job's own measure of the restore (reading the savepoint, loading the state)
    assert job.restore_duration_ms is not None and 0 < job.restore_duration_ms < 30_000
    return end


def assert_exact(counts: list[tuple[int, int]], sums: list[tuple[int, int]], end: int) -> None:
    expected = dict(Counter(i % KEYS for i in range(end)))
    assert final_counts(counts) == expected
    assert final_counts(sums) == expected


def test_state_is_exactly_once_after_a_failure(tmp_path: Path) -> None:
    total = 3_000
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.set_state_backend(rocksdb(tmp_path))
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 10))
    src = DataGeneratorSource(lambda i: i, total, RateLimiterStrategy.per_second(6_000))
    ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers")
    seen: list[tuple[int, int]] = []
    ds.map(FailOnce(at=700)).key_by(lambda x: x % 7).process(CountPerKey()).add_sink(seen.append)
    env.execute("exactly-once state on rocksdb")
    # the sink is not transactional, so records may repeat, but state counted each input
    # record exactly once: the last count per key is exact
    assert final_counts(seen) == dict(Counter(i % 7 for i in range(total)))
    assert len(seen) >= total
    assert (tmp_path / "rocksdb").is_dir()  # the keyed state did live in RocksDB


def test_rocksdb_savepoints_restore_at_other_parallelisms(tmp_path: Path) -> None:
    """1 -> 3 -> 2 subtasks through savepoints, all on RocksDB: final per-key counts equal
    an uninterrupted run's (nothing lost, nothing counted twice)."""
    counts: list[tuple[int, int]] = []
    sums: list[tuple[int, int]] = []
    first = run_until_savepoint(tmp_path, rocksdb(tmp_path), 1, None, counts, sums)
    second = run_until_savepoint(tmp_path, rocksdb(tmp_path), 3, first, counts, sums)
    assert second != first
    assert sum(final_counts(counts).values()) > 0
    end = finish_from(tmp_path, rocksdb(tmp_path), 2, second, counts, sums)
    assert_exact(counts, sums, end)
    assert (tmp_path / "rocksdb").is_dir()


def test_switching_backends_through_savepoints(tmp_path: Path) -> None:
    """hashmap (p=2) -> RocksDB (p=3) -> hashmap (p=1): one savepoint format for both."""
    counts: list[tuple[int, int]] = []
    sums: list[tuple[int, int]] = []
    on_heap = run_until_savepoint(tmp_path, HashMapStateBackend(), 2, None, counts, sums)
    in_rocks = run_until_savepoint(tmp_path, rocksdb(tmp_path), 3, on_heap, counts, sums)
    end = finish_from(tmp_path, HashMapStateBackend(), 1, in_rocks, counts, sums)
    assert_exact(counts, sums, end)


def test_rocksdb_files_go_to_the_configured_directory_and_are_removed(tmp_path: Path) -> None:
    conf = Configuration()
    conf.set_string("state.backend.type", "rocksdb")
    conf.set_string("state.backend.rocksdb.localdir", str(tmp_path / "local"))
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(2)
    counts: list[tuple[int, int]] = []
    sums: list[tuple[int, int]] = []
    build(env, 500, counts, sums, rate=None)
    env.execute("configured rocksdb")
    assert_exact(counts, sums, 500)
    assert (tmp_path / "local").is_dir()  # it was used ...
    del env
    gc.collect()
    assert list((tmp_path / "local").iterdir()) == []  # ... and cleaned once the job is gone
