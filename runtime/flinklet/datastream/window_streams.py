"""``WindowedStream`` and ``AllWindowedStream``: configure a window operator, then give it
its function (PyFlink's ``pyflink.datastream.data_stream`` window classes).

``KeyedStream.window(assigner)`` windows each key separately and in parallel;
``DataStream.window_all(assigner)`` windows the whole stream in one subtask (it keys every
record by one constant, as Flink does). ``trigger``, ``evictor``, ``allowed_lateness`` and
``side_output_late_data`` configure the operator; ``reduce``, ``aggregate``, ``process``
and ``apply`` finish it::

    (readings.key_by(lambda r: r.sensor_id)
        .window(TumblingEventTimeWindows.of(Time.seconds(5)))
        .allowed_lateness(Time.seconds(2))
        .side_output_late_data(late_readings)
        .aggregate(AverageTemperature(), window_function=AddWindowEnd()))

Every emitted record carries the timestamp ``window.max_timestamp()`` (end - 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from flinklet._private.exec.keyed import (
    max_by_function,
    max_function,
    min_by_function,
    min_function,
    sum_function,
)
from flinklet._private.exec.operators import user_method
from flinklet._private.exec.windowing import (
    ALL_APPLY,
    ALL_PROCESS,
    APPLY,
    PASS_THROUGH,
    PROCESS,
    WindowOperator,
    WindowSpec,
    window_call,
)
from flinklet.common.time import to_millis
from flinklet.datastream.data_stream import DataStream, KeyedStream
from flinklet.datastream.output_tag import OutputTag
from flinklet.datastream.window import (
    CountEvictor,
    CountTrigger,
    Evictor,
    GlobalWindows,
    MergingWindowAssigner,
    PurgingTrigger,
    Trigger,
    WindowAssigner,
)
from flinklet.errors import ApiUsageError

if TYPE_CHECKING:
    from flinklet.datastream.stream_execution_environment import StreamExecutionEnvironment

T = TypeVar("T")

__all__ = ["AllWindowedStream", "WindowedStream", "count_window"]


def _all_windows_key(value: Any) -> int:
    """The one key of ``window_all``: every record goes to the same (only) subtask."""
    return 0


def _function_name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


class _WindowedBase(Generic[T]):
    """What keyed and non-keyed windowed streams share: the operator's configuration."""

    _all = False

    def __init__(self, stream: DataStream[T], window_assigner: WindowAssigner[Any, Any]) -> None:
        if not callable(getattr(window_assigner, "assign_windows", None)):
            raise ApiUsageError(
                f"window() expects a WindowAssigner (e.g. TumblingEventTimeWindows.of("
                f"Time.seconds(5))), got {type(window_assigner).__name__}"
            )
        self._stream = stream
        self._assigner = window_assigner
        self._trigger: Trigger[Any, Any] = window_assigner.get_default_trigger(
            stream.get_execution_environment()
        )
        self._evictor: Evictor[Any, Any] | None = None
        self._lateness = 0
        self._late_tag: OutputTag | None = None

    def get_execution_environment(self) -> StreamExecutionEnvironment:
        return self._stream.get_execution_environment()

    def get_input_type(self) -> Any:
        return self._stream.get_type()

    # -- configuration -------------------------------------------------------------------

    def trigger(self, trigger: Trigger[Any, Any]) -> Self:
        """Replace the assigner's default trigger (it does not add to it)."""
        if not callable(getattr(trigger, "on_element", None)):
            raise ApiUsageError(f"trigger() expects a Trigger, got {type(trigger).__name__}")
        if isinstance(self._assigner, MergingWindowAssigner) and not trigger.can_merge():
            raise ApiUsageError(
                f"A merging window assigner ({self._assigner!r}) cannot be used with a trigger "
                f"that does not support merging ({trigger!r}): implement can_merge() and "
                "on_merge() in the trigger"
            )
        self._trigger = trigger
        return self

    def evictor(self, evictor: Evictor[Any, Any]) -> Self:
        """Remove elements before/after the window function; the window then keeps all its
        elements (a reduce or aggregate function runs when it fires)."""
        if not callable(getattr(evictor, "evict_before", None)):
            raise ApiUsageError(f"evictor() expects an Evictor, got {type(evictor).__name__}")
        self._evictor = evictor
        return self

    def allowed_lateness(self, time: Any) -> Self:
        """Keep event-time windows (and fire again) for elements up to ``time`` late
        (``Time``, ``Duration`` or int ms)."""
        lateness = to_millis(time)
        if lateness < 0:
            raise ApiUsageError(f"The allowed lateness cannot be negative, got {lateness} ms")
        self._lateness = lateness
        return self

    def side_output_late_data(self, output_tag: OutputTag) -> Self:
        """Send elements too late for every window to ``output_tag`` instead of dropping
        them; read them with ``get_side_output(output_tag)`` on the result."""
        if not isinstance(output_tag, OutputTag):
            raise ApiUsageError("side_output_late_data() takes an OutputTag")
        self._late_tag = output_tag
        return self

    # -- building ------------------------------------------------------------------------

    def _kind(self, process: bool) -> str:
        if process:
            return ALL_PROCESS if self._all else PROCESS
        return ALL_APPLY if self._all else APPLY

    def _window_function_kind(self, fn: Any) -> str:
        """A second function given to reduce/aggregate: process() or apply() style."""
        if callable(getattr(fn, "process", None)):
            return self._kind(True)
        if callable(getattr(fn, "apply", None)) or callable(fn):
            return self._kind(False)
        raise ApiUsageError(
            "window_function must be a ProcessWindowFunction, a WindowFunction or a callable "
            f"(key, window, inputs) -> iterable, got {type(fn).__name__}"
        )

    def _build(self, description: str, output_type: Any, **functions: Any) -> DataStream[Any]:
        spec = WindowSpec(
            assigner=self._assigner,
            trigger=self._trigger,
            evictor=self._evictor,
            allowed_lateness=self._lateness,
            late_tag=self._late_tag,
            **functions,
        )
        window_call(spec.function_kind, spec.window_function)  # fail now, not at run time
        kind = "AllWindow" if self._all else "Window"
        evictor = f", {self._evictor!r}" if self._evictor is not None else ""
        name = f"{kind}({self._assigner!r}, {type(self._trigger).__name__}{evictor}, {description})"
        return self._transform(name, spec, output_type)

    def _transform(self, name: str, spec: WindowSpec, output_type: Any) -> DataStream[Any]:
        raise NotImplementedError  # pragma: no cover

    # -- window functions ----------------------------------------------------------------

    def reduce(
        self, reduce_function: Any, window_function: Any = None, output_type: Any = None
    ) -> DataStream[Any]:
        """Combine the elements of each window incrementally with ``reduce_function``
        (``ReduceFunction`` or ``(a, b) -> c``); with ``window_function`` (a
        ``ProcessWindowFunction`` or ``WindowFunction``) the reduced value is handed to it."""
        user_method(reduce_function, "reduce", "reduce", "ReduceFunction")
        kind = PASS_THROUGH
        if window_function is not None:
            kind = self._window_function_kind(window_function)
        if output_type is None and window_function is None:
            output_type = self.get_input_type()
        return self._build(
            _function_name(reduce_function),
            output_type,
            reduce_function=reduce_function,
            window_function=window_function,
            function_kind=kind,
        )

    def aggregate(
        self,
        aggregate_function: Any,
        window_function: Any = None,
        accumulator_type: Any = None,
        output_type: Any = None,
    ) -> DataStream[Any]:
        """Aggregate each window incrementally with an ``AggregateFunction``; with
        ``window_function`` its result is handed to that function."""
        missing = [
            method
            for method in ("create_accumulator", "add", "get_result")
            if not callable(getattr(aggregate_function, method, None))
        ]
        if missing:
            raise ApiUsageError(
                f"aggregate() expects an AggregateFunction; {type(aggregate_function).__name__} "
                f"has no {', '.join(missing)}()"
            )
        kind = PASS_THROUGH
        if window_function is not None:
            kind = self._window_function_kind(window_function)
        return self._build(
            type(aggregate_function).__name__,
            output_type,
            aggregate_function=aggregate_function,
            window_function=window_function,
            function_kind=kind,
        )

    def process(self, process_window_function: Any, output_type: Any = None) -> DataStream[Any]:
        """Evaluate each window with all its elements: ``process(key, context, elements)``
        of a ``ProcessWindowFunction`` (``process(context, elements)`` on all-windows)."""
        return self._build(
            _function_name(process_window_function),
            output_type,
            window_function=process_window_function,
            function_kind=self._kind(True),
        )

    def apply(self, window_function: Any, output_type: Any = None) -> DataStream[Any]:
        """Evaluate each window with ``apply(key, window, inputs)`` of a ``WindowFunction``
        (``apply(window, inputs)`` on all-windows)."""
        return self._build(
            _function_name(window_function),
            output_type,
            window_function=window_function,
            function_kind=self._kind(False),
        )

    # -- built-in aggregations -----------------------------------------------------------

    def sum(self, position_to_sum: int | str = 0) -> DataStream[Any]:
        """The element with field ``position_to_sum`` summed over the window."""
        return self.reduce(sum_function(position_to_sum))

    def min(self, position_to_min: int | str = 0) -> DataStream[Any]:
        return self.reduce(min_function(position_to_min))

    def max(self, position_to_max: int | str = 0) -> DataStream[Any]:
        return self.reduce(max_function(position_to_max))

    def min_by(self, position_to_min_by: int | str = 0) -> DataStream[Any]:
        """The element with the smallest field ``position_to_min_by`` (the first on ties)."""
        return self.reduce(min_by_function(position_to_min_by))

    def max_by(self, position_to_max_by: int | str = 0) -> DataStream[Any]:
        return self.reduce(max_by_function(position_to_max_by))


