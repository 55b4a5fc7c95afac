"""Operators running process functions: plain, keyed, co-, and broadcast variants.

They share one shape: for each record set the context (timestamp, and the key on keyed
streams), call the user method, and gather what it yields into a ``ResultCollector`` that
is emitted once per batch. Keyed variants own an ``InternalTimerService`` whose timers
call ``on_timer`` with the timer's key set.
"""

from __future__ import annotations

from typing import Any

from flinklet._private.exec.operators import (
    Output,
    ResultCollector,
    Stamps,
    StreamOperator,
    TwoInputOperator,
    Values,
    copy_function,
    user_method,
)
from flinklet._private.exec.timers import InternalTimerService
from flinklet._private.state.backend import VOID_NAMESPACE
from flinklet.datastream.functions import (
    BroadcastProcessFunction,
    CoProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    ProcessFunction,
    TimeDomain,
    TimerService,
)
from flinklet.errors import ApiUsageError

# Keyed operators ask a backend that can (RocksDB) to read the state of a batch's keys in
# one go before processing it; below this many records one read per record is as cheap.
PREFETCH_MIN_BATCH = 16


def _process_prefetched(
    backend: Any,
    key_selector: Any,
    fn: Any,
    ctx: Any,
    res: ResultCollector,
    values: Values,
    stamps: Any,
) -> None:
    """Process a batch with the state of its keys read ahead, in one go per state (a
    backend with ``prefetch``: RocksDB, see ``RocksDBKeyedStateBackend.prefetch``)."""
    keys = [key_selector(v) for v in values]
    set_key = backend.set_current_key
    backend.prefetch(keys)
    try:
        for v, k, t in zip(values, keys, stamps, strict=True):
            set_key(k)
            ctx.ts = t
            res.add(fn(v, ctx), t)
    finally:
        backend.end_prefetch()


_TIMERS_NEED_KEYS = (
    "Timers can only be registered on a keyed stream: call key_by(...) and use a "
    "KeyedProcessFunction (or KeyedCoProcessFunction) to set timers"
)


class _NonKeyedTimerService(TimerService):
    def __init__(self, op: StreamOperator) -> None:
        self._op = op

    def current_processing_time(self) -> int:
        return self._op.env.pts.now()

    def current_watermark(self) -> int:
        return self._op.current_watermark

    def register_processing_time_timer(self, timestamp: int) -> None:
        raise ApiUsageError(_TIMERS_NEED_KEYS)

    def register_event_time_timer(self, timestamp: int) -> None:
        raise ApiUsageError(_TIMERS_NEED_KEYS)

    def delete_processing_time_timer(self, timestamp: int) -> None:
        raise ApiUsageError(_TIMERS_NEED_KEYS)

    def delete_event_time_timer(self, timestamp: int) -> None:
        raise ApiUsageError(_TIMERS_NEED_KEYS)


class KeyedTimerService(TimerService):
    """The user-facing timer service of a keyed function (namespace = no window)."""

    def __init__(self, op: StreamOperator, timers: InternalTimerService) -> None:
        self._op = op
        self._timers = timers

    def current_processing_time(self) -> int:
        return self._op.env.pts.now()

    def current_watermark(self) -> int:
        return self._timers.current_watermark

    def register_processing_time_timer(self, timestamp: int) -> None:
        self._timers.register_processing_time_timer(VOID_NAMESPACE, int(timestamp))

    def register_event_time_timer(self, timestamp: int) -> None:
        self._timers.register_event_time_timer(VOID_NAMESPACE, int(timestamp))

    def delete_processing_time_timer(self, timestamp: int) -> None:
        self._timers.delete_processing_time_timer(VOID_NAMESPACE, int(timestamp))

    def delete_event_time_timer(self, timestamp: int) -> None:
        self._timers.delete_event_time_timer(VOID_NAMESPACE, int(timestamp))


class _Ctx(
    ProcessFunction.Context,
    KeyedProcessFunction.OnTimerContext,
    CoProcessFunction.Context,
    KeyedCoProcessFunction.OnTimerContext,
):
    """One reusable context object per operator (no per-record allocation)."""

    __slots__ = ("_backend", "_domain", "_timer_service", "ts")

    def __init__(self, timer_service: TimerService, backend: Any) -> None:
        self.ts: int | None = None
        self._timer_service = timer_service
        self._backend = backend
        self._domain = TimeDomain.EVENT_TIME

    def timestamp(self) -> int | None:
        return self.ts

    def timer_service(self) -> TimerService:
        return self._timer_service

    def get_current_key(self) -> Any:
        if self._backend is None:
            raise ApiUsageError("get_current_key() is only available on a keyed stream")
        return self._backend.get_current_key()

    def time_domain(self) -> TimeDomain:
        return self._domain


