"""Stream operators: the units a task chains together, and how they hand over batches.

An operator receives batches (``process_batch(values, timestamps)``), watermarks and
end-of-input, and emits through its ``Output``. Inside a chain, ``Output`` calls the next
operator's ``process_batch`` directly; at a chain's edge it calls a ``RecordWriter``. The
per-record work happens inside ``process_batch`` loops, never in per-record method
dispatch between operators.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from itertools import compress
from typing import TYPE_CHECKING, Any

from flinklet._private.network.elements import (
    MIN_WATERMARK,
    Watermark,
    WatermarkStatus,
)
from flinklet.datastream.output_tag import OutputTag
from flinklet.errors import ApiUsageError

if TYPE_CHECKING:
    from flinklet._private.exec.context import OperatorEnv, StreamingRuntimeContext
    from flinklet._private.network.partitioners import RecordWriter

log = logging.getLogger(__name__)

Values = list[Any]
Stamps = list[int | None] | None
BatchFn = Callable[[Values, Stamps], None]


def _noop_batch(values: Values, timestamps: Stamps) -> None:
    return None


class Output:
    """Where an operator's records, side outputs and watermarks go."""

    def __init__(
        self,
        targets: list[BatchFn],
        side_targets: dict[str, list[BatchFn]],
        chained: list[StreamOperator],
        writers: list[RecordWriter],
    ) -> None:
        self._targets = targets
        self._side = side_targets
        self.chained = chained
        self.writers = writers
        if not targets:
            self.collect_batch = _noop_batch  # type: ignore[method-assign]
        elif len(targets) == 1:
            self.collect_batch = targets[0]  # type: ignore[method-assign,assignment]

    def collect_batch(self, values: Values, timestamps: Stamps) -> None:
        for t in self._targets:
            t(values, timestamps)

    def collect_side(self, tag_id: str, values: Values, timestamps: Stamps) -> None:
        for t in self._side.get(tag_id, ()):
            t(values, timestamps)

    def has_side(self, tag_id: str) -> bool:
        return tag_id in self._side

    def emit_watermark(self, watermark: int) -> None:
        for op in self.chained:
            op.process_watermark(watermark)
        if self.writers:
            event = Watermark(watermark)
            for w in self.writers:
                w.broadcast_event(event)

    def emit_watermark_status(self, status: WatermarkStatus) -> None:
        for op in self.chained:
            op.process_watermark_status(status)
        for w in self.writers:
            w.broadcast_event(status)


def user_method(fn: Any, method: str, api: str, expected: str) -> Callable[..., Any]:
    """The bound method ``method`` of a function object, or the plain callable itself."""
    bound = getattr(fn, method, None)
    if bound is not None and callable(bound):
        return bound  # type: ignore[no-any-return]
    if callable(fn):
        return fn  # type: ignore[no-any-return]
    raise ApiUsageError(
        f"{api}() expects a {expected} or a callable, got {type(fn).__name__}: {fn!r}"
    )


def copy_function(fn: Any) -> Any:
    """A private copy of a user function for one subtask, as Flink deserializes one per
    subtask. Plain functions and lambdas are shared (they carry no instance state)."""
    if fn is None or (callable(fn) and not hasattr(fn, "__dict__")) or _is_plain_function(fn):
        return fn
    try:
        return copy.deepcopy(fn)
    except Exception as exc:
        raise ApiUsageError(
            f"The function {fn!r} cannot be copied for each parallel subtask ({exc}). "
            f"Create resources such as connections, locks or files in open() instead of "
            f"__init__()"
        ) from exc


def _is_plain_function(fn: Any) -> bool:
    import types

    return isinstance(fn, (types.FunctionType, types.BuiltinFunctionType, types.MethodType))


