"""DataStream and its relatives: the fluent API that builds a job's logical plan.

Names and signatures follow PyFlink (``pyflink.datastream.data_stream``). Every call
adds a transformation; nothing runs until ``env.execute()``. Wherever PyFlink takes a
function object, a plain callable works too, and ``output_type=`` is accepted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from flinklet._private.exec.keyed import (
    KeyedReduceOperator,
    max_by_function,
    max_function,
    min_by_function,
    min_function,
    sum_function,
)
from flinklet._private.exec.keyed_stateless import (
    KeyedFilterOperator,
    KeyedFlatMapOperator,
    KeyedMapOperator,
)
from flinklet._private.exec.operators import (
    FilterOperator,
    FlatMapOperator,
    MapOperator,
    user_method,
)
from flinklet._private.exec.process import (
    BroadcastProcessOperator,
    CoMapOperator,
    CoProcessOperator,
    KeyedProcessOperator,
    ProcessOperator,
)
from flinklet._private.exec.sinks import (
    CollectSinkOperator,
    PrintSinkOperator,
    SinkFunctionOperator,
)
from flinklet._private.exec.watermarks import TimestampsAndWatermarksOperator
from flinklet._private.graph.transformations import (
    ChainingStrategy,
    OneInputTransformation,
    PartitionTransformation,
    SideOutputTransformation,
    Transformation,
    TwoInputTransformation,
    UnionTransformation,
)
from flinklet._private.network.partitioners import (
    BroadcastPartitioner,
    CustomPartitioner,
    ForwardPartitioner,
    GlobalPartitioner,
    KeyGroupPartitioner,
    Partitioner,
    RebalancePartitioner,
    RescalePartitioner,
    ShufflePartitioner,
)
from flinklet.datastream.functions import (
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
)
from flinklet.datastream.output_tag import OutputTag
from flinklet.errors import ApiUsageError

if TYPE_CHECKING:
    from flinklet.common.watermark_strategy import WatermarkStrategy
    from flinklet.datastream.stream_execution_environment import StreamExecutionEnvironment

T = TypeVar("T")

__all__ = [
    "BroadcastConnectedStream",
    "BroadcastStream",
    "CloseableIterator",
    "ConnectedStreams",
    "DataStream",
    "DataStreamSink",
    "KeyedStream",
]


def _key_selector(key_selector: Any) -> Callable[[Any], Any]:
    return user_method(key_selector, "get_key", "key_by", "KeySelector")


class DataStream(Generic[T]):
    """A stream of records of type ``T``; operations return new streams."""

    def __init__(self, env: StreamExecutionEnvironment, transformation: Transformation) -> None:
        self._env = env
        self._t = transformation

    # -- properties of this operator ----------------------------------------------------

    def get_name(self) -> str:
        return self._t.name

    def name(self, name: str) -> DataStream[T]:
        self._t.name = name
        return self

    def uid(self, uid: str) -> DataStream[T]:
        """A stable id for this operator's state in savepoints; set it on every stateful
        operator so savepoints survive changes to the job."""
        self._own("uid").uid = uid
        return self

    def set_uid_hash(self, uid_hash: str) -> DataStream[T]:
        self._own("set_uid_hash").uid_hash = uid_hash
        return self

    def set_description(self, description: str) -> DataStream[T]:
        self._t.description = description
        return self

    def get_type(self) -> Any:
        return self._t.output_type

    def get_execution_environment(self) -> StreamExecutionEnvironment:
        return self._env

    def set_parallelism(self, parallelism: int) -> DataStream[T]:
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ApiUsageError(f"parallelism must be an int >= 1, got {parallelism!r}")
        t = self._own("set_parallelism")
        t.parallelism = parallelism
        t.parallelism_configured = True
        return self

    def set_max_parallelism(self, max_parallelism: int) -> DataStream[T]:
        if not isinstance(max_parallelism, int) or not 1 <= max_parallelism <= 32768:
            raise ApiUsageError(
                f"max parallelism must be an int in [1, 32768], got {max_parallelism!r}"
            )
        self._own("set_max_parallelism").max_parallelism = max_parallelism
        return self

    def force_non_parallel(self) -> DataStream[T]:
        t = self._own("force_non_parallel")
        t.parallelism = 1
        t.max_parallelism = 1
        return self

    def set_buffer_timeout(self, timeout_millis: int) -> DataStream[T]:
        # per-operator timeouts are coarsened to the job-wide one by the local scheduler
        return self

    def start_new_chain(self) -> DataStream[T]:
        self._own("start_new_chain").chaining = ChainingStrategy.HEAD
        return self

    def disable_chaining(self) -> DataStream[T]:
        self._own("disable_chaining").chaining = ChainingStrategy.NEVER
        return self

    def slot_sharing_group(self, slot_sharing_group: Any) -> DataStream[T]:
        name = getattr(slot_sharing_group, "get_name", None)
        self._own("slot_sharing_group").slot_sharing_group = (
            name() if callable(name) else str(slot_sharing_group)
        )
        return self

    def _own(self, what: str) -> Transformation:
        if self._t.is_virtual:
            raise ApiUsageError(
                f"{what}() applies to an operator, but this stream is a partitioning, union "
                f"or side output; call it on the operator that produced the stream"
            )
        return self._t

    # -- transformations ---------------------------------------------------------------

    def _one_input(
        self,
        name: str,
        factory: Callable[[], Any],
        output_type: Any = None,
        key_selector: Callable[[Any], Any] | None = None,
        is_sink: bool = False,
        parallelism: int | None = None,
    ) -> OneInputTransformation:
        t = OneInputTransformation(
            name=name,
            output_type=output_type,
            input=self._t,
            factory=factory,
            key_selector=key_selector,
            is_sink=is_sink,
            parallelism=parallelism
            if parallelism is not None
            else self._env._parallelism_for_new(),
        )
        self._env._add(t)
        return t

    def map(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        user_method(func, "map", "map", "MapFunction")
        return DataStream(self._env, self._one_input("Map", lambda: MapOperator(func), output_type))

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        user_method(func, "flat_map", "flat_map", "FlatMapFunction")
        return DataStream(
            self._env, self._one_input("FlatMap", lambda: FlatMapOperator(func), output_type)
        )

    def filter(self, func: Any) -> DataStream[T]:
        user_method(func, "filter", "filter", "FilterFunction")
        return DataStream(
            self._env, self._one_input("Filter", lambda: FilterOperator(func), self._t.output_type)
        )

    def process(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        if isinstance(func, KeyedProcessFunction):
            raise ApiUsageError(
                "A KeyedProcessFunction needs a keyed stream: call key_by(...) first"
            )
        user_method(func, "process_element", "process", "ProcessFunction")
        return DataStream(
            self._env, self._one_input("Process", lambda: ProcessOperator(func), output_type)
        )

    def key_by(self, key_selector: Any, key_type: Any = None) -> KeyedStream[T]:
        ks = _key_selector(key_selector)
        part = PartitionTransformation(
            name="KeyBy",
            input=self._t,
            partitioner=KeyGroupPartitioner(key_selector=ks),
        )
        return KeyedStream(self._env, part, ks, self, key_type)

    def _partition(self, name: str, partitioner: Partitioner) -> DataStream[T]:
        return DataStream(
            self._env,
            PartitionTransformation(
                name=name, input=self._t, partitioner=partitioner, output_type=self._t.output_type
            ),
        )

    def shuffle(self) -> DataStream[T]:
        return self._partition("Shuffle", ShufflePartitioner())

    def rebalance(self) -> DataStream[T]:
        return self._partition("Rebalance", RebalancePartitioner())

    def rescale(self) -> DataStream[T]:
        return self._partition("Rescale", RescalePartitioner())

    def forward(self) -> DataStream[T]:
        return self._partition("Forward", ForwardPartitioner())

    def global_(self) -> DataStream[T]:
        """Send every record to the first downstream subtask."""
        return self._partition("Global", GlobalPartitioner())

    def partition_custom(self, partitioner: Any, key_selector: Any) -> DataStream[T]:
        part = user_method(partitioner, "partition", "partition_custom", "Partitioner")
        ks = _key_selector(key_selector)
        return self._partition("Custom", CustomPartitioner(partition=part, key_selector=ks))

    def broadcast(self, *broadcast_state_descriptors: Any) -> Any:
        """Without arguments: send every record to every downstream subtask. With
        ``MapStateDescriptor``s: a ``BroadcastStream`` to ``connect`` to another stream."""
        if broadcast_state_descriptors:
            return BroadcastStream(
                self._env,
                PartitionTransformation(
                    name="Broadcast", input=self._t, partitioner=BroadcastPartitioner()
                ),
                list(broadcast_state_descriptors),
            )
        return self._partition("Broadcast", BroadcastPartitioner())

    def union(self, *streams: DataStream[Any]) -> DataStream[T]:
        for s in streams:
            if not isinstance(s, DataStream):
                raise ApiUsageError(f"union() takes DataStreams, got {type(s).__name__}")
        t = UnionTransformation(
            name="Union",
            union_inputs=[self._t, *(s._t for s in streams)],
            output_type=self._t.output_type,
        )
        return DataStream(self._env, t)

    def connect(self, ds: Any) -> Any:
        if isinstance(ds, BroadcastStream):
            return BroadcastConnectedStream(self, ds)
        if not isinstance(ds, DataStream):
            raise ApiUsageError(f"connect() takes a DataStream or BroadcastStream, got {ds!r}")
        return ConnectedStreams(self, ds)

    def assign_timestamps_and_watermarks(
        self, watermark_strategy: WatermarkStrategy
    ) -> DataStream[T]:
        from flinklet.common.watermark_strategy import WatermarkStrategy

        if not isinstance(watermark_strategy, WatermarkStrategy):
            raise ApiUsageError(
                "assign_timestamps_and_watermarks expects a WatermarkStrategy, e.g. "
                "WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(...)"
            )
        t = self._one_input(
            "Timestamps/Watermarks",
            lambda: TimestampsAndWatermarksOperator(watermark_strategy),
            self._t.output_type,
            parallelism=self._t.parallelism if not self._t.is_virtual else None,
        )
        return DataStream(self._env, t)

    def get_side_output(self, output_tag: OutputTag) -> DataStream[Any]:
        if not isinstance(output_tag, OutputTag):
            raise ApiUsageError("get_side_output() takes an OutputTag")
        t = SideOutputTransformation(
            name=f"SideOutput({output_tag.tag_id})",
            input=self._t,
            tag_id=output_tag.tag_id,
            output_type=output_tag.type_info,
        )
        return DataStream(self._env, t)

    # -- windows (all-window) and joins -------------------------------------------------

    def window_all(self, window_assigner: Any) -> Any:
        from flinklet.datastream.window_streams import AllWindowedStream

        return AllWindowedStream(self, window_assigner)

    def join(self, other: DataStream[Any]) -> Any:
        from flinklet.datastream.join_streams import JoinedStreams

        return JoinedStreams(self, other)

    def co_group(self, other: DataStream[Any]) -> Any:
        from flinklet.datastream.join_streams import CoGroupedStreams

        return CoGroupedStreams(self, other)

    # -- sinks ---------------------------------------------------------------------------

    def _sink(
        self, name: str, factory: Callable[[], Any], parallelism: int | None = None
    ) -> DataStreamSink:
        t = self._one_input(name, factory, None, is_sink=True, parallelism=parallelism)
        return DataStreamSink(self._env, t)

    def print(self, sink_identifier: str | None = None) -> DataStreamSink:
        return self._sink("Print to Std. Out", lambda: PrintSinkOperator(sink_identifier))

    def print_to_err(self, sink_identifier: str | None = None) -> DataStreamSink:
        return self._sink("Print to Std. Err", lambda: PrintSinkOperator(sink_identifier, True))

    def add_sink(self, sink_func: Any) -> DataStreamSink:
        create = getattr(sink_func, "create_operator", None)
        if callable(create):  # a sink function with its own operator (two-phase commit)
            return self._sink("Sink", create)
        return self._sink("Sink", lambda: SinkFunctionOperator(sink_func))

    def sink_to(self, sink: Any) -> DataStreamSink:
        create = getattr(sink, "create_operator", None)
        if not callable(create):
            raise ApiUsageError(
                f"sink_to() expects a Sink (e.g. FileSink.for_row_format(...).build()), "
                f"got {type(sink).__name__}; use add_sink() for a SinkFunction"
            )
        return self._sink(getattr(sink, "sink_name", "Sink"), create)

    def execute_and_collect(
        self, job_execution_name: str | None = None, limit: int | None = None
    ) -> Any:
        """Run the job and iterate its results (a list of at most ``limit`` if given)::

        with ds.execute_and_collect() as results:
            for r in results:
                ...
        """
        buffer_id = uuid.uuid4().hex
        self._sink("Collect Sink", lambda: CollectSinkOperator(buffer_id))
        client = self._env.execute_async(job_execution_name or "Collect Job")
        it = CloseableIterator(client, buffer_id)
        if limit is None:
            return it
        with it:
            out = []
            for item in it:
                out.append(item)
                if len(out) >= limit:
                    break
            return out


class CloseableIterator(Iterator[Any]):
    """Iterates the results of a running job; closing it cancels the job if still running."""

    def __init__(self, client: Any, buffer_id: str) -> None:
        from flinklet._private.exec.executor import collect_buffer

        self._client = client
        self._buffer_id = buffer_id
        self._buffer = collect_buffer(buffer_id)
        self._closed = False

    def __iter__(self) -> CloseableIterator:
        return self

    def __next__(self) -> Any:
        buf = self._buffer
        result = self._client.get_job_execution_result()
        with buf.cond:
            while not buf.items:
                if buf.finished or result.done():
                    error = buf.error
                    if error is None and result.done():
                        error = result.exception()
                    if buf.items:
                        break
                    self.close()
                    if error is not None:
                        raise error
                    raise StopIteration
                buf.cond.wait(0.2)
            return buf.items.popleft()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._buffer.finished:
            self._client._job.cancel()
            self._client._job.wait(10)
        from flinklet._private.exec.executor import release_collect_buffer

        release_collect_buffer(self._buffer_id)

    def __enter__(self) -> CloseableIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DataStreamSink:
    """The end of a stream; configure the sink operator here."""

    def __init__(self, env: StreamExecutionEnvironment, transformation: Transformation) -> None:
        self._env = env
        self._t = transformation

    def name(self, name: str) -> DataStreamSink:
        self._t.name = name
        return self

    def uid(self, uid: str) -> DataStreamSink:
        self._t.uid = uid
        return self

    def set_uid_hash(self, uid_hash: str) -> DataStreamSink:
        self._t.uid_hash = uid_hash
        return self

    def set_description(self, description: str) -> DataStreamSink:
        self._t.description = description
        return self

    def set_parallelism(self, parallelism: int) -> DataStreamSink:
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ApiUsageError(f"parallelism must be an int >= 1, got {parallelism!r}")
        self._t.parallelism = parallelism
        self._t.parallelism_configured = True
        return self

    def disable_chaining(self) -> DataStreamSink:
        self._t.chaining = ChainingStrategy.NEVER
        return self

    def start_new_chain(self) -> DataStreamSink:
        self._t.chaining = ChainingStrategy.HEAD
        return self

    def slot_sharing_group(self, slot_sharing_group: Any) -> DataStreamSink:
        self._t.slot_sharing_group = str(slot_sharing_group)
        return self


class KeyedStream(DataStream[T]):
    """A stream partitioned by key: state and timers are scoped to the current key."""

    def __init__(
        self,
        env: StreamExecutionEnvironment,
        transformation: PartitionTransformation,
        key_selector: Callable[[Any], Any],
        original: DataStream[Any],
        key_type: Any = None,
    ) -> None:
        super().__init__(env, transformation)
        self._key_selector = key_selector
        self._original = original
        self._key_type = key_type

    def get_key_selector(self) -> Callable[[Any], Any]:
        return self._key_selector

    def _keyed(
        self, name: str, factory: Callable[[], Any], output_type: Any = None
    ) -> DataStream[Any]:
        return DataStream(
            self._env, self._one_input(name, factory, output_type, self._key_selector)
        )

    def map(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        user_method(func, "map", "map", "MapFunction")
        ks = self._key_selector
        return self._keyed("Map", lambda: KeyedMapOperator(func, ks), output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        user_method(func, "flat_map", "flat_map", "FlatMapFunction")
        ks = self._key_selector
        return self._keyed("FlatMap", lambda: KeyedFlatMapOperator(func, ks), output_type)

    def filter(self, func: Any) -> DataStream[T]:
        user_method(func, "filter", "filter", "FilterFunction")
        ks = self._key_selector
        return self._keyed("Filter", lambda: KeyedFilterOperator(func, ks), self._t.output_type)

    def process(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        user_method(func, "process_element", "process", "KeyedProcessFunction")
        ks = self._key_selector
        return self._keyed("KeyedProcess", lambda: KeyedProcessOperator(func, ks), output_type)

    def reduce(self, func: Any) -> DataStream[T]:
        user_method(func, "reduce", "reduce", "ReduceFunction")
        ks = self._key_selector
        return self._keyed(
            "Keyed Reduce", lambda: KeyedReduceOperator(func, ks), self._t.output_type
        )

    def _aggregate(self, name: str, fn: Callable[[Any, Any], Any]) -> DataStream[T]:
        ks = self._key_selector
        return self._keyed(name, lambda: KeyedReduceOperator(fn, ks), self._t.output_type)

    def sum(self, position_to_sum: int | str = 0) -> DataStream[T]:
        return self._aggregate("Keyed Sum", sum_function(position_to_sum))

    def min(self, position_to_min: int | str = 0) -> DataStream[T]:
        return self._aggregate("Keyed Min", min_function(position_to_min))

    def max(self, position_to_max: int | str = 0) -> DataStream[T]:
        return self._aggregate("Keyed Max", max_function(position_to_max))

    def min_by(self, position_to_min_by: int | str = 0) -> DataStream[T]:
        return self._aggregate("Keyed MinBy", min_by_function(position_to_min_by))

    def max_by(self, position_to_max_by: int | str = 0) -> DataStream[T]:
        return self._aggregate("Keyed MaxBy", max_by_function(position_to_max_by))

    def window(self, window_assigner: Any) -> Any:
        from flinklet.datastream.window_streams import WindowedStream

        return WindowedStream(self, window_assigner)

    def count_window(self, size: int, slide: int = 0) -> Any:
        from flinklet.datastream.window_streams import count_window

        return count_window(self, size, slide)

    def interval_join(self, other: KeyedStream[Any]) -> Any:
        from flinklet.datastream.join_streams import IntervalJoin

        return IntervalJoin(self, other)

    # operator properties belong to the operator before key_by
    def set_parallelism(self, parallelism: int) -> DataStream[T]:
        raise ApiUsageError(
            "set_parallelism() cannot be called on a KeyedStream (key_by is a partitioning, "
            "not an operator); set it on the operator after key_by, e.g. .process(...)"
            ".set_parallelism(n)"
        )


class ConnectedStreams:
    """Two streams processed together by one co-function (shared state possible)."""

    def __init__(self, stream1: DataStream[Any], stream2: DataStream[Any]) -> None:
        self.stream1 = stream1
        self.stream2 = stream2
        self._env = stream1._env

    def key_by(
        self, key_selector1: Any, key_selector2: Any, key_type: Any = None
    ) -> ConnectedStreams:
        return ConnectedStreams(
            self.stream1.key_by(key_selector1, key_type),
            self.stream2.key_by(key_selector2, key_type),
        )

    def _keys(self) -> tuple[Any, Any]:
        k1 = self.stream1._key_selector if isinstance(self.stream1, KeyedStream) else None
        k2 = self.stream2._key_selector if isinstance(self.stream2, KeyedStream) else None
        if (k1 is None) != (k2 is None):
            raise ApiUsageError(
                "Both connected streams must be keyed, or neither: call key_by on both inputs "
                "(or ConnectedStreams.key_by(ks1, ks2))"
            )
        return k1, k2

    def _two_input(
        self, name: str, factory: Callable[[], Any], output_type: Any
    ) -> DataStream[Any]:
        k1, k2 = self._keys()
        t = TwoInputTransformation(
            name=name,
            output_type=output_type,
            input1=self.stream1._t,
            input2=self.stream2._t,
            factory=factory,
            key_selector1=k1,
            key_selector2=k2,
            parallelism=self._env._parallelism_for_new(),
        )
        self._env._add(t)
        return DataStream(self._env, t)

    def map(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        CoMapOperator(func, flat=False)  # validate now, not at execution
        return self._two_input("Co-Map", lambda: CoMapOperator(func, flat=False), output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        CoMapOperator(func, flat=True)
        return self._two_input("Co-FlatMap", lambda: CoMapOperator(func, flat=True), output_type)

    def process(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        k1, k2 = self._keys()
        if isinstance(func, KeyedCoProcessFunction) and k1 is None:
            raise ApiUsageError(
                "A KeyedCoProcessFunction needs keyed inputs: use "
                "stream1.connect(stream2).key_by(ks1, ks2).process(...)"
            )
        CoProcessOperator(func, k1, k2)
        return self._two_input("Co-Process", lambda: CoProcessOperator(func, k1, k2), output_type)


class BroadcastStream:
    """A stream broadcast to all subtasks of the operator it is connected to, with the
    broadcast state descriptors it fills."""

    def __init__(
        self,
        env: StreamExecutionEnvironment,
        transformation: PartitionTransformation,
        descriptors: list[Any],
    ) -> None:
        self._env = env
        self._t = transformation
        self.broadcast_state_descriptors = descriptors


class BroadcastConnectedStream:
    def __init__(self, non_broadcast: DataStream[Any], broadcast: BroadcastStream) -> None:
        self.non_broadcast_stream = non_broadcast
        self.broadcast_stream = broadcast
        self._env = non_broadcast._env

    def process(self, func: Any, output_type: Any = None) -> DataStream[Any]:
        ks = (
            self.non_broadcast_stream._key_selector
            if isinstance(self.non_broadcast_stream, KeyedStream)
            else None
        )
        if isinstance(func, KeyedBroadcastProcessFunction) and ks is None:
            raise ApiUsageError(
                "A KeyedBroadcastProcessFunction needs a keyed stream: "
                "stream.key_by(...).connect(broadcast_stream).process(...)"
            )
        BroadcastProcessOperator(func, ks)
        t = TwoInputTransformation(
            name="Co-Process-Broadcast" + ("-Keyed" if ks is not None else ""),
            output_type=output_type,
            input1=self.non_broadcast_stream._t,
            input2=self.broadcast_stream._t,
            factory=lambda: BroadcastProcessOperator(func, ks),
            key_selector1=ks,
            key_selector2=None,
            parallelism=self._env._parallelism_for_new(),
        )
        self._env._add(t)
        return DataStream(self._env, t)
