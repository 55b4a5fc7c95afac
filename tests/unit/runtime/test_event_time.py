"""Event time: timestamp assignment, watermark generators, min-propagation across
channels, idleness, and timers."""

from __future__ import annotations

from typing import Any

from flinklet.common import Duration
from flinklet.common.watermark_strategy import (
    Watermark,
    WatermarkGenerator,
    WatermarkOutput,
    WatermarkStrategy,
)
from flinklet.datastream import (
    KeyedProcessFunction,
    ProcessFunction,
    SourceFunction,
    StreamExecutionEnvironment,
)
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
from flinklet.datastream.functions import TimeDomain

MIN = -(2**63)


def env_p(parallelism: int = 1, interval: int | None = None) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    if interval is not None:
        env.get_config().set_auto_watermark_interval(interval)
    return env


class PunctuatedEveryEvent(WatermarkGenerator):
    """Emits watermark = timestamp on every event (deterministic for tests)."""

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        output.emit_watermark(Watermark(event_timestamp))

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        return None


class SeeWatermark(ProcessFunction):
    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Any:
        yield value, ctx.timestamp(), ctx.timer_service().current_watermark()


def test_timestamp_assigner_sets_record_timestamps() -> None:
    env = env_p(1, interval=0)
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda e, ts: e["t"]
    )
    ds = env.from_collection([{"t": 5}, {"t": 9}]).assign_timestamps_and_watermarks(strategy)
    out = ds.process(SeeWatermark()).execute_and_collect(limit=10)
    assert [(v["t"], ts) for v, ts, _wm in out] == [(5, 5), (9, 9)]


def test_punctuated_generator_splits_batches_where_it_emits() -> None:
    class OnMarker(WatermarkGenerator):
        def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
            if event == "mark":
                output.emit_watermark(Watermark(event_timestamp))

        def on_periodic_emit(self, output: WatermarkOutput) -> None:
            return None

    env = env_p(1, interval=0)
    events = ["a", "b", "mark", "c", "d"]
    stamps = {e: i * 10 for i, e in enumerate(events)}
    strategy = WatermarkStrategy.for_generator(lambda ctx: OnMarker()).with_timestamp_assigner(
        lambda e, ts: stamps[e]
    )
    out = (
        env.from_collection(events)
        .assign_timestamps_and_watermarks(strategy)
        .process(SeeWatermark())
        .execute_and_collect(limit=10)
    )
    # the mark (t=20) emits watermark 20 after itself: later records see it
    assert [(v, wm) for v, _ts, wm in out] == [
        ("a", MIN),
        ("b", MIN),
        ("mark", MIN),
        ("c", 20),
        ("d", 20),
    ]


def test_periodic_custom_generator_runs_on_the_interval() -> None:
    class MaxMinusFive(WatermarkGenerator):
        def __init__(self) -> None:
            self.max_ts = MIN + 5

        def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
            self.max_ts = max(self.max_ts, event_timestamp)

        def on_periodic_emit(self, output: WatermarkOutput) -> None:
            output.emit_watermark(Watermark(self.max_ts - 5))

    class FireAt(KeyedProcessFunction):
        def process_element(self, value: int, ctx: Any) -> Any:
            ctx.timer_service().register_event_time_timer(100)
            return None

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield "fired", timestamp, ctx.timer_service().current_watermark()

    env = env_p(1, interval=20)
    src = DataGeneratorSource(lambda i: i * 10, None, RateLimiterStrategy.per_second(500))
    strategy = WatermarkStrategy.for_generator(MaxMinusFive).with_timestamp_assigner(
        lambda e, ts: e
    )
    ds = env.from_source(src, strategy, "gen").key_by(lambda x: 0).process(FireAt())
    out = ds.execute_and_collect(limit=1)
    name, ts, wm = out[0]
    assert (name, ts) == ("fired", 100)
    assert wm >= 100  # fired by a periodic watermark of max_ts - 5 >= 100


def test_bounded_out_of_orderness_watermark_is_max_minus_bound_minus_one() -> None:
    from flinklet.common.watermark_strategy import BoundedOutOfOrdernessWatermarks

    gen = BoundedOutOfOrdernessWatermarks(Duration.of_seconds(2).to_milliseconds())
    emitted: list[int] = []

    class Out(WatermarkOutput):
        def emit_watermark(self, watermark: Watermark) -> None:
            emitted.append(watermark.timestamp)

        def mark_idle(self) -> None: ...

        def mark_active(self) -> None: ...

    for ts in [10_000, 7_000, 12_000]:
        gen.on_event(None, ts, Out())
    gen.on_periodic_emit(Out())
    assert emitted == [12_000 - 2_000 - 1]


