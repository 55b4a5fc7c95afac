"""``TimeCharacteristic``: kept for PyFlink programs that still call
``set_stream_time_characteristic``; since Flink 1.12 event time is always on."""

from __future__ import annotations

from enum import Enum


class TimeCharacteristic(Enum):
    ProcessingTime = 0
    IngestionTime = 1
    EventTime = 2
