"""Window objects and window assigners: boundaries as Flink defines them."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from flinklet._private.state.serializers import deserialize_key, serialize_key
from flinklet._private.windows.assigners import window_span
from flinklet.common.time import Duration, Time
from flinklet.datastream.state import ValueStateDescriptor
from flinklet.datastream.window import (
    CountSlidingWindowAssigner,
    CountTumblingWindowAssigner,
    CountWindow,
    DynamicEventTimeSessionWindows,
    DynamicProcessingTimeSessionWindows,
    EventTimeSessionWindows,
    EventTimeTrigger,
    GlobalWindow,
    GlobalWindows,
    MergingWindowAssigner,
    NeverTrigger,
    ProcessingTimeSessionWindows,
    ProcessingTimeTrigger,
    PurgingTrigger,
    SessionWindowTimeGapExtractor,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WindowAssigner,
)
from flinklet.errors import ApiUsageError

HOUR = 3_600_000
DAY = 24 * HOUR


class _Ctx(WindowAssigner.WindowAssignerContext):
    def __init__(self, now: int = 0) -> None:
        self.now = now
        self.state: dict[str, Any] = {}

    def get_current_processing_time(self) -> int:
        return self.now

    def get_runtime_context(self) -> Any:
        ctx = self

        class _State:
            def __init__(self, name: str) -> None:
                self.name = name

            def value(self) -> Any:
                return ctx.state.get(self.name)

            def update(self, value: Any) -> None:
                ctx.state[self.name] = value

        class _Runtime:
            def get_state(self, descriptor: ValueStateDescriptor) -> _State:
                return _State(descriptor.name)

        return _Runtime()


# ------------------------------------------------------------------------- TimeWindow


def test_time_window_max_timestamp_is_end_minus_one() -> None:
    window = TimeWindow(0, 5000)
    assert (window.start, window.end, window.max_timestamp()) == (0, 5000, 4999)
    assert (window.get_start(), window.get_end()) == (0, 5000)


def test_touching_time_windows_intersect_and_cover() -> None:
    # [0, 10) and [10, 20) touch at 10: Flink's intersects() is inclusive, so sessions
    # exactly one gap apart merge.
    assert TimeWindow(0, 10).intersects(TimeWindow(10, 20))
    assert not TimeWindow(0, 10).intersects(TimeWindow(11, 20))
    assert TimeWindow(0, 10).cover(TimeWindow(5, 30)) == TimeWindow(0, 30)


def test_time_windows_order_by_start_then_end() -> None:
    windows = [TimeWindow(5, 9), TimeWindow(0, 20), TimeWindow(0, 10)]
    assert sorted(windows) == [TimeWindow(0, 10), TimeWindow(0, 20), TimeWindow(5, 9)]


def test_merge_windows_reports_each_overlapping_group() -> None:
    merges: list[tuple[list[TimeWindow], TimeWindow]] = []

    class Callback(MergingWindowAssigner.MergeCallback):
        def merge(self, to_be_merged: Any, merge_result: Any) -> None:
            merges.append((sorted(to_be_merged), merge_result))

    TimeWindow.merge_windows(
        [TimeWindow(20, 30), TimeWindow(0, 10), TimeWindow(5, 15), TimeWindow(40, 50)], Callback()
    )
    # [0,10) and [5,15) overlap -> [0,15); [20,30) and [40,50) stand alone (not reported)
    assert merges == [([TimeWindow(0, 10), TimeWindow(5, 15)], TimeWindow(0, 15))]


@pytest.mark.parametrize(
    ("timestamp", "offset", "size", "start"),
    [
        (7, 0, 5, 5),  # 7 - (7 - 0 + 5) % 5 = 7 - 2 = 5
        (5, 0, 5, 5),  # a window starts exactly at its start timestamp
        (4, 0, 5, 0),
        (-1, 0, 5, -5),  # before the epoch: [-5, 0)
        (7, 1, 5, 6),  # windows shifted by 1: ..., [1, 6), [6, 11)
        (0, -8 * HOUR, DAY, -8 * HOUR),  # midnight in UTC+8 is 16:00 UTC the day before
    ],
)
def test_window_start_with_offset(timestamp: int, offset: int, size: int, start: int) -> None:
    assert TimeWindow.get_window_start_with_offset(timestamp, offset, size) == start


def test_windows_are_hashable_picklable_and_serializable_as_namespaces() -> None:
    for window in (TimeWindow(-5, 10), CountWindow(3), GlobalWindow()):
        assert pickle.loads(pickle.dumps(window)) == window
        restored = deserialize_key(serialize_key(window))
        assert restored == window and type(restored) is type(window)
        assert {window: 1}[restored] == 1
    assert serialize_key(TimeWindow(0, 10)) == serialize_key(TimeWindow(0, 10))
    assert pickle.loads(pickle.dumps(GlobalWindow())) is GlobalWindow.get()


# -------------------------------------------------------------------------- tumbling


@pytest.mark.parametrize("size", [Time.seconds(5), Duration.of_seconds(5), 5000])
def test_tumbling_event_time_windows_accept_time_duration_and_millis(size: Any) -> None:
    assigner = TumblingEventTimeWindows.of(size)
    # 12_345 falls in [10_000, 15_000)
    assert assigner.assign_windows(None, 12_345, _Ctx()) == [TimeWindow(10_000, 15_000)]
    assert assigner.is_event_time()
    assert isinstance(assigner.get_default_trigger(None), EventTimeTrigger)


def test_tumbling_windows_with_a_time_zone_offset_start_at_local_midnight() -> None:
    # daily windows in UTC+8: 2024-01-01T20:00Z is 2024-01-02T04:00 local, so it belongs
    # to the local day starting 2024-01-02T00:00+08 = 2024-01-01T16:00Z
    ts = 1_704_139_200_000  # 2024-01-01T20:00:00Z
    local_midnight = 1_704_124_800_000  # 2024-01-01T16:00:00Z
    assigner = TumblingEventTimeWindows.of(Time.days(1), Time.hours(-8))
    assert assigner.assign_windows(None, ts, _Ctx()) == [
        TimeWindow(local_midnight, local_midnight + DAY)
    ]


def test_tumbling_windows_with_positive_offset() -> None:
    # hourly windows starting at quarter past: 01:20 is in [01:15, 02:15)
    assigner = TumblingEventTimeWindows.of(Time.hours(1), Time.minutes(15))
    ts = HOUR + 20 * 60_000
    start = HOUR + 15 * 60_000
    assert assigner.assign_windows(None, ts, _Ctx()) == [TimeWindow(start, start + HOUR)]


def test_tumbling_processing_time_windows_use_the_clock_not_the_timestamp() -> None:
    assigner = TumblingProcessingTimeWindows.of(Time.milliseconds(100))
    assert assigner.assign_windows(None, 5, _Ctx(now=1_234)) == [TimeWindow(1_200, 1_300)]
    assert not assigner.is_event_time()
    assert isinstance(assigner.get_default_trigger(None), ProcessingTimeTrigger)


@pytest.mark.parametrize(("size", "offset"), [(0, 0), (-5, 0), (10, 10), (10, -10)])
def test_tumbling_windows_reject_bad_parameters(size: int, offset: int) -> None:
    with pytest.raises(ApiUsageError, match="abs\\(offset\\) < size"):
        TumblingEventTimeWindows.of(size, offset)


# --------------------------------------------------------------------------- sliding


def test_sliding_windows_assign_size_over_slide_windows() -> None:
    # size 10 s, slide 5 s: 7 s lies in [5 s, 15 s) and [0 s, 10 s), newest first
    assigner = SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5))
    assert assigner.assign_windows(None, 7_000, _Ctx()) == [
        TimeWindow(5_000, 15_000),
        TimeWindow(0, 10_000),
    ]


def test_one_hour_windows_every_fifteen_minutes_hold_each_element_four_times() -> None:
    assigner = SlidingEventTimeWindows.of(Time.hours(1), Time.minutes(15))
    ts = 2 * HOUR + 20 * 60_000  # 02:20 -> windows starting 02:15, 02:00, 01:45, 01:30
    starts = [w.start for w in assigner.assign_windows(None, ts, _Ctx())]
    quarter = 15 * 60_000
    assert starts == [2 * HOUR + quarter, 2 * HOUR, 2 * HOUR - quarter, 2 * HOUR - 2 * quarter]


def test_sliding_windows_with_gaps_drop_elements_between_windows() -> None:
    # size 5, slide 10: windows [0,5), [10,15), ...; 7 falls in no window
    assigner = SlidingEventTimeWindows.of(5, 10)
    assert assigner.assign_windows(None, 7, _Ctx()) == []
    assert assigner.assign_windows(None, 12, _Ctx()) == [TimeWindow(10, 15)]


def test_sliding_windows_with_offset() -> None:
    # size 10, slide 5, offset 2: windows start at ..., 2, 7, 12; 8 lies in [7,17) and [2,12)
    assigner = SlidingEventTimeWindows.of(10, 5, 2)
    assert assigner.assign_windows(None, 8, _Ctx()) == [TimeWindow(7, 17), TimeWindow(2, 12)]


def test_sliding_processing_time_windows_use_the_clock() -> None:
    assigner = SlidingProcessingTimeWindows.of(200, 100)
    assert assigner.assign_windows(None, None, _Ctx(now=250)) == [  # type: ignore[arg-type]
        TimeWindow(200, 400),
        TimeWindow(100, 300),
    ]
    assert not assigner.is_event_time()


def test_sliding_windows_reject_bad_parameters() -> None:
    with pytest.raises(ApiUsageError, match="abs\\(offset\\) < slide"):
        SlidingEventTimeWindows.of(10, 5, 5)
    with pytest.raises(ApiUsageError, match="size > 0"):
        SlidingEventTimeWindows.of(0, 5)


# -------------------------------------------------------------------------- sessions


def test_event_time_session_windows_open_timestamp_plus_gap() -> None:
    assigner = EventTimeSessionWindows.with_gap(Time.seconds(10))
    assert assigner.assign_windows(None, 3_000, _Ctx()) == [TimeWindow(3_000, 13_000)]
    assert isinstance(assigner, MergingWindowAssigner) and assigner.is_event_time()


def test_processing_time_session_windows_use_the_clock() -> None:
    assigner = ProcessingTimeSessionWindows.with_gap(50)
    assert assigner.assign_windows(None, 0, _Ctx(now=1_000)) == [TimeWindow(1_000, 1_050)]
    assert not assigner.is_event_time()


def test_dynamic_session_gaps_from_an_extractor_or_a_callable() -> None:
    class GapFromElement(SessionWindowTimeGapExtractor[Any]):
        def extract(self, element: Any) -> int:
            return int(element["gap"])

    from_extractor = EventTimeSessionWindows.with_dynamic_gap(GapFromElement())
    assert isinstance(from_extractor, DynamicEventTimeSessionWindows)
    assert from_extractor.assign_windows({"gap": 7}, 100, _Ctx()) == [TimeWindow(100, 107)]
    from_callable = ProcessingTimeSessionWindows.with_dynamic_gap(lambda e: Time.seconds(e))
    assert isinstance(from_callable, DynamicProcessingTimeSessionWindows)
    assert from_callable.assign_windows(2, 0, _Ctx(now=10)) == [TimeWindow(10, 2_010)]


def test_dynamic_session_gap_must_be_positive() -> None:
    assigner = DynamicEventTimeSessionWindows.with_dynamic_gap(lambda e: 0)
    with pytest.raises(ApiUsageError, match="0 < gap"):
        assigner.assign_windows("x", 5, _Ctx())
    with pytest.raises(ApiUsageError, match="0 < gap"):
        EventTimeSessionWindows.with_gap(0)


def test_session_assigners_merge_touching_windows() -> None:
    merged: list[Any] = []

    class Callback(MergingWindowAssigner.MergeCallback):
        def merge(self, to_be_merged: Any, merge_result: Any) -> None:
            merged.append(merge_result)

    EventTimeSessionWindows.with_gap(10).merge_windows(
        [TimeWindow(0, 10), TimeWindow(10, 20), TimeWindow(25, 35)], Callback()
    )
    assert merged == [TimeWindow(0, 20)]


# --------------------------------------------------------------------- global, count


def test_global_windows_put_everything_in_one_window_that_never_fires_by_default() -> None:
    assigner = GlobalWindows.create()
    assert assigner.assign_windows("a", 1, _Ctx()) == [GlobalWindow.get()]
    assert isinstance(assigner.get_default_trigger(None), NeverTrigger)
    assert GlobalWindow().max_timestamp() == 2**63 - 1
    assert not assigner.is_event_time()


def test_count_assigners_number_windows_per_key() -> None:
    ctx = _Ctx()
    tumbling = CountTumblingWindowAssigner.of(2)
    ids = [[w.id for w in tumbling.assign_windows(i, 0, ctx)] for i in range(5)]
    assert ids == [[0], [0], [1], [1], [2]]
    assert isinstance(tumbling.get_default_trigger(None), PurgingTrigger)
    sliding = CountSlidingWindowAssigner.of(3, 2)
    ctx = _Ctx()
    # element n is in window i when i*2 <= n < i*2 + 3
    ids = [[w.id for w in sliding.assign_windows(i, 0, ctx)] for i in range(5)]
    assert ids == [[0], [0], [1, 0], [1], [2, 1]]


# ------------------------------------------------------- the window operator's span cache


@pytest.mark.parametrize(
    ("size", "slide", "offset"),
    [(10, 5, 0), (10, 3, 0), (10, 3, 2), (5, 10, 0), (5, 10, -4), (7, 7, 3), (1, 1, 0)],
)
def test_a_window_span_names_the_windows_of_exactly_its_timestamps(
    size: int, slide: int, offset: int
) -> None:
    assigner = SlidingEventTimeWindows.of(size, slide, offset)
    span = window_span(assigner)
    assert span is not None
    for timestamp in range(-30, 30):
        windows, lo, hi = span(timestamp)
        assert list(windows) == assigner.assign_windows(None, timestamp, None)  # type: ignore[arg-type]
        assert lo <= timestamp < hi
        for other in range(lo - 25, hi + 25):
            same = assigner.assign_windows(None, other, None) == list(windows)  # type: ignore[arg-type]
            if lo <= other < hi:
                assert same
            elif windows:  # (any two timestamps in gaps between windows have none)
                assert not same


def test_a_tumbling_span_covers_its_window() -> None:
    span = window_span(TumblingEventTimeWindows.of(10, 3))
    assert span is not None
    assert span(27) == ((TimeWindow(23, 33),), 23, 33)
    assert span(-1) == ((TimeWindow(-7, 3),), -7, 3)


def test_no_span_for_processing_time_or_overridden_assigners() -> None:
    class Shifted(TumblingEventTimeWindows):
        def assign_windows(self, element: Any, timestamp: int, context: Any) -> list[TimeWindow]:
            return super().assign_windows(element, timestamp + 1, context)

    assert window_span(TumblingProcessingTimeWindows.of(10)) is None
    assert window_span(Shifted(10, 0)) is None
    assert window_span(EventTimeSessionWindows.with_gap(10)) is None


def test_windows_pickle_under_the_public_module_wherever_they_are_defined() -> None:
    # window namespaces are pickled into state keys (RocksDB, snapshots): their bytes must
    # not change when the classes move between private modules
    for cls in (TimeWindow, CountWindow, GlobalWindow, TumblingEventTimeWindows, EventTimeTrigger):
        assert cls.__module__ == "flinklet.datastream.window"
    assert b"flinklet.datastream.window" in serialize_key(TimeWindow(0, 10))
    assert pickle.loads(pickle.dumps(TimeWindow(0, 10))) == TimeWindow(0, 10)