class WindowedStream(_WindowedBase[T]):
    """A keyed stream grouped into windows; each key's windows are evaluated apart."""

    def __init__(
        self, keyed_stream: KeyedStream[T], window_assigner: WindowAssigner[Any, Any]
    ) -> None:
        if not isinstance(keyed_stream, KeyedStream):
            raise ApiUsageError("window() needs a KeyedStream; use window_all() on a DataStream")
        super().__init__(keyed_stream, window_assigner)
        self._keyed_stream = keyed_stream

    def _transform(self, name: str, spec: WindowSpec, output_type: Any) -> DataStream[Any]:
        ks = self._keyed_stream.get_key_selector()
        return self._keyed_stream._keyed(name, lambda: WindowOperator(spec, ks), output_type)


class _NonParallelStream(DataStream[T]):
    """The result of ``window_all``: its operator must stay at parallelism 1."""

    def set_parallelism(self, parallelism: int) -> DataStream[T]:
        if parallelism != 1:
            raise ApiUsageError(
                f"The parallelism of non parallel operator must be 1, got {parallelism}: "
                "window_all() evaluates the whole stream in one subtask; use key_by(...)"
                ".window(...) to evaluate windows in parallel"
            )
        return self

    def set_max_parallelism(self, max_parallelism: int) -> DataStream[T]:
        return self


