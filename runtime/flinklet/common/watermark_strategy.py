"""Watermark strategies: how a stream gets event timestamps and watermarks.

A ``WatermarkStrategy`` builds a timestamp assigner and a watermark generator for each
source (or ``assign_timestamps_and_watermarks``) subtask::

    strategy = (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(5))
        .with_timestamp_assigner(lambda event, ts: event.timestamp_ms)
        .with_idleness(Duration.of_minutes(1))
    )

Generators are periodic (``on_periodic_emit`` runs every
``pipeline.auto-watermark-interval``) or punctuated (``on_event`` emits directly).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flinklet.errors import ApiUsageError

__all__ = [
    "BoundedOutOfOrdernessWatermarks",
    "TimestampAssigner",
    "Watermark",
    "WatermarkGenerator",
    "WatermarkOutput",
    "WatermarkStrategy",
]

_MIN = -(2**63)


def _millis(duration: Any, what: str) -> int:
    to_ms = getattr(duration, "to_milliseconds", None)
    if callable(to_ms):
        return int(to_ms())
    if isinstance(duration, int) and not isinstance(duration, bool):
        return duration
    raise ApiUsageError(
        f"{what} expects a Duration (e.g. Duration.of_seconds(5)), got {duration!r}"
    )


@dataclass(frozen=True, slots=True)
class Watermark:
    """A watermark to emit from a ``WatermarkGenerator``."""

    timestamp: int

    def get_timestamp(self) -> int:
        return self.timestamp


class WatermarkOutput(abc.ABC):
    @abc.abstractmethod
    def emit_watermark(self, watermark: Watermark) -> None: ...

    @abc.abstractmethod
    def mark_idle(self) -> None: ...

    @abc.abstractmethod
    def mark_active(self) -> None: ...


class WatermarkGenerator(abc.ABC):
    """Generates watermarks from events (punctuated) and/or periodically."""

    @abc.abstractmethod
    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None: ...

    @abc.abstractmethod
    def on_periodic_emit(self, output: WatermarkOutput) -> None: ...


class TimestampAssigner(abc.ABC):
    """Extracts the event timestamp (epoch milliseconds) from a record."""

    @abc.abstractmethod
    def extract_timestamp(self, value: Any, record_timestamp: int | None) -> int: ...


class BoundedOutOfOrdernessWatermarks(WatermarkGenerator):
    """Watermark = highest timestamp seen - out-of-orderness bound - 1."""

    def __init__(self, max_out_of_orderness_ms: int) -> None:
        if max_out_of_orderness_ms < 0:
            raise ApiUsageError("the out-of-orderness bound must not be negative")
        self.out_of_orderness = max_out_of_orderness_ms
        self.max_timestamp = _MIN + max_out_of_orderness_ms + 1

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        if event_timestamp > self.max_timestamp:
            self.max_timestamp = event_timestamp

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        output.emit_watermark(Watermark(self.max_timestamp - self.out_of_orderness - 1))

    def current(self) -> int:
        return self.max_timestamp - self.out_of_orderness - 1


class _NoWatermarks(WatermarkGenerator):
    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        return None

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        return None


class WatermarkStrategy:
    """How to assign timestamps and generate watermarks; immutable, builder-style."""

    def __init__(
        self,
        generator_supplier: Callable[[Any], WatermarkGenerator],
        timestamp_assigner: Any = None,
        idle_timeout_ms: int | None = None,
        emits_watermarks: bool = True,
    ) -> None:
        self._supplier = generator_supplier
        self._assigner = timestamp_assigner
        self.idle_timeout_ms = idle_timeout_ms
        self.emits_watermarks = emits_watermarks

    # -- factories -------------------------------------------------------------------

    @staticmethod
    def for_monotonous_timestamps() -> WatermarkStrategy:
        """Timestamps only ascend: watermark = highest timestamp - 1."""
        return WatermarkStrategy(lambda ctx: BoundedOutOfOrdernessWatermarks(0))

    @staticmethod
    def for_bounded_out_of_orderness(max_out_of_orderness: Any) -> WatermarkStrategy:
        """Records are at most ``max_out_of_orderness`` late relative to the newest one."""
        bound = _millis(max_out_of_orderness, "for_bounded_out_of_orderness")
        if bound < 0:
            raise ApiUsageError("for_bounded_out_of_orderness: the bound must be >= 0")
        return WatermarkStrategy(lambda ctx: BoundedOutOfOrdernessWatermarks(bound))

    @staticmethod
    def no_watermarks() -> WatermarkStrategy:
        return WatermarkStrategy(lambda ctx: _NoWatermarks(), emits_watermarks=False)

    @staticmethod
    def for_generator(generator_supplier: Callable[..., WatermarkGenerator]) -> WatermarkStrategy:
        """A custom generator; ``generator_supplier(context)`` (or a zero-argument callable,
        or a ``WatermarkGenerator`` class) creates one generator per subtask."""

        takes_context = True
        if isinstance(generator_supplier, type):
            takes_context = False
        else:
            try:
                params = inspect.signature(generator_supplier).parameters
                takes_context = len(params) > 0
            except (TypeError, ValueError):
                takes_context = True

        def supply(ctx: Any) -> WatermarkGenerator:
            made = generator_supplier(ctx) if takes_context else generator_supplier()
            if not isinstance(made, WatermarkGenerator):
                raise ApiUsageError(
                    f"for_generator: the supplier returned {type(made).__name__}, not a "
                    f"WatermarkGenerator"
                )
            return made

        return WatermarkStrategy(supply)

    # -- builder ---------------------------------------------------------------------

    def with_timestamp_assigner(self, timestamp_assigner: Any) -> WatermarkStrategy:
        """A ``TimestampAssigner`` or a callable ``(value, record_timestamp) -> int``."""
        if not (
            callable(getattr(timestamp_assigner, "extract_timestamp", None))
            or callable(timestamp_assigner)
        ):
            raise ApiUsageError(
                "with_timestamp_assigner expects a TimestampAssigner or a callable "
                f"(value, record_timestamp) -> int, got {timestamp_assigner!r}"
            )
        return WatermarkStrategy(
            self._supplier, timestamp_assigner, self.idle_timeout_ms, self.emits_watermarks
        )

    def with_idleness(self, idle_timeout: Any) -> WatermarkStrategy:
        """Mark the stream idle after ``idle_timeout`` without records, so its watermark
        stops holding back downstream operators."""
        timeout = _millis(idle_timeout, "with_idleness")
        if timeout <= 0:
            raise ApiUsageError("with_idleness: the timeout must be positive")
        return WatermarkStrategy(self._supplier, self._assigner, timeout, self.emits_watermarks)

    # -- used by the runtime ---------------------------------------------------------

    def create_watermark_generator(self, context: Any = None) -> WatermarkGenerator:
        return self._supplier(context)

    def timestamp_extractor(self) -> Callable[[Any, int | None], int] | None:
        a = self._assigner
        if a is None:
            return None
        method = getattr(a, "extract_timestamp", None)
        if callable(method):
            return method  # type: ignore[no-any-return]
        return a  # type: ignore[no-any-return]
