"""Chaining and parallelism never change results; failures and configuration."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from flinklet.common import Configuration, RestartStrategies
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    KeyedProcessFunction,
    MapFunction,
    RuntimeContext,
    RuntimeExecutionMode,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.errors import (
    ApiUsageError,
    ConfigurationError,
    InvalidKeyError,
    JobExecutionError,
    MissingTimestampError,
    UserFunctionError,
)


class Dedup(KeyedProcessFunction):
    """Emits a word the first time it is seen, and a timer-driven summary per key."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("n", None))

    def process_element(self, value: tuple[str, int], ctx: Any) -> Any:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        if n == 1:
            yield "first", value[0]
        ctx.timer_service().register_event_time_timer(value[1])

    def on_timer(self, timestamp: int, ctx: Any) -> Any:
        yield "summary", ctx.get_current_key(), self.count.value()


def pipeline(env: StreamExecutionEnvironment) -> list[Any]:
    words = [(f"w{i % 37}", i) for i in range(2_000)]
    ds = (
        env.from_collection(words)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
                lambda e, ts: e[1]
            )
        )
        .map(lambda w: (w[0].upper(), w[1]))
        .filter(lambda w: not w[0].endswith("3"))
        .key_by(lambda w: w[0])
        .process(Dedup())
        .map(lambda r: r)
    )
    return ds.execute_and_collect(limit=100_000)  # type: ignore[no-any-return]


def run(parallelism: int, chaining: bool) -> Counter[Any]:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.get_config().set_auto_watermark_interval(0)
    if not chaining:
        env.disable_operator_chaining()
    return Counter(pipeline(env))


def test_chaining_on_and_off_give_identical_results() -> None:
    assert run(2, chaining=True) == run(2, chaining=False)


def test_parallelism_one_and_four_give_identical_results() -> None:
    one = run(1, chaining=True)
    four = run(4, chaining=True)
    assert one == four
    # and the values are right: 37 words minus those ending in 3 (w3, w13, w23, w33)
    assert sum(1 for r in one if r[0] == "first") == 33
    summaries = {r[1]: r[2] for r in one if r[0] == "summary"}
    assert summaries["W0"] == len(range(0, 2_000, 37))


def test_chaining_builds_fewer_vertices() -> None:
    def vertices(chaining: bool) -> list[str]:
        env = StreamExecutionEnvironment.get_execution_environment()
        if not chaining:
            env.disable_operator_chaining()
        env.from_collection([1]).map(lambda x: x).filter(bool).print()
        return [v.name for v in env.get_job_graph().vertices]

    assert vertices(True) == ["Source: Collection Source -> Map -> Filter -> Print to Std. Out"]
    assert len(vertices(False)) == 4


def test_disable_chaining_and_start_new_chain_split_chains() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([1]).map(lambda x: x).name("a")
    ds = ds.map(lambda x: x).name("b").start_new_chain()
    ds = ds.map(lambda x: x).name("c").disable_chaining()
    ds.map(lambda x: x).name("d").print()
    names = [v.name for v in env.get_job_graph().vertices]
    assert names == ["Source: Collection Source -> a", "b", "c", "d -> Print to Std. Out"]


def test_failing_user_function_names_operator_and_keeps_user_traceback() -> None:
    def explode(x: int) -> int:
        if x == 3:
            raise ValueError(f"bad record {x}")
        return x

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3]).map(lambda x: x).name("ok").map(explode).name("exploder").print()
    with pytest.raises(UserFunctionError) as info:
        env.execute("failing")
    err = info.value
    assert err.operator_name == "exploder"
    assert "bad record 3" in str(err)
    assert "in explode" in err.user_traceback
    assert "raise ValueError" in err.user_traceback
    assert isinstance(err.__cause__, ValueError)
    assert isinstance(err, JobExecutionError)


def test_fixed_delay_restart_strategy_restarts_the_job() -> None:
    attempts: list[int] = []

    class FailOnce(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.attempt = runtime_context.get_attempt_number()
            attempts.append(self.attempt)

        def map(self, value: int) -> int:
            if self.attempt == 0 and value == 2:
                raise RuntimeError("transient")
            return value

    seen: list[int] = []
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(2, 10))
    env.from_collection([1, 2, 3]).map(FailOnce()).add_sink(lambda v: seen.append(v))
    env.execute()
    assert attempts == [0, 1]
    # without checkpoints a restart replays from the start (records before the failure
    # are seen again, as in Flink)
    assert seen[-3:] == [1, 2, 3]