class StreamOperator:
    """Base of all operators. Subclasses override what they need."""

    name: str = ""
    uid: str = ""
    output: Output
    env: OperatorEnv
    runtime_context: StreamingRuntimeContext
    user_function: Any = None

    def setup(self, env: OperatorEnv, output: Output) -> None:
        from flinklet._private.exec.context import StreamingRuntimeContext

        self.env = env
        self.output = output
        self.runtime_context = StreamingRuntimeContext(env)
        self.current_watermark = MIN_WATERMARK

    def open(self) -> None:
        fn = self.user_function
        if fn is not None:
            opener = getattr(fn, "open", None)
            if callable(opener) and not _is_plain_function(fn):
                opener(self.runtime_context)

    def close(self) -> None:
        fn = self.user_function
        if fn is not None and not _is_plain_function(fn):
            closer = getattr(fn, "close", None)
            if callable(closer):
                closer()

    # one-input
    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        raise ApiUsageError(f"operator {self.name} takes no input")  # pragma: no cover

    def process_watermark(self, watermark: int) -> None:
        self.current_watermark = watermark
        self.output.emit_watermark(watermark)

    def process_watermark_status(self, status: WatermarkStatus) -> None:
        self.output.emit_watermark_status(status)

    def end_input(self) -> None:
        """All input of this operator ended (after the final watermark)."""

    def finish(self) -> None:
        """Called once, in chain order, after end of input: flush what is buffered."""

    # -- checkpointing -----------------------------------------------------------------

    def snapshot_state(self) -> dict[str, Any]:
        """Operator-specific state beyond the state backends (e.g. a source position)."""
        return {}

    def initialize_state(self, restored: Any) -> None:
        """Restore what ``snapshot_state`` returned; ``restored.raw`` lists the dicts of all
        old subtasks (they may have had another parallelism)."""

    def before_snapshot(self, checkpoint_id: int, timestamp: int) -> None:
        """Synchronous part of a checkpoint, before the backends are copied: lets a
        ``CheckpointedFunction`` write its operator state."""
        fn = self.user_function
        hook = getattr(fn, "snapshot_state", None)
        if fn is not None and callable(hook) and not _is_plain_function(fn):
            from flinklet._private.exec.context import SnapshotContext

            hook(SnapshotContext(checkpoint_id, timestamp))

    def snapshot_timers(self) -> dict[str, Any] | None:
        timers = getattr(self, "timers", None)
        return timers.snapshot() if timers is not None else None

    def restore(self, restored: Any) -> None:
        """Restore backends, timers and operator state (before ``open``), then let a
        ``CheckpointedFunction`` initialize its state."""
        env = self.env
        if restored is not None:
            if env.keyed_backend is not None:
                self._restore_keyed(restored)
                timers = getattr(self, "timers", None)
                if timers is not None and restored.timers:
                    from flinklet._private.state.keygroups import assign_to_key_group

                    kg_range = env.keyed_backend.key_group_range
                    max_p = env.max_parallelism
                    for t in restored.timers:
                        timers.restore(t, lambda key: assign_to_key_group(key, max_p) in kg_range)
            if env.operator_state is not None:
                env.operator_state.restore(restored.operator, env.subtask_index, env.parallelism)
            self.initialize_state(restored)
        fn = self.user_function
        hook = getattr(fn, "initialize_state", None)
        if fn is not None and callable(hook) and not _is_plain_function(fn):
            from flinklet._private.exec.context import InitializationContext

            hook(InitializationContext(restored is not None, env, self.runtime_context))

    def _restore_keyed(self, restored: Any) -> None:
        backend: Any = self.env.keyed_backend
        manifests = restored.incremental
        if manifests and hasattr(backend, "restore_incremental"):
            backend.restore_incremental(manifests, restored.fetch_shared)
            if restored.keyed:
                backend.restore(restored.keyed)
            return
        snapshots = list(restored.keyed)
        if manifests:  # incremental RocksDB state into another backend: convert it
            from flinklet._private.state.rocksdb import incremental_to_keyed_snapshot

            snapshots += [
                incremental_to_keyed_snapshot(m, restored.fetch_shared) for m in manifests
            ]
        backend.restore(snapshots)

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        pending = self.__dict__.get("_shared_pending")
        if pending:
            # files of a completed checkpoint are in storage: later ones need not upload them
            done = pending.pop(checkpoint_id, None)
            for older in [c for c in pending if c < checkpoint_id]:
                del pending[older]
            if done is not None:
                self._shared_uploaded = set(done)
        backend = self.env.keyed_backend
        hook_backend = getattr(backend, "notify_checkpoint_complete", None)
        if callable(hook_backend):
            hook_backend(checkpoint_id)
        fn = self.user_function
        hook = getattr(fn, "notify_checkpoint_complete", None)
        if fn is not None and callable(hook) and not _is_plain_function(fn):
            hook(checkpoint_id)

    def notify_checkpoint_aborted(self, checkpoint_id: int) -> None:
        fn = self.user_function
        hook = getattr(fn, "notify_checkpoint_aborted", None)
        if fn is not None and callable(hook) and not _is_plain_function(fn):
            hook(checkpoint_id)


