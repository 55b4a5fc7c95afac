"""The window operator: Flink's ``WindowOperator`` and ``EvictingWindowOperator`` in one.

Per record: the assigner picks windows; each window's contents (a list, a reduced value
or an accumulator) are stored in the keyed state backend under the namespace of the
window, so they are checkpointed and rescaled like any keyed state; the trigger sees the
element and may fire (evaluate the window function) and/or purge. A cleanup timer at
``window.max_timestamp() + allowed_lateness`` (event time) or ``max_timestamp()``
(processing time) drops the window's state, the trigger's state and the function's
per-window state. Elements whose windows are all past cleanup are late: they go to the
late-data side output if there is one, else they are counted in
``numLateRecordsDropped`` and dropped. Emitted records carry ``window.max_timestamp()``.

With an evictor, the whole contents are kept as ``(value, timestamp)`` pairs and any
reduce or aggregate function runs when the window fires, after ``evict_before``.
Merging (session) windows keep a ``MergingWindowSet`` per key (``window_merging.py``).
This module is the general path; the common case (the assigner's own trigger, no evictor,
no merging, the hashmap backend) takes ``window_heap.py``, with the same results. The
contexts user code sees are in ``window_contexts.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from flinklet._private.exec.operators import (
    Output,
    ResultCollector,
    Stamps,
    StreamOperator,
    Values,
    copy_function,
    user_method,
)
from flinklet._private.exec.process import KeyedMixin
from flinklet._private.exec.window_contexts import EvictorContext, TriggerContext, WindowContext
from flinklet._private.exec.window_heap import HeapWindowPath
from flinklet._private.exec.window_merging import MERGING_WINDOW_SET, MergingWindowSet
from flinklet._private.network.elements import MAX_WATERMARK
from flinklet.datastream.output_tag import OutputTag
from flinklet.datastream.state import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    ReducingStateDescriptor,
    StateDescriptor,
    ValueStateDescriptor,
)
from flinklet.datastream.window import (
    EventTimeTrigger,
    Evictor,
    MergingWindowAssigner,
    ProcessingTimeTrigger,
    TimestampedValue,
    Trigger,
    TriggerResult,
    WindowAssigner,
)
from flinklet.errors import ApiUsageError, MissingTimestampError

CONTENTS = "window-contents"

_CONTINUE = TriggerResult.CONTINUE
_FIRE = TriggerResult.FIRE
_PURGE = TriggerResult.PURGE
_FIRE_AND_PURGE = TriggerResult.FIRE_AND_PURGE

# how the window function is called: (key, window, context, inputs) -> results
WindowCall = Callable[[Any, Any, Any, Iterable[Any]], Iterable[Any] | None]

PASS_THROUGH = "value"  # incremental result emitted as it is
PROCESS = "process"  # ProcessWindowFunction.process(key, context, elements)
APPLY = "apply"  # WindowFunction.apply(key, window, inputs)
ALL_PROCESS = "all_process"  # ProcessAllWindowFunction.process(context, elements)
ALL_APPLY = "all_apply"  # AllWindowFunction.apply(window, inputs)


@dataclass(frozen=True)
class WindowSpec:
    """Everything a window operator is built from (one per ``WindowedStream`` call)."""

    assigner: WindowAssigner[Any, Any]
    trigger: Trigger[Any, Any]
    evictor: Evictor[Any, Any] | None = None
    allowed_lateness: int = 0
    late_tag: OutputTag | None = None
    reduce_function: Any = None
    aggregate_function: Any = None
    window_function: Any = None
    function_kind: str = PASS_THROUGH


def window_call(kind: str, fn: Any) -> WindowCall:
    """Adapt a user window function of ``kind`` to the one signature the operator calls."""
    if kind == PASS_THROUGH:
        return lambda key, window, ctx, inputs: inputs
    if kind in (PROCESS, ALL_PROCESS):
        expected = "ProcessWindowFunction" if kind == PROCESS else "ProcessAllWindowFunction"
        process = user_method(fn, "process", "process", expected)
        if kind == PROCESS:
            return lambda key, window, ctx, inputs: process(key, ctx, inputs)
        return lambda key, window, ctx, inputs: process(ctx, inputs)
    expected = "WindowFunction" if kind == APPLY else "AllWindowFunction"
    apply = user_method(fn, "apply", "apply", expected)
    if kind == APPLY:
        return lambda key, window, ctx, inputs: apply(key, window, inputs)
    return lambda key, window, ctx, inputs: apply(window, inputs)


def missing_timestamp_error(op_name: str, assigner: Any) -> MissingTimestampError:
    return MissingTimestampError(
        f"'{op_name}' assigns records to event-time windows ({assigner!r}), but a record has "
        "no timestamp. Call assign_timestamps_and_watermarks(WatermarkStrategy...."
        "with_timestamp_assigner(...)) on the input, or read it with from_source(source, "
        "watermark_strategy_with_a_timestamp_assigner, name); or use a processing-time "
        "window assigner"
    )


class WindowOperator(KeyedMixin, StreamOperator):
    """A keyed window operator (``window_all`` keys every record by one constant)."""

    def __init__(self, spec: WindowSpec, key_selector: Callable[[Any], Any]) -> None:
        self.assigner = copy_function(spec.assigner)
        self.trigger = copy_function(spec.trigger)
        self.evictor = copy_function(spec.evictor)
        self.user_function = copy_function(spec.window_function)
        self.call = window_call(spec.function_kind, self.user_function)
        clear = None
        if spec.function_kind in (PROCESS, ALL_PROCESS):
            clear = getattr(self.user_function, "clear", None)
        self.clear_function: Callable[[Any], None] | None = clear if callable(clear) else None
        self._reduce = copy_function(spec.reduce_function)
        self.reduce_call: Callable[[Any, Any], Any] | None = None
        if self._reduce is not None:
            self.reduce_call = user_method(self._reduce, "reduce", "reduce", "ReduceFunction")
        self.aggregate_function = copy_function(spec.aggregate_function)
        self.key_selector = key_selector
        self.lateness = spec.allowed_lateness
        self.late_tag = spec.late_tag
        self.event_time = bool(self.assigner.is_event_time())
        self.merging = isinstance(self.assigner, MergingWindowAssigner)
        # the assigner's own default trigger, run inline on the per-record path
        self._builtin_trigger = type(self.trigger) is (
            EventTimeTrigger if self.event_time else ProcessingTimeTrigger
        )
        self._res: ResultCollector | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self._setup_keyed()
        descriptor: StateDescriptor
        if self.evictor is not None or (self._reduce is None and self.aggregate_function is None):
            descriptor = ListStateDescriptor(CONTENTS, None)
        elif self._reduce is not None:
            descriptor = ReducingStateDescriptor(CONTENTS, self._reduce, None)
        else:
            descriptor = AggregatingStateDescriptor(CONTENTS, self.aggregate_function, None)
        self._list = isinstance(descriptor, ListStateDescriptor)
        self.state: Any = self.backend.get_partitioned_state(descriptor)
        self._windows_state: Any = None
        if self.merging:
            self._windows_state = self.backend.get_partitioned_state(
                ValueStateDescriptor(MERGING_WINDOW_SET, None)
            )
        self.trigger_context = TriggerContext(self)
        self.window_context = WindowContext(self)
        self._evictor_context = EvictorContext(self)
        self.num_late_records_dropped = env.metrics.counter("numLateRecordsDropped")
        # the common case (built-in trigger, no evictor, no merging) on the hashmap backend
        self._heap: HeapWindowPath | None = None
        if self._builtin_trigger and self.evictor is None and not self.merging:
            self._heap = HeapWindowPath.of(self, self.state)

    def open(self) -> None:
        super().open()
        for fn in (self._reduce, self.aggregate_function):
            opener = getattr(fn, "open", None)
            if callable(opener):
                opener(self.runtime_context)

    def close(self) -> None:
        super().close()
        for fn in (self._reduce, self.aggregate_function):
            closer = getattr(fn, "close", None)
            if callable(closer):
                closer()

    # -- records -------------------------------------------------------------------------

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        if timestamps is None and self.event_time:
            raise self.missing_timestamp()
        res = self._res = ResultCollector(True)
        try:
            stamps: Iterable[int | None] = repeat(None) if timestamps is None else timestamps
            if self._heap is not None:
                self._heap.process_batch(values, stamps, res)
            elif self.merging:
                self._merging_batch(values, stamps, res)
            else:
                self._batch(values, stamps, res)
        finally:
            self._res = None
        res.emit(self.output)

    def _batch(self, values: Values, stamps: Iterable[int | None], res: ResultCollector) -> None:
        ks, set_key = self.key_selector, self.backend.set_current_key
        assign, actx = self.assigner.assign_windows, self.trigger_context
        state, on_element = self.state, self.trigger.on_element
        add = state.add
        set_namespace = state.set_current_namespace
        event_time, lateness, evicting = self.event_time, self.lateness, self.evictor is not None
        timers = self.timers
        register = (
            timers.register_event_time_timer
            if event_time
            else timers.register_processing_time_timer
        )
        # The default trigger is inlined: it registers a timer at the window's end, which is
        # also the cleanup time when there is no allowed lateness (one timer does both).
        builtin = self._builtin_trigger
        trigger_timer_is_cleanup = builtin and lateness == 0
        for value, ts in zip(values, stamps, strict=False):
            set_key(ks(value))
            if ts is None and event_time:
                raise self.missing_timestamp()
            skipped = True
            for window in assign(value, ts, actx):
                end = window.max_timestamp()
                cleanup = end
                if event_time:
                    cleanup = end + lateness
                    if cleanup >= MAX_WATERMARK:
                        cleanup = MAX_WATERMARK
                    if cleanup <= timers.current_watermark:
                        continue  # late window: its state is (being) dropped
                skipped = False
                set_namespace(window)
                add((value, ts) if evicting else value)
                if builtin:
                    if event_time and end <= timers.current_watermark:
                        self._act(_FIRE, window, res)  # a late firing within the lateness
                    else:
                        register(window, end)
                else:
                    actx.window = window
                    result = on_element(value, ts, window, actx)
                    if result is not _CONTINUE:
                        self._act(result, window, res)
                if cleanup < MAX_WATERMARK and not trigger_timer_is_cleanup:
                    register(window, cleanup)
            if skipped and event_time and ts + lateness <= timers.current_watermark:  # type: ignore[operator]
                self.late(value, ts, res)

    def _merging_batch(
        self, values: Values, stamps: Iterable[int | None], res: ResultCollector
    ) -> None:
        ks, set_key = self.key_selector, self.backend.set_current_key
        actx, state, evicting = self.trigger_context, self.state, self.evictor is not None
        for value, ts in zip(values, stamps, strict=False):
            set_key(ks(value))
            if ts is None and self.event_time:
                raise self.missing_timestamp()
            windows = MergingWindowSet(self.assigner, self._windows_state)
            skipped = True
            for window in self.assigner.assign_windows(value, ts, actx):
                actual = windows.add_window(window, self._merge)
                if self._is_window_late(actual):
                    windows.retire_window(actual)
                    continue
                skipped = False
                state.set_current_namespace(windows.get_state_window(actual))
                state.add((value, ts) if evicting else value)
                end = actual.max_timestamp()
                if self._builtin_trigger:
                    if self.event_time and end <= self.timers.current_watermark:
                        self._act(_FIRE, actual, res)
                    elif self.event_time:
                        self.timers.register_event_time_timer(actual, end)
                    else:
                        self.timers.register_processing_time_timer(actual, end)
                else:
                    actx.window = actual
                    result = self.trigger.on_element(value, ts, actual, actx)
                    if result is not _CONTINUE:
                        self._act(result, actual, res)
                self._register_cleanup_timer(actual)
            windows.persist()
            if skipped and self._is_element_late(ts):
                self.late(value, ts, res)

    def _merge(
        self, result: Any, merged: list[Any], state_window: Any, merged_state_windows: list[Any]
    ) -> None:
        """Called by ``MergingWindowSet`` when ``merged`` windows merge into ``result``."""
        end = result.max_timestamp()
        if self.event_time and end + self.lateness <= self.timers.current_watermark:
            raise ApiUsageError(
                f"The end timestamp of an event-time window cannot become earlier than the "
                f"current watermark by merging. Current watermark: "
                f"{self.timers.current_watermark} window: {result!r}; make the session gap "
                "extractor return gaps that keep sessions open past the watermark"
            )
        if not self.event_time and end <= self.env.pts.now():
            raise ApiUsageError(
                f"The end timestamp of a processing-time window cannot become earlier than the "
                f"current processing time by merging. Current processing time: "
                f"{self.env.pts.now()} window: {result!r}"
            )
        ctx = self.trigger_context
        ctx.window, ctx.merged_windows = result, merged
        try:
            self.trigger.on_merge(result, ctx)
        finally:
            ctx.merged_windows = []
        for window in merged:
            ctx.window = window
            self.trigger.clear(window, ctx)
            self._delete_cleanup_timer(window)
        self.state.merge_namespaces(state_window, merged_state_windows)

    def missing_timestamp(self) -> MissingTimestampError:
        return missing_timestamp_error(self.name, self.assigner)

    def late(self, value: Any, ts: Any, res: ResultCollector) -> None:
        """A late element: to the late-data side output, or counted and dropped."""
        if self.late_tag is not None:
            res.add(((self.late_tag, value),), ts)
        else:
            self.num_late_records_dropped.inc()

    # -- time ----------------------------------------------------------------------------

    def cleanup_time(self, window: Any) -> int:
        """When the window's state goes: its end plus the allowed lateness (event time)."""
        end: int = window.max_timestamp()
        if self.event_time:
            return min(end + self.lateness, MAX_WATERMARK)
        return end

    def _is_window_late(self, window: Any) -> bool:
        return self.event_time and self.cleanup_time(window) <= self.timers.current_watermark

    def _is_element_late(self, ts: int | None) -> bool:
        return (
            self.event_time
            and ts is not None
            and ts + self.lateness <= self.timers.current_watermark
        )

    def _register_cleanup_timer(self, window: Any) -> None:
        cleanup = self.cleanup_time(window)
        if cleanup >= MAX_WATERMARK:
            return  # the end of time (global windows): no cleanup timer
        if self.event_time:
            self.timers.register_event_time_timer(window, cleanup)
        else:
            self.timers.register_processing_time_timer(window, cleanup)

    def _delete_cleanup_timer(self, window: Any) -> None:
        cleanup = self.cleanup_time(window)
        if cleanup >= MAX_WATERMARK:
            return
        if self.event_time:
            self.timers.delete_event_time_timer(window, cleanup)
        else:
            self.timers.delete_processing_time_timer(window, cleanup)

    def process_watermark(self, watermark: int) -> None:
        res = self._res = ResultCollector(True)
        try:
            self.timers.advance_watermark(watermark)
        finally:
            self._res = None
        res.emit(self.output)
        super().process_watermark(watermark)

    def end_input(self) -> None:
        if self.env.batch_mode:  # BATCH mode: processing time ends with the input too
            res = self._res = ResultCollector(True)
            try:
                self.timers.fire_processing_timers(MAX_WATERMARK)
            finally:
                self._res = None
            res.emit(self.output)

    def _fire_timer(self, ts: int, key: Any, window: Any, event_time: bool) -> None:
        res = self._res
        if res is not None and self._heap is not None:  # a watermark's timers: the common case
            self._heap.on_timer(ts, key, window, event_time, res)
            return
        own = res is None
        if res is None:
            res = self._res = ResultCollector(True)
        try:
            self._on_timer(ts, window, event_time, res)
        finally:
            if own:
                self._res = None
                res.emit(self.output)

    def _on_timer(self, ts: int, window: Any, event_time: bool, res: ResultCollector) -> None:
        if self._heap is not None:
            self._heap.on_timer(ts, self.backend.current_key, window, event_time, res)
            return
        windows: MergingWindowSet | None = None
        if self.merging:
            windows = MergingWindowSet(self.assigner, self._windows_state)
            state_window = windows.get_state_window(window)
            if state_window is None:
                return  # the window was merged away or purged; its trigger left a timer
            self.state.set_current_namespace(state_window)
        else:
            self.state.set_current_namespace(window)
        ctx = self.trigger_context
        ctx.window = window
        if event_time:
            result = self.trigger.on_event_time(ts, window, ctx)
        else:
            result = self.trigger.on_processing_time(ts, window, ctx)
        if result is not _CONTINUE:
            self._act(result, window, res)
        if event_time == self.event_time and ts == self.cleanup_time(window):
            self._clear_all_state(window, windows)
        if windows is not None:
            windows.persist()

    # -- firing and purging --------------------------------------------------------------

    def _act(self, result: Any, window: Any, res: ResultCollector) -> None:
        """Carry out a trigger result (the state is scoped to ``window``'s contents)."""
        if result is _FIRE or result is _FIRE_AND_PURGE:
            if self.evictor is not None:
                self._fire_evicting(window, res)
            else:
                contents = self.state.get()
                if self._list:
                    if contents:
                        self.emit(window, contents, res)
                elif contents is not None:
                    self.emit(window, (contents,), res)
        elif result is not _PURGE:
            raise ApiUsageError(
                f"{type(self.trigger).__name__} returned {result!r}; triggers must return a "
                "TriggerResult (CONTINUE, FIRE, PURGE or FIRE_AND_PURGE)"
            )
        if result is _PURGE or result is _FIRE_AND_PURGE:
            self.state.clear()

    def emit(self, window: Any, inputs: Iterable[Any], res: ResultCollector) -> None:
        ctx = self.window_context
        ctx.set_window(window)
        key = self.backend.get_current_key()
        res.add(self.call(key, window, ctx, inputs), window.max_timestamp())

    def _fire_evicting(self, window: Any, res: ResultCollector) -> None:
        stored = self.state.get()
        if not stored:
            return
        elements = [TimestampedValue(value, ts) for value, ts in stored]
        evictor, ctx = self.evictor, self._evictor_context
        evictor.evict_before(elements, len(elements), window, ctx)
        values = [e.value for e in elements]
        if self.reduce_call is not None:
            if values:
                self.emit(window, (functools.reduce(self.reduce_call, values),), res)
        elif self.aggregate_function is not None:
            agg = self.aggregate_function
            acc = agg.create_accumulator()
            for value in values:
                acc = agg.add(value, acc)
            self.emit(window, (agg.get_result(acc),), res)
        else:
            self.emit(window, values, res)
        evictor.evict_after(elements, len(elements), window, ctx)
        self.state.update([(e.value, e.timestamp) for e in elements])

    def _clear_all_state(self, window: Any, windows: MergingWindowSet | None) -> None:
        """The window is over (cleanup time): drop contents, trigger and function state."""
        self.state.clear()
        self.clear_window(window)
        if windows is not None:
            windows.retire_window(window)

    def clear_window(self, window: Any) -> None:
        """Drop the trigger's and the window function's state of ``window``."""
        ctx = self.trigger_context
        ctx.window = window
        self.trigger.clear(window, ctx)
        if self.clear_function is not None:
            self.window_context.set_window(window)
            self.clear_function(self.window_context)
