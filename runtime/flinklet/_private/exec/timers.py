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

_SEQ_BITS = 64


class _TimerQueue:
    """The timers of one time domain, each once, in (timestamp, registration) order.

    A timer's place in the queue is the int ``timestamp << 64 | sequence``; the heap holds
    places. A timer is stored as the pair ``(timestamp, key)`` under its namespace, never
    as a tuple holding the namespace: a window (the namespace of window operators) is an
    object the garbage collector tracks, so a tuple holding one would stay tracked, and a
    window operator holds a timer per key and window; a pair of an int and a plain key is
    untracked by the collector's first look at it.
    """

    __slots__ = ("by_namespace", "heap", "namespaces", "pairs")

    def __init__(self) -> None:
        self.heap: list[int] = []  # places, a heap; deleted timers' places stay until popped
        self.by_namespace: dict[Any, dict[tuple[int, Any], int]] = {}  # ns -> pair -> place
        self.pairs: dict[int, tuple[int, Any]] = {}  # place -> (timestamp, key), live only
        self.namespaces: dict[int, Any] = {}  # place -> namespace, live only

    def __len__(self) -> int:
        return len(self.pairs)

    def add(self, timestamp: int, key: Any, namespace: Any, seq: int) -> bool:
        """Add the timer unless it is there already; True if added."""
        pairs = self.by_namespace.get(namespace)
        if pairs is None:
            pairs = self.by_namespace[namespace] = {}
        pair = (timestamp, key)
        if pair in pairs:
            return False
        place = (timestamp << _SEQ_BITS) + seq
        pairs[pair] = place
        self.pairs[place] = pair
        self.namespaces[place] = namespace
        heapq.heappush(self.heap, place)
        return True

    def discard(self, timestamp: int, key: Any, namespace: Any) -> None:
        pairs = self.by_namespace.get(namespace)
        if pairs is None:
            return
        place = pairs.pop((timestamp, key), None)
        if place is None:
            return
        if not pairs:
            del self.by_namespace[namespace]
        del self.pairs[place]
        del self.namespaces[place]

    def next_timestamp(self) -> int | None:
        """The timestamp of the first live timer (dropping deleted ones from the heap)."""
        heap, pairs = self.heap, self.pairs
        while heap:
            pair = pairs.get(heap[0])
            if pair is not None:
                return pair[0]
            heapq.heappop(heap)
        return None

    def ordered(self) -> list[Timer]:
        return [(*self.pairs[p], self.namespaces[p]) for p in sorted(self.pairs)]


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
        self._event = _TimerQueue()
        self._proc = _TimerQueue()
        self._proc_scheduled: int | None = None

    # -- registration (current key) --------------------------------------------------

    def register_event_time_timer(self, namespace: Any, timestamp: int) -> None:
        self._event.add(timestamp, self._get_key(), namespace, next(self._seq))

    def delete_event_time_timer(self, namespace: Any, timestamp: int) -> None:
        self._event.discard(timestamp, self._get_key(), namespace)

    def register_processing_time_timer(self, namespace: Any, timestamp: int) -> None:
        if not self._proc.add(timestamp, self._get_key(), namespace, next(self._seq)):
            return
        if self._proc_scheduled is None or timestamp < self._proc_scheduled:
            self._proc_scheduled = timestamp
            self._pts.register(timestamp, self._on_processing_time)

    def delete_processing_time_timer(self, namespace: Any, timestamp: int) -> None:
        self._proc.discard(timestamp, self._get_key(), namespace)

    # -- firing ----------------------------------------------------------------------

    def advance_watermark(self, watermark: int) -> None:
        self.current_watermark = watermark
        self._fire(self._event, watermark, True)

    def _fire(self, queue: _TimerQueue, time: int, event_time: bool) -> None:
        """Fire the timers of ``queue`` up to ``time``, one at a time: a timer registered
        or deleted by an ``on_timer`` call is seen by the next pop."""
        bound = (time + 1) << _SEQ_BITS  # the places of timestamps <= time are below it
        heap, pairs, namespaces = queue.heap, queue.pairs, queue.namespaces
        by_namespace = queue.by_namespace
        set_key, on_timer, pop = self._set_key, self._on_timer, heapq.heappop
        while heap and heap[0] < bound:
            place = pop(heap)
            pair = pairs.pop(place, None)
            if pair is None:
                continue  # deleted
            ns = namespaces.pop(place)
            by_pair = by_namespace[ns]
            del by_pair[pair]
            if not by_pair:
                del by_namespace[ns]
            ts, key = pair
            set_key(key)
            on_timer(ts, key, ns, event_time)

    def _on_processing_time(self, now: int) -> None:
        if self._proc_scheduled is not None and now < self._proc_scheduled:
            return  # a stale wake-up; the earlier registration is still pending
        self._proc_scheduled = None
        self.fire_processing_timers(now)
        nxt = self._proc.next_timestamp()
        if nxt is not None:
            self._proc_scheduled = nxt
            self._pts.register(nxt, self._on_processing_time)

    def fire_processing_timers(self, now: int) -> None:
        self._fire(self._proc, now, False)

    # -- introspection and snapshots -------------------------------------------------

    def num_event_time_timers(self) -> int:
        return len(self._event)

    def num_processing_time_timers(self) -> int:
        return len(self._proc)

    def snapshot(self) -> dict[str, list[Timer]]:
        return {"event": self._event.ordered(), "processing": self._proc.ordered()}

    def restore(self, timers: dict[str, list[Timer]], keep: Callable[[Any], bool]) -> None:
        for ts, key, ns in timers.get("event", []):
            if keep(key):
                self._event.add(ts, key, ns, next(self._seq))
        for ts, key, ns in timers.get("processing", []):
            if keep(key):
                self._proc.add(ts, key, ns, next(self._seq))
        nxt = self._proc.next_timestamp()
        if nxt is not None:
            self._proc_scheduled = nxt
            self._pts.register(nxt, self._on_processing_time)
