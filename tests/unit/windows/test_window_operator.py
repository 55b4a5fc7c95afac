"""The window operator: window functions, emitted timestamps, late data, state cleanup and
session merging, with watermarks set by hand."""

from __future__ import annotations

from typing import Any

import pytest

from flinklet._private.exec.windowing import (
    ALL_APPLY,
    APPLY,
    PROCESS,
    WindowOperator,
    WindowSpec,
)
from flinklet.datastream.functions import (
    AggregateFunction,
    ProcessWindowFunction,
    WindowFunction,
)
from flinklet.datastream.output_tag import OutputTag
from flinklet.datastream.state import ValueStateDescriptor
from flinklet.datastream.window import (
    CountTumblingWindowAssigner,
    DynamicEventTimeSessionWindows,
    EventTimeSessionWindows,
    ProcessingTimeSessionWindows,
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
)
from flinklet.errors import MissingTimestampError

LATE = OutputTag("late")


def _key(element: tuple[str, Any]) -> str:
    return element[0]


def _add(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return (a[0], a[1] + b[1])


def window_op(assigner: Any, lateness: int = 0, late_tag: Any = None, **fns: Any) -> Any:
    spec = WindowSpec(
        assigner=assigner,
        trigger=assigner.get_default_trigger(None),
        allowed_lateness=lateness,
        late_tag=late_tag,
        **fns,
    )
    return WindowOperator(spec, _key)


def _count(key: Any, window: Any, inputs: Any) -> list[tuple[Any, Any, int]]:
    return [(key, window, len(list(inputs)))]


class _Average(AggregateFunction[Any, tuple[int, int], float]):
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: Any, accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + value[1], accumulator[1] + 1)

    def get_result(self, accumulator: tuple[int, int]) -> float:
        return accumulator[0] / accumulator[1]

    def merge(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        return (a[0] + b[0], a[1] + b[1])


# ------------------------------------------------------------------ window functions


def test_reduce_emits_the_reduced_value_stamped_window_end_minus_one(harness: Any) -> None:
    h = harness(window_op(TumblingEventTimeWindows.of(5000), reduce_function=_add))
    h.elements((("a", 1), 100), (("b", 10), 200), (("a", 2), 4999), (("a", 4), 5000))
    h.watermark(10_000)
    # [0,5000) holds a:1+2 and b:10 (stamped 4999); [5000,10000) holds a:4 (stamped 9999)
    assert sorted(h.take()) == [(("a", 3), 4999), (("a", 4), 9999), (("b", 10), 4999)]


def test_aggregate_emits_the_result_of_the_accumulator(harness: Any) -> None:
    h = harness(window_op(TumblingEventTimeWindows.of(10), aggregate_function=_Average()))
    h.elements((("a", 1), 1), (("a", 2), 2), (("a", 6), 3)).watermark(9)
    assert h.take() == [(3.0, 9)]


class _WithWindowEnd(ProcessWindowFunction[Any, Any, Any, Any]):
    def process(self, key: Any, context: Any, elements: Any) -> Any:
        (only,) = list(elements)
        yield key, only, context.window().end, context.current_watermark()


def test_incremental_aggregation_with_a_process_window_function(harness: Any) -> None:
    op = window_op(
        TumblingEventTimeWindows.of(10),
        reduce_function=_add,
        window_function=_WithWindowEnd(),
        function_kind=PROCESS,
    )
    h = harness(op)
    h.elements((("a", 1), 1), (("a", 2), 5)).watermark(12)
    # the function sees the single reduced value and the watermark that fired the window
    assert h.take() == [(("a", ("a", 3), 10, 12), 9)]


class _Label(WindowFunction[Any, Any, Any, Any]):
    def apply(self, key: Any, window: Any, inputs: Any) -> Any:
        return [f"{key}@{window.start}={value:.1f}" for value in inputs]


def test_aggregate_with_a_window_function(harness: Any) -> None:
    op = window_op(
        TumblingEventTimeWindows.of(10),
        aggregate_function=_Average(),
        window_function=_Label(),
        function_kind=APPLY,
    )
    h = harness(op)
    h.elements((("a", 1), 11), (("a", 4), 12)).watermark(100)
    assert h.values() == ["a@10=2.5"]


def test_all_window_function_gets_no_key(harness: Any) -> None:
    op = window_op(
        TumblingEventTimeWindows.of(10),
        window_function=lambda window, inputs: [(window, sorted(v for _, v in inputs))],
        function_kind=ALL_APPLY,
    )
    h = harness(op)
    h.elements((("a", 2), 1), (("a", 1), 2)).watermark(9)
    assert h.values() == [(TimeWindow(0, 10), [1, 2])]


def test_window_functions_may_write_side_outputs(harness: Any) -> None:
    small = OutputTag("small")

    def split(key: Any, window: Any, inputs: Any) -> Any:
        for _, value in inputs:
            yield (small, value) if value < 10 else value

    op = window_op(TumblingEventTimeWindows.of(10), window_function=split, function_kind=APPLY)
    h = harness(op)
    h.elements((("a", 5), 1), (("a", 50), 2)).watermark(9)
    assert h.take() == [(50, 9)]
    assert h.sides["small"] == [(5, 9)]


# ----------------------------------------------------------------------- event time


def test_records_without_timestamps_in_event_time_windows_say_what_to_do(harness: Any) -> None:
    h = harness(window_op(TumblingEventTimeWindows.of(10), reduce_function=_add))
    with pytest.raises(MissingTimestampError, match="assign_timestamps_and_watermarks"):
        h.element(("a", 1))


def test_out_of_order_elements_land_in_their_own_windows(harness: Any) -> None:
    h = harness(window_op(TumblingEventTimeWindows.of(10), reduce_function=_add))
    h.elements((("a", 1), 15), (("a", 2), 3), (("a", 4), 11), (("a", 8), 9))
    h.watermark(9)
    assert h.take() == [(("a", 10), 9)]  # 2 at ts 3 + 8 at ts 9
    h.watermark(19)
    assert h.take() == [(("a", 5), 19)]  # 1 at ts 15 + 4 at ts 11


def test_processing_time_windows_need_no_timestamps(harness: Any) -> None:
    h = harness(window_op(TumblingProcessingTimeWindows.of(100), reduce_function=_add), now=5)
    h.element(("a", 1)).element(("a", 2)).set_processing_time(99)
    assert h.take() == [(("a", 3), 99)]
    assert h.timers() == 0 and h.state_entries("window-contents") == 0


def test_batch_mode_fires_processing_time_windows_at_end_of_input(harness: Any) -> None:
    op = window_op(TumblingProcessingTimeWindows.of(100), reduce_function=_add)
    h = harness(op, now=5, batch_mode=True)
    h.element(("a", 1))
    op.end_input()
    assert h.take() == [(("a", 1), 99)]


# ------------------------------------------------------------------------ late data


def test_late_elements_are_dropped_and_counted(harness: Any) -> None:
    h = harness(window_op(TumblingEventTimeWindows.of(10), reduce_function=_add))
    h.element(("a", 1), 5).watermark(9)
    assert h.take() == [(("a", 1), 9)]
    # watermark 9 >= 5 + 0 lateness: late; [0,10) was fired and cleaned up
    h.element(("a", 2), 5).watermark(20)
    assert h.take() == []
    assert h.counter("numLateRecordsDropped") == 1


def test_late_elements_go_to_the_late_side_output_with_their_timestamp(harness: Any) -> None:
    h = harness(window_op(TumblingEventTimeWindows.of(10), late_tag=LATE, reduce_function=_add))
    h.element(("a", 1), 5).watermark(9).take()
    h.element(("a", 2), 7)
    assert h.sides["late"] == [(("a", 2), 7)]
    assert h.counter("numLateRecordsDropped") == 0


def test_allowed_lateness_fires_again_with_the_late_element(harness: Any) -> None:
    h = harness(window_op(TumblingEventTimeWindows.of(10), lateness=5, reduce_function=_add))
    h.element(("a", 1), 5).watermark(10)
    assert h.take() == [(("a", 1), 9)]
    # window [0,10) is kept until watermark 9 + 5 = 14: a late element fires it at once
    h.element(("a", 2), 3)
    assert h.take() == [(("a", 3), 9)]
    h.watermark(13).element(("a", 4), 8)
    assert h.take() == [(("a", 7), 9)]
    # at watermark 14 the window is cleaned up: later elements for it are dropped
    h.watermark(14).element(("a", 8), 8)
    assert h.take() == [] and h.counter("numLateRecordsDropped") == 1
    assert h.state_entries("window-contents") == 0 and h.timers() == 0


def test_an_element_late_for_one_sliding_window_still_counts_for_the_other(harness: Any) -> None:
    h = harness(window_op(SlidingEventTimeWindows.of(10, 5), reduce_function=_add))
    h.watermark(10)
    # ts 7 is in [0,10) (max 9 <= watermark 10: late) and [5,15) (max 14: on time)
    h.element(("a", 1), 7)
    assert h.counter("numLateRecordsDropped") == 0
    h.watermark(14)
    assert h.take() == [(("a", 1), 14)]


class _FirstOrUpdate(ProcessWindowFunction[Any, Any, Any, Any]):
    """The book's updating count: per-window state tells first results from updates;
    global (per-key) state counts evaluations across windows."""

    is_update = ValueStateDescriptor("isUpdate", None)
    evaluations = ValueStateDescriptor("evaluations", None)

    def process(self, key: Any, context: Any, elements: Any) -> Any:
        update = context.window_state().get_state(self.is_update)
        total = context.global_state().get_state(self.evaluations)
        total.update((total.value() or 0) + 1)
        kind = "update" if update.value() else "first"
        update.update(True)
        yield key, context.window().end, len(list(elements)), kind, total.value()

    def clear(self, context: Any) -> None:
        context.window_state().get_state(self.is_update).clear()


def test_per_window_state_survives_late_firings_and_is_cleared_with_the_window(
    harness: Any,
) -> None:
    op = window_op(
        TumblingEventTimeWindows.of(10),
        lateness=5,
        window_function=_FirstOrUpdate(),
        function_kind=PROCESS,
    )
    h = harness(op)
    h.element(("a", "x"), 1).watermark(9)
    h.element(("a", "y"), 2)  # late but within lateness: fires an update
    h.element(("a", "z"), 12).watermark(30)
    assert h.values() == [
        ("a", 10, 1, "first", 1),
        ("a", 10, 2, "update", 2),
        ("a", 20, 1, "first", 3),
    ]
    assert h.state_entries("isUpdate") == 0  # clear() ran for both windows
    assert h.state_entries("evaluations") == 1  # global state stays


# ------------------------------------------------------------------------- sessions


def _elements(key: Any, window: Any, inputs: Any) -> list[tuple[Any, list[Any]]]:
    return [(window, [v for _, v in inputs])]


def session_op(gap: int, lateness: int = 0) -> Any:
    return window_op(
        EventTimeSessionWindows.with_gap(gap),
        lateness=lateness,
        window_function=_elements,
        function_kind=APPLY,
    )


def test_sessions_merge_while_elements_are_less_than_a_gap_apart(harness: Any) -> None:
    h = harness(session_op(10))
    h.elements((("a", 1), 0), (("a", 2), 7), (("a", 3), 30), (("b", 4), 5), (("a", 5), 15))
    h.watermark(100)
    # a: 0 -> [0,10), 7 -> [7,17) merges into [0,17), 15 -> [15,25) extends it to [0,25);
    # 30 starts [30,40) (25 < 30: not touching). b: [5,15).
    out = sorted((w, sorted(vs), ts) for (w, vs), ts in h.take())
    assert out == [
        (TimeWindow(0, 25), [1, 2, 5], 24),
        (TimeWindow(5, 15), [4], 14),
        (TimeWindow(30, 40), [3], 39),
    ]
    assert h.state_entries("merging-window-set") == 0
    assert h.state_entries("window-contents") == 0 and h.timers() == 0


def test_sessions_exactly_one_gap_apart_merge(harness: Any) -> None:
    h = harness(session_op(10))
    h.elements((("a", 1), 0), (("a", 2), 10)).watermark(100)
    # [0,10) and [10,20) touch, so they are one session [0,20) (Flink's intersects)
    assert h.take() == [((TimeWindow(0, 20), [1, 2]), 19)]


def test_a_late_element_within_lateness_merges_fired_sessions(harness: Any) -> None:
    h = harness(session_op(10, lateness=20))
    h.element(("a", "x"), 0).element(("a", "y"), 15)
    h.watermark(26)
    # [0,10) fired at 9 and [15,25) at 24; both are kept until max timestamp + 20
    assert sorted(h.take()) == [((TimeWindow(0, 10), ["x"]), 9), ((TimeWindow(15, 25), ["y"]), 24)]
    # z at 8 opens [8,18), which bridges both sessions into [0,25); the watermark is past
    # its end, so the merged session fires at once with all three elements
    h.element(("a", "z"), 8)
    ((window, values), ts), *rest = h.take()
    assert rest == [] and (window, ts) == (TimeWindow(0, 25), 24)
    assert sorted(values) == ["x", "y", "z"]
    # the merged session is cleaned up at 24 + 20 = 44
    h.watermark(43)
    assert h.state_entries("window-contents") == 1
    h.watermark(44)
    assert h.state_entries("window-contents") == 0
    assert h.state_entries("merging-window-set") == 0 and h.timers() == 0
    # now an element for that time is too late for any session
    h.element(("a", "w"), 1)
    assert h.counter("numLateRecordsDropped") == 1 and h.take() == []


def test_session_contents_merge_with_reduce(harness: Any) -> None:
    h = harness(window_op(EventTimeSessionWindows.with_gap(5), reduce_function=_add))
    h.elements((("a", 1), 0), (("a", 2), 20), (("a", 4), 3)).watermark(100)
    assert sorted(h.take()) == [(("a", 2), 24), (("a", 5), 7)]


def test_session_merging_needs_aggregate_merge(harness: Any) -> None:
    h = harness(window_op(EventTimeSessionWindows.with_gap(5), aggregate_function=_Average()))
    h.elements((("a", 1), 0), (("a", 2), 20), (("a", 6), 3)).watermark(100)
    assert sorted(h.values()) == [2.0, 3.5]


def test_processing_time_sessions_merge_and_fire_on_the_clock(harness: Any) -> None:
    op = window_op(ProcessingTimeSessionWindows.with_gap(100), reduce_function=_add)
    h = harness(op, now=0)
    h.element(("a", 1)).set_processing_time(50).element(("a", 2))
    # [0,100) and [50,150) merged into [0,150): fires when the clock reaches 149
    h.set_processing_time(148)
    assert h.take() == []
    h.set_processing_time(149)
    assert h.take() == [(("a", 3), 149)]
    assert h.state_entries("merging-window-set") == 0 and h.timers() == 0


def test_dynamic_gap_sessions_take_the_gap_from_each_element(harness: Any) -> None:
    # the element's value is its gap: a@0 opens [0,5), b@8 with gap 20 opens [8,28) (no
    # overlap with [0,5)), c@4 with gap 10 opens [4,14), bridging both into [0,28)
    op = window_op(
        DynamicEventTimeSessionWindows.with_dynamic_gap(lambda e: e[1]),
        window_function=_elements,
        function_kind=APPLY,
    )
    h = harness(op)
    h.elements((("k", 5), 0), (("k", 20), 8), (("k", 10), 4), (("k", 1), 40)).watermark(100)
    assert sorted(h.take()) == [
        ((TimeWindow(0, 28), [5, 20, 10]), 27),
        ((TimeWindow(40, 41), [1]), 40),
    ]


def test_pyflink_count_assigner_numbers_windows_per_key(harness: Any) -> None:
    op = window_op(CountTumblingWindowAssigner.of(2), window_function=_count, function_kind=APPLY)
    h = harness(op)
    for key in "abaab":
        h.element((key, 1))
    # per key: elements 0 and 1 fill CountWindow(0); a's third element waits in window 1
    assert sorted((k, w.id, n) for (k, w, n), _ in h.take()) == [("a", 0, 2), ("b", 0, 2)]
