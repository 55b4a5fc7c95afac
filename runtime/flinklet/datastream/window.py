"""Windows, window assigners, triggers and evictors (PyFlink's ``pyflink.datastream.window``).

A window operator groups the records of each key into windows (``TimeWindow``,
``GlobalWindow``, ...) chosen by a ``WindowAssigner``; a ``Trigger`` decides when a window
is evaluated (``FIRE``) and when its contents are dropped (``PURGE``); an optional
``Evictor`` removes elements before or after the window function runs. The semantics are
Flink's, see ``docs/windows.md``::

    from flinklet.common.time import Time
    from flinklet.datastream.window import TumblingEventTimeWindows

    (readings.key_by(lambda r: r[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(5)))
        .reduce(lambda a, b: a if a[2] >= b[2] else b))

Windows are immutable values: they name the state of a window in the keyed state backend
(so they are hashable and picklable). ``TimeWindow`` is a ``tuple`` subclass so that the
per-record dictionary lookups hash it in C.
"""

from __future__ import annotations

import abc
import datetime
import enum
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from flinklet.common.time import Duration, Time, to_millis
from flinklet.datastream.state import (
    ReducingStateDescriptor,
    State,
    StateDescriptor,
    ValueStateDescriptor,
)
from flinklet.errors import ApiUsageError

if TYPE_CHECKING:
    from flinklet.datastream.functions import MetricGroup, RuntimeContext

__all__ = [
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountEvictor",
    "CountSlidingWindowAssigner",
    "CountTrigger",
    "CountTumblingWindowAssigner",
    "CountWindow",
    "DeltaEvictor",
    "DynamicEventTimeSessionWindows",
    "DynamicProcessingTimeSessionWindows",
    "EventTimeSessionWindows",
    "EventTimeTrigger",
    "Evictor",
    "GlobalWindow",
    "GlobalWindows",
    "MergingWindowAssigner",
    "NeverTrigger",
    "ProcessingTimeSessionWindows",
    "ProcessingTimeTrigger",
    "PurgingTrigger",
    "SessionWindowTimeGapExtractor",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "TimeEvictor",
    "TimeWindow",
    "TimestampedValue",
    "Trigger",
    "TriggerResult",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "Window",
    "WindowAssigner",
]

T = TypeVar("T")
W = TypeVar("W", bound="Window")

MAX_TIMESTAMP = 2**63 - 1
"""Java's ``Long.MAX_VALUE``: the end of time (max timestamp of global and count windows)."""

TimeSize = Time | Duration | datetime.timedelta | int


def _millis(size: TimeSize | None) -> int:
    return 0 if size is None else to_millis(size)


# ------------------------------------------------------------------------------ windows


class Window(abc.ABC):
    """A finite bucket of elements; every element of it has a timestamp <= max_timestamp()."""

    __slots__ = ()

    @abc.abstractmethod
    def max_timestamp(self) -> int: ...


class TimeWindow(tuple[int, int], Window):
    """The time interval ``[start, end)``; ``max_timestamp()`` is ``end - 1``.

    It compares and hashes as the tuple ``(start, end)`` (ordering by start, then end).

    >>> TimeWindow(0, 5000).max_timestamp()
    4999
    """

    __slots__ = ()

    def __new__(cls, start: int, end: int) -> TimeWindow:
        return tuple.__new__(cls, (start, end))

    def __getnewargs__(self) -> tuple[int, int]:
        return (self[0], self[1])

    @property
    def start(self) -> int:
        return self[0]

    @property
    def end(self) -> int:
        return self[1]

    def get_start(self) -> int:
        return self[0]

    def get_end(self) -> int:
        return self[1]

    def max_timestamp(self) -> int:
        return self[1] - 1

    def intersects(self, other: TimeWindow) -> bool:
        """Overlapping or touching windows intersect (so sessions a gap apart merge)."""
        return self[0] <= other[1] and self[1] >= other[0]

    def cover(self, other: TimeWindow) -> TimeWindow:
        """The smallest window that contains both windows."""
        return TimeWindow(min(self[0], other[0]), max(self[1], other[1]))

    @staticmethod
    def get_window_start_with_offset(timestamp: int, offset: int, window_size: int) -> int:
        """The start of the window of ``window_size`` (shifted by ``offset``) holding
        ``timestamp``: Flink's ``getWindowStartWithOffset``.

        >>> TimeWindow.get_window_start_with_offset(7, 0, 5)
        5
        """
        return timestamp - (timestamp - offset + window_size) % window_size

    @staticmethod
    def merge_windows(
        windows: Iterable[TimeWindow], callback: MergingWindowAssigner.MergeCallback
    ) -> None:
        """Report every group of intersecting windows (sorted by start) to ``callback``."""
        merged: list[tuple[TimeWindow, list[TimeWindow]]] = []
        current: TimeWindow | None = None
        members: list[TimeWindow] = []
        for candidate in sorted(windows):
            if current is None:
                current, members = candidate, [candidate]
            elif current.intersects(candidate):
                current = current.cover(candidate)
                members.append(candidate)
            else:
                merged.append((current, members))
                current, members = candidate, [candidate]
        if current is not None:
            merged.append((current, members))
        for result, group in merged:
            if len(group) > 1:
                callback.merge(group, result)

    def __repr__(self) -> str:
        return f"TimeWindow(start={self[0]}, end={self[1]})"


