"""Watermark handling inside tasks.

``WatermarkValve`` turns per-channel watermarks and idleness into the task's event time:
the minimum over active channels, never going backwards, with idle channels ignored and
a re-activated channel rejoining only once it has caught up (Flink's status valve).
``TimestampsAndWatermarksOperator`` assigns timestamps and runs the user's watermark
generator, periodically on the processing-time clock and on every event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flinklet._private.exec.operators import Output, Stamps, StreamOperator, Values
from flinklet._private.network.elements import (
    ACTIVE,
    IDLE,
    MAX_WATERMARK,
    MIN_WATERMARK,
    WatermarkStatus,
)
from flinklet.common.watermark_strategy import (
    BoundedOutOfOrdernessWatermarks,
    Watermark,
    WatermarkOutput,
    WatermarkStrategy,
)
from flinklet.errors import MissingTimestampError


class WatermarkValve:
    def __init__(
        self,
        num_channels: int,
        emit_watermark: Callable[[int], None],
        emit_status: Callable[[WatermarkStatus], None],
    ) -> None:
        self.watermarks = [MIN_WATERMARK] * num_channels
        self.idle = [False] * num_channels
        self.aligned = [True] * num_channels
        self.last_output = MIN_WATERMARK
        self.output_idle = False
        self._emit_watermark = emit_watermark
        self._emit_status = emit_status

    def input_watermark(self, channel: int, watermark: int) -> None:
        if self.idle[channel]:
            # a watermark from an idle channel reactivates it (Flink does the same)
            self.input_status(channel, ACTIVE)
        if watermark > self.watermarks[channel]:
            self.watermarks[channel] = watermark
            if not self.aligned[channel] and watermark >= self.last_output:
                self.aligned[channel] = True
            self._advance()

    def input_status(self, channel: int, status: WatermarkStatus) -> None:
        if status.idle and not self.idle[channel]:
            self.idle[channel] = True
            self.aligned[channel] = False
            if all(self.idle):
                top = max(self.watermarks)
                if top > self.last_output:
                    self.last_output = top
                    self._emit_watermark(top)
                self.output_idle = True
                self._emit_status(IDLE)
            else:
                self._advance()
        elif not status.idle and self.idle[channel]:
            self.idle[channel] = False
            if self.watermarks[channel] >= self.last_output:
                self.aligned[channel] = True
            if self.output_idle:
                self.output_idle = False
                self._emit_status(ACTIVE)

    def channel_finished(self, channel: int) -> None:
        """A finished channel never holds event time back."""
        self.idle[channel] = False
        self.aligned[channel] = True
        self.input_watermark(channel, MAX_WATERMARK)

    def _advance(self) -> None:
        best: int | None = None
        for wm, idle, aligned in zip(self.watermarks, self.idle, self.aligned, strict=True):
            if not idle and aligned and (best is None or wm < best):
                best = wm
        if best is not None and best > self.last_output:
            self.last_output = best
            self._emit_watermark(best)


class _GeneratorOutput(WatermarkOutput):
    """Collects what a watermark generator emits during one call."""

    __slots__ = ("_op",)

    def __init__(self, op: TimestampsAndWatermarksOperator) -> None:
        self._op = op

    def emit_watermark(self, watermark: Watermark) -> None:
        self._op._generated(watermark.timestamp)

    def mark_idle(self) -> None:
        self._op._set_idle(True)

    def mark_active(self) -> None:
        self._op._set_idle(False)


class TimestampsAndWatermarksOperator(StreamOperator):
    def __init__(self, strategy: WatermarkStrategy, from_source: bool = False) -> None:
        self.strategy = strategy
        self.from_source = from_source

    def setup(self, env: Any, output: Output) -> None:
        super().setup(env, output)
        self._extract = self.strategy.timestamp_extractor()
        self.generator = self.strategy.create_watermark_generator(None)
        self._fast = type(self.generator) is BoundedOutOfOrdernessWatermarks
        self._wm_out = _GeneratorOutput(self)
        self.emitted = MIN_WATERMARK
        self.idle = False
        self._idle_timeout = self.strategy.idle_timeout_ms
        self._last_record_time = env.pts.now()
        self._interval = env.auto_watermark_interval
        self._pending: list[tuple[int, int]] = []  # (index in batch, watermark)
        self._batch_index = -1  # >= 0 only while a batch is being processed

    def open(self) -> None:
        super().open()
        if self._interval > 0 and not self.env.batch_mode:
            self.env.pts.register(self.env.pts.now() + self._interval, self._on_periodic)

    def _on_periodic(self, now: int) -> None:
        timeout = self._idle_timeout
        if timeout is not None and not self.idle and now - self._last_record_time >= timeout:
            self._set_idle(True)
        if not self.idle or self._idle_timeout is None:
            self.generator.on_periodic_emit(self._wm_out)
        self.env.pts.register(now + self._interval, self._on_periodic)

    def _generated(self, watermark: int) -> None:
        if self._batch_index >= 0:
            self._pending.append((self._batch_index, watermark))
        else:
            self._emit(watermark)

    def _emit(self, watermark: int) -> None:
        if self.env.batch_mode and watermark != MAX_WATERMARK:
            return
        if watermark > self.emitted:
            if self.idle:
                self._set_idle(False)
            self.emitted = watermark
            self.output.emit_watermark(watermark)

    def _set_idle(self, idle: bool) -> None:
        if idle != self.idle:
            self.idle = idle
            self.output.emit_watermark_status(IDLE if idle else ACTIVE)

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        extract = self._extract
        if extract is not None:
            if timestamps is None:
                stamps: list[Any] = [extract(v, None) for v in values]
            else:
                stamps = [extract(v, t) for v, t in zip(values, timestamps, strict=True)]
        elif timestamps is None:
            raise MissingTimestampError(
                f"'{self.name}' has no timestamp assigner and the records carry no "
                f"timestamps. Add .with_timestamp_assigner(lambda event, ts: ...) to the "
                f"WatermarkStrategy"
            )
        else:
            stamps = timestamps
        if self._idle_timeout is not None:
            self._last_record_time = self.env.pts.now()
            if self.idle:
                self._set_idle(False)
        gen = self.generator
        if self._fast:
            top = max(stamps)
            if top is not None and top > gen.max_timestamp:  # type: ignore[attr-defined]
                gen.max_timestamp = top  # type: ignore[attr-defined]
            self.output.collect_batch(values, stamps)
            return
        # generic generator: on_event per record, splitting the batch where it emits
        out = self._wm_out
        pending = self._pending
        for i, (v, t) in enumerate(zip(values, stamps, strict=True)):
            self._batch_index = i + 1
            gen.on_event(v, t, out)
        self._batch_index = -1
        if not pending:
            self.output.collect_batch(values, stamps)
            return
        start = 0
        for idx, wm in pending:
            if idx > start:
                self.output.collect_batch(values[start:idx], stamps[start:idx])
                start = idx
            self._emit(wm)
        pending.clear()
        if start < len(values):
            self.output.collect_batch(values[start:], stamps[start:])

    def process_watermark(self, watermark: int) -> None:
        # upstream watermarks are replaced by ours; only end-of-input passes through
        if watermark == MAX_WATERMARK:
            self._emit(MAX_WATERMARK)

    def process_watermark_status(self, status: WatermarkStatus) -> None:
        return None
