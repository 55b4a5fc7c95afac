"""Time sizes and points in time, as PyFlink's ``pyflink.common.time`` names them.

Flink measures everything the engine schedules (watermark intervals, window sizes,
timeouts, restart delays) in integer milliseconds. This module gives users PyFlink's
vocabulary for those sizes (``Duration``, the older ``Time``, ``Instant``) and gives
the rest of Flinklet one function, :func:`to_millis`, that turns whatever a user
passed into the integer the engine needs. It also parses Flink's duration strings
("100 ms", "10s", "1 min") for the configuration.

>>> Duration.of_seconds(10).to_milliseconds()
10000
>>> to_millis(Time.minutes(1))
60000
>>> parse_duration_millis("1 min")
60000
"""

from __future__ import annotations

import datetime
import enum
import re
from dataclasses import dataclass
from typing import ClassVar

from flinklet.errors import ApiUsageError, ConfigurationError

__all__ = [
    "Duration",
    "Instant",
    "Time",
    "TimeUnit",
    "format_duration_millis",
    "parse_duration_millis",
    "to_millis",
]

_NANOS_PER_MILLI = 1_000_000


class TimeUnit(enum.Enum):
    """A unit of time, named as in Java's ``TimeUnit``; the value is its length in ns."""

    NANOSECONDS = 1
    MICROSECONDS = 1_000
    MILLISECONDS = 1_000_000
    SECONDS = 1_000_000_000
    MINUTES = 60 * 1_000_000_000
    HOURS = 3_600 * 1_000_000_000
    DAYS = 86_400 * 1_000_000_000

    def to_millis(self, size: int) -> int:
        """Convert ``size`` of this unit to whole milliseconds (rounding toward -inf)."""
        return size * self.value // _NANOS_PER_MILLI

    def from_millis(self, millis: int) -> int:
        """Convert ``millis`` milliseconds to whole units of this unit (truncating)."""
        whole = abs(millis) * _NANOS_PER_MILLI // self.value
        return whole if millis >= 0 else -whole


def _require_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiUsageError(
            f"{what} must be an int, got {type(value).__name__} {value!r}; "
            "pass a whole number (use int(...) for floats)"
        )
    return value


@dataclass(frozen=True, order=True)
class Duration:
    """A length of time in whole milliseconds (Flink's engine resolution).

    Sub-millisecond inputs (``of_nanos``) are truncated toward negative infinity.

    >>> Duration.of_minutes(2) > Duration.of_seconds(90)
    True
    """

    millis: int
    ZERO: ClassVar[Duration]

    def __post_init__(self) -> None:
        _require_int(self.millis, "Duration millis")

    @staticmethod
    def of_days(days: int) -> Duration:
        return Duration(TimeUnit.DAYS.to_millis(_require_int(days, "days")))

    @staticmethod
    def of_hours(hours: int) -> Duration:
        return Duration(TimeUnit.HOURS.to_millis(_require_int(hours, "hours")))

    @staticmethod
    def of_minutes(minutes: int) -> Duration:
        return Duration(TimeUnit.MINUTES.to_millis(_require_int(minutes, "minutes")))

    @staticmethod
    def of_seconds(seconds: int) -> Duration:
        return Duration(TimeUnit.SECONDS.to_millis(_require_int(seconds, "seconds")))

    @staticmethod
    def of_millis(millis: int) -> Duration:
        return Duration(_require_int(millis, "millis"))

    @staticmethod
    def of_nanos(nanos: int) -> Duration:
        return Duration(TimeUnit.NANOSECONDS.to_millis(_require_int(nanos, "nanos")))

    @staticmethod
    def parse(text: str) -> Duration:
        """Parse Flink's duration syntax, e.g. ``"10 s"``; see :func:`parse_duration_millis`."""
        return Duration(parse_duration_millis(text))

    def to_milliseconds(self) -> int:
        return self.millis

    def to_nanos(self) -> int:
        return self.millis * _NANOS_PER_MILLI

    def get_seconds(self) -> int:
        """Whole seconds of this duration (floored, as Java's ``getSeconds``)."""
        return self.millis // 1000

    def to_timedelta(self) -> datetime.timedelta:
        return datetime.timedelta(milliseconds=self.millis)

    def __str__(self) -> str:
        return format_duration_millis(self.millis)


Duration.ZERO = Duration(0)


@dataclass(frozen=True, eq=False)
class Time:
    """A size of time in a unit; PyFlink's older alternative to :class:`Duration`.

    Two ``Time`` values are equal when they span the same number of milliseconds.

    >>> Time.seconds(5).to_milliseconds()
    5000
    """

    size: int
    unit: TimeUnit = TimeUnit.MILLISECONDS

    def __post_init__(self) -> None:
        _require_int(self.size, "Time size")
        if not isinstance(self.unit, TimeUnit):
            raise ApiUsageError(
                f"Time unit must be a TimeUnit, got {self.unit!r}; "
                "use Time.seconds(...), Time.minutes(...) etc."
            )

    @staticmethod
    def milliseconds(milliseconds: int) -> Time:
        return Time(milliseconds, TimeUnit.MILLISECONDS)

    @staticmethod
    def seconds(seconds: int) -> Time:
        return Time(seconds, TimeUnit.SECONDS)

    @staticmethod
    def minutes(minutes: int) -> Time:
        return Time(minutes, TimeUnit.MINUTES)

    @staticmethod
    def hours(hours: int) -> Time:
        return Time(hours, TimeUnit.HOURS)

    @staticmethod
    def days(days: int) -> Time:
        return Time(days, TimeUnit.DAYS)

    def to_milliseconds(self) -> int:
        return self.unit.to_millis(self.size)

    def get_size(self) -> int:
        return self.size

    def get_unit(self) -> TimeUnit:
        return self.unit

    def to_duration(self) -> Duration:
        return Duration(self.to_milliseconds())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Time):
            return NotImplemented
        return self.to_milliseconds() == other.to_milliseconds()

    def __hash__(self) -> int:
        return hash(self.to_milliseconds())

    def __repr__(self) -> str:
        return f"Time({self.size}, {self.unit.name})"


