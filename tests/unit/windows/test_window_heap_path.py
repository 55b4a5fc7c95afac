"""The window operator's hashmap-backend path (``window_heap.py``) gives the general path's
results: each scenario runs on both (the general one forced by dropping the heap path
after setup) and is checked against known values too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flinklet._private.exec.windowing import APPLY, PROCESS, WindowOperator, WindowSpec
from flinklet.datastream.functions import AggregateFunction, ProcessWindowFunction
from flinklet.datastream.output_tag import OutputTag
from flinklet.datastream.state import ValueStateDescriptor
from flinklet.datastream.window import (
    CountTrigger,
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
)
from flinklet.errors import StateError

LATE = OutputTag("late")


def _key(element: tuple[str, Any]) -> str:
    return element[0]


def _add(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return (a[0], a[1] + b[1])


def _with_window(key: Any, window: Any, inputs: Any) -> list[tuple[Any, ...]]:
    return [(key, window.start, window.end, value) for value in inputs]


class _CountSum(AggregateFunction[Any, tuple[int, int], tuple[int, int]]):
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: Any, accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + 1, accumulator[1] + value[1])

    def get_result(self, accumulator: tuple[int, int]) -> tuple[int, int]:
        return accumulator

    def merge(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        return (a[0] + b[0], a[1] + b[1])


def _op(assigner: Any, lateness: int = 0, late_tag: Any = None, **fns: Any) -> WindowOperator:
    spec = WindowSpec(
        assigner=assigner,
        trigger=fns.pop("trigger", None) or assigner.get_default_trigger(None),
        allowed_lateness=lateness,
        late_tag=late_tag,
        window_function=fns.pop("window_function", _with_window),
        function_kind=fns.pop("function_kind", APPLY),
        **fns,
    )
    return WindowOperator(spec, _key)


Scenario = Callable[[Any], None]


def _run_both(harness: Any, make_op: Callable[[], WindowOperator], scenario: Scenario) -> Any:
    """Run ``scenario`` on the operator as built (the heap path, where it applies) and on the
    general path; both must agree on everything observable. Returns the first harness and
    its outcome: (emitted, side outputs, late records dropped, contents entries, timers)."""
    runs = []
    for general in (False, True):
        h = harness(make_op())
        if general:
            h.op._heap = None
        scenario(h)
        outcome = (
            h.take(),
            dict(h.sides),
            h.counter("numLateRecordsDropped"),
            h.state_entries("window-contents"),
            h.timers(),
        )
        runs.append((h, outcome))
    assert runs[0][1] == runs[1][1]
    return runs[0]


def test_the_heap_path_serves_the_default_triggers_on_the_hashmap_backend(harness: Any) -> None:
    tumbling = TumblingEventTimeWindows.of(10)
    assert harness(_op(tumbling, reduce_function=_add)).op._heap is not None
    assert harness(_op(tumbling, aggregate_function=_CountSum())).op._heap is not None
    assert harness(_op(tumbling)).op._heap is not None  # list contents
    # another trigger, or merging windows, take the general path
    assert harness(_op(tumbling, trigger=CountTrigger.of(2))).op._heap is None
    assert harness(_op(EventTimeSessionWindows.with_gap(5))).op._heap is None


def test_tumbling_reduce_out_of_order_over_keys(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.elements((("a", 1), 3), (("b", 10), 4), (("a", 2), 12), (("a", 4), 9), (("b", 1), 11))
        h.watermark(9)
        h.elements((("a", 8), 15), (("c", 5), 19))
        h.watermark(30)

    _, (emitted, *_rest) = _run_both(
        harness, lambda: _op(TumblingEventTimeWindows.of(10), reduce_function=_add), scenario
    )
    assert emitted == [
        (("a", 0, 10, ("a", 5)), 9),
        (("b", 0, 10, ("b", 10)), 9),
        (("a", 10, 20, ("a", 10)), 19),
        (("b", 10, 20, ("b", 1)), 19),
        (("c", 10, 20, ("c", 5)), 19),
    ]
    assert _rest == [{}, 0, 0, 0]  # no late data; contents and timers all cleaned up


def test_sliding_aggregate_adds_each_element_to_both_windows(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.elements((("a", 1), 1), (("a", 2), 6), (("b", 3), 7), (("a", 4), 12))
        h.watermark(100)

    def make() -> WindowOperator:
        return _op(SlidingEventTimeWindows.of(10, 5), aggregate_function=_CountSum())

    _, (emitted, *_rest) = _run_both(harness, make, scenario)
    assert sorted(v for v, _ in emitted) == [
        ("a", -5, 5, (1, 1)),
        ("a", 0, 10, (2, 3)),
        ("a", 5, 15, (2, 6)),
        ("a", 10, 20, (1, 4)),
        ("b", 0, 10, (1, 3)),
        ("b", 5, 15, (1, 3)),
    ]


def test_list_contents_keep_every_element_in_order(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.elements((("a", 1), 1), (("a", 2), 2), (("b", 3), 3), (("a", 4), 4)).watermark(9)

    _, (emitted, *_rest) = _run_both(
        harness, lambda: _op(TumblingEventTimeWindows.of(10)), scenario
    )
    assert [v for v, _ in emitted] == [
        ("a", 0, 10, ("a", 1)),
        ("a", 0, 10, ("a", 2)),
        ("a", 0, 10, ("a", 4)),
        ("b", 0, 10, ("b", 3)),
    ]


def test_late_elements_are_dropped_and_counted_on_both_paths(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.elements((("a", 1), 5), (("b", 1), 6)).watermark(10)
        h.elements((("a", 2), 3), (("a", 3), 15), (("b", 4), 9))  # two late, one on time
        h.watermark(20)

    _, (emitted, sides, dropped, entries, timers) = _run_both(
        harness, lambda: _op(TumblingEventTimeWindows.of(10), reduce_function=_add), scenario
    )
    assert [v for v, _ in emitted] == [
        ("a", 0, 10, ("a", 1)),
        ("b", 0, 10, ("b", 1)),
        ("a", 10, 20, ("a", 3)),
    ]
    assert (sides, dropped, entries, timers) == ({}, 2, 0, 0)


def test_late_elements_go_to_the_side_output_on_both_paths(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.element(("a", 1), 5).watermark(10)
        h.elements((("a", 2), 3), (("a", 3), 15), (("b", 4), 9)).watermark(20)

    def make() -> WindowOperator:
        return _op(TumblingEventTimeWindows.of(10), late_tag=LATE, reduce_function=_add)

    _, (_emitted, sides, dropped, _e, _t) = _run_both(harness, make, scenario)
    assert sides == {"late": [(("a", 2), 3), (("b", 4), 9)]}
    assert dropped == 0


def test_allowed_lateness_fires_once_per_late_element_then_cleans_up(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.elements((("a", 1), 5), (("b", 1), 5)).watermark(10)
        # within the lateness: each late element fires its window again, updated
        h.elements((("a", 2), 3), (("a", 4), 8), (("c", 7), 1))
        h.watermark(14)  # cleanup of [0,10) at 9 + 5
        h.elements((("a", 8), 8), (("b", 9), 19))
        h.watermark(40)

    def make() -> WindowOperator:
        return _op(TumblingEventTimeWindows.of(10), lateness=5, reduce_function=_add)

    _, (emitted, sides, dropped, entries, timers) = _run_both(harness, make, scenario)
    assert [v for v, _ in emitted] == [
        ("a", 0, 10, ("a", 1)),
        ("b", 0, 10, ("b", 1)),
        ("a", 0, 10, ("a", 3)),
        ("a", 0, 10, ("a", 7)),
        ("c", 0, 10, ("c", 7)),
        ("b", 10, 20, ("b", 9)),
    ]
    assert (sides, dropped, entries, timers) == ({}, 1, 0, 0)


def test_late_sliding_element_counts_for_its_window_still_open(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.watermark(10).element(("a", 1), 7).watermark(14)

    def make() -> WindowOperator:
        return _op(SlidingEventTimeWindows.of(10, 5), late_tag=LATE, reduce_function=_add)

    _, (emitted, sides, dropped, _e, _t) = _run_both(harness, make, scenario)
    assert [v for v, _ in emitted] == [("a", 5, 15, ("a", 1))]
    assert (sides, dropped) == ({}, 0)


class _Updates(ProcessWindowFunction[Any, Any, Any, Any]):
    """Tells first results from late updates with per-window state, cleared in clear()."""

    seen = ValueStateDescriptor("seen", None)

    def process(self, key: Any, context: Any, elements: Any) -> Any:
        state = context.window_state().get_state(self.seen)
        yield key, context.window().end, list(elements), "update" if state.value() else "first"
        state.update(True)

    def clear(self, context: Any) -> None:
        context.window_state().get_state(self.seen).clear()


def test_process_function_state_and_clear_on_both_paths(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.element(("a", 1), 1).watermark(9).element(("a", 2), 2).watermark(30)

    def make() -> WindowOperator:
        return _op(
            TumblingEventTimeWindows.of(10),
            lateness=5,
            reduce_function=_add,
            window_function=_Updates(),
            function_kind=PROCESS,
        )

    h, (emitted, *_rest) = _run_both(harness, make, scenario)
    assert [v for v, _ in emitted] == [
        ("a", 10, [("a", 1)], "first"),
        ("a", 10, [("a", 3)], "update"),
    ]
    assert h.state_entries("seen") == 0


def test_processing_time_windows_on_both_paths(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.set_processing_time(3).elements((("a", 1), None), (("b", 2), None))
        h.set_processing_time(12).element(("a", 3), None)
        h.set_processing_time(25)

    def make() -> WindowOperator:
        return _op(TumblingProcessingTimeWindows.of(10), reduce_function=_add)

    _, (emitted, *_rest) = _run_both(harness, make, scenario)
    assert emitted == [
        (("a", 0, 10, ("a", 1)), 9),
        (("b", 0, 10, ("b", 2)), 9),
        (("a", 10, 20, ("a", 3)), 19),
    ]


def test_sessions_take_the_general_path_with_the_same_results(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.elements((("a", 1), 1), (("a", 2), 4), (("a", 3), 20)).watermark(40)

    _, (emitted, *_rest) = _run_both(
        harness, lambda: _op(EventTimeSessionWindows.with_gap(5), reduce_function=_add), scenario
    )
    assert [v for v, _ in emitted] == [("a", 1, 9, ("a", 3)), ("a", 20, 25, ("a", 3))]


def test_adding_none_clears_a_reduced_window_as_reducing_state_does(harness: Any) -> None:
    def scenario(h: Any) -> None:
        h.elements((("a", 1), 1), (None, 2), (("a", 5), 3)).watermark(9)

    def key_or_a(element: Any) -> str:
        return "a" if element is None else element[0]

    def make() -> WindowOperator:
        spec = WindowSpec(
            assigner=TumblingEventTimeWindows.of(10),
            trigger=TumblingEventTimeWindows.of(10).get_default_trigger(None),
            reduce_function=_add,
        )
        return WindowOperator(spec, key_or_a)

    _, (emitted, *_rest) = _run_both(harness, make, scenario)
    assert emitted == [(("a", 5), 9)]


def test_adding_none_to_list_contents_is_refused(harness: Any) -> None:
    spec = WindowSpec(
        assigner=TumblingEventTimeWindows.of(10),
        trigger=TumblingEventTimeWindows.of(10).get_default_trigger(None),
    )
    h = harness(WindowOperator(spec, lambda element: "k"))
    with pytest.raises(StateError, match="cannot add None"):
        h.element(None, 1)
