"""Restore errors (missing/corrupt metadata, unknown uid, max parallelism) and operator
list/union/broadcast state redistribution through savepoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from flinklet.common import Configuration, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    BroadcastProcessFunction,
    CheckpointedFunction,
    CheckpointingMode,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapFunction,
    MapStateDescriptor,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
from flinklet.errors import SavepointRestoreError


class Count(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))

    def process_element(self, value: int, ctx: Any) -> Any:
        self.n.update((self.n.value() or 0) + 1)
        yield ctx.get_current_key(), self.n.value()


def take_savepoint(
    tmp_path: Path, build: Any, parallelism: int = 2, conf: Configuration | None = None
) -> str:
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(parallelism)
    build(env)
    client = env.execute_async("to-savepoint")
    time.sleep(0.25)
    path = client.stop_with_savepoint(False, str(tmp_path / "sp")).result(timeout=30)
    client.get_job_execution_result().result(timeout=30)
    return path  # type: ignore[no-any-return]


def slow_numbers(env: StreamExecutionEnvironment) -> Any:
    src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(2_000))
    return env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").uid("src")


def counting_job(env: StreamExecutionEnvironment, uid: str = "counter") -> None:
    slow_numbers(env).key_by(lambda x: x % 3).process(Count()).uid(uid).add_sink(lambda v: None)


def restore_env(path: str, allow: bool = False) -> StreamExecutionEnvironment:
    conf = Configuration()
    conf.set_string("execution.state-recovery.path", path)
    if allow:
        conf.set_string("execution.state-recovery.ignore-unclaimed-state", "true")
    return StreamExecutionEnvironment.get_execution_environment(conf)


def test_unknown_operator_uid_fails_unless_allowed(tmp_path: Path) -> None:
    path = take_savepoint(tmp_path, counting_job)
    env = restore_env(path)
    env.from_source(
        DataGeneratorSource(lambda i: i, 10), WatermarkStrategy.no_watermarks(), "n"
    ).uid("src").key_by(lambda x: x % 3).process(Count()).uid("renamed").add_sink(lambda v: None)
    with pytest.raises(
        SavepointRestoreError, match=r"operator uid 'counter'.*allow_non_restored_state"
    ):
        env.execute()

    out: list[tuple[int, int]] = []
    env = restore_env(path, allow=True)
    env.from_source(
        DataGeneratorSource(lambda i: i, 3), WatermarkStrategy.no_watermarks(), "n"
    ).uid("src").key_by(lambda x: x % 3).process(Count()).uid("renamed").add_sink(out.append)
    env.execute()
    # the renamed operator starts empty; the source's position was restored
    assert all(n == 1 for _k, n in out)


def test_corrupt_metadata_is_a_clear_error_and_files_stay(tmp_path: Path) -> None:
    path = take_savepoint(tmp_path, counting_job)
    meta = Path(path.removeprefix("file://"), "_metadata")
    meta.write_bytes(b"{not json")
    env = restore_env(path)
    counting_job(env)
    with pytest.raises(SavepointRestoreError, match="corrupt"):
        env.execute()
    assert meta.exists()


def test_metadata_path_itself_is_accepted(tmp_path: Path) -> None:
    path = take_savepoint(tmp_path, counting_job)
    env = restore_env(path + "/_metadata")
    out: list[Any] = []
    env.from_source(
        DataGeneratorSource(lambda i: i, 0), WatermarkStrategy.no_watermarks(), "n"
    ).uid("src").key_by(lambda x: x % 3).process(Count()).uid("counter").add_sink(out.append)
    env.execute()
    assert out == []  # the source position is past its new end; state restored without error


def test_changed_max_parallelism_is_rejected(tmp_path: Path) -> None:
    path = take_savepoint(tmp_path, counting_job)
    env = restore_env(path)
    env.set_max_parallelism(64)
    counting_job(env)
    with pytest.raises(SavepointRestoreError, match="max parallelism 128 but now has 64"):
        env.execute()


class Buffering(MapFunction, CheckpointedFunction):
    """Counts records per subtask in operator list state and union list state."""

    def initialize_state(self, context: Any) -> None:
        store = context.get_operator_state_store()
        self.parts = store.get_list_state(ListStateDescriptor("parts", Types.LONG()))
        self.union = store.get_union_list_state(ListStateDescriptor("union", Types.LONG()))
        self.restored = context.is_restored()
        self.local = sum(self.parts.get())
        self.union_total = sum(self.union.get())

    def map(self, value: int) -> int:
        self.local += 1
        return value

    def snapshot_state(self, context: Any) -> None:
        self.parts.update([self.local])
        self.union.update([self.local])


def test_operator_list_and_union_state_redistribute_on_rescale(tmp_path: Path) -> None:
    instances: list[Buffering] = []

    class Track(Buffering):
        def open(self, runtime_context: RuntimeContext) -> None:
            instances.append(self)

    def job(env: StreamExecutionEnvironment) -> None:
        slow_numbers(env).rebalance().map(Track()).uid("buffer").add_sink(lambda v: None)

    path = take_savepoint(tmp_path, job, parallelism=2)
    before = sum(i.local for i in instances)
    assert before > 0
    instances.clear()
    env = restore_env(path)
    env.set_parallelism(3)
    src = DataGeneratorSource(lambda i: i, 0)
    env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").uid("src").rebalance().map(
        Track()
    ).uid("buffer").add_sink(lambda v: None)
    env.execute()
    assert len(instances) == 3 and all(i.restored for i in instances)
    # list state: the 2 old entries are split over the 3 new subtasks, nothing lost
    assert sum(sum(i.parts.get()) for i in instances) == before
    assert sorted(len(list(i.parts.get())) for i in instances) == [0, 1, 1]
    # union state: every new subtask sees every old entry
    assert all(i.union_total == before for i in instances)


RULES = MapStateDescriptor("rules", Types.STRING(), Types.LONG())


class Rules(BroadcastProcessFunction):
    def process_element(self, value: int, ctx: Any) -> Any:
        yield value, ctx.get_broadcast_state(RULES).get("limit")

    def process_broadcast_element(self, value: int, ctx: Any) -> Any:
        ctx.get_broadcast_state(RULES).put("limit", value)
        return None


def test_broadcast_state_survives_savepoint_and_rescale(tmp_path: Path) -> None:
    def job(env: StreamExecutionEnvironment) -> None:
        rules = env.from_collection([42]).uid("rules-src").broadcast(RULES)
        slow_numbers(env).connect(rules).process(Rules()).uid("apply").add_sink(lambda v: None)

    path = take_savepoint(tmp_path, job, parallelism=2)
    env = restore_env(path)
    env.set_parallelism(3)
    rules = env.from_collection([]).uid("rules-src").broadcast(RULES)
    src = DataGeneratorSource(lambda i: i, None)
    values = env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").uid("src")
    out = (
        values.rebalance()
        .connect(rules)
        .process(Rules())
        .uid("apply")
        .execute_and_collect(limit=30)
    )
    assert {limit for _v, limit in out} == {42}


def test_at_least_once_mode_keeps_exact_counts_without_failures(tmp_path: Path) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(20, CheckpointingMode.AT_LEAST_ONCE)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path))
    src = DataGeneratorSource(lambda i: i, 2_000, RateLimiterStrategy.per_second(10_000))
    out: list[tuple[int, int]] = []
    a = env.from_source(src, WatermarkStrategy.no_watermarks(), "a")
    b = env.from_source(
        DataGeneratorSource(lambda i: i, 1_000), WatermarkStrategy.no_watermarks(), "b"
    )
    a.union(b).key_by(lambda x: x % 4).process(Count()).add_sink(out.append)
    env.execute()
    last: dict[int, int] = {}
    for k, n in out:
        last[k] = max(n, last.get(k, 0))
    assert sum(last.values()) == 3_000
