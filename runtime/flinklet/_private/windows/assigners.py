"""Window assigners: the windows each element belongs to, and their default trigger."""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from flinklet._private.windows.triggers import (
    CountTrigger,
    EndOfStreamTrigger,
    EventTimeTrigger,
    NeverTrigger,
    ProcessingTimeTrigger,
    PurgingTrigger,
    Trigger,
)
from flinklet._private.windows.windows import (
    PUBLIC_MODULE,
    CountWindow,
    GlobalWindow,
    TimeSize,
    TimeWindow,
    Window,
    millis,
)
from flinklet.common.time import to_millis
from flinklet.datastream.state import ValueStateDescriptor
from flinklet.errors import ApiUsageError

if TYPE_CHECKING:
    from flinklet.datastream.functions import RuntimeContext

T = TypeVar("T")
W = TypeVar("W", bound=Window)


class WindowAssigner(abc.ABC, Generic[T, W]):
    """Assigns each element to zero or more windows."""

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

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
        return cls(to_millis(size), millis(offset))

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

    __module__ = PUBLIC_MODULE


class TumblingProcessingTimeWindows(_TumblingWindows):
    """Fixed-size, non-overlapping windows of the wall clock of the subtask."""

    __module__ = PUBLIC_MODULE

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
        return cls(to_millis(size), to_millis(slide), millis(offset))

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

    __module__ = PUBLIC_MODULE


class SlidingProcessingTimeWindows(_SlidingWindows):
    """Sliding windows of the wall clock of the subtask."""

    __module__ = PUBLIC_MODULE

    _event_time = False


class SessionWindowTimeGapExtractor(abc.ABC, Generic[T]):
    """Picks the session gap (ms) for each element of a dynamic session window."""

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

    def __init__(self, extractor: Any) -> None:
        super().__init__(None, extractor)

    @staticmethod
    def with_dynamic_gap(extractor: Any) -> DynamicEventTimeSessionWindows:
        return DynamicEventTimeSessionWindows(extractor)


class DynamicProcessingTimeSessionWindows(_SessionWindows):
    """Sessions of wall-clock time whose gap is chosen per element."""

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

    def __init__(self, trigger: Trigger[Any, Any] | None = None) -> None:
        self._trigger = trigger

    @staticmethod
    def create() -> GlobalWindows:
        return GlobalWindows()

    @staticmethod
    def create_with_end_of_stream_trigger() -> GlobalWindows:
        """Global windows whose default trigger fires once, at the end of a bounded input."""
        return GlobalWindows(EndOfStreamTrigger())

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

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

    @staticmethod
    def of(window_size: int, window_slide: int) -> CountSlidingWindowAssigner:  # type: ignore[override]
        return CountSlidingWindowAssigner(window_size, window_slide)


# ------------------------------------------------------------------ the operator's cache

Span = tuple[tuple[TimeWindow, ...], int, int]
"""The windows of a timestamp, and the range ``[lo, hi)`` of timestamps with just these."""


def _tumbling_span(size: int, offset: int) -> Callable[[int], Span]:
    def span(timestamp: int) -> Span:
        start = timestamp - (timestamp - offset + size) % size
        return (TimeWindow(start, start + size),), start, start + size

    return span


def _sliding_span(size: int, slide: int, offset: int) -> Callable[[int], Span]:
    def span(timestamp: int) -> Span:
        last_start = timestamp - (timestamp - offset + slide) % slide
        windows = tuple(
            TimeWindow(s, s + size) for s in range(last_start, timestamp - size, -slide)
        )
        # window ``s`` holds ``t`` iff ``s <= t < s + size``: the oldest one held bounds the
        # range from above, the next older one (not held) from below
        oldest = last_start - (len(windows) - 1) * slide
        lo = max(last_start, oldest - slide + size)
        hi = min(last_start + slide, oldest + size) if windows else last_start + slide
        return windows, lo, hi

    return span


def window_span(assigner: WindowAssigner[Any, Any]) -> Callable[[int], Span] | None:
    """``span(timestamp)`` for an event-time tumbling or sliding assigner, else None.

    The window operator asks for the windows of a timestamp only when it leaves the range
    of the previous answer: records come in roughly increasing time, so most reuse the
    windows (and what the operator derived from them) of the record before.

    >>> windows, lo, hi = window_span(TumblingEventTimeWindows.of(10))(23)
    >>> windows, lo, hi
    ((TimeWindow(start=20, end=30),), 20, 30)
    """
    if not assigner.is_event_time():
        return None  # processing time: the windows depend on the clock, not the timestamp
    method = type(assigner).assign_windows
    if method is _TumblingWindows.assign_windows and isinstance(assigner, _TumblingWindows):
        return _tumbling_span(assigner.size, assigner.offset)
    if method is _SlidingWindows.assign_windows and isinstance(assigner, _SlidingWindows):
        return _sliding_span(assigner.size, assigner.slide, assigner.offset)
    return None
