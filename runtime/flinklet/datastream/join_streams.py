"""Joins of two streams: window joins and co-groups, and the interval join.

A window join (``a.join(b).where(ka).equal_to(kb).window(assigner).apply(fn)``) is built
as Flink builds it: both inputs are tagged and united, keyed by their join key, put into
common windows, and a window function co-groups each window's elements by input; a join
calls ``fn(first, second)`` for every pair (an inner join, nested loop), a co-group calls
``co_group(firsts, seconds)`` once per key and window. Results carry the window's
``max_timestamp()``.

The interval join (``a.key_by(ka).interval_join(b.key_by(kb)).between(lower,
upper).process(fn)``) pairs elements of the same key whose timestamps satisfy
``a.ts + lower <= b.ts <= a.ts + upper``; each pair is emitted with the larger of the two
timestamps. It needs event time on both inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Self

from flinklet._private.exec.interval_join import IntervalJoinOperator
from flinklet._private.exec.operators import user_method
from flinklet.common.time import to_millis
from flinklet.datastream.data_stream import ConnectedStreams, DataStream, KeyedStream
from flinklet.datastream.functions import Function, RuntimeContext, WindowFunction
from flinklet.datastream.output_tag import OutputTag
from flinklet.datastream.window import Evictor, Trigger, WindowAssigner
from flinklet.datastream.window_streams import WindowedStream
from flinklet.errors import ApiUsageError

__all__ = [
    "CoGroupedStreams",
    "EqualTo",
    "IntervalJoin",
    "IntervalJoined",
    "JoinedStreams",
    "Where",
    "WithWindow",
]


def _selector(key_selector: Any, api: str) -> Callable[[Any], Any]:
    return user_method(key_selector, "get_key", api, "KeySelector")


def _tag_first(value: Any) -> tuple[int, Any]:
    return (0, value)


def _tag_second(value: Any) -> tuple[int, Any]:
    return (1, value)


class _UnionKeySelector:
    """Keys a tagged element with the key selector of the input it came from."""

    __slots__ = ("_first", "_second")

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any], Any]) -> None:
        self._first = first
        self._second = second

    def __call__(self, tagged: tuple[int, Any]) -> Any:
        return self._first(tagged[1]) if tagged[0] == 0 else self._second(tagged[1])


class _CoGroupWindowFunction(WindowFunction[Any, Any, Any, Any]):
    """Splits a window's tagged elements by input and hands both lists to the user."""

    def __init__(self, fn: Any, join: bool) -> None:
        self.fn = fn
        self.join = join
        if join:
            self._call = user_method(fn, "join", "apply", "JoinFunction")
        else:
            self._call = user_method(fn, "co_group", "apply", "CoGroupFunction")

    def open(self, runtime_context: RuntimeContext) -> None:
        if isinstance(self.fn, Function):
            self.fn.open(runtime_context)

    def close(self) -> None:
        if isinstance(self.fn, Function):
            self.fn.close()

    def apply(self, key: Any, window: Any, inputs: Iterable[Any]) -> Iterable[Any]:
        first: list[Any] = []
        second: list[Any] = []
        for tag, value in inputs:
            (first if tag == 0 else second).append(value)
        call = self._call
        if not self.join:
            return call(first, second) or ()
        return [call(a, b) for a in first for b in second]


class WithWindow:
    """A window join or co-group with its window assigner; finish it with ``apply``."""

    def __init__(
        self,
        input1: DataStream[Any],
        input2: DataStream[Any],
        key1: Callable[[Any], Any],
        key2: Callable[[Any], Any],
        window_assigner: WindowAssigner[Any, Any],
        join: bool,
    ) -> None:
        self._inputs = (input1, input2)
        self._keys = (key1, key2)
        self._join = join
        tagged = input1.map(_tag_first).union(input2.map(_tag_second))
        keyed = tagged.key_by(_UnionKeySelector(key1, key2))
        self._windowed: WindowedStream[Any] = WindowedStream(keyed, window_assigner)

    def trigger(self, trigger: Trigger[Any, Any]) -> Self:
        """The trigger sees the tagged elements ``(0, first)`` / ``(1, second)``."""
        self._windowed.trigger(trigger)
        return self

    def evictor(self, evictor: Evictor[Any, Any]) -> Self:
        """The evictor sees the tagged elements ``(0, first)`` / ``(1, second)``."""
        self._windowed.evictor(evictor)
        return self

    def allowed_lateness(self, time: Any) -> Self:
        self._windowed.allowed_lateness(time)
        return self

    def apply(self, function: Any, output_type: Any = None) -> DataStream[Any]:
        """Join: ``function.join(first, second)`` (or a callable) per pair of the window.
        Co-group: ``function.co_group(firsts, seconds)`` (or a callable) per window."""
        return self._windowed.apply(_CoGroupWindowFunction(function, self._join), output_type)


