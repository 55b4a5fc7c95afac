"""Helpers for window jobs: deterministic (punctuated) watermarks and result collection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flinklet.common.watermark_strategy import (
    Watermark,
    WatermarkGenerator,
    WatermarkOutput,
    WatermarkStrategy,
)
from flinklet.datastream import DataStream, ProcessFunction


class _Punctuated(WatermarkGenerator):
    """Emits ``after[i]`` as the watermark right after the i-th record it sees."""

    def __init__(self, after: dict[int, int]) -> None:
        self.after = after
        self.seen = 0

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        watermark = self.after.get(self.seen)
        self.seen += 1
        if watermark is not None:
            output.emit_watermark(Watermark(watermark))

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        return None


def _timestamp_of(element: Any, record_timestamp: Any) -> int:
    return int(element[1])


@pytest.fixture
def punctuated() -> Callable[[dict[int, int]], WatermarkStrategy]:
    """``punctuated({index: watermark})``: records carry their timestamp in field 1, and
    the watermark advances only right after the given records (never on a clock)."""

    def make(after: dict[int, int]) -> WatermarkStrategy:
        return WatermarkStrategy.for_generator(
            lambda ctx: _Punctuated(after)
        ).with_timestamp_assigner(_timestamp_of)

    return make


@pytest.fixture
def monotonous() -> WatermarkStrategy:
    """Timestamps from field 1; bounded inputs end with the final watermark."""
    return WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(_timestamp_of)


class _WithTimestamp(ProcessFunction[Any, Any]):
    def process_element(self, value: Any, ctx: Any) -> Any:
        yield value, ctx.timestamp()


@pytest.fixture
def collect() -> Callable[..., list[Any]]:
    """``collect(stream, timestamps=False)``: run the job, return its results as a list
    (with ``timestamps=True``: ``(value, record timestamp)`` pairs)."""

    def run(stream: DataStream[Any], timestamps: bool = False) -> list[Any]:
        if timestamps:
            stream = stream.process(_WithTimestamp())
        with stream.execute_and_collect() as results:
            return list(results)

    return run
