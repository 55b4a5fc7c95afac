"""Evictors: remove elements from a window before and/or after its function runs."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from flinklet._private.windows.windows import PUBLIC_MODULE, TimeSize, TimestampedValue, Window
from flinklet.common.time import to_millis
from flinklet.errors import ApiUsageError

if TYPE_CHECKING:
    from flinklet.datastream.functions import MetricGroup

__all__ = ["CountEvictor", "DeltaEvictor", "Evictor", "TimeEvictor"]

T = TypeVar("T")
W = TypeVar("W", bound=Window)


class Evictor(abc.ABC, Generic[T, W]):
    """Removes elements from a window before and/or after the window function runs.

    ``elements`` is a list of ``TimestampedValue`` in insertion order; evict by mutating
    it in place (``del elements[:n]``, ``elements[:] = kept``).
    """

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

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

    __module__ = PUBLIC_MODULE

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
