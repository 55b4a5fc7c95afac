"""Triggers and trigger results, driven through the window operator with hand-set
watermarks and a fake processing-time clock."""

from __future__ import annotations

from typing import Any

import pytest

from flinklet._private.exec.windowing import (
    APPLY,
    PROCESS,
    WindowOperator,
    WindowSpec,
)
from flinklet.datastream.functions import ProcessWindowFunction
from flinklet.datastream.state import ValueStateDescriptor
from flinklet.datastream.window import (
    ContinuousEventTimeTrigger,
    ContinuousProcessingTimeTrigger,
    CountTrigger,
    EventTimeSessionWindows,
    EventTimeTrigger,
    GlobalWindows,
    NeverTrigger,
    PurgingTrigger,
    TimeWindow,
    Trigger,
    TriggerResult,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
)
from flinklet.errors import ApiUsageError


def _key(element: tuple[str, Any]) -> str:
    return element[0]


def _contents(key: Any, window: Any, inputs: Any) -> list[tuple[Any, list[Any]]]:
    return [(window, [v for _, v in inputs])]


def _sum(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return (a[0], a[1] + b[1])


def window_op(assigner: Any, trigger: Any = None, **functions: Any) -> WindowOperator:
    spec = WindowSpec(
        assigner=assigner,
        trigger=trigger if trigger is not None else assigner.get_default_trigger(None),
        **functions,
    )
    return WindowOperator(spec, _key)


def contents_op(assigner: Any, trigger: Any = None) -> WindowOperator:
    return window_op(assigner, trigger, window_function=_contents, function_kind=APPLY)


def test_event_time_trigger_fires_when_the_watermark_reaches_the_window_end(harness: Any) -> None:
    h = harness(contents_op(TumblingEventTimeWindows.of(5000)))
    h.elements((("k", 1), 1000), (("k", 2), 4999), (("k", 3), 5000))
    h.watermark(4998)  # [0, 5000) ends at max timestamp 4999: not yet
    assert h.take() == []
    h.watermark(4999)
    # the window [0, 5000) fires with its two elements, stamped end - 1 = 4999
    assert h.take() == [((TimeWindow(0, 5000), [1, 2]), 4999)]
    h.watermark(10_000)
    assert h.take() == [((TimeWindow(5000, 10_000), [3]), 9999)]
    assert h.watermarks == [4998, 4999, 10_000]


def test_processing_time_trigger_fires_when_the_clock_passes_the_window_end(
    harness: Any,
) -> None:
    h = harness(contents_op(TumblingProcessingTimeWindows.of(100)), now=1010)
    h.element(("k", 1))
    h.set_processing_time(1050).element(("k", 2))
    h.set_processing_time(1098)
    assert h.take() == []
    # window [1000, 1100) fires once the clock reaches its max timestamp 1099
    h.set_processing_time(1099)
    assert h.take() == [((TimeWindow(1000, 1100), [1, 2]), 1099)]
    h.set_processing_time(1105).element(("k", 3)).set_processing_time(1300)
    assert h.take() == [((TimeWindow(1100, 1200), [3]), 1199)]


def test_count_trigger_fires_every_n_elements_without_purging(harness: Any) -> None:
    h = harness(contents_op(GlobalWindows.create(), CountTrigger.of(2)))
    for i in range(1, 6):
        h.element(("k", i))
    # fires at the 2nd and 4th element; the window keeps everything it has seen
    assert [v for (_, v), _ in h.take()] == [[1, 2], [1, 2, 3, 4]]


def test_purging_trigger_turns_fire_into_fire_and_purge(harness: Any) -> None:
    h = harness(contents_op(GlobalWindows.create(), PurgingTrigger.of(CountTrigger.of(2))))
    for i in range(1, 6):
        h.element(("k", i))
    assert [v for (_, v), _ in h.take()] == [[1, 2], [3, 4]]
    # the global window's records carry the end of time as their timestamp
    h.element(("k", 6))
    assert h.take() == [((GlobalWindows.create().assign_windows(0, 0, None)[0], [5, 6]), 2**63 - 1)]  # type: ignore[arg-type]


def test_never_trigger_never_fires(harness: Any) -> None:
    h = harness(contents_op(GlobalWindows.create(), NeverTrigger.create()))
    h.element(("k", 1)).watermark(2**63 - 1)
    assert h.take() == []


class _ByValue(Trigger[Any, Any]):
    """Returns the trigger result named by the element's value."""

    def on_element(self, element: Any, timestamp: int, window: Any, ctx: Any) -> TriggerResult:
        return {
            "fire": TriggerResult.FIRE,
            "purge": TriggerResult.PURGE,
            "fire_and_purge": TriggerResult.FIRE_AND_PURGE,
            "broken": None,
        }.get(element[1], TriggerResult.CONTINUE)  # type: ignore[return-value]

    def on_processing_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        return TriggerResult.CONTINUE

    def clear(self, window: Any, ctx: Any) -> None:
        pass


def test_each_trigger_result_acts_on_the_window(harness: Any) -> None:
    h = harness(contents_op(GlobalWindows.create(), _ByValue()))
    for value in ("a", "fire", "b", "purge", "c", "fire_and_purge", "d", "fire"):
        h.element(("k", value))
    assert [v for (_, v), _ in h.take()] == [
        ["a", "fire"],  # FIRE: evaluated, contents kept
        # "b" and "purge" were dropped by PURGE without an evaluation
        ["c", "fire_and_purge"],  # FIRE_AND_PURGE: evaluated, then dropped
        ["d", "fire"],
    ]


def test_a_trigger_must_return_a_trigger_result(harness: Any) -> None:
    h = harness(contents_op(GlobalWindows.create(), _ByValue()))
    with pytest.raises(ApiUsageError, match="must return a TriggerResult"):
        h.element(("k", "broken"))


def test_fire_on_an_empty_window_emits_nothing(harness: Any) -> None:
    h = harness(contents_op(GlobalWindows.create(), _ByValue()))
    h.element(("k", "purge"))  # window now empty
    h.element(("k", "fire"))
    assert [v for (_, v), _ in h.take()] == [["fire"]]


def test_continuous_event_time_trigger_fires_early_and_at_the_end(harness: Any) -> None:
    op = window_op(
        TumblingEventTimeWindows.of(10_000),
        ContinuousEventTimeTrigger.of(2000),
        reduce_function=_sum,
    )
    h = harness(op)
    # first element at 500: the first early firing is at 500 - 500 % 2000 + 2000 = 2000
    h.element(("k", 1), 500)
    h.watermark(1999)
    assert h.take() == []
    h.watermark(2000)
    assert h.take() == [(("k", 1), 9999)]
    h.element(("k", 2), 3000)
    # then every 2000 ms (4000, 6000, 8000) and at the window's max timestamp 9999
    h.watermark(9999)
    assert h.take() == [(("k", 3), 9999)] * 4
    assert h.state_entries("fire-time") == 0 and h.timers() == 0


def test_continuous_processing_time_trigger_fires_every_interval(harness: Any) -> None:
    op = window_op(
        TumblingProcessingTimeWindows.of(1000),
        ContinuousProcessingTimeTrigger.of(300),
        reduce_function=_sum,
    )
    h = harness(op, now=10)
    h.element(("k", 1))
    # aligned to the interval: 10 - 10 % 300 + 300 = 300, then 600, 900 and the end 999
    h.set_processing_time(299)
    assert h.take() == []
    h.set_processing_time(300).element(("k", 2)).set_processing_time(1000)
    assert h.take() == [(("k", 1), 999), (("k", 3), 999), (("k", 3), 999), (("k", 3), 999)]


class _CountPerWindow(EventTimeTrigger):
    """An event-time trigger that also keeps a per-window element count."""

    desc = ValueStateDescriptor("seen", None)

    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_element(self, element: Any, timestamp: int, window: Any, ctx: Any) -> TriggerResult:
        seen = ctx.get_partitioned_state(self.desc)
        seen.update((seen.value() or 0) + 1)
        return super().on_element(element, timestamp, window, ctx)

    def on_event_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        self.counts.append(ctx.get_partitioned_state(self.desc).value())
        return super().on_event_time(time, window, ctx)

    def clear(self, window: Any, ctx: Any) -> None:
        ctx.get_partitioned_state(self.desc).clear()
        super().clear(window, ctx)


def test_trigger_state_is_scoped_to_key_and_window_and_cleared_with_it(harness: Any) -> None:
    trigger = _CountPerWindow()
    op = window_op(TumblingEventTimeWindows.of(10), trigger, reduce_function=_sum)
    h = harness(op)
    h.elements((("a", 1), 1), (("a", 1), 2), (("b", 1), 3), (("a", 1), 15))
    assert h.state_entries("seen") == 3  # (a,[0,10)), (b,[0,10)), (a,[10,20))
    h.watermark(100)
    assert sorted(op.trigger.counts) == [1, 1, 2]
    assert h.state_entries("seen") == 0 and h.state_entries("window-contents") == 0
    assert h.timers() == 0


def test_count_trigger_merges_its_count_when_sessions_merge(harness: Any) -> None:
    h = harness(contents_op(EventTimeSessionWindows.with_gap(10), CountTrigger.of(3)))
    h.element(("k", "a"), 0)  # session [0, 10), count 1
    h.element(("k", "b"), 20)  # session [20, 30), count 1
    h.element(("k", "c"), 8)  # [8, 18) merges into [0, 18): 1 + 1 = 2
    assert h.take() == []
    # [15, 25) bridges [0, 18) and [20, 30) into [0, 30): 2 + 1 + 1 = 4 >= 3 -> FIRE
    h.element(("k", "d"), 15)
    ((window, values), ts), *rest = h.take()
    assert rest == [] and window == TimeWindow(0, 30) and ts == 29
    assert sorted(values) == ["a", "b", "c", "d"]
    assert h.state_entries("count") == 0  # cleared by the firing


class _FirstSeen(ProcessWindowFunction[Any, Any, Any, Any]):
    def process(self, key: Any, context: Any, elements: Any) -> Any:
        yield key, context.window(), len(list(elements))


def test_trigger_replaces_the_default_trigger(harness: Any) -> None:
    # a count trigger on event-time windows: fires on count only, never on the watermark
    op = window_op(
        TumblingEventTimeWindows.of(100),
        CountTrigger.of(2),
        window_function=_FirstSeen(),
        function_kind=PROCESS,
    )
    h = harness(op)
    h.element(("k", 1), 10).watermark(200)
    assert h.take() == []