class CountWindow(Window):
    """A window identified by a number (count-based assigners)."""

    __slots__ = ("id",)

    def __init__(self, id: int) -> None:
        self.id = id

    def max_timestamp(self) -> int:
        return MAX_TIMESTAMP

    def __eq__(self, other: object) -> bool:
        return type(other) is CountWindow and other.id == self.id

    def __hash__(self) -> int:
        return hash(("CountWindow", self.id))

    def __reduce__(self) -> tuple[type[CountWindow], tuple[int]]:
        return (CountWindow, (self.id,))

    def __repr__(self) -> str:
        return f"CountWindow(id={self.id})"


class GlobalWindow(Window):
    """The single window of ``GlobalWindows``; it never ends on its own."""

    __slots__ = ()
    _instance: GlobalWindow | None = None

    def __new__(cls) -> GlobalWindow:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    @staticmethod
    def get() -> GlobalWindow:
        return GlobalWindow()

    def max_timestamp(self) -> int:
        return MAX_TIMESTAMP

    def __reduce__(self) -> tuple[type[GlobalWindow], tuple[()]]:
        return (GlobalWindow, ())

    def __repr__(self) -> str:
        return "GlobalWindow"


class TimestampedValue(Generic[T]):
    """An element of a window with its timestamp, as evictors see it."""

    __slots__ = ("timestamp", "value")

    def __init__(self, value: T, timestamp: int | None = None) -> None:
        self.value = value
        self.timestamp = timestamp

    def get_value(self) -> T:
        return self.value

    def get_timestamp(self) -> int | None:
        return self.timestamp

    def has_timestamp(self) -> bool:
        return self.timestamp is not None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TimestampedValue)
            and other.value == self.value
            and other.timestamp == self.timestamp
        )

    def __hash__(self) -> int:
        return hash((self.value, self.timestamp))

    def __repr__(self) -> str:
        return f"TimestampedValue({self.value!r}, {self.timestamp!r})"


# ----------------------------------------------------------------------------- triggers


class TriggerResult(enum.Enum):
    """What happens to a window: evaluate it (FIRE) and/or drop its contents (PURGE)."""

    CONTINUE = (False, False)
    FIRE_AND_PURGE = (True, True)
    FIRE = (True, False)
    PURGE = (False, True)

    def is_fire(self) -> bool:
        return bool(self.value[0])

    def is_purge(self) -> bool:
        return bool(self.value[1])