class AllWindowedStream(_WindowedBase[T]):
    """A (non-keyed) stream grouped into windows, evaluated by one subtask."""

    _all = True

    def _transform(self, name: str, spec: WindowSpec, output_type: Any) -> DataStream[Any]:
        keyed = self._stream.key_by(_all_windows_key)
        t = keyed._one_input(
            name,
            lambda: WindowOperator(spec, _all_windows_key),
            output_type,
            _all_windows_key,
            parallelism=1,
        )
        t.max_parallelism = 1
        t.parallelism_configured = True
        return _NonParallelStream(self._stream.get_execution_environment(), t)


def count_window(keyed_stream: KeyedStream[T], size: int, slide: int = 0) -> WindowedStream[T]:
    """Windows of ``size`` elements per key; with ``slide``, a window of the last ``size``
    elements every ``slide`` elements. Built as Flink builds them: ``GlobalWindows`` with a
    ``CountTrigger`` (purging when tumbling; with a ``CountEvictor`` when sliding)."""
    for what, value, low in (("size", size, 1), ("slide", slide, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ApiUsageError(f"count_window() needs an int {what} >= {low}, got {value!r}")
    windowed = WindowedStream(keyed_stream, GlobalWindows.create())
    if slide == 0:
        return windowed.trigger(PurgingTrigger.of(CountTrigger.of(size)))
    return windowed.evictor(CountEvictor.of(size)).trigger(CountTrigger.of(slide))