class KeyedMixin:
    """Key context and timers for keyed operators."""

    timers: InternalTimerService

    def _setup_keyed(self: Any) -> None:
        backend = self.env.keyed_backend
        if backend is None:  # pragma: no cover - the task always gives keyed ops a backend
            raise ApiUsageError(f"operator {self.name} needs a keyed stream")
        self.backend = backend
        self.timers = InternalTimerService(
            backend.set_current_key, backend.get_current_key, self.env.pts, self._fire_timer
        )

    def snapshot_timers(self) -> dict[str, Any]:
        return self.timers.snapshot()


class ProcessOperator(StreamOperator):
    def __init__(self, fn: Any) -> None:
        self.user_function = copy_function(fn)
        self._process = user_method(
            self.user_function, "process_element", "process", "ProcessFunction"
        )

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self.ctx = _Ctx(_NonKeyedTimerService(self), None)

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        fn, ctx = self._process, self.ctx
        res = ResultCollector(timestamps is not None)
        if timestamps is None:
            ctx.ts = None
            for v in values:
                res.add(fn(v, ctx), None)
        else:
            for v, t in zip(values, timestamps, strict=True):
                ctx.ts = t
                res.add(fn(v, ctx), t)
        res.emit(self.output)


class KeyedProcessOperator(KeyedMixin, StreamOperator):
    def __init__(self, fn: Any, key_selector: Any) -> None:
        self.user_function = copy_function(fn)
        self._process = user_method(
            self.user_function, "process_element", "process", "KeyedProcessFunction"
        )
        self._on_timer = getattr(self.user_function, "on_timer", None)
        self.key_selector = key_selector

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self._setup_keyed()
        self.ctx = _Ctx(KeyedTimerService(self, self.timers), self.backend)

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        fn, ctx, ks = self._process, self.ctx, self.key_selector
        backend = self.backend
        set_key = backend.set_current_key
        res = ResultCollector(timestamps is not None)
        ctx._domain = TimeDomain.EVENT_TIME
        if hasattr(backend, "prefetch") and len(values) >= PREFETCH_MIN_BATCH:
            stamps = timestamps if timestamps is not None else [None] * len(values)
            _process_prefetched(backend, ks, fn, ctx, res, values, stamps)
        elif timestamps is None:
            ctx.ts = None
            for v in values:
                set_key(ks(v))
                res.add(fn(v, ctx), None)
        else:
            for v, t in zip(values, timestamps, strict=True):
                set_key(ks(v))
                ctx.ts = t
                res.add(fn(v, ctx), t)
        res.emit(self.output)

    def process_watermark(self, watermark: int) -> None:
        self.timers.advance_watermark(watermark)
        super().process_watermark(watermark)

    def _fire_timer(self, ts: int, key: Any, ns: Any, event_time: bool) -> None:
        if self._on_timer is None:
            return
        ctx = self.ctx
        ctx.ts = ts if event_time else None
        ctx._domain = TimeDomain.EVENT_TIME if event_time else TimeDomain.PROCESSING_TIME
        res = ResultCollector(True)
        res.add(self._on_timer(ts, ctx), ctx.ts)
        res.emit(self.output)


class CoMapOperator(TwoInputOperator):
    def __init__(self, fn: Any, flat: bool) -> None:
        self.user_function = copy_function(fn)
        kind = "CoFlatMapFunction" if flat else "CoMapFunction"
        m1, m2 = ("flat_map1", "flat_map2") if flat else ("map1", "map2")
        f1 = getattr(self.user_function, m1, None)
        f2 = getattr(self.user_function, m2, None)
        if not (callable(f1) and callable(f2)):
            raise ApiUsageError(
                f"ConnectedStreams.{'flat_map' if flat else 'map'}() expects a {kind} "
                f"with {m1}() and {m2}(), got {type(fn).__name__}"
            )
        self._f = (f1, f2)
        self._flat = flat

    def _run(self, f: Any, values: Values, timestamps: Stamps) -> None:
        if not self._flat:
            self.output.collect_batch([f(v) for v in values], timestamps)
            return
        res = ResultCollector(timestamps is not None)
        if timestamps is None:
            for v in values:
                res.add(f(v), None)
        else:
            for v, t in zip(values, timestamps, strict=True):
                res.add(f(v), t)
        res.emit(self.output)

    def process_batch1(self, values: Values, timestamps: Stamps) -> None:
        self._run(self._f[0], values, timestamps)

    def process_batch2(self, values: Values, timestamps: Stamps) -> None:
        self._run(self._f[1], values, timestamps)


