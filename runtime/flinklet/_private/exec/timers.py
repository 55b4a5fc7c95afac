"""Processing-time service and keyed timer services.

Each task owns one ``ProcessingTimeService`` (a heap of wall-clock callbacks that the
scheduler fires). Keyed operators own an ``InternalTimerService``: event-time timers fire
when the operator's watermark passes them, processing-time timers when the wall clock
does; both fire in timestamp order with the timer's key (and namespace) set as the
current key. Timers are deduplicated per (timestamp, key, namespace), as in Flink.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

from flinklet._private.network.elements import MIN_WATERMARK


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class ProcessingTimeService:
    """Wall-clock callbacks of one task, fired by the scheduler loop."""

    def __init__(self, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.clock = clock
        self._heap: list[tuple[int, int, Callable[[int], None]]] = []
        self._seq = itertools.count()

    def now(self) -> int:
        return self.clock()

    def register(self, timestamp: int, callback: Callable[[int], None]) -> None:
        heapq.heappush(self._heap, (timestamp, next(self._seq), callback))

    def next_fire_time(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def fire_due(self, now: int) -> bool:
        heap = self._heap
        fired = False
        while heap and heap[0][0] <= now:
            ts, _seq, cb = heapq.heappop(heap)
            cb(ts)
            fired = True
        return fired

    def clear(self) -> None:
        self._heap.clear()


Timer = tuple[int, Any, Any]  # (timestamp, key, namespace)


class InternalTimerService:
    """Event- and processing-time timers of one keyed operator.

    ``on_timer(timestamp, key, namespace, is_event_time)`` is called with the key already
    set on the state backend.
    """

    def __init__(
        self,
        set_current_key: Callable[[Any], None],
        get_current_key: Callable[[], Any],
        pts: ProcessingTimeService,
        on_timer: Callable[[int, Any, Any, bool], None],
    ) -> None:
        self._set_key = set_current_key
        self._get_key = get_current_key
        self._pts = pts
        self._on_timer = on_timer
        self.current_watermark = MIN_WATERMARK
        self._seq = itertools.count()
        self._event_heap: list[tuple[int, int, Any, Any]] = []
        self._event_set: set[Timer] = set()
        self._proc_heap: list[tuple[int, int, Any, Any]] = []
        self._proc_set: set[Timer] = set()
        self._proc_scheduled: int | None = None

    # -- registration (current key) --------------------------------------------------

    def register_event_time_timer(self, namespace: Any, timestamp: int) -> None:
        timer = (timestamp, self._get_key(), namespace)
        if timer not in self._event_set:
            self._event_set.add(timer)
            heapq.heappush(self._event_heap, (timestamp, next(self._seq), timer[1], namespace))

    def delete_event_time_timer(self, namespace: Any, timestamp: int) -> None:
        self._event_set.discard((timestamp, self._get_key(), namespace))

    def register_processing_time_timer(self, namespace: Any, timestamp: int) -> None:
        timer = (timestamp, self._get_key(), namespace)
        if timer in self._proc_set:
            return
        self._proc_set.add(timer)
        heapq.heappush(self._proc_heap, (timestamp, next(self._seq), timer[1], namespace))
        if self._proc_scheduled is None or timestamp < self._proc_scheduled:
            self._proc_scheduled = timestamp
            self._pts.register(timestamp, self._on_processing_time)

    def delete_processing_time_timer(self, namespace: Any, timestamp: int) -> None:
        self._proc_set.discard((timestamp, self._get_key(), namespace))

    # -- firing ----------------------------------------------------------------------

    def advance_watermark(self, watermark: int) -> None:
        self.current_watermark = watermark
        heap, live = self._event_heap, self._event_set
        while heap and heap[0][0] <= watermark:
            ts, _seq, key, ns = heapq.heappop(heap)
            timer = (ts, key, ns)
            if timer not in live:
                continue
            live.discard(timer)
            self._set_key(key)
            self._on_timer(ts, key, ns, True)

    def _on_processing_time(self, now: int) -> None:
        if self._proc_scheduled is not None and now < self._proc_scheduled:
            return  # a stale wake-up; the earlier registration is still pending
        self._proc_scheduled = None
        self.fire_processing_timers(now)
        if self._proc_heap:
            nxt = self._proc_heap[0][0]
            self._proc_scheduled = nxt
            self._pts.register(nxt, self._on_processing_time)

    def fire_processing_timers(self, now: int) -> None:
        heap, live = self._proc_heap, self._proc_set
        while heap and heap[0][0] <= now:
            ts, _seq, key, ns = heapq.heappop(heap)
            timer = (ts, key, ns)
            if timer not in live:
                continue
            live.discard(timer)
            self._set_key(key)
            self._on_timer(ts, key, ns, False)

    # -- introspection and snapshots -------------------------------------------------

    def num_event_time_timers(self) -> int:
        return len(self._event_set)

    def num_processing_time_timers(self) -> int:
        return len(self._proc_set)

    def snapshot(self) -> dict[str, list[Timer]]:
        return {
            "event": sorted(self._event_set, key=lambda t: t[0]),
            "processing": sorted(self._proc_set, key=lambda t: t[0]),
        }

    def restore(self, timers: dict[str, list[Timer]], keep: Callable[[Any], bool]) -> None:
        for ts, key, ns in timers.get("event", []):
            if keep(key) and (ts, key, ns) not in self._event_set:
                self._event_set.add((ts, key, ns))
                heapq.heappush(self._event_heap, (ts, next(self._seq), key, ns))
        for ts, key, ns in timers.get("processing", []):
            if keep(key) and (ts, key, ns) not in self._proc_set:
                self._proc_set.add((ts, key, ns))
                heapq.heappush(self._proc_heap, (ts, next(self._seq), key, ns))
        if self._proc_heap:
            nxt = self._proc_heap[0][0]
            self._proc_scheduled = nxt
            self._pts.register(nxt, self._on_processing_time)
