"""The DataStream API (PyFlink's ``pyflink.datastream``).

The environment and stream classes are loaded on first use (PEP 562): the engine they
pull in imports the state and function modules of this package, so loading it eagerly
here would make ``import flinklet._private.state...`` circular.
"""

from typing import TYPE_CHECKING, Any

from flinklet.datastream.checkpointing_mode import CheckpointingMode
from flinklet.datastream.execution_mode import RuntimeExecutionMode
from flinklet.datastream.functions import (
    AggregateFunction,
    CheckpointedFunction,
    CheckpointListener,
    AllWindowFunction,
    BroadcastProcessFunction,
    CoFlatMapFunction,
    CoGroupFunction,
    CoMapFunction,
    CoProcessFunction,
    FilterFunction,
    FlatMapFunction,
    Function,
    JoinFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    KeySelector,
    MapFunction,
    MetricGroup,
    Partitioner,
    ProcessAllWindowFunction,
    ProcessFunction,
    ProcessJoinFunction,
    ProcessWindowFunction,
    ReduceFunction,
    RuntimeContext,
    SinkFunction,
    SourceFunction,
    TimeDomain,
    TimerService,
    WindowFunction,
)
from flinklet.datastream.output_tag import OutputTag
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
    State,
    StateDescriptor,
    StateTtlConfig,
    ValueState,
    ValueStateDescriptor,
)
from flinklet.datastream.time_characteristic import TimeCharacteristic

__all__ = [
    "AggregateFunction",
    "CheckpointConfig",
    "CheckpointListener",
    "CheckpointedFunction",
    "EmbeddedRocksDBStateBackend",
    "ExternalizedCheckpointCleanup",
    "ExternalizedCheckpointRetention",
    "HashMapStateBackend",
    "AggregatingState",
    "AggregatingStateDescriptor",
    "AllWindowFunction",
    "BroadcastConnectedStream",
    "BroadcastProcessFunction",
    "BroadcastState",
    "BroadcastStream",
    "CheckpointingMode",
    "CloseableIterator",
    "CoFlatMapFunction",
    "CoGroupFunction",
    "CoMapFunction",
    "CoProcessFunction",
    "ConnectedStreams",
    "DataStream",
    "DataStreamSink",
    "ExecutionConfig",
    "FilterFunction",
    "FlatMapFunction",
    "Function",
    "JobClient",
    "JoinFunction",
    "KeySelector",
    "KeyedBroadcastProcessFunction",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "KeyedStream",
    "ListState",
    "ListStateDescriptor",
    "MapFunction",
    "MapState",
    "MapStateDescriptor",
    "MetricGroup",
    "OutputTag",
    "Partitioner",
    "ProcessAllWindowFunction",
    "ProcessFunction",
    "ProcessJoinFunction",
    "ProcessWindowFunction",
    "ReadOnlyBroadcastState",
    "ReduceFunction",
    "ReducingState",
    "ReducingStateDescriptor",
    "RuntimeContext",
    "RuntimeExecutionMode",
    "SinkFunction",
    "SourceFunction",
    "State",
    "StateDescriptor",
    "StateTtlConfig",
    "StreamExecutionEnvironment",
    "TimeCharacteristic",
    "TimeDomain",
    "TimerService",
    "ValueState",
    "ValueStateDescriptor",
    "WindowFunction",
]

# -- windows and joins (as pyflink.datastream re-exports them) --------------------------
from flinklet.datastream.join_streams import (
    CoGroupedStreams,
    IntervalJoin,
    IntervalJoined,
    JoinedStreams,
)
from flinklet.datastream.window import (
    ContinuousEventTimeTrigger,
    ContinuousProcessingTimeTrigger,
    CountEvictor,
    CountSlidingWindowAssigner,
    CountTrigger,
    CountTumblingWindowAssigner,
    CountWindow,
    DeltaEvictor,
    DynamicEventTimeSessionWindows,
    DynamicProcessingTimeSessionWindows,
    EventTimeSessionWindows,
    EventTimeTrigger,
    Evictor,
    GlobalWindow,
    GlobalWindows,
    MergingWindowAssigner,
    NeverTrigger,
    ProcessingTimeSessionWindows,
    ProcessingTimeTrigger,
    PurgingTrigger,
    SessionWindowTimeGapExtractor,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TimeEvictor,
    TimestampedValue,
    TimeWindow,
    Trigger,
    TriggerResult,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    Window,
    WindowAssigner,
)
from flinklet.datastream.window_streams import AllWindowedStream, WindowedStream

__all__ += [
    "AllWindowedStream",
    "CoGroupedStreams",
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
    "IntervalJoin",
    "IntervalJoined",
    "JoinedStreams",
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
    "WindowedStream",
]

_LAZY = {
    "BroadcastConnectedStream": "flinklet.datastream.data_stream",
    "BroadcastStream": "flinklet.datastream.data_stream",
    "CloseableIterator": "flinklet.datastream.data_stream",
    "ConnectedStreams": "flinklet.datastream.data_stream",
    "DataStream": "flinklet.datastream.data_stream",
    "DataStreamSink": "flinklet.datastream.data_stream",
    "KeyedStream": "flinklet.datastream.data_stream",
    "ExecutionConfig": "flinklet.datastream.stream_execution_environment",
    "JobClient": "flinklet.datastream.stream_execution_environment",
    "StreamExecutionEnvironment": "flinklet.datastream.stream_execution_environment",
    "CheckpointConfig": "flinklet.datastream.checkpoint_config",
    "ExternalizedCheckpointRetention": "flinklet.datastream.checkpoint_config",
    "ExternalizedCheckpointCleanup": "flinklet.datastream.checkpoint_config",
    "HashMapStateBackend": "flinklet.datastream.state_backend",
    "EmbeddedRocksDBStateBackend": "flinklet.datastream.state_backend",
}

if TYPE_CHECKING:
    from flinklet.datastream.checkpoint_config import (
        CheckpointConfig,
        ExternalizedCheckpointCleanup,
        ExternalizedCheckpointRetention,
    )
    from flinklet.datastream.data_stream import (
        BroadcastConnectedStream,
        BroadcastStream,
        CloseableIterator,
        ConnectedStreams,
        DataStream,
        DataStreamSink,
        KeyedStream,
    )
    from flinklet.datastream.state_backend import EmbeddedRocksDBStateBackend, HashMapStateBackend
    from flinklet.datastream.stream_execution_environment import (
        ExecutionConfig,
        JobClient,
        StreamExecutionEnvironment,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flinklet.datastream' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
