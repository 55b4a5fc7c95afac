"""The keyed timer service: deduplication, firing order, deletion, snapshot and restore."""

from __future__ import annotations

from typing import Any

from flinklet._private.exec.timers import InternalTimerService, ProcessingTimeService
from flinklet.datastream.window import TimeWindow


class _Keys:
    def __init__(self) -> None:
        self.current: Any = None

    def set(self, key: Any) -> None:
        self.current = key

    def get(self) -> Any:
        return self.current


def _service(fired: list[tuple[Any, ...]], now: list[int] | None = None) -> Any:
    keys = _Keys()
    clock = now if now is not None else [0]
    pts = ProcessingTimeService(lambda: clock[0])

    def on_timer(ts: int, key: Any, ns: Any, event_time: bool) -> None:
        assert keys.current == key  # the key is set before the call
        fired.append((ts, key, ns, event_time))

    return InternalTimerService(keys.set, keys.get, pts, on_timer), keys, pts


def test_timers_fire_in_timestamp_then_registration_order_each_once() -> None:
    fired: list[tuple[Any, ...]] = []
    timers, keys, _ = _service(fired)
    w1, w2 = TimeWindow(0, 10), TimeWindow(10, 20)
    for key, ns, ts in [("b", w2, 19), ("a", w1, 9), ("b", w1, 9), ("a", w1, 9), ("c", w2, 19)]:
        keys.set(key)
        timers.register_event_time_timer(ns, ts)
    assert timers.num_event_time_timers() == 4  # ("a", w1, 9) once
    timers.advance_watermark(9)
    assert fired == [(9, "a", w1, True), (9, "b", w1, True)]
    timers.advance_watermark(100)
    assert fired[2:] == [(19, "b", w2, True), (19, "c", w2, True)]
    assert timers.num_event_time_timers() == 0


def test_deleted_timers_do_not_fire_and_may_be_registered_again() -> None:
    fired: list[tuple[Any, ...]] = []
    timers, keys, _ = _service(fired)
    keys.set("a")
    timers.register_event_time_timer("ns", 5)
    timers.register_event_time_timer("ns", 6)
    timers.delete_event_time_timer("ns", 5)
    timers.delete_event_time_timer("other", 6)  # not registered: nothing happens
    assert timers.num_event_time_timers() == 1
    timers.advance_watermark(5)
    assert fired == []
    timers.register_event_time_timer("ns", 5)  # at or below the watermark: fires next time
    timers.advance_watermark(6)
    assert fired == [(5, "a", "ns", True), (6, "a", "ns", True)]


def test_a_timer_registered_while_firing_fires_in_the_same_advance() -> None:
    fired: list[tuple[Any, ...]] = []
    keys = _Keys()
    pts = ProcessingTimeService(lambda: 0)

    def on_timer(ts: int, key: Any, ns: Any, event_time: bool) -> None:
        fired.append((ts, key))
        if ts == 10:
            timers.register_event_time_timer(ns, 7)  # earlier than the watermark

    timers = InternalTimerService(keys.set, keys.get, pts, on_timer)
    keys.set("k")
    timers.register_event_time_timer("ns", 10)
    timers.register_event_time_timer("ns", 12)
    timers.advance_watermark(20)
    assert fired == [(10, "k"), (7, "k"), (12, "k")]


def test_processing_time_timers_fire_on_the_clock() -> None:
    fired: list[tuple[Any, ...]] = []
    now = [0]
    timers, keys, pts = _service(fired, now)
    keys.set("a")
    timers.register_processing_time_timer("ns", 50)
    timers.register_processing_time_timer("ns", 20)
    keys.set("b")
    timers.delete_processing_time_timer("ns", 20)  # b has none: a's stays
    now[0] = 30
    pts.fire_due(30)
    assert fired == [(20, "a", "ns", False)]
    now[0] = 60
    pts.fire_due(60)
    assert fired[1:] == [(50, "a", "ns", False)]
    assert timers.num_processing_time_timers() == 0


def test_snapshot_and_restore_keep_order_and_filter_keys() -> None:
    fired: list[tuple[Any, ...]] = []
    timers, keys, _ = _service(fired)
    w = TimeWindow(0, 10)
    for key, ts in [("b", 9), ("a", 9), ("c", 3)]:
        keys.set(key)
        timers.register_event_time_timer(w, ts)
    keys.set("a")
    timers.register_processing_time_timer(w, 100)
    snapshot = timers.snapshot()
    assert snapshot == {
        "event": [(3, "c", w), (9, "b", w), (9, "a", w)],
        "processing": [(100, "a", w)],
    }
    restored_fired: list[tuple[Any, ...]] = []
    restored, _, _ = _service(restored_fired)
    restored.restore(snapshot, keep=lambda key: key != "c")
    assert restored.num_event_time_timers() == 2
    assert restored.num_processing_time_timers() == 1
    restored.advance_watermark(9)
    assert restored_fired == [(9, "b", w, True), (9, "a", w, True)]
