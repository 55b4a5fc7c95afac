"""Keyed state through RuntimeContext (scoped per key), TTL, side outputs, broadcast state."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flinklet.common import Time, Types
from flinklet.datastream import (
    AggregatingStateDescriptor,
    BroadcastProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapFunction,
    MapStateDescriptor,
    OutputTag,
    ProcessFunction,
    ReducingStateDescriptor,
    RuntimeContext,
    SourceFunction,
    StateTtlConfig,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.datastream.functions import AggregateFunction
from flinklet.errors import JobExecutionError


def env_p(parallelism: int = 1) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


class AllStates(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        class Avg(AggregateFunction):
            def create_accumulator(self) -> tuple[int, int]:
                return 0, 0

            def add(self, value: int, acc: tuple[int, int]) -> tuple[int, int]:
                return acc[0] + value, acc[1] + 1

            def get_result(self, acc: tuple[int, int]) -> float:
                return acc[0] / acc[1]

        ctx = runtime_context
        self.last = ctx.get_state(ValueStateDescriptor("last", Types.INT()))
        self.seen = ctx.get_list_state(ListStateDescriptor("seen", Types.INT()))
        self.counts = ctx.get_map_state(MapStateDescriptor("counts", Types.INT(), Types.INT()))
        self.total = ctx.get_reducing_state(
            ReducingStateDescriptor("total", lambda a, b: a + b, Types.INT())
        )
        self.avg = ctx.get_aggregating_state(
            AggregatingStateDescriptor("avg", Avg(), Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, value: tuple[str, int], ctx: Any) -> Any:
        v = value[1]
        previous = self.last.value()
        self.last.update(v)
        self.seen.add(v)
        self.counts.put(v, (self.counts.get(v) or 0) + 1)
        self.total.add(v)
        self.avg.add(v)
        yield (
            ctx.get_current_key(),
            previous,
            list(self.seen.get()),
            dict(self.counts.items()),
            self.total.get(),
            self.avg.get(),
        )


def test_every_state_kind_is_scoped_to_the_current_key() -> None:
    env = env_p(2)
    data = [("a", 1), ("b", 10), ("a", 1), ("a", 4), ("b", 20)]
    out = env.from_collection(data).key_by(lambda r: r[0]).process(AllStates())
    rows = out.execute_and_collect(limit=10)
    a = [r for r in rows if r[0] == "a"]
    b = [r for r in rows if r[0] == "b"]
    assert a[-1] == ("a", 1, [1, 1, 4], {1: 2, 4: 1}, 6, 2.0)
    assert b[-1] == ("b", 10, [10, 20], {10: 1, 20: 1}, 30, 15.0)
    assert a[0][1] is None and b[0][1] is None  # a fresh key has no value


def test_keyed_state_on_keyed_map_function() -> None:
    class Count(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.INT()))

        def map(self, value: str) -> tuple[str, int]:
            n = (self.n.value() or 0) + 1
            self.n.update(n)
            return value, n

    env = env_p(2)
    out = env.from_collection(list("abab a")).filter(lambda c: c != " ")
    rows = out.key_by(lambda c: c).map(Count()).execute_and_collect(limit=10)
    assert sorted(rows) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]


def test_keyed_state_on_a_non_keyed_stream_is_a_clear_error() -> None:
    class Bad(MapFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            runtime_context.get_state(ValueStateDescriptor("x", Types.INT()))

        def map(self, value: int) -> int:
            return value

    env = env_p()
    env.from_collection([1]).map(Bad()).print()
    with pytest.raises(JobExecutionError, match="key_by"):
        env.execute()


def test_state_ttl_expires_values_in_a_running_job() -> None:
    class Gapped(SourceFunction):
        def run(self, ctx: Any) -> None:
            ctx.collect("a")
            ctx.collect("a")
            time.sleep(0.4)  # longer than the TTL
            ctx.collect("a")

        def cancel(self) -> None: ...

    class Remember(KeyedProcessFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            ttl = (
                StateTtlConfig.new_builder(Time.milliseconds(150))
                .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build()
            )
            desc = ValueStateDescriptor("seen", Types.INT())
            desc.enable_time_to_live(ttl)
            self.seen = runtime_context.get_state(desc)

        def process_element(self, value: str, ctx: Any) -> Any:
            n = self.seen.value()
            self.seen.update((n or 0) + 1)
            yield n

    env = env_p()
    out = env.add_source(Gapped()).key_by(lambda x: x).process(Remember())
    assert out.execute_and_collect(limit=3) == [None, 1, None]


def test_side_outputs_from_process_function() -> None:
    negative = OutputTag("negative", Types.INT())
    big = OutputTag("big", Types.INT())

    class Split(ProcessFunction):
        def process_element(self, value: int, ctx: Any) -> Any:
            if value < 0:
                yield negative, value
            elif value > 100:
                yield big, value
                yield value
            else:
                yield value

    env = env_p(2)
    main = env.from_collection([1, -2, 300, 4, -5]).process(Split())
    neg_seen: list[int] = []
    big_seen: list[int] = []
    main.get_side_output(negative).add_sink(lambda v: neg_seen.append(v))
    main.get_side_output(big).map(lambda v: v * 2).add_sink(lambda v: big_seen.append(v))
    main_seen: list[int] = []
    main.add_sink(lambda v: main_seen.append(v))
    env.execute()
    assert sorted(main_seen) == [1, 4, 300]
    assert sorted(neg_seen) == [-5, -2]
    assert big_seen == [600]


def test_side_output_from_keyed_timer() -> None:
    late = OutputTag("timeouts")

    class Timeout(KeyedProcessFunction):
        def process_element(self, value: str, ctx: Any) -> Any:
            ctx.timer_service().register_event_time_timer(1)
            return None

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield late, f"timeout {ctx.get_current_key()}"

    env = env_p()
    main = env.from_collection(["x", "y"]).key_by(lambda v: v).process(Timeout())
    got: list[str] = []
    main.get_side_output(late).add_sink(lambda v: got.append(v))
    main.add_sink(lambda v: got.append("main"))
    env.execute()
    assert sorted(got) == ["timeout x", "timeout y"]


RULES = MapStateDescriptor("rules", Types.STRING(), Types.INT())


def test_broadcast_state_reaches_every_parallel_instance() -> None:
    class ApplyThreshold(BroadcastProcessFunction):
        def process_element(self, value: int, ctx: Any) -> Any:
            threshold = ctx.get_broadcast_state(RULES).get("threshold")
            if threshold is not None and value > threshold:
                yield value

        def process_broadcast_element(self, value: int, ctx: Any) -> Any:
            ctx.get_broadcast_state(RULES).put("threshold", value)
            return None

    class Gate(SourceFunction):
        """Values only start after the rule had time to be broadcast."""

        def run(self, ctx: Any) -> None:
            time.sleep(0.2)
            for v in [1, 5, 10, 50]:
                ctx.collect(v)

        def cancel(self) -> None: ...

    env = env_p(3)
    rules = env.from_collection([7]).broadcast(RULES)
    values = env.add_source(Gate()).rebalance()
    out = values.connect(rules).process(ApplyThreshold()).execute_and_collect(limit=2)
    assert sorted(out) == [10, 50]


def test_broadcast_state_is_read_only_on_the_element_side() -> None:
    class Writes(BroadcastProcessFunction):
        def process_element(self, value: int, ctx: Any) -> Any:
            ctx.get_broadcast_state(RULES).put("x", 1)
            return None

        def process_broadcast_element(self, value: int, ctx: Any) -> Any:
            return None

    env = env_p()
    env.from_collection([1]).connect(env.from_collection([1]).broadcast(RULES)).process(
        Writes()
    ).print()
    with pytest.raises(JobExecutionError, match="read-only"):
        env.execute()


def test_keyed_broadcast_apply_to_keyed_state() -> None:
    counter = ValueStateDescriptor("count", Types.INT())

    class Reset(KeyedBroadcastProcessFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.count = runtime_context.get_state(counter)

        def process_element(self, value: str, ctx: Any) -> Any:
            self.count.update((self.count.value() or 0) + 1)
            return None

        def process_broadcast_element(self, value: str, ctx: Any) -> Any:
            seen: list[tuple[str, int]] = []
            ctx.apply_to_keyed_state(counter, lambda key, state: seen.append((key, state.value())))
            yield sorted(seen)

    class Late(SourceFunction):
        def run(self, ctx: Any) -> None:
            time.sleep(0.3)
            ctx.collect("report")

        def cancel(self) -> None: ...

    env = env_p(1)
    keyed = env.from_collection(["a", "b", "a"]).key_by(lambda v: v)
    control = env.add_source(Late()).broadcast(
        MapStateDescriptor("c", Types.STRING(), Types.STRING())
    )
    out = keyed.connect(control).process(Reset()).execute_and_collect(limit=1)
    assert out == [[("a", 2), ("b", 1)]]
