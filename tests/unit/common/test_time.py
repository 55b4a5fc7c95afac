"""Duration, Time, Instant, to_millis and Flink's duration strings."""

import datetime

import pytest

from flinklet.common.time import (
    Duration,
    Instant,
    Time,
    TimeUnit,
    format_duration_millis,
    parse_duration_millis,
    to_millis,
)
from flinklet.errors import ApiUsageError, ConfigurationError


def test_duration_of_seconds_is_milliseconds() -> None:
    assert Duration.of_seconds(10).to_milliseconds() == 10_000


@pytest.mark.parametrize(
    ("duration", "millis"),
    [
        (Duration.of_millis(7), 7),
        (Duration.of_minutes(2), 120_000),
        (Duration.of_hours(1), 3_600_000),
        (Duration.of_days(1), 86_400_000),
    ],
)
def test_duration_factories(duration: Duration, millis: int) -> None:
    assert duration.millis == millis


def test_duration_of_nanos_truncates_to_millis() -> None:
    assert Duration.of_nanos(1_999_999).to_milliseconds() == 1


def test_duration_to_nanos() -> None:
    assert Duration.of_millis(3).to_nanos() == 3_000_000


def test_duration_get_seconds_floors() -> None:
    assert Duration.of_millis(2_999).get_seconds() == 2


def test_durations_compare_by_length() -> None:
    assert Duration.of_minutes(2) > Duration.of_seconds(90) > Duration.ZERO


def test_duration_zero_is_zero_millis() -> None:
    assert Duration.of_millis(0) == Duration.ZERO


def test_duration_rejects_float() -> None:
    with pytest.raises(ApiUsageError, match="must be an int"):
        Duration.of_seconds(1.5)  # type: ignore[arg-type]


def test_duration_str_uses_largest_unit() -> None:
    assert str(Duration.of_minutes(10)) == "10 min"


def test_duration_parse() -> None:
    assert Duration.parse("2 s") == Duration.of_seconds(2)


def test_time_minutes_to_milliseconds() -> None:
    assert Time.minutes(2).to_milliseconds() == 120_000


def test_time_keeps_size_and_unit() -> None:
    t = Time.hours(3)
    assert (t.get_size(), t.get_unit()) == (3, TimeUnit.HOURS)


def test_times_of_equal_length_are_equal() -> None:
    assert Time.seconds(60) == Time.minutes(1)
    assert hash(Time.seconds(60)) == hash(Time.minutes(1))


def test_time_plain_constructor_is_milliseconds() -> None:
    assert Time(250).to_milliseconds() == 250


def test_instant_epoch_milli_round_trip() -> None:
    assert Instant.of_epoch_milli(1_234_567).to_epoch_milli() == 1_234_567


def test_instant_of_negative_epoch_milli_keeps_nanos_positive() -> None:
    assert Instant.of_epoch_milli(-1) == Instant(-1, 999_000_000)


def test_instant_rejects_out_of_range_nanos() -> None:
    with pytest.raises(ApiUsageError, match="nanos"):
        Instant(0, 1_000_000_000)


@pytest.mark.parametrize(
    ("value", "millis"),
    [
        (Duration.of_seconds(2), 2_000),
        (Time.seconds(3), 3_000),
        (datetime.timedelta(seconds=1, microseconds=500_999), 1_500),
        (250, 250),
    ],
)
def test_to_millis_accepts_every_size_of_time(value: object, millis: int) -> None:
    assert to_millis(value) == millis  # type: ignore[arg-type]


def test_to_millis_rejects_strings_and_says_what_to_pass() -> None:
    with pytest.raises(ApiUsageError, match=r"Duration \(e\.g\. Duration\.of_seconds\(10\)\)"):
        to_millis("10 s")  # type: ignore[arg-type]


def test_to_millis_rejects_bool() -> None:
    with pytest.raises(ApiUsageError):
        to_millis(True)


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("100 ms", 100),
        ("10s", 10_000),
        ("1 min", 60_000),
        ("3m", 180_000),
        ("2 h", 7_200_000),
        ("500", 500),
        ("1d", 86_400_000),
        ("5 SECONDS", 5_000),
        ("1500 us", 1),
        ("  7 ms  ", 7),
    ],
)
def test_parse_duration(text: str, millis: int) -> None:
    assert parse_duration_millis(text) == millis


@pytest.mark.parametrize("text", ["abc", "-1 s", "1.5 s", "10 parsecs", "", "s"])
def test_parse_duration_rejects_with_example(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"is not a duration; use e\.g\. '10 s'"):
        parse_duration_millis(text)


@pytest.mark.parametrize(
    ("millis", "text"),
    [(0, "0 ms"), (100, "100 ms"), (1_000, "1 s"), (90_000, "90 s"), (3_600_000, "1 h")],
)
def test_format_duration(millis: int, text: str) -> None:
    assert format_duration_millis(millis) == text


def test_time_unit_from_millis_truncates() -> None:
    assert TimeUnit.SECONDS.from_millis(2_500) == 2
