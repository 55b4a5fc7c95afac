"""User function interfaces, with PyFlink's names and signatures.

Every API call that takes a function object also takes a plain callable (``map(lambda x:
x + 1)``). Functions get ``open(runtime_context)`` before the first record and
``close()`` after the last. Process functions produce output by ``yield``-ing values;
``yield output_tag, value`` sends ``value`` to the side output ``output_tag``::

    class Split(ProcessFunction):
        def process_element(self, value, ctx):
            if value < 0:
                yield NEGATIVE, value
            else:
                yield value
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from flinklet.datastream.state import (
        AggregatingState,
        AggregatingStateDescriptor,
        BroadcastState,
        ListState,
        ListStateDescriptor,
        MapState,
        MapStateDescriptor,
        ReadOnlyBroadcastState,
        ReducingState,
        ReducingStateDescriptor,
        StateDescriptor,
        ValueState,
        ValueStateDescriptor,
    )
    from flinklet.datastream.window import Window

IN = TypeVar("IN")
IN2 = TypeVar("IN2")
OUT = TypeVar("OUT")
KEY = TypeVar("KEY")
ACC = TypeVar("ACC")
W = TypeVar("W", bound="Window")

__all__ = [
    "AggregateFunction",
    "AllWindowFunction",
    "BroadcastProcessFunction",
    "CheckpointListener",
    "CheckpointedFunction",
    "CoFlatMapFunction",
    "CoGroupFunction",
    "CoMapFunction",
    "CoProcessFunction",
    "FilterFunction",
    "FlatMapFunction",
    "Function",
    "FunctionInitializationContext",
    "FunctionSnapshotContext",
    "JoinFunction",
    "KeySelector",
    "KeyedBroadcastProcessFunction",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "MapFunction",
    "MetricGroup",
    "Partitioner",
    "ProcessAllWindowFunction",
    "ProcessFunction",
    "ProcessJoinFunction",
    "ProcessWindowFunction",
    "ReduceFunction",
    "RuntimeContext",
    "SinkFunction",
    "SourceFunction",
    "TimeDomain",
    "TimerService",
    "WindowFunction",
]


class TimeDomain(Enum):
    """Which clock fired a timer."""

    EVENT_TIME = 0
    PROCESSING_TIME = 1


class TimerService(abc.ABC):
    """Clocks and timer registration for the current key (keyed functions only)."""

    @abc.abstractmethod
    def current_processing_time(self) -> int: ...

    @abc.abstractmethod
    def current_watermark(self) -> int: ...

    @abc.abstractmethod
    def register_processing_time_timer(self, timestamp: int) -> None: ...

    @abc.abstractmethod
    def register_event_time_timer(self, timestamp: int) -> None: ...

    @abc.abstractmethod
    def delete_processing_time_timer(self, timestamp: int) -> None: ...

    @abc.abstractmethod
    def delete_event_time_timer(self, timestamp: int) -> None: ...


class MetricGroup(abc.ABC):
    """Where a function registers its own metrics."""

    @abc.abstractmethod
    def counter(self, name: str) -> Any: ...

    @abc.abstractmethod
    def gauge(self, name: str, obj: Any) -> None: ...

    @abc.abstractmethod
    def meter(self, name: str, time_span_in_seconds: int = 60) -> Any: ...

    @abc.abstractmethod
    def distribution(self, name: str) -> Any: ...

    @abc.abstractmethod
    def add_group(self, name: str, extra: str | None = None) -> MetricGroup: ...


class RuntimeContext(abc.ABC):
    """What a function knows about the subtask running it, and its keyed state."""

    @abc.abstractmethod
    def get_task_name(self) -> str: ...

    @abc.abstractmethod
    def get_number_of_parallel_subtasks(self) -> int: ...

    @abc.abstractmethod
    def get_max_number_of_parallel_subtasks(self) -> int: ...

    @abc.abstractmethod
    def get_index_of_this_subtask(self) -> int: ...

    @abc.abstractmethod
    def get_attempt_number(self) -> int: ...

    @abc.abstractmethod
    def get_task_name_with_subtasks(self) -> str: ...

    @abc.abstractmethod
    def get_job_parameter(self, key: str, default_value: str) -> str: ...

    @abc.abstractmethod
    def get_metrics_group(self) -> MetricGroup: ...

    @abc.abstractmethod
    def get_state(self, state_descriptor: ValueStateDescriptor) -> ValueState[Any]: ...

    @abc.abstractmethod
    def get_list_state(self, state_descriptor: ListStateDescriptor) -> ListState[Any]: ...

    @abc.abstractmethod
    def get_map_state(self, state_descriptor: MapStateDescriptor) -> MapState[Any, Any]: ...

    @abc.abstractmethod
    def get_reducing_state(
        self, state_descriptor: ReducingStateDescriptor
    ) -> ReducingState[Any]: ...

    @abc.abstractmethod
    def get_aggregating_state(
        self, state_descriptor: AggregatingStateDescriptor
    ) -> AggregatingState[Any, Any]: ...


class Function:
    """Base of all user functions: ``open`` before the first record, ``close`` at the end."""

    def open(self, runtime_context: RuntimeContext) -> None:
        pass

    def close(self) -> None:
        pass


class MapFunction(Function, Generic[IN, OUT]):
    @abc.abstractmethod
    def map(self, value: IN) -> OUT: ...


class FlatMapFunction(Function, Generic[IN, OUT]):
    @abc.abstractmethod
    def flat_map(self, value: IN) -> Iterable[OUT]: ...


class FilterFunction(Function, Generic[IN]):
    @abc.abstractmethod
    def filter(self, value: IN) -> bool: ...


class ReduceFunction(Function, Generic[IN]):
    @abc.abstractmethod
    def reduce(self, value1: IN, value2: IN) -> IN: ...


class KeySelector(Function, Generic[IN, KEY]):
    @abc.abstractmethod
    def get_key(self, value: IN) -> KEY: ...


class Partitioner(Function, Generic[KEY]):
    """``partition_custom``: pick the partition (0 .. num_partitions-1) for a key."""

    @abc.abstractmethod
    def partition(self, key: KEY, num_partitions: int) -> int: ...


class CoMapFunction(Function, Generic[IN, OUT]):
    @abc.abstractmethod
    def map1(self, value: Any) -> OUT: ...

    @abc.abstractmethod
    def map2(self, value: Any) -> OUT: ...


class CoFlatMapFunction(Function, Generic[IN, OUT]):
    @abc.abstractmethod
    def flat_map1(self, value: Any) -> Iterable[OUT]: ...

    @abc.abstractmethod
    def flat_map2(self, value: Any) -> Iterable[OUT]: ...


class _BaseContext(abc.ABC):
    @abc.abstractmethod
    def timestamp(self) -> int | None:
        """The timestamp of the current record (None if it has none) or timer."""

    @abc.abstractmethod
    def timer_service(self) -> TimerService: ...


class ProcessFunction(Function, Generic[IN, OUT]):
    """Low-level processing of a non-keyed stream."""

    class Context(_BaseContext):
        pass

    @abc.abstractmethod
    def process_element(self, value: IN, ctx: ProcessFunction.Context) -> Iterable[OUT] | None: ...


class KeyedProcessFunction(Function, Generic[KEY, IN, OUT]):
    """Low-level processing of a keyed stream, with keyed state and timers."""

    class Context(_BaseContext):
        @abc.abstractmethod
        def get_current_key(self) -> Any: ...

    class OnTimerContext(Context):
        @abc.abstractmethod
        def time_domain(self) -> TimeDomain: ...

    @abc.abstractmethod
    def process_element(
        self, value: IN, ctx: KeyedProcessFunction.Context
    ) -> Iterable[OUT] | None: ...

    def on_timer(
        self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext
    ) -> Iterable[OUT] | None:
        return None


class CoProcessFunction(Function, Generic[IN, OUT]):
    class Context(_BaseContext):
        pass

    @abc.abstractmethod
    def process_element1(
        self, value: Any, ctx: CoProcessFunction.Context
    ) -> Iterable[OUT] | None: ...

    @abc.abstractmethod
    def process_element2(
        self, value: Any, ctx: CoProcessFunction.Context
    ) -> Iterable[OUT] | None: ...


class KeyedCoProcessFunction(Function, Generic[KEY, IN, OUT]):
    class Context(_BaseContext):
        @abc.abstractmethod
        def get_current_key(self) -> Any: ...

    class OnTimerContext(Context):
        @abc.abstractmethod
        def time_domain(self) -> TimeDomain: ...

    @abc.abstractmethod
    def process_element1(
        self, value: Any, ctx: KeyedCoProcessFunction.Context
    ) -> Iterable[OUT] | None: ...

    @abc.abstractmethod
    def process_element2(
        self, value: Any, ctx: KeyedCoProcessFunction.Context
    ) -> Iterable[OUT] | None: ...

    def on_timer(
        self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext
    ) -> Iterable[OUT] | None:
        return None


class _BroadcastReadContext(_BaseContext):
    @abc.abstractmethod
    def get_broadcast_state(
        self, state_descriptor: MapStateDescriptor
    ) -> ReadOnlyBroadcastState[Any, Any]: ...

    @abc.abstractmethod
    def current_processing_time(self) -> int: ...

    @abc.abstractmethod
    def current_watermark(self) -> int: ...


class _BroadcastWriteContext(_BaseContext):
    @abc.abstractmethod
    def get_broadcast_state(
        self, state_descriptor: MapStateDescriptor
    ) -> BroadcastState[Any, Any]: ...

    @abc.abstractmethod
    def current_processing_time(self) -> int: ...

    @abc.abstractmethod
    def current_watermark(self) -> int: ...


class BroadcastProcessFunction(Function, Generic[IN, IN2, OUT]):
    """Non-keyed stream connected with a broadcast stream."""

    class Context(_BroadcastWriteContext):
        pass

    class ReadOnlyContext(_BroadcastReadContext):
        pass

    @abc.abstractmethod
    def process_element(
        self, value: Any, ctx: BroadcastProcessFunction.ReadOnlyContext
    ) -> Iterable[OUT] | None: ...

    @abc.abstractmethod
    def process_broadcast_element(
        self, value: Any, ctx: BroadcastProcessFunction.Context
    ) -> Iterable[OUT] | None: ...


class KeyedBroadcastProcessFunction(Function, Generic[KEY, IN, IN2, OUT]):
    """Keyed stream connected with a broadcast stream; can visit all keys' state."""

    class Context(_BroadcastWriteContext):
        @abc.abstractmethod
        def apply_to_keyed_state(self, state_descriptor: StateDescriptor, function: Any) -> None:
            """Call ``function(key, state)`` for every key that has state under the descriptor."""

    class ReadOnlyContext(_BroadcastReadContext):
        @abc.abstractmethod
        def get_current_key(self) -> Any: ...

    class OnTimerContext(ReadOnlyContext):
        @abc.abstractmethod
        def time_domain(self) -> TimeDomain: ...

    @abc.abstractmethod
    def process_element(
        self, value: Any, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext
    ) -> Iterable[OUT] | None: ...

    @abc.abstractmethod
    def process_broadcast_element(
        self, value: Any, ctx: KeyedBroadcastProcessFunction.Context
    ) -> Iterable[OUT] | None: ...

    def on_timer(
        self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext
    ) -> Iterable[OUT] | None:
        return None