def test_restart_strategy_from_flink_configuration_keys_gives_up_after_attempts() -> None:
    attempts: list[int] = []

    class AlwaysFail(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            attempts.append(runtime_context.get_attempt_number())

        def map(self, value: int) -> int:
            raise RuntimeError("permanent")

    conf = Configuration()
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", "3")
    conf.set_string("restart-strategy.fixed-delay.delay", "10 ms")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.from_collection([1]).map(AlwaysFail()).print()
    with pytest.raises(UserFunctionError, match="permanent"):
        env.execute()
    assert attempts == [0, 1, 2, 3]


def test_no_restart_by_default_without_checkpointing() -> None:
    attempts: list[int] = []

    class AlwaysFail(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            attempts.append(runtime_context.get_attempt_number())

        def map(self, value: int) -> int:
            raise RuntimeError("boom")

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).map(AlwaysFail()).print()
    with pytest.raises(UserFunctionError):
        env.execute()
    assert attempts == [0]


def test_configuration_keys_are_honoured() -> None:
    conf = Configuration()
    conf.set_string("parallelism.default", "3")
    conf.set_string("pipeline.max-parallelism", "64")
    conf.set_string("pipeline.auto-watermark-interval", "50 ms")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    assert env.get_parallelism() == 3
    assert env.get_max_parallelism() == 64
    assert env.get_config().get_auto_watermark_interval() == 50
    env.from_collection([1]).key_by(lambda x: x).sum().print()
    vertices = env.get_job_graph().vertices
    assert vertices[-1].parallelism == 3 and vertices[-1].max_parallelism == 64


def test_misspelled_key_gets_did_you_mean() -> None:
    conf = Configuration()
    conf.set_string("paralelism.default", "3")
    with pytest.raises(ConfigurationError, match=r"Did you mean 'parallelism\.default'"):
        StreamExecutionEnvironment.get_execution_environment(conf)


def test_unknown_keys_are_kept_and_reported() -> None:
    conf = Configuration()
    conf.set_string("my.team.setting", "x")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    assert env.unknown_configuration_keys() == ["my.team.setting"]
    assert env.get_configuration().get_string("my.team.setting", "") == "x"


def test_env_configure_applies_later_configuration() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    conf = Configuration()
    conf.set_integer("parallelism.default", 5)
    env.configure(conf)
    assert env.get_parallelism() == 5


def test_batch_runtime_mode_emits_only_final_aggregates() -> None:
    conf = Configuration()
    conf.set_string("execution.runtime-mode", "BATCH")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    data = [("a", 1), ("b", 2), ("a", 3)]
    out = env.from_collection(data).key_by(lambda r: r[0]).sum(1).execute_and_collect(limit=10)
    assert sorted(out) == [("a", 4), ("b", 2)]


def test_streaming_runtime_mode_emits_every_update() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    data = [("a", 1), ("a", 3)]
    out = env.from_collection(data).key_by(lambda r: r[0]).sum(1).execute_and_collect(limit=10)
    assert out == [("a", 1), ("a", 4)]


def test_unhashable_key_is_a_typed_error_with_advice() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_collection([[1, 2]]).key_by(lambda v: v).sum().print()
    with pytest.raises(JobExecutionError) as info:
        env.execute()
    assert isinstance(info.value.__cause__, InvalidKeyError)
    assert "tuple" in str(info.value)


def test_event_time_without_timestamps_is_a_typed_error() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1]).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_monotonous_timestamps()
    ).print()
    with pytest.raises(JobExecutionError) as info:
        env.execute()
    assert isinstance(info.value.__cause__, MissingTimestampError)
    assert "with_timestamp_assigner" in str(info.value)


def test_keyed_process_function_on_non_keyed_stream_is_rejected_at_build_time() -> None:
    class K(KeyedProcessFunction):
        def process_element(self, value: Any, ctx: Any) -> Any:
            return None

    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(ApiUsageError, match="key_by"):
        env.from_collection([1]).process(K())


def test_forward_between_different_parallelism_is_rejected() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_collection([1]).forward().map(lambda x: x).print()
    with pytest.raises(ApiUsageError, match="Forward partitioning"):
        env.execute()


def test_map_with_a_non_function_is_rejected() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(ApiUsageError, match="MapFunction or a callable"):
        env.from_collection([1]).map(42)