class Trigger(abc.ABC, Generic[T, W]):
    """Decides when a window (of one key) is evaluated and when it is purged.

    Keep no state in the trigger object: it serves all keys and windows. Use
    ``ctx.get_partitioned_state(descriptor)`` (scoped to key and window) and delete that
    state and your timers in ``clear()``. Triggers used with merging (session) assigners
    return True from ``can_merge()`` and implement ``on_merge()``.
    """

    class TriggerContext(abc.ABC):
        """Timers, clocks and per-window state of the window being handled."""

        @abc.abstractmethod
        def get_current_processing_time(self) -> int: ...

        @abc.abstractmethod
        def get_metric_group(self) -> MetricGroup: ...

        @abc.abstractmethod
        def get_current_watermark(self) -> int: ...

        @abc.abstractmethod
        def register_processing_time_timer(self, time: int) -> None: ...

        @abc.abstractmethod
        def register_event_time_timer(self, time: int) -> None: ...

        @abc.abstractmethod
        def delete_processing_time_timer(self, time: int) -> None: ...

        @abc.abstractmethod
        def delete_event_time_timer(self, time: int) -> None: ...

        @abc.abstractmethod
        def get_partitioned_state(self, state_descriptor: StateDescriptor) -> State:
            """State scoped to the current key and window."""

    class OnMergeContext(TriggerContext):
        @abc.abstractmethod
        def merge_partitioned_state(self, state_descriptor: StateDescriptor) -> None:
            """Fold this state of the merged windows into the state of the new window."""

    @abc.abstractmethod
    def on_element(
        self, element: T, timestamp: int, window: W, ctx: Trigger.TriggerContext
    ) -> TriggerResult: ...

    @abc.abstractmethod
    def on_processing_time(
        self, time: int, window: W, ctx: Trigger.TriggerContext
    ) -> TriggerResult: ...

    @abc.abstractmethod
    def on_event_time(self, time: int, window: W, ctx: Trigger.TriggerContext) -> TriggerResult: ...

    def can_merge(self) -> bool:
        return False

    def on_merge(self, window: W, ctx: Trigger.OnMergeContext) -> None:
        raise ApiUsageError(
            f"{type(self).__name__} does not support merging windows; implement can_merge() "
            "and on_merge() to use it with session windows"
        )

    @abc.abstractmethod
    def clear(self, window: W, ctx: Trigger.TriggerContext) -> None:
        """Delete this window's trigger state and timers (the window is being purged)."""

    def __repr__(self) -> str:
        return type(self).__name__