class SinkFunction(Function, Generic[IN]):
    """A sink that handles one record at a time (``add_sink``)."""

    class Context(abc.ABC):
        @abc.abstractmethod
        def current_processing_time(self) -> int: ...

        @abc.abstractmethod
        def current_watermark(self) -> int: ...

        @abc.abstractmethod
        def timestamp(self) -> int | None: ...

    @abc.abstractmethod
    def invoke(self, value: IN, context: SinkFunction.Context) -> None: ...


class SourceFunction(Function, Generic[OUT]):
    """Legacy source (``add_source``): ``run`` loops and emits through ``ctx.collect``.

    It runs in its own thread; ``collect`` blocks while downstream is backpressured.
    ``cancel`` must make ``run`` return.
    """

    class SourceContext(abc.ABC):
        @abc.abstractmethod
        def collect(self, element: Any) -> None: ...

        @abc.abstractmethod
        def collect_with_timestamp(self, element: Any, timestamp: int) -> None: ...

    @abc.abstractmethod
    def run(self, ctx: SourceFunction.SourceContext) -> None: ...

    @abc.abstractmethod
    def cancel(self) -> None: ...


# ------------------------------------------------------------------------ checkpointing


class FunctionSnapshotContext(abc.ABC):
    @abc.abstractmethod
    def get_checkpoint_id(self) -> int: ...

    @abc.abstractmethod
    def get_checkpoint_timestamp(self) -> int: ...


