"""Deterministic sensor readings, after the book's running example: ``num_sensors``
thermometers reporting every 100 ms of event time, temperatures drifting smoothly so
that rises and falls last a few readings."""

from __future__ import annotations

import math
from typing import NamedTuple

from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy

BASE_TIME_MS = 1_700_000_000_000


class SensorReading(NamedTuple):
    id: str
    timestamp: int  # event time, ms since the epoch
    temperature: float  # degrees Fahrenheit


def reading(index: int, num_sensors: int = 10) -> SensorReading:
    sensor = index % num_sensors
    step = index // num_sensors
    # a slow wave per sensor plus a small deterministic wobble
    temp = 65.0 + 15.0 * math.sin(step / 20.0 + sensor) + ((index * 7919) % 100) / 100.0
    return SensorReading(f"sensor_{sensor + 1}", BASE_TIME_MS + step * 100, round(temp, 2))


def sensor_source(
    count: int | None, num_sensors: int = 10, per_second: float | None = None
) -> DataGeneratorSource:
    """``count`` readings (None: forever), optionally rate-limited."""
    return DataGeneratorSource(
        lambda i: reading(i, num_sensors),
        count,
        RateLimiterStrategy.per_second(per_second) if per_second else None,
    )


def sensor_watermarks(out_of_orderness_ms: int = 5_000) -> WatermarkStrategy:
    from flinklet.common import Duration

    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(out_of_orderness_ms)
    ).with_timestamp_assigner(lambda r, _ts: r.timestamp)
