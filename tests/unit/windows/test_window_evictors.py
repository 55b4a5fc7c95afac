"""Evictors on their own, and before/after the window function in the operator."""

from __future__ import annotations

from typing import Any

from flinklet._private.exec.windowing import APPLY, WindowOperator, WindowSpec
from flinklet.datastream.functions import AggregateFunction
from flinklet.datastream.window import (
    CountEvictor,
    CountTrigger,
    DeltaEvictor,
    Evictor,
    GlobalWindows,
    TimeEvictor,
    TimestampedValue,
    TumblingEventTimeWindows,
)


def _tv(*pairs: tuple[Any, int | None]) -> list[TimestampedValue[Any]]:
    return [TimestampedValue(v, t) for v, t in pairs]


def _key(element: tuple[str, Any]) -> str:
    return element[0]


def _values(key: Any, window: Any, inputs: Any) -> list[list[Any]]:
    return [[v for _, v in inputs]]


def evicting_op(assigner: Any, trigger: Any, evictor: Evictor[Any, Any], **fns: Any) -> Any:
    if not fns:
        fns = {"window_function": _values, "function_kind": APPLY}
    return WindowOperator(
        WindowSpec(assigner=assigner, trigger=trigger, evictor=evictor, **fns), _key
    )


# ------------------------------------------------------------------------ on their own


def test_count_evictor_keeps_the_newest_elements() -> None:
    elements = _tv(("a", 1), ("b", 2), ("c", 3))
    CountEvictor.of(2).evict_before(elements, 3, None, None)  # type: ignore[arg-type]
    assert [e.get_value() for e in elements] == ["b", "c"]
    CountEvictor.of(2).evict_after(elements, 2, None, None)  # type: ignore[arg-type]
    assert len(elements) == 2  # evicts before by default: evict_after does nothing


def test_count_evictor_after_only_evicts_after() -> None:
    elements = _tv(("a", 1), ("b", 2), ("c", 3))
    evictor = CountEvictor.of(1, do_evict_after=True)
    evictor.evict_before(elements, 3, None, None)  # type: ignore[arg-type]
    assert len(elements) == 3
    evictor.evict_after(elements, 3, None, None)  # type: ignore[arg-type]
    assert [e.value for e in elements] == ["c"]


def test_time_evictor_keeps_elements_within_the_time_of_the_newest() -> None:
    # newest is 2600, window 1000: cutoff 1600, elements at or before it go
    elements = _tv(("a", 0), ("b", 1600), ("c", 2600), ("d", 1601))
    TimeEvictor.of(1000).evict_before(elements, 4, None, None)  # type: ignore[arg-type]
    assert [e.value for e in elements] == ["c", "d"]


def test_time_evictor_ignores_elements_without_timestamps() -> None:
    elements = _tv(("a", None), ("b", None))
    TimeEvictor.of(10).evict_before(elements, 2, None, None)  # type: ignore[arg-type]
    assert len(elements) == 2


def test_delta_evictor_keeps_elements_close_to_the_last() -> None:
    elements = _tv((1.0, 1), (9.0, 2), (9.5, 3), (10.0, 4))
    DeltaEvictor.of(1.0, lambda a, b: abs(a - b)).evict_before(elements, 4, None, None)  # type: ignore[arg-type]
    assert [e.value for e in elements] == [9.5, 10.0]


# ----------------------------------------------------------------------- in operators


def test_evict_before_hides_evicted_elements_from_the_function(harness: Any) -> None:
    h = harness(evicting_op(GlobalWindows.create(), CountTrigger.of(3), CountEvictor.of(2)))
    for i in range(1, 7):
        h.element(("k", i))
    # 3rd element: [1, 2, 3] -> evict to [2, 3] -> evaluated; 6th: [2, 3, 4, 5, 6] -> [5, 6]
    assert [v for v, _ in h.take()] == [[2, 3], [5, 6]]


def test_evict_after_evicts_once_the_function_has_seen_everything(harness: Any) -> None:
    evictor = CountEvictor.of(2, do_evict_after=True)
    h = harness(evicting_op(GlobalWindows.create(), CountTrigger.of(3), evictor))
    for i in range(1, 7):
        h.element(("k", i))
    # 3rd element: evaluated on [1, 2, 3], then cut to [2, 3]; 6th: [2, 3, 4, 5, 6]
    assert [v for v, _ in h.take()] == [[1, 2, 3], [2, 3, 4, 5, 6]]


def test_time_evictor_in_an_event_time_window(harness: Any) -> None:
    op = evicting_op(
        TumblingEventTimeWindows.of(10_000),
        TumblingEventTimeWindows.of(10_000).get_default_trigger(None),
        TimeEvictor.of(1000),
    )
    h = harness(op)
    h.elements((("k", "a"), 0), (("k", "b"), 500), (("k", "c"), 2600), (("k", "d"), 2000))
    h.watermark(9999)
    # newest 2600 - 1000 = cutoff 1600: a and b are evicted before evaluation
    assert h.take() == [(["c", "d"], 9999)]


def _add(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return (a[0], a[1] + b[1])


def test_evictor_with_reduce_reduces_the_remaining_elements_at_fire_time(harness: Any) -> None:
    op = evicting_op(
        GlobalWindows.create(), CountTrigger.of(3), CountEvictor.of(2), reduce_function=_add
    )
    h = harness(op)
    for i in (1, 2, 4):
        h.element(("k", i))
    # [1, 2, 4] -> evicted to [2, 4] -> reduced to 6 when the window fires
    assert h.take() == [(("k", 6), 2**63 - 1)]
    assert h.state_entries("window-contents") == 1  # the kept elements stay in list state


class _Average(AggregateFunction[Any, tuple[int, int], float]):
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add(self, value: Any, accumulator: tuple[int, int]) -> tuple[int, int]:
        return (accumulator[0] + value[1], accumulator[1] + 1)

    def get_result(self, accumulator: tuple[int, int]) -> float:
        return accumulator[0] / accumulator[1] if accumulator[1] else 0.0

    def merge(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        return (a[0] + b[0], a[1] + b[1])


def test_evictor_with_aggregate(harness: Any) -> None:
    op = evicting_op(
        GlobalWindows.create(),
        CountTrigger.of(3),
        CountEvictor.of(2),
        aggregate_function=_Average(),
    )
    h = harness(op)
    for i in (1, 2, 4):
        h.element(("k", i))
    assert h.values() == [3.0]  # average of the kept 2 and 4