class CoProcessOperator(TwoInputOperator):
    """CoProcessFunction, or KeyedCoProcessFunction when both inputs are keyed."""

    def __init__(self, fn: Any, key_selector1: Any = None, key_selector2: Any = None) -> None:
        self.user_function = copy_function(fn)
        p1 = getattr(self.user_function, "process_element1", None)
        p2 = getattr(self.user_function, "process_element2", None)
        if not (callable(p1) and callable(p2)):
            raise ApiUsageError(
                "ConnectedStreams.process() expects a CoProcessFunction or "
                f"KeyedCoProcessFunction with process_element1/2, got {type(fn).__name__}"
            )
        self._p = (p1, p2)
        self._on_timer = getattr(self.user_function, "on_timer", None)
        self._ks = (key_selector1, key_selector2)
        self.keyed = key_selector1 is not None

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        if self.keyed:
            backend = env.keyed_backend
            self.backend = backend
            self.timers = InternalTimerService(
                backend.set_current_key, backend.get_current_key, env.pts, self._fire_timer
            )
            self.ctx = _Ctx(KeyedTimerService(self, self.timers), backend)
        else:
            self.ctx = _Ctx(_NonKeyedTimerService(self), None)

    def _run(self, idx: int, values: Values, timestamps: Stamps) -> None:
        fn, ctx, ks = self._p[idx], self.ctx, self._ks[idx]
        res = ResultCollector(timestamps is not None)
        ctx._domain = TimeDomain.EVENT_TIME
        stamps = timestamps if timestamps is not None else [None] * len(values)
        if ks is None:
            for v, t in zip(values, stamps, strict=True):
                ctx.ts = t
                res.add(fn(v, ctx), t)
            res.emit(self.output)
            return
        backend = self.backend
        set_key = backend.set_current_key
        if hasattr(backend, "prefetch") and len(values) >= PREFETCH_MIN_BATCH:
            _process_prefetched(backend, ks, fn, ctx, res, values, stamps)
        else:
            for v, t in zip(values, stamps, strict=True):
                set_key(ks(v))
                ctx.ts = t
                res.add(fn(v, ctx), t)
        res.emit(self.output)

    def process_batch1(self, values: Values, timestamps: Stamps) -> None:
        self._run(0, values, timestamps)

    def process_batch2(self, values: Values, timestamps: Stamps) -> None:
        self._run(1, values, timestamps)

    def process_watermark(self, watermark: int) -> None:
        if self.keyed:
            self.timers.advance_watermark(watermark)
        super().process_watermark(watermark)

    def _fire_timer(self, ts: int, key: Any, ns: Any, event_time: bool) -> None:
        if self._on_timer is None:
            return
        ctx = self.ctx
        ctx.ts = ts if event_time else None
        ctx._domain = TimeDomain.EVENT_TIME if event_time else TimeDomain.PROCESSING_TIME
        res = ResultCollector(True)
        res.add(self._on_timer(ts, ctx), ctx.ts)
        res.emit(self.output)