class EqualTo:
    def __init__(
        self,
        input1: DataStream[Any],
        input2: DataStream[Any],
        key1: Callable[[Any], Any],
        key2: Callable[[Any], Any],
        join: bool,
    ) -> None:
        self._args = (input1, input2, key1, key2)
        self._join = join

    def window(self, assigner: WindowAssigner[Any, Any]) -> WithWindow:
        return WithWindow(*self._args, assigner, self._join)


class Where:
    def __init__(
        self, input1: DataStream[Any], input2: DataStream[Any], key1: Any, join: bool
    ) -> None:
        self._input1 = input1
        self._input2 = input2
        self._key1 = _selector(key1, "where")
        self._join = join

    def equal_to(self, key_selector: Any, key_type: Any = None) -> EqualTo:
        """The join key of the second input (it must equal the first input's key)."""
        key2 = _selector(key_selector, "equal_to")
        return EqualTo(self._input1, self._input2, self._key1, key2, self._join)


class JoinedStreams:
    """``first.join(second)``: an inner join of two streams per key and window."""

    _join = True

    def __init__(self, input1: DataStream[Any], input2: DataStream[Any]) -> None:
        if not isinstance(input2, DataStream):
            raise ApiUsageError(
                f"join()/co_group() takes a DataStream, got {type(input2).__name__}"
            )
        self.input1 = input1
        self.input2 = input2

    def where(self, key_selector: Any, key_type: Any = None) -> Where:
        """The join key of the first input."""
        return Where(self.input1, self.input2, key_selector, self._join)


class CoGroupedStreams(JoinedStreams):
    """``first.co_group(second)``: both inputs' elements per key and window, together."""

    _join = False


# ----------------------------------------------------------------------- interval join


class IntervalJoined:
    """An interval join with its bounds; finish it with ``process``."""

    def __init__(
        self, left: KeyedStream[Any], right: KeyedStream[Any], lower: int, upper: int
    ) -> None:
        self._left = left
        self._right = right
        self._lower = lower
        self._upper = upper
        self._lower_exclusive = False
        self._upper_exclusive = False
        self._left_late: OutputTag | None = None
        self._right_late: OutputTag | None = None

    def lower_bound_exclusive(self) -> Self:
        """Exclude pairs exactly at the lower bound (``b.ts > a.ts + lower``)."""
        self._lower_exclusive = True
        return self

    def upper_bound_exclusive(self) -> Self:
        """Exclude pairs exactly at the upper bound (``b.ts < a.ts + upper``)."""
        self._upper_exclusive = True
        return self

    def side_output_left_late_data(self, output_tag: OutputTag) -> Self:
        """Send left elements older than the watermark to ``output_tag``."""
        self._left_late = output_tag
        return self

    def side_output_right_late_data(self, output_tag: OutputTag) -> Self:
        """Send right elements older than the watermark to ``output_tag``."""
        self._right_late = output_tag
        return self

    def process(self, process_join_function: Any, output_type: Any = None) -> DataStream[Any]:
        """Call ``process_element(left, right, ctx)`` of a ``ProcessJoinFunction`` (or a
        callable) for every joined pair; it yields the results."""
        user_method(process_join_function, "process_element", "process", "ProcessJoinFunction")
        k1 = self._left.get_key_selector()
        k2 = self._right.get_key_selector()
        args = (
            process_join_function,
            k1,
            k2,
            self._lower,
            self._upper,
            self._lower_exclusive,
            self._upper_exclusive,
            self._left_late,
            self._right_late,
        )
        return ConnectedStreams(self._left, self._right)._two_input(
            "IntervalJoin", lambda: IntervalJoinOperator(*args), output_type
        )


class IntervalJoin:
    """``left.interval_join(right)`` on two keyed streams; set the bounds with ``between``."""

    def __init__(self, left: KeyedStream[Any], right: KeyedStream[Any]) -> None:
        if not isinstance(left, KeyedStream) or not isinstance(right, KeyedStream):
            raise ApiUsageError(
                "interval_join() joins two KeyedStreams: key both inputs, e.g. "
                "a.key_by(ka).interval_join(b.key_by(kb))"
            )
        self._left = left
        self._right = right

    def in_event_time(self) -> Self:
        return self

    def in_processing_time(self) -> Self:
        raise ApiUsageError(
            "Interval joins are only supported in event time: assign timestamps and "
            "watermarks to both inputs and keep the default in_event_time()"
        )

    def between(self, lower_bound: Any, upper_bound: Any) -> IntervalJoined:
        """Join ``a`` with ``b`` when ``a.ts + lower_bound <= b.ts <= a.ts + upper_bound``
        (``Time``, ``Duration`` or int ms; bounds may be negative)."""
        lower, upper = to_millis(lower_bound), to_millis(upper_bound)
        if lower > upper:
            raise ApiUsageError(
                f"lowerBound <= upperBound must be fulfilled; got lower={lower} ms, "
                f"upper={upper} ms"
            )
        return IntervalJoined(self._left, self._right, lower, upper)