class FunctionInitializationContext(abc.ABC):
    @abc.abstractmethod
    def is_restored(self) -> bool: ...

    @abc.abstractmethod
    def get_operator_state_store(self) -> Any:
        """``get_list_state`` (even-split on rescale), ``get_union_list_state`` (every
        subtask gets all), ``get_broadcast_state``."""

    @abc.abstractmethod
    def get_keyed_state_store(self) -> Any: ...


class CheckpointedFunction(abc.ABC):
    """A function with operator state it writes at every checkpoint::

    class BufferingSink(SinkFunction, CheckpointedFunction):
        def initialize_state(self, context):
            self.state = context.get_operator_state_store().get_list_state(
                ListStateDescriptor("buffer", Types.PICKLED_BYTE_ARRAY()))
            self.buffer = list(self.state.get()) if context.is_restored() else []

        def snapshot_state(self, context):
            self.state.update(self.buffer)
    """

    @abc.abstractmethod
    def snapshot_state(self, context: FunctionSnapshotContext) -> None: ...

    @abc.abstractmethod
    def initialize_state(self, context: FunctionInitializationContext) -> None: ...


class CheckpointListener(abc.ABC):
    """Notified when a checkpoint completed (state is durable) or was aborted."""

    @abc.abstractmethod
    def notify_checkpoint_complete(self, checkpoint_id: int) -> None: ...

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:  # noqa: B027
        pass


