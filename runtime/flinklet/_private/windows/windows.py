"""Windows: the buckets a window operator groups elements into, named by value.

A window names its contents in the keyed state backend, so windows are hashable and
picklable. Their classes say ``__module__ = "flinklet.datastream.window"``: the pickled
namespace bytes (RocksDB keys, snapshots) name the public module, and stay the same
wherever the classes are defined.
"""

from __future__ import annotations

import abc
import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

from flinklet.common.time import Duration, Time, to_millis

if TYPE_CHECKING:
    from flinklet._private.windows.assigners import MergingWindowAssigner

__all__ = [
    "MAX_TIMESTAMP",
    "PUBLIC_MODULE",
    "CountWindow",
    "GlobalWindow",
    "TimeSize",
    "TimeWindow",
    "TimestampedValue",
    "Window",
    "millis",
]

T = TypeVar("T")

PUBLIC_MODULE = "flinklet.datastream.window"
"""Where users import these classes from, and the module their pickles name."""

MAX_TIMESTAMP = 2**63 - 1
"""Java's ``Long.MAX_VALUE``: the end of time (max timestamp of global and count windows)."""

TimeSize = Time | Duration | datetime.timedelta | int


def millis(size: TimeSize | None) -> int:
    return 0 if size is None else to_millis(size)


class Window(abc.ABC):
    """A finite bucket of elements; every element of it has a timestamp <= max_timestamp()."""

    __module__ = PUBLIC_MODULE
    __slots__ = ()

    @abc.abstractmethod
    def max_timestamp(self) -> int: ...


class TimeWindow(tuple[int, int], Window):
    """The time interval ``[start, end)``; ``max_timestamp()`` is ``end - 1``.

    It compares and hashes as the tuple ``(start, end)`` (ordering by start, then end).

    >>> TimeWindow(0, 5000).max_timestamp()
    4999
    """

    __module__ = PUBLIC_MODULE
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

    __module__ = PUBLIC_MODULE
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

    __module__ = PUBLIC_MODULE
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

    __module__ = PUBLIC_MODULE
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