@dataclass(frozen=True, order=True)
class Instant:
    """A point on the time line: seconds since the epoch plus nanoseconds.

    >>> Instant.of_epoch_milli(1500).to_epoch_milli()
    1500
    """

    seconds: int
    nanos: int = 0

    def __post_init__(self) -> None:
        _require_int(self.seconds, "Instant seconds")
        _require_int(self.nanos, "Instant nanos")
        if not 0 <= self.nanos < 1_000_000_000:
            raise ApiUsageError(
                f"Instant nanos must be in [0, 999999999], got {self.nanos}; "
                "carry whole seconds into the seconds field"
            )

    @staticmethod
    def of_epoch_milli(epoch_milli: int) -> Instant:
        _require_int(epoch_milli, "epoch_milli")
        return Instant(epoch_milli // 1000, (epoch_milli % 1000) * _NANOS_PER_MILLI)

    def to_epoch_milli(self) -> int:
        return self.seconds * 1000 + self.nanos // _NANOS_PER_MILLI


def to_millis(value: Duration | Time | datetime.timedelta | int) -> int:
    """The number of milliseconds in any size of time a user may pass to the API.

    Accepts :class:`Duration`, :class:`Time`, :class:`datetime.timedelta` and plain
    ``int`` milliseconds; anything else raises :class:`~flinklet.errors.ApiUsageError`.

    >>> to_millis(Duration.of_seconds(2)), to_millis(250)
    (2000, 250)
    """
    if isinstance(value, Duration):
        return value.millis
    if isinstance(value, Time):
        return value.to_milliseconds()
    if isinstance(value, datetime.timedelta):
        return value // datetime.timedelta(milliseconds=1)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ApiUsageError(
        f"expected a size of time, got {type(value).__name__} {value!r}; pass a "
        "Duration (e.g. Duration.of_seconds(10)), a Time, a datetime.timedelta or "
        "an int number of milliseconds"
    )


_DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([a-zµ]*)\s*$")

# Unit labels Flink accepts in duration strings, mapped to their length in nanoseconds.
_DURATION_UNITS: dict[str, int] = {}
for _unit, _labels in (
    (TimeUnit.DAYS, ("d", "day", "days")),
    (TimeUnit.HOURS, ("h", "hour", "hours")),
    (TimeUnit.MINUTES, ("m", "min", "mins", "minute", "minutes")),
    (TimeUnit.SECONDS, ("s", "sec", "secs", "second", "seconds")),
    (TimeUnit.MILLISECONDS, ("", "ms", "milli", "millis", "millisecond", "milliseconds")),
    (TimeUnit.MICROSECONDS, ("us", "µs", "micro", "micros", "microsecond", "microseconds")),
    (TimeUnit.NANOSECONDS, ("ns", "nano", "nanos", "nanosecond", "nanoseconds")),
):
    for _label in _labels:
        _DURATION_UNITS[_label] = _unit.value

DURATION_HINT = "use e.g. '10 s' or '500 ms'"


def parse_duration_millis(text: str) -> int:
    """Parse Flink's duration syntax into whole milliseconds.

    A non-negative integer followed by an optional unit (``d``, ``h``, ``min``/``m``,
    ``s``, ``ms``, ``us``, ``ns`` and their long forms, any case); no unit means ms.
    Raises :class:`~flinklet.errors.ConfigurationError` for anything else.

    >>> [parse_duration_millis(t) for t in ("100 ms", "10s", "2 h", "500", "1d")]
    [100, 10000, 7200000, 500, 86400000]
    """
    match = _DURATION_PATTERN.match(text.lower())
    unit_nanos = _DURATION_UNITS.get(match.group(2)) if match else None
    if match is None or unit_nanos is None:
        raise ConfigurationError(f"'{text}' is not a duration; {DURATION_HINT}")
    return int(match.group(1)) * unit_nanos // _NANOS_PER_MILLI


def format_duration_millis(millis: int) -> str:
    """Format milliseconds in the largest unit that divides them, e.g. ``"10 min"``."""
    for label, unit in (
        ("d", TimeUnit.DAYS),
        ("h", TimeUnit.HOURS),
        ("min", TimeUnit.MINUTES),
        ("s", TimeUnit.SECONDS),
    ):
        unit_millis = unit.value // _NANOS_PER_MILLI
        if millis != 0 and millis % unit_millis == 0:
            return f"{millis // unit_millis} {label}"
    return f"{millis} ms"