class EventTimeTrigger(Trigger[Any, TimeWindow]):
    """Fires once the watermark passes the end of the window (and at once for elements
    that arrive when it already has, within the allowed lateness)."""

    def on_element(
        self, element: Any, timestamp: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        if window.max_timestamp() <= ctx.get_current_watermark():
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_processing_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.FIRE if time == window.max_timestamp() else TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: TimeWindow, ctx: Trigger.OnMergeContext) -> None:
        if window.max_timestamp() > ctx.get_current_watermark():
            ctx.register_event_time_timer(window.max_timestamp())

    def clear(self, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        ctx.delete_event_time_timer(window.max_timestamp())

    @staticmethod
    def create() -> EventTimeTrigger:
        return EventTimeTrigger()


class ProcessingTimeTrigger(Trigger[Any, TimeWindow]):
    """Fires once the wall clock passes the end of the window."""

    def on_element(
        self, element: Any, timestamp: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        ctx.register_processing_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_processing_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.FIRE

    def on_event_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: TimeWindow, ctx: Trigger.OnMergeContext) -> None:
        if window.max_timestamp() > ctx.get_current_processing_time():
            ctx.register_processing_time_timer(window.max_timestamp())

    def clear(self, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        ctx.delete_processing_time_timer(window.max_timestamp())

    @staticmethod
    def create() -> ProcessingTimeTrigger:
        return ProcessingTimeTrigger()


def _min(a: int, b: int) -> int:
    return a if a <= b else b


class _ContinuousTrigger(Trigger[Any, TimeWindow]):
    """Shared by the continuous triggers: fire every ``interval`` ms (aligned to multiples
    of it) and at the window's end; the next fire time is per-window state."""

    def __init__(self, interval: int) -> None:
        if interval <= 0:
            raise ApiUsageError(f"{type(self).__name__} needs a positive interval, got {interval}")
        self.interval = interval
        self.state_desc = ReducingStateDescriptor("fire-time", _min, None)

    def _register(self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        raise NotImplementedError  # pragma: no cover

    def _schedule(self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        next_fire = min(time + self.interval, window.max_timestamp())
        ctx.get_partitioned_state(self.state_desc).add(next_fire)  # type: ignore[attr-defined]
        self._register(next_fire, window, ctx)

    def _on_timer(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        if time == window.max_timestamp():
            return TriggerResult.FIRE
        state: Any = ctx.get_partitioned_state(self.state_desc)
        if state.get() == time:
            state.clear()
            self._schedule(time, window, ctx)
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: TimeWindow, ctx: Trigger.OnMergeContext) -> None:
        ctx.merge_partitioned_state(self.state_desc)
        next_fire = ctx.get_partitioned_state(self.state_desc).get()  # type: ignore[attr-defined]
        if next_fire is not None:
            self._register(next_fire, window, ctx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.interval})"


class ContinuousEventTimeTrigger(_ContinuousTrigger):
    """Fires every ``interval`` of event time (early results) and at the window's end."""

    @staticmethod
    def of(interval: TimeSize) -> ContinuousEventTimeTrigger:
        return ContinuousEventTimeTrigger(to_millis(interval))

    def _register(self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        ctx.register_event_time_timer(time)

    def on_element(
        self, element: Any, timestamp: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        if window.max_timestamp() <= ctx.get_current_watermark():
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        if ctx.get_partitioned_state(self.state_desc).get() is None:  # type: ignore[attr-defined]
            self._schedule(timestamp - timestamp % self.interval, window, ctx)
        return TriggerResult.CONTINUE

    def on_event_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return self._on_timer(time, window, ctx)

    def on_processing_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def clear(self, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        state: Any = ctx.get_partitioned_state(self.state_desc)
        fire_time = state.get()
        if fire_time is not None:
            ctx.delete_event_time_timer(fire_time)
            state.clear()


class ContinuousProcessingTimeTrigger(_ContinuousTrigger):
    """Fires every ``interval`` of wall-clock time and at the window's end."""

    @staticmethod
    def of(interval: TimeSize) -> ContinuousProcessingTimeTrigger:
        return ContinuousProcessingTimeTrigger(to_millis(interval))

    def _register(self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        ctx.register_processing_time_timer(time)

    def on_element(
        self, element: Any, timestamp: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        if ctx.get_partitioned_state(self.state_desc).get() is None:  # type: ignore[attr-defined]
            now = ctx.get_current_processing_time()
            self._schedule(now - now % self.interval, window, ctx)
        return TriggerResult.CONTINUE

    def on_processing_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return self._on_timer(time, window, ctx)

    def on_event_time(
        self, time: int, window: TimeWindow, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def clear(self, window: TimeWindow, ctx: Trigger.TriggerContext) -> None:
        state: Any = ctx.get_partitioned_state(self.state_desc)
        fire_time = state.get()
        if fire_time is not None:
            ctx.delete_processing_time_timer(fire_time)
            state.clear()


def _add(a: int, b: int) -> int:
    return a + b


class CountTrigger(Trigger[Any, Window]):
    """Fires every ``count`` elements added to the window (the count restarts after each
    firing; the window is not purged — wrap it in ``PurgingTrigger`` for that)."""

    def __init__(self, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise ApiUsageError(f"CountTrigger needs a positive int count, got {count!r}")
        self.count = count
        self.state_desc = ReducingStateDescriptor("count", _add, None)

    @staticmethod
    def of(count: int) -> CountTrigger:
        return CountTrigger(count)

    def on_element(
        self, element: Any, timestamp: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        state: Any = ctx.get_partitioned_state(self.state_desc)
        state.add(1)
        if state.get() >= self.count:
            state.clear()
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_processing_time(
        self, time: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(
        self, time: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: Trigger.OnMergeContext) -> None:
        ctx.merge_partitioned_state(self.state_desc)

    def clear(self, window: Window, ctx: Trigger.TriggerContext) -> None:
        ctx.get_partitioned_state(self.state_desc).clear()

    def __repr__(self) -> str:
        return f"CountTrigger({self.count})"


class PurgingTrigger(Trigger[Any, Window]):
    """Turns every FIRE of the nested trigger into FIRE_AND_PURGE."""

    def __init__(self, nested_trigger: Trigger[Any, Any]) -> None:
        self.nested_trigger = nested_trigger

    @staticmethod
    def of(nested_trigger: Trigger[Any, Any]) -> PurgingTrigger:
        return PurgingTrigger(nested_trigger)

    @staticmethod
    def _purging(result: TriggerResult) -> TriggerResult:
        return TriggerResult.FIRE_AND_PURGE if result.is_fire() else result

    def on_element(
        self, element: Any, timestamp: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return self._purging(self.nested_trigger.on_element(element, timestamp, window, ctx))

    def on_event_time(
        self, time: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return self._purging(self.nested_trigger.on_event_time(time, window, ctx))

    def on_processing_time(
        self, time: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return self._purging(self.nested_trigger.on_processing_time(time, window, ctx))

    def can_merge(self) -> bool:
        return self.nested_trigger.can_merge()

    def on_merge(self, window: Window, ctx: Trigger.OnMergeContext) -> None:
        self.nested_trigger.on_merge(window, ctx)

    def clear(self, window: Window, ctx: Trigger.TriggerContext) -> None:
        self.nested_trigger.clear(window, ctx)

    def __repr__(self) -> str:
        return f"PurgingTrigger({self.nested_trigger!r})"


class NeverTrigger(Trigger[Any, Window]):
    """Never fires: the default of ``GlobalWindows``, which needs a trigger of your own."""

    def on_element(
        self, element: Any, timestamp: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_processing_time(
        self, time: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(
        self, time: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window: Window, ctx: Trigger.OnMergeContext) -> None:
        return None

    def clear(self, window: Window, ctx: Trigger.TriggerContext) -> None:
        return None

    @staticmethod
    def create() -> NeverTrigger:
        return NeverTrigger()


class _EndOfStreamTrigger(NeverTrigger):
    """Fires the global window once, when event time ends (the end of a bounded input)."""

    def on_element(
        self, element: Any, timestamp: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        ctx.register_event_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_event_time(
        self, time: int, window: Window, ctx: Trigger.TriggerContext
    ) -> TriggerResult:
        return TriggerResult.FIRE if time == window.max_timestamp() else TriggerResult.CONTINUE


# ---------------------------------------------------------------------------- assigners


class WindowAssigner(abc.ABC, Generic[T, W]):
    """Assigns each element to zero or more windows."""

    class WindowAssignerContext(abc.ABC):
        @abc.abstractmethod
        def get_current_processing_time(self) -> int: ...

        @abc.abstractmethod
        def get_runtime_context(self) -> RuntimeContext: ...

    @abc.abstractmethod
    def assign_windows(
        self, element: T, timestamp: int, context: WindowAssigner.WindowAssignerContext
    ) -> Collection[W]: ...

    @abc.abstractmethod
    def get_default_trigger(self, env: Any) -> Trigger[T, W]: ...

    @abc.abstractmethod
    def is_event_time(self) -> bool: ...

    def get_window_serializer(self) -> Any:
        """PyFlink compatibility: windows are serialized by the state backend's serializer."""
        return None


class MergingWindowAssigner(WindowAssigner[T, W]):
    """An assigner whose windows can merge (session windows)."""

    class MergeCallback(abc.ABC):
        @abc.abstractmethod
        def merge(self, to_be_merged: Iterable[Any], merge_result: Any) -> None: ...

    @abc.abstractmethod
    def merge_windows(
        self, windows: Iterable[W], callback: MergingWindowAssigner.MergeCallback
    ) -> None: ...


class _TimeWindowAssigner(WindowAssigner[Any, TimeWindow]):
    """Shared by the time-based assigners: event time uses the element's timestamp,
    processing time the subtask's wall clock."""

    _event_time = True

    def get_default_trigger(self, env: Any) -> Trigger[Any, TimeWindow]:
        return EventTimeTrigger() if self._event_time else ProcessingTimeTrigger()

    def is_event_time(self) -> bool:
        return self._event_time


class _TumblingWindows(_TimeWindowAssigner):
    def __init__(self, size: int, offset: int = 0) -> None:
        if size <= 0 or abs(offset) >= size:
            raise ApiUsageError(
                f"{type(self).__name__} parameters must satisfy abs(offset) < size and "
                f"size > 0; got size={size} ms, offset={offset} ms"
            )
        self.size = size
        self.offset = offset

    @classmethod
    def of(cls, size: TimeSize, offset: TimeSize | None = None) -> Self:
        """Windows of ``size``, shifted by ``offset`` (``Time``, ``Duration`` or int ms)."""
        return cls(to_millis(size), _millis(offset))

    def assign_windows(
        self, element: Any, timestamp: int, context: WindowAssigner.WindowAssignerContext
    ) -> list[TimeWindow]:
        if not self._event_time:
            timestamp = context.get_current_processing_time()
        start = timestamp - (timestamp - self.offset + self.size) % self.size
        return [TimeWindow(start, start + self.size)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size}, {self.offset})"


class TumblingEventTimeWindows(_TumblingWindows):
    """Fixed-size, non-overlapping windows of event time, aligned to the epoch + offset.

    ``TumblingEventTimeWindows.of(Time.days(1), Time.hours(-8))`` gives days that start at
    midnight in UTC+8.
    """


class TumblingProcessingTimeWindows(_TumblingWindows):
    """Fixed-size, non-overlapping windows of the wall clock of the subtask."""

    _event_time = False


class _SlidingWindows(_TimeWindowAssigner):
    def __init__(self, size: int, slide: int, offset: int = 0) -> None:
        if size <= 0 or abs(offset) >= slide:
            raise ApiUsageError(
                f"{type(self).__name__} parameters must satisfy abs(offset) < slide and "
                f"size > 0; got size={size} ms, slide={slide} ms, offset={offset} ms"
            )
        self.size = size
        self.slide = slide
        self.offset = offset

    @classmethod
    def of(cls, size: TimeSize, slide: TimeSize, offset: TimeSize | None = None) -> Self:
        """Windows of ``size`` starting every ``slide``, shifted by ``offset``."""
        return cls(to_millis(size), to_millis(slide), _millis(offset))

    def assign_windows(
        self, element: Any, timestamp: int, context: WindowAssigner.WindowAssignerContext
    ) -> list[TimeWindow]:
        if not self._event_time:
            timestamp = context.get_current_processing_time()
        size, slide = self.size, self.slide
        last_start = timestamp - (timestamp - self.offset + slide) % slide
        return [TimeWindow(s, s + size) for s in range(last_start, timestamp - size, -slide)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size}, {self.slide}, {self.offset})"


class SlidingEventTimeWindows(_SlidingWindows):
    """Windows of ``size`` starting every ``slide`` of event time: an element is in
    ``size / slide`` windows (in none if ``slide > size`` and it falls in a gap)."""


class SlidingProcessingTimeWindows(_SlidingWindows):
    """Sliding windows of the wall clock of the subtask."""

    _event_time = False


class SessionWindowTimeGapExtractor(abc.ABC, Generic[T]):
    """Picks the session gap (ms) for each element of a dynamic session window."""

    @abc.abstractmethod
    def extract(self, element: T) -> int: ...


class _SessionWindows(MergingWindowAssigner[Any, TimeWindow], _TimeWindowAssigner):
    """Each element opens the window ``[t, t + gap)``; touching windows merge."""

    def __init__(self, session_gap: int | None = None, extractor: Any = None) -> None:
        self.session_gap = session_gap
        self.extractor = extractor
        self._extract: Callable[[Any], Any] | None = None
        if extractor is not None:
            method = getattr(extractor, "extract", extractor)
            if not callable(method):
                raise ApiUsageError(
                    "with_dynamic_gap() expects a SessionWindowTimeGapExtractor or a callable "
                    f"element -> gap in ms, got {type(extractor).__name__}"
                )
            self._extract = method
        elif session_gap is None or session_gap <= 0:
            raise ApiUsageError(
                f"{type(self).__name__} parameters must satisfy 0 < gap; got {session_gap} ms"
            )

    def assign_windows(
        self, element: Any, timestamp: int, context: WindowAssigner.WindowAssignerContext
    ) -> list[TimeWindow]:
        if not self._event_time:
            timestamp = context.get_current_processing_time()
        if self._extract is None:
            return [TimeWindow(timestamp, timestamp + self.session_gap)]  # type: ignore[operator]
        gap = to_millis(self._extract(element))
        if gap <= 0:
            raise ApiUsageError(
                f"Dynamic session time gap must satisfy 0 < gap; the extractor returned {gap} "
                f"for {element!r}"
            )
        return [TimeWindow(timestamp, timestamp + gap)]

    def merge_windows(
        self, windows: Iterable[TimeWindow], callback: MergingWindowAssigner.MergeCallback
    ) -> None:
        TimeWindow.merge_windows(windows, callback)

    def __repr__(self) -> str:
        gap = self.extractor if self._extract is not None else self.session_gap
        return f"{type(self).__name__}({gap!r})"


class DynamicEventTimeSessionWindows(_SessionWindows):
    """Sessions of event time whose gap is chosen per element."""

    def __init__(self, extractor: Any) -> None:
        super().__init__(None, extractor)

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> DynamicEventTimeSessionWindows:
        return DynamicEventTimeSessionWindows(extractor)


class DynamicProcessingTimeSessionWindows(_SessionWindows):
    """Sessions of wall-clock time whose gap is chosen per element."""

    _event_time = False

    def __init__(self, extractor: Any) -> None:
        super().__init__(None, extractor)

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> DynamicProcessingTimeSessionWindows:
        return DynamicProcessingTimeSessionWindows(extractor)


class EventTimeSessionWindows(_SessionWindows):
    """Sessions of event time: a session ends after ``gap`` without elements of its key.

    ``with_dynamic_gap(extractor)`` takes the gap from each element instead.
    """

    def __init__(self, session_gap: int) -> None:
        super().__init__(session_gap)

    @staticmethod
    def with_gap(size: TimeSize) -> EventTimeSessionWindows:
        return EventTimeSessionWindows(to_millis(size))

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> DynamicEventTimeSessionWindows:
        return DynamicEventTimeSessionWindows(extractor)


class ProcessingTimeSessionWindows(_SessionWindows):
    """Sessions of wall-clock time: a session ends after ``gap`` without elements."""

    _event_time = False

    def __init__(self, session_gap: int) -> None:
        super().__init__(session_gap)

    @staticmethod
    def with_gap(size: TimeSize) -> ProcessingTimeSessionWindows:
        return ProcessingTimeSessionWindows(to_millis(size))

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> DynamicProcessingTimeSessionWindows:
        return DynamicProcessingTimeSessionWindows(extractor)


class GlobalWindows(WindowAssigner[Any, GlobalWindow]):
    """Every element goes to the one ``GlobalWindow``; bring a trigger (the default never
    fires) and usually an evictor."""

    def __init__(self, trigger: Trigger[Any, Any] | None = None) -> None:
        self._trigger = trigger

    @staticmethod
    def create() -> GlobalWindows:
        return GlobalWindows()

    @staticmethod
    def create_with_end_of_stream_trigger() -> GlobalWindows:
        """Global windows whose default trigger fires once, at the end of a bounded input."""
        return GlobalWindows(_EndOfStreamTrigger())

    def assign_windows(
        self, element: Any, timestamp: int, context: WindowAssigner.WindowAssignerContext
    ) -> list[GlobalWindow]:
        return [GlobalWindow()]

    def get_default_trigger(self, env: Any) -> Trigger[Any, Any]:
        return self._trigger if self._trigger is not None else NeverTrigger()

    def is_event_time(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "GlobalWindows()"


class CountTumblingWindowAssigner(WindowAssigner[Any, CountWindow]):
    """PyFlink's count windows: element ``n`` of a key goes to ``CountWindow(n // size)``."""

    def __init__(self, window_size: int, window_slide: int | None = None) -> None:
        slide = window_size if window_slide is None else window_slide
        if window_size <= 0 or slide <= 0:
            raise ApiUsageError(
                f"count windows need a positive size and slide, got {window_size}, {slide}"
            )
        self.size = window_size
        self.slide = slide
        self._count = ValueStateDescriptor(f"count-assigner-{window_size}-{slide}", None)

    @staticmethod
    def of(window_size: int) -> CountTumblingWindowAssigner:
        return CountTumblingWindowAssigner(window_size)

    def assign_windows(
        self, element: Any, timestamp: int, context: WindowAssigner.WindowAssignerContext
    ) -> list[CountWindow]:
        state = context.get_runtime_context().get_state(self._count)
        n = state.value() or 0
        state.update(n + 1)
        size, slide = self.size, self.slide
        last = n // slide
        return [CountWindow(i) for i in range(last, -1, -1) if i * slide <= n < i * slide + size]

    def get_default_trigger(self, env: Any) -> Trigger[Any, Any]:
        # each count window gets exactly ``size`` elements: fire and drop it then
        return PurgingTrigger(CountTrigger(self.size))

    def is_event_time(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size}, {self.slide})"


class CountSlidingWindowAssigner(CountTumblingWindowAssigner):
    """PyFlink's sliding count windows: ``CountWindow(i)`` holds elements
    ``[i * slide, i * slide + size)`` of the key."""

    @staticmethod
    def of(window_size: int, window_slide: int) -> CountSlidingWindowAssigner:  # type: ignore[override]
        return CountSlidingWindowAssigner(window_size, window_slide)


# ----------------------------------------------------------------------------- evictors


class Evictor(abc.ABC, Generic[T, W]):
    """Removes elements from a window before and/or after the window function runs.

    ``elements`` is a list of ``TimestampedValue`` in insertion order; evict by mutating
    it in place (``del elements[:n]``, ``elements[:] = kept``).
    """

    class EvictorContext(abc.ABC):
        @abc.abstractmethod
        def get_current_processing_time(self) -> int: ...

        @abc.abstractmethod
        def get_metric_group(self) -> MetricGroup: ...

        @abc.abstractmethod
        def get_current_watermark(self) -> int: ...

    @abc.abstractmethod
    def evict_before(
        self,
        elements: list[TimestampedValue[T]],
        size: int,
        window: W,
        evictor_context: Evictor.EvictorContext,
    ) -> None: ...

    @abc.abstractmethod
    def evict_after(
        self,
        elements: list[TimestampedValue[T]],
        size: int,
        window: W,
        evictor_context: Evictor.EvictorContext,
    ) -> None: ...


class _PositionedEvictor(Evictor[Any, Any]):
    """Runs ``_evict`` before the window function, or after it if ``do_evict_after``."""

    def __init__(self, do_evict_after: bool) -> None:
        self.do_evict_after = do_evict_after

    def _evict(self, elements: list[TimestampedValue[Any]], size: int) -> None:
        raise NotImplementedError  # pragma: no cover

    def evict_before(
        self,
        elements: list[TimestampedValue[Any]],
        size: int,
        window: Any,
        evictor_context: Evictor.EvictorContext,
    ) -> None:
        if not self.do_evict_after:
            self._evict(elements, size)

    def evict_after(
        self,
        elements: list[TimestampedValue[Any]],
        size: int,
        window: Any,
        evictor_context: Evictor.EvictorContext,
    ) -> None:
        if self.do_evict_after:
            self._evict(elements, size)


class CountEvictor(_PositionedEvictor):
    """Keeps the ``max_count`` most recently added elements."""

    def __init__(self, max_count: int, do_evict_after: bool = False) -> None:
        super().__init__(do_evict_after)
        if max_count < 0:
            raise ApiUsageError(f"CountEvictor needs max_count >= 0, got {max_count}")
        self.max_count = max_count

    @staticmethod
    def of(max_count: int, do_evict_after: bool = False) -> CountEvictor:
        return CountEvictor(max_count, do_evict_after)

    def _evict(self, elements: list[TimestampedValue[Any]], size: int) -> None:
        if size > self.max_count:
            del elements[: size - self.max_count]

    def __repr__(self) -> str:
        return f"CountEvictor({self.max_count})"


class TimeEvictor(_PositionedEvictor):
    """Keeps the elements whose timestamp is within ``window_size`` of the newest one."""

    def __init__(self, window_size: int, do_evict_after: bool = False) -> None:
        super().__init__(do_evict_after)
        self.window_size = window_size

    @staticmethod
    def of(window_size: TimeSize, do_evict_after: bool = False) -> TimeEvictor:
        return TimeEvictor(to_millis(window_size), do_evict_after)

    def _evict(self, elements: list[TimestampedValue[Any]], size: int) -> None:
        if not elements or elements[0].timestamp is None:
            return  # processing-time elements carry no timestamps: nothing to compare
        newest = max(e.timestamp for e in elements if e.timestamp is not None)
        cutoff = newest - self.window_size
        elements[:] = [e for e in elements if e.timestamp is None or e.timestamp > cutoff]

    def __repr__(self) -> str:
        return f"TimeEvictor({self.window_size})"


class DeltaEvictor(_PositionedEvictor):
    """Keeps the elements whose delta to the last element is below ``threshold``;
    ``delta_function(a, b)`` (or an object with ``get_delta``) measures it."""

    def __init__(self, threshold: float, delta_function: Any, do_evict_after: bool = False) -> None:
        super().__init__(do_evict_after)
        self.threshold = threshold
        self._delta: Callable[[Any, Any], float] = getattr(
            delta_function, "get_delta", delta_function
        )

    @staticmethod
    def of(threshold: float, delta_function: Any, do_evict_after: bool = False) -> DeltaEvictor:
        return DeltaEvictor(threshold, delta_function, do_evict_after)

    def _evict(self, elements: list[TimestampedValue[Any]], size: int) -> None:
        if not elements:
            return
        last = elements[-1].value
        delta, threshold = self._delta, self.threshold
        elements[:] = [e for e in elements if delta(e.value, last) < threshold]

    def __repr__(self) -> str:
        return f"DeltaEvictor({self.threshold})"
