"""State value/key serialization: exact round trips, versioning, deterministic keys."""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

from flinklet._private.state.serializers import (
    FORMAT_VERSION,
    decode_varint,
    deserialize,
    encode_varint,
    serialize,
    serialize_key,
)
from flinklet.errors import StateError, StateMigrationError


class Reading(NamedTuple):
    sensor: str
    value: float


class Mode(enum.Enum):
    ON = "on"


@dataclass
class Account:
    owner: str
    balance: decimal.Decimal
    tags: list[str]


class Opaque:
    def __init__(self, payload: Any) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.payload == self.payload

    __hash__ = None  # type: ignore[assignment]


FAST_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    2**64,
    -(2**100),
    12345678901234567890123456789,
    1.5,
    -2.25e-300,
    float("inf"),
    "",
    "héllo wörld 日本語",
    "\ud800 lone surrogate",
    b"",
    b"\x00\x01\xff",
    bytearray(b"abc"),
    (),
    (1,),
    [],
    [1, [2, (3, "x")], {"k": None}],
    {"a": {1: [None, 2.5]}, (1, "t"): b"v"},
    {1, 2, 3},
    frozenset({"a", "b"}),
    {"nested": [({"deep": (1, [2, {3: frozenset({4})}])},)]},
]

FALLBACK_VALUES: list[Any] = [
    Reading("s1", 20.5),
    Mode.ON,
    Account("ann", decimal.Decimal("10.25"), ["vip"]),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    decimal.Decimal("1.10"),
    Opaque([1, {"x": 2}]),
    [Reading("s2", 1.0), {"acct": Account("bob", decimal.Decimal(0), [])}],
]


@pytest.mark.parametrize("value", FAST_VALUES + FALLBACK_VALUES, ids=repr)
def test_round_trip_keeps_value_and_type(value: Any) -> None:
    restored = deserialize(serialize(value))
    assert restored == value
    assert type(restored) is type(value)


def test_bool_stays_bool_and_tuple_stays_tuple() -> None:
    restored = deserialize(serialize([True, 1, (1,), [1]]))
    assert [type(x) for x in restored] == [bool, int, tuple, list]


def test_special_floats_round_trip() -> None:
    assert math.isnan(deserialize(serialize(float("nan"))))
    negative_zero = deserialize(serialize(-0.0))
    assert negative_zero == 0.0 and math.copysign(1.0, negative_zero) == -1.0


def test_fast_types_do_not_use_pickle() -> None:
    data = serialize({"a": [1, 2.0, "x", b"y", None, (True,)]})
    assert b"P" not in data[:2]
    assert b"pickle" not in data and b"\x80\x05" not in data


def test_fallback_values_are_tagged_pickle() -> None:
    data = serialize(Reading("s", 1.0))
    assert data[0] == FORMAT_VERSION
    assert data[1:2] == b"P"


def test_first_byte_is_the_format_version() -> None:
    assert FORMAT_VERSION == 1
    for value in (1, "x", None, Reading("a", 1.0)):
        assert serialize(value)[0] == FORMAT_VERSION
        assert serialize_key(value)[0] == FORMAT_VERSION


def test_unknown_format_version_is_a_migration_error() -> None:
    data = bytes([FORMAT_VERSION + 1]) + serialize("x")[1:]
    with pytest.raises(StateMigrationError, match="format version 2"):
        deserialize(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01", b"\x01i\x00\x00", b"\x01s\x05ab", b"\x01\xfe", b"\x01N\x00", b"\x01t\x02N"],
)
def test_corrupt_bytes_raise_state_error(data: bytes) -> None:
    with pytest.raises(StateError, match="corrupt state bytes"):
        deserialize(data)


def test_unpicklable_value_raises_state_error_naming_the_type() -> None:
    with pytest.raises(StateError, match="of type function cannot be serialized"):
        serialize({"f": lambda x: x})


def test_missing_class_on_load_is_a_migration_error() -> None:
    data = serialize(Reading("s", 1.0)).replace(b"Reading", b"Missing")
    with pytest.raises(StateMigrationError, match="must be importable"):
        deserialize(data)


def test_serialize_key_is_deterministic_for_equal_keys() -> None:
    shared = "shared-string-value"
    same_object = Reading(shared, 1.0)
    other = Reading("".join(["shared-", "string-value"]), 1.0)
    assert same_object == other
    assert serialize_key(same_object) == serialize_key(other)
    assert serialize_key((shared, shared)) == serialize_key((shared, "".join(shared)))
    assert serialize_key(frozenset(["a", "b", "c"])) == serialize_key(frozenset(["c", "b", "a"]))
    assert serialize_key(("k", 1)) == serialize_key(("k", 1))


def test_serialize_key_round_trips() -> None:
    for key in ("k", 7, ("a", 1, None), Reading("x", 2.0), Mode.ON, b"raw"):
        assert deserialize(serialize_key(key)) == key


def test_set_encoding_is_the_same_under_another_hash_seed() -> None:
    program = (
        "from flinklet._private.state.serializers import serialize_key\n"
        "print(serialize_key(frozenset(['alpha', 'beta', 'gamma', 'delta'])).hex())\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("3", "77")
    }
    assert outputs == {serialize_key(frozenset(["alpha", "beta", "gamma", "delta"])).hex()}


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16_383, 16_384, 2**35])
def test_varint_round_trip(value: int) -> None:
    out = bytearray(b"x")
    encode_varint(value, out)
    decoded, end = decode_varint(bytes(out), 1)
    assert decoded == value
    assert end == len(out)
    assert len(out) - 1 == max(1, (value.bit_length() + 6) // 7)