def test_watermark_is_minimum_over_input_channels() -> None:
    """Two sources with very different event time feed one task: records of the slow
    source are never late, because the task's watermark is the minimum of both."""
    env = env_p(1, interval=0)
    strategy = WatermarkStrategy.for_generator(lambda c: PunctuatedEveryEvent())
    fast = env.from_collection([(1_000, "fast"), (2_000, "fast"), (3_000, "fast")])
    slow = env.from_collection([(10, "slow"), (20, "slow"), (30, "slow")])
    fast = fast.assign_timestamps_and_watermarks(
        strategy.with_timestamp_assigner(lambda e, ts: e[0])
    )
    slow = slow.assign_timestamps_and_watermarks(
        strategy.with_timestamp_assigner(lambda e, ts: e[0])
    )
    out = fast.union(slow).process(SeeWatermark()).disable_chaining().execute_and_collect(limit=10)
    assert len(out) == 6
    for (_t, source), ts, wm in out:
        if source == "slow":
            assert wm < ts, f"slow record at {ts} was late (watermark {wm})"


def test_idle_source_does_not_hold_back_event_time() -> None:
    class Silent(SourceFunction):
        def __init__(self) -> None:
            self.running = True

        def run(self, ctx: Any) -> None:
            import time

            while self.running:
                time.sleep(0.01)

        def cancel(self) -> None:
            self.running = False

    class FireAt(KeyedProcessFunction):
        def process_element(self, value: int, ctx: Any) -> Any:
            ctx.timer_service().register_event_time_timer(200)
            return None

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield "fired", timestamp

    env = env_p(1, interval=20)
    active = env.from_source(
        DataGeneratorSource(lambda i: i * 10, None, RateLimiterStrategy.per_second(1000)),
        WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda e, t: e),
        "active",
    )
    idle = env.add_source(Silent()).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_monotonous_timestamps()
        .with_timestamp_assigner(lambda e, t: e)
        .with_idleness(Duration.of_millis(100))
    )
    out = active.union(idle).key_by(lambda x: 0).process(FireAt()).execute_and_collect(limit=1)
    assert out == [("fired", 200)]


def test_event_time_timers_fire_in_timestamp_order_with_dedup_and_delete() -> None:
    class Timers(KeyedProcessFunction):
        def process_element(self, value: str, ctx: Any) -> Any:
            ts = ctx.timer_service()
            for t in (500, 100, 300, 100, 700):
                ts.register_event_time_timer(t)
            ts.delete_event_time_timer(700)
            return None

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield ctx.get_current_key(), timestamp, ctx.timestamp(), ctx.time_domain()

    env = env_p(1)
    out = (
        env.from_collection(["k"])
        .key_by(lambda x: x)
        .process(Timers())
        .execute_and_collect(limit=10)
    )
    # bounded input ends with the max watermark, so every event-time timer fires
    assert out == [
        ("k", 100, 100, TimeDomain.EVENT_TIME),
        ("k", 300, 300, TimeDomain.EVENT_TIME),
        ("k", 500, 500, TimeDomain.EVENT_TIME),
    ]


def test_timers_are_scoped_per_key() -> None:
    class PerKey(KeyedProcessFunction):
        def process_element(self, value: tuple[str, int], ctx: Any) -> Any:
            ctx.timer_service().register_event_time_timer(value[1])
            return None

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield ctx.get_current_key(), timestamp

    env = env_p(3)
    data = [("a", 30), ("b", 10), ("c", 20), ("a", 5)]
    out = (
        env.from_collection(data)
        .key_by(lambda r: r[0])
        .process(PerKey())
        .execute_and_collect(limit=10)
    )
    assert sorted(out) == [("a", 5), ("a", 30), ("b", 10), ("c", 20)]


def test_processing_time_timer_fires_with_processing_domain() -> None:
    class Later(KeyedProcessFunction):
        def process_element(self, value: int, ctx: Any) -> Any:
            if value == 0:
                now = ctx.timer_service().current_processing_time()
                ctx.timer_service().register_processing_time_timer(now + 50)
                self.registered = now + 50
            return None

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield timestamp == self.registered, ctx.time_domain(), ctx.timestamp()

    env = env_p(1)
    src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(100))
    ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "gen")
    out = ds.key_by(lambda x: 0).process(Later()).execute_and_collect(limit=1)
    assert out == [(True, TimeDomain.PROCESSING_TIME, None)]


def test_final_watermark_fires_far_future_timers_of_bounded_jobs() -> None:
    class Far(KeyedProcessFunction):
        def process_element(self, value: int, ctx: Any) -> Any:
            ctx.timer_service().register_event_time_timer(10**15)
            return None

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield "end", ctx.timer_service().current_watermark()

    env = env_p(1)
    out = env.from_collection([1]).key_by(lambda x: x).process(Far()).execute_and_collect(limit=5)
    assert out == [("end", 2**63 - 1)]