class _ReadOnlyBroadcastView:
    """A read-only view of broadcast state (the non-broadcast side may not write it)."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def get(self, key: Any) -> Any:
        return self._state.get(key)

    def contains(self, key: Any) -> bool:
        return bool(self._state.contains(key))

    def items(self) -> Any:
        return self._state.items()

    def keys(self) -> Any:
        return self._state.keys()

    def values(self) -> Any:
        return self._state.values()

    def __iter__(self) -> Any:
        return iter(self._state.keys())

    def __getattr__(self, name: str) -> Any:
        if name in ("put", "put_all", "remove", "clear"):
            raise ApiUsageError(
                "Broadcast state is read-only in process_element(); update it in "
                "process_broadcast_element() so every parallel instance sees the same state"
            )
        raise AttributeError(name)


class _BroadcastCtx(
    BroadcastProcessFunction.Context,
    BroadcastProcessFunction.ReadOnlyContext,
    KeyedBroadcastProcessFunction.Context,
    KeyedBroadcastProcessFunction.OnTimerContext,
):
    __slots__ = ("_domain", "_op", "_read_only", "ts")

    def __init__(self, op: BroadcastProcessOperator) -> None:
        self._op = op
        self.ts: int | None = None
        self._read_only = True
        self._domain = TimeDomain.EVENT_TIME

    def timestamp(self) -> int | None:
        return self.ts

    def timer_service(self) -> TimerService:
        return self._op.timer_service

    def current_processing_time(self) -> int:
        return self._op.env.pts.now()

    def current_watermark(self) -> int:
        return self._op.current_watermark

    def get_broadcast_state(self, state_descriptor: Any) -> Any:
        backend = self._op.env.operator_state
        if backend is None:  # pragma: no cover - every task gives operators one
            raise ApiUsageError("broadcast state is not available here")
        state = backend.get_broadcast_state(state_descriptor)
        return _ReadOnlyBroadcastView(state) if self._read_only else state

    def get_current_key(self) -> Any:
        if not self._op.keyed:
            raise ApiUsageError("get_current_key() needs a keyed stream")
        return self._op.backend.get_current_key()

    def apply_to_keyed_state(self, state_descriptor: Any, function: Any) -> None:
        if not self._op.keyed:
            raise ApiUsageError("apply_to_keyed_state() needs a keyed stream")
        self._op.backend.apply_to_all_keys(VOID_NAMESPACE, state_descriptor, function)

    def time_domain(self) -> TimeDomain:
        return self._domain


class BroadcastProcessOperator(TwoInputOperator):
    """Input 1: the (keyed or not) main stream; input 2: the broadcast stream."""

    def __init__(self, fn: Any, key_selector: Any = None) -> None:
        self.user_function = copy_function(fn)
        self._pe = getattr(self.user_function, "process_element", None)
        self._pb = getattr(self.user_function, "process_broadcast_element", None)
        if not (callable(self._pe) and callable(self._pb)):
            raise ApiUsageError(
                "BroadcastConnectedStream.process() expects a BroadcastProcessFunction or "
                "KeyedBroadcastProcessFunction with process_element and "
                f"process_broadcast_element, got {type(fn).__name__}"
            )
        self._on_timer = getattr(self.user_function, "on_timer", None)
        self._ks = key_selector
        self.keyed = key_selector is not None

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self.ctx = _BroadcastCtx(self)
        if self.keyed:
            self.backend = env.keyed_backend
            self.timers = InternalTimerService(
                self.backend.set_current_key,
                self.backend.get_current_key,
                env.pts,
                self._fire_timer,
            )
            self.timer_service: TimerService = KeyedTimerService(self, self.timers)
        else:
            self.timer_service = _NonKeyedTimerService(self)

    def process_batch1(self, values: Values, timestamps: Stamps) -> None:
        fn, ctx, ks = self._pe, self.ctx, self._ks
        ctx._read_only = True
        ctx._domain = TimeDomain.EVENT_TIME
        res = ResultCollector(timestamps is not None)
        set_key = self.backend.set_current_key if ks is not None else None
        stamps = timestamps if timestamps is not None else [None] * len(values)
        for v, t in zip(values, stamps, strict=True):
            if set_key is not None:
                set_key(ks(v))
            ctx.ts = t
            res.add(fn(v, ctx), t)  # type: ignore[misc]
        res.emit(self.output)

    def process_batch2(self, values: Values, timestamps: Stamps) -> None:
        fn, ctx = self._pb, self.ctx
        ctx._read_only = False
        res = ResultCollector(timestamps is not None)
        stamps = timestamps if timestamps is not None else [None] * len(values)
        try:
            for v, t in zip(values, stamps, strict=True):
                ctx.ts = t
                res.add(fn(v, ctx), t)  # type: ignore[misc]
        finally:
            ctx._read_only = True
        res.emit(self.output)

    def process_watermark(self, watermark: int) -> None:
        if self.keyed:
            self.timers.advance_watermark(watermark)
        super().process_watermark(watermark)

    def _fire_timer(self, ts: int, key: Any, ns: Any, event_time: bool) -> None:
        if self._on_timer is None:
            return
        ctx = self.ctx
        ctx._read_only = True
        ctx.ts = ts if event_time else None
        ctx._domain = TimeDomain.EVENT_TIME if event_time else TimeDomain.PROCESSING_TIME
        res = ResultCollector(True)
        res.add(self._on_timer(ts, ctx), ctx.ts)
        res.emit(self.output)
