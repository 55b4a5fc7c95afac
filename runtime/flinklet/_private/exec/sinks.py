"""Sink operators: ``print``, ``add_sink(SinkFunction)`` and the collect sink behind
``execute_and_collect``."""

from __future__ import annotations

import sys
import threading
from collections import deque
from typing import Any

from flinklet._private.exec.operators import Stamps, StreamOperator, Values, copy_function
from flinklet.datastream.functions import SinkFunction


class PrintSinkOperator(StreamOperator):
    """Prints ``str(value)`` per line; with parallelism > 1 prefixed ``"<subtask+1>> "``
    (and the sink identifier if one is given), as Flink's print sink does."""

    def __init__(self, sink_identifier: str | None = None, to_stderr: bool = False) -> None:
        self.sink_identifier = sink_identifier
        self.to_stderr = to_stderr

    def open(self) -> None:
        env = self.env
        prefix = self.sink_identifier or ""
        if env.parallelism > 1:
            prefix = f"{prefix}:{env.subtask_index + 1}" if prefix else str(env.subtask_index + 1)
        self._prefix = f"{prefix}> " if prefix else ""

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        stream = sys.stderr if self.to_stderr else sys.stdout
        p = self._prefix
        stream.write("".join(f"{p}{v}\n" for v in values))
        stream.flush()


class SinkContext(SinkFunction.Context):
    """``SinkFunction.Context``: the current record's timestamp and the clocks."""

    __slots__ = ("_op", "ts")

    def __init__(self, op: StreamOperator) -> None:
        self._op = op
        self.ts: int | None = None

    def current_processing_time(self) -> int:
        return self._op.env.pts.now()

    def current_watermark(self) -> int:
        return self._op.current_watermark

    def timestamp(self) -> int | None:
        return self.ts


class SinkFunctionOperator(StreamOperator):
    def __init__(self, fn: Any) -> None:
        self.user_function = copy_function(fn)
        invoke = getattr(self.user_function, "invoke", None)
        self._plain: Any = None
        if callable(invoke):
            self._invoke = invoke
        elif callable(self.user_function):
            self._plain = self.user_function
            self._invoke = lambda value, ctx: self._plain(value)
        else:
            from flinklet.errors import ApiUsageError

            raise ApiUsageError(
                f"add_sink() expects a SinkFunction or a callable, got {type(fn).__name__}"
            )

    def setup(self, env: Any, output: Any) -> None:
        super().setup(env, output)
        self.ctx = SinkContext(self)

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        plain = self._plain
        if plain is not None:
            for v in values:
                plain(v)
            return
        invoke, ctx = self._invoke, self.ctx
        if timestamps is None:
            ctx.ts = None
            for v in values:
                invoke(v, ctx)
        else:
            for v, t in zip(values, timestamps, strict=True):
                ctx.ts = t
                invoke(v, ctx)

    def finish(self) -> None:
        hook = getattr(self.user_function, "finish", None)
        if callable(hook):
            hook()


class CollectBuffer:
    """Thread-safe hand-over from the collect sink to the client's iterator."""

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.cond = threading.Condition()
        self.finished = False
        self.error: BaseException | None = None

    def add(self, values: list[Any]) -> None:
        with self.cond:
            self.items.extend(values)
            self.cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self.cond:
            self.finished = True
            self.error = error
            self.cond.notify_all()


class CollectSinkOperator(StreamOperator):
    def __init__(self, buffer_id: str) -> None:
        self.buffer_id = buffer_id
        self.buffer: CollectBuffer | None = None

    def open(self) -> None:
        from flinklet._private.exec.executor import collect_buffer

        self.buffer = collect_buffer(self.buffer_id)

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        assert self.buffer is not None
        self.buffer.add(values)
