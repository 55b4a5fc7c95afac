"""What the window operator's user code sees: the contexts of window functions, triggers
(and assigners) and evictors. One of each per operator, pointed at the current window
before each call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flinklet._private.state.backend import VOID_NAMESPACE
from flinklet.datastream.functions import MetricGroup, ProcessAllWindowFunction
from flinklet.datastream.functions import ProcessWindowFunction as _PWF
from flinklet.datastream.state import StateDescriptor
from flinklet.datastream.window import Evictor, Trigger, WindowAssigner

if TYPE_CHECKING:
    from flinklet._private.exec.windowing import WindowOperator

__all__ = ["EvictorContext", "TriggerContext", "WindowContext"]


class _StateStore:
    """``window_state()`` / ``global_state()``: keyed state scoped to one namespace."""

    __slots__ = ("_backend", "namespace")

    def __init__(self, backend: Any, namespace: Any) -> None:
        self._backend = backend
        self.namespace = namespace

    def _get(self, descriptor: StateDescriptor) -> Any:
        state = self._backend.get_partitioned_state(descriptor)
        state.set_current_namespace(self.namespace)
        return state

    get_state = get_list_state = get_map_state = get_reducing_state = _get
    get_aggregating_state = _get


class WindowContext(_PWF.Context, ProcessAllWindowFunction.Context):
    """The context of ``ProcessWindowFunction.process`` (one per operator, reused)."""

    __slots__ = ("_global", "_op", "_window", "_window_store")

    def __init__(self, op: WindowOperator) -> None:
        self._op = op
        self._window: Any = None
        self._window_store = _StateStore(op.backend, None)
        self._global = _StateStore(op.backend, VOID_NAMESPACE)

    def set_window(self, window: Any) -> None:
        self._window = window
        self._window_store.namespace = window

    def window(self) -> Any:
        return self._window

    def current_processing_time(self) -> int:
        return self._op.env.pts.now()

    def current_watermark(self) -> int:
        return self._op.timers.current_watermark

    def window_state(self) -> _StateStore:
        return self._window_store

    def global_state(self) -> _StateStore:
        return self._global


class TriggerContext(Trigger.OnMergeContext, WindowAssigner.WindowAssignerContext):
    """What triggers (and assigners, and evictors) see; ``window`` is set before each call."""

    __slots__ = ("_op", "merged_windows", "window")

    def __init__(self, op: WindowOperator) -> None:
        self._op = op
        self.window: Any = None
        self.merged_windows: list[Any] = []

    def get_current_processing_time(self) -> int:
        return self._op.env.pts.now()

    def get_runtime_context(self) -> Any:
        return self._op.runtime_context

    def get_metric_group(self) -> MetricGroup:
        return self._op.env.metrics

    def get_current_watermark(self) -> int:
        return self._op.timers.current_watermark

    def register_processing_time_timer(self, time: int) -> None:
        self._op.timers.register_processing_time_timer(self.window, time)

    def register_event_time_timer(self, time: int) -> None:
        self._op.timers.register_event_time_timer(self.window, time)

    def delete_processing_time_timer(self, time: int) -> None:
        self._op.timers.delete_processing_time_timer(self.window, time)

    def delete_event_time_timer(self, time: int) -> None:
        self._op.timers.delete_event_time_timer(self.window, time)

    def get_partitioned_state(self, state_descriptor: StateDescriptor) -> Any:
        state = self._op.backend.get_partitioned_state(state_descriptor)
        state.set_current_namespace(self.window)
        return state

    def merge_partitioned_state(self, state_descriptor: StateDescriptor) -> None:
        if self.merged_windows:
            state = self._op.backend.get_partitioned_state(state_descriptor)
            state.merge_namespaces(self.window, self.merged_windows)


class EvictorContext(Evictor.EvictorContext):
    __slots__ = ("_op",)

    def __init__(self, op: WindowOperator) -> None:
        self._op = op

    def get_current_processing_time(self) -> int:
        return self._op.env.pts.now()

    def get_metric_group(self) -> MetricGroup:
        return self._op.env.metrics

    def get_current_watermark(self) -> int:
        return self._op.timers.current_watermark