class TwoInputOperator(StreamOperator):
    """Two inputs; the operator's watermark is the minimum of both (idle inputs ignored)."""

    def setup(self, env: OperatorEnv, output: Output) -> None:
        super().setup(env, output)
        self._wm = [MIN_WATERMARK, MIN_WATERMARK]
        self._idle = [False, False]

    def process_batch1(self, values: Values, timestamps: Stamps) -> None:
        raise NotImplementedError  # pragma: no cover - every subclass implements it

    def process_batch2(self, values: Values, timestamps: Stamps) -> None:
        raise NotImplementedError  # pragma: no cover - every subclass implements it

    def process_watermark1(self, watermark: int) -> None:
        self._wm[0] = watermark
        self._combine()

    def process_watermark2(self, watermark: int) -> None:
        self._wm[1] = watermark
        self._combine()

    def process_watermark_status1(self, status: WatermarkStatus) -> None:
        self._status(0, status)

    def process_watermark_status2(self, status: WatermarkStatus) -> None:
        self._status(1, status)

    def _status(self, idx: int, status: WatermarkStatus) -> None:
        was_idle = all(self._idle)
        self._idle[idx] = status.idle
        now_idle = all(self._idle)
        if now_idle != was_idle:
            self.output.emit_watermark_status(status)
        self._combine()

    def _combine(self) -> None:
        active = [w for w, idle in zip(self._wm, self._idle, strict=True) if not idle]
        if not active:
            return
        combined = min(active)
        if combined > self.current_watermark:
            self.process_watermark(combined)


# ------------------------------------------------------------------- stateless operators


class MapOperator(StreamOperator):
    def __init__(self, fn: Any) -> None:
        self.user_function = copy_function(fn)
        self._map = user_method(self.user_function, "map", "map", "MapFunction")

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        f = self._map
        self.output.collect_batch([f(v) for v in values], timestamps)


class FlatMapOperator(StreamOperator):
    def __init__(self, fn: Any) -> None:
        self.user_function = copy_function(fn)
        self._fm = user_method(self.user_function, "flat_map", "flat_map", "FlatMapFunction")

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        f = self._fm
        out: Values = []
        if timestamps is None:
            ext = out.extend
            for v in values:
                r = f(v)
                if r is not None:
                    ext(r)
            self.output.collect_batch(out, None)
            return
        ts_out: list[int | None] = []
        for v, t in zip(values, timestamps, strict=True):
            r = f(v)
            if r is not None:
                before = len(out)
                out.extend(r)
                ts_out.extend([t] * (len(out) - before))
        self.output.collect_batch(out, ts_out)


class FilterOperator(StreamOperator):
    def __init__(self, fn: Any) -> None:
        self.user_function = copy_function(fn)
        self._filter = user_method(self.user_function, "filter", "filter", "FilterFunction")

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        f = self._filter
        if timestamps is None:
            self.output.collect_batch([v for v in values if f(v)], None)
            return
        keep = [bool(f(v)) for v in values]
        self.output.collect_batch(list(compress(values, keep)), list(compress(timestamps, keep)))


class ResultCollector:
    """Gathers what a process function yields for one batch: main output and side outputs.

    ``yield value`` goes to the main output, ``yield output_tag, value`` to a side output.
    """

    __slots__ = ("sides", "timestamps", "values")

    def __init__(self, with_timestamps: bool) -> None:
        self.values: Values = []
        self.timestamps: list[int | None] | None = [] if with_timestamps else None
        self.sides: dict[str, tuple[Values, list[int | None] | None]] | None = None

    def add(self, results: Any, timestamp: int | None) -> None:
        if results is None:
            return
        values = self.values
        stamps = self.timestamps
        for item in results:
            if type(item) is tuple and len(item) == 2 and type(item[0]) is OutputTag:
                self._side(item[0].tag_id, item[1], timestamp)
                continue
            values.append(item)
            if stamps is not None:
                stamps.append(timestamp)

    def _side(self, tag_id: str, value: Any, timestamp: int | None) -> None:
        if self.sides is None:
            self.sides = {}
        entry = self.sides.get(tag_id)
        if entry is None:
            entry = ([], [] if self.timestamps is not None else None)
            self.sides[tag_id] = entry
        entry[0].append(value)
        if entry[1] is not None:
            entry[1].append(timestamp)

    def emit(self, output: Output) -> None:
        if self.values:
            output.collect_batch(self.values, self.timestamps)
        if self.sides:
            for tag_id, (vals, stamps) in self.sides.items():
                output.collect_side(tag_id, vals, stamps)