# ------------------------------------------------------------------ windows and joins


class AggregateFunction(Function, Generic[IN, ACC, OUT]):
    """Incremental aggregation: one accumulator per key and window."""

    @abc.abstractmethod
    def create_accumulator(self) -> ACC: ...

    @abc.abstractmethod
    def add(self, value: IN, accumulator: ACC) -> ACC: ...

    @abc.abstractmethod
    def get_result(self, accumulator: ACC) -> OUT: ...

    def merge(self, acc_a: ACC, acc_b: ACC) -> ACC:
        raise NotImplementedError(
            f"{type(self).__name__}.merge is needed for merging (session) windows; implement it"
        )


class _WindowContext(abc.ABC, Generic[W]):
    @abc.abstractmethod
    def window(self) -> W: ...

    @abc.abstractmethod
    def current_processing_time(self) -> int: ...

    @abc.abstractmethod
    def current_watermark(self) -> int: ...

    @abc.abstractmethod
    def window_state(self) -> Any:
        """Keyed state scoped to this key and window."""

    @abc.abstractmethod
    def global_state(self) -> Any:
        """Keyed state scoped to this key, shared by all its windows."""


class ProcessWindowFunction(Function, Generic[IN, OUT, KEY, W]):
    """Gets all elements of a window (or the pre-aggregated result) and its context."""

    class Context(_WindowContext[Any]):
        pass

    @abc.abstractmethod
    def process(
        self, key: KEY, context: ProcessWindowFunction.Context, elements: Iterable[IN]
    ) -> Iterable[OUT]: ...

    def clear(self, context: ProcessWindowFunction.Context) -> None:
        """Called when the window is purged; clean up per-window state here."""


class ProcessAllWindowFunction(Function, Generic[IN, OUT, W]):
    class Context(_WindowContext[Any]):
        pass

    @abc.abstractmethod
    def process(
        self, context: ProcessAllWindowFunction.Context, elements: Iterable[IN]
    ) -> Iterable[OUT]: ...

    def clear(self, context: ProcessAllWindowFunction.Context) -> None:
        pass


class WindowFunction(Function, Generic[IN, OUT, KEY, W]):
    @abc.abstractmethod
    def apply(self, key: KEY, window: W, inputs: Iterable[IN]) -> Iterable[OUT]: ...


class AllWindowFunction(Function, Generic[IN, OUT, W]):
    @abc.abstractmethod
    def apply(self, window: W, inputs: Iterable[IN]) -> Iterable[OUT]: ...


class JoinFunction(Function, Generic[IN, IN2, OUT]):
    @abc.abstractmethod
    def join(self, first: Any, second: Any) -> OUT: ...


class CoGroupFunction(Function, Generic[IN, IN2, OUT]):
    @abc.abstractmethod
    def co_group(self, first: Iterable[Any], second: Iterable[Any]) -> Iterable[OUT]: ...


class ProcessJoinFunction(Function, Generic[IN, IN2, OUT]):
    """Interval join: called for each pair of elements whose timestamps are in bounds."""

    class Context(abc.ABC):
        @abc.abstractmethod
        def get_left_timestamp(self) -> int: ...

        @abc.abstractmethod
        def get_right_timestamp(self) -> int: ...

        @abc.abstractmethod
        def timestamp(self) -> int: ...

    @abc.abstractmethod
    def process_element(
        self, left: Any, right: Any, ctx: ProcessJoinFunction.Context
    ) -> Iterable[OUT] | None: ...


# re-exported here, where Flink's Java API has it (functions.sink.TwoPhaseCommitSinkFunction)
from flinklet.datastream.connectors.two_phase_commit import (  # noqa: E402
    TwoPhaseCommitSinkFunction,
)

__all__ += ["TwoPhaseCommitSinkFunction"]
