"""The key-group-prefixed state key layout: unambiguous, and contiguous per key group."""

from __future__ import annotations

import pytest

from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.layout import (
    decode_state_key,
    encode_state_key,
    key_group_of,
    key_group_prefix,
    key_group_range_bounds,
)
from flinklet.errors import StateError


@pytest.mark.parametrize(
    ("key_group", "key_bytes", "namespace_bytes", "name"),
    [
        (0, b"", b"", "s"),
        (5, b"\x01k", b"", "count"),
        (127, b"\x00" * 300, b"window\xff", "näme-ü"),
        (32_767, b"key", b"ns" * 100, ""),
    ],
)
def test_round_trip(key_group: int, key_bytes: bytes, namespace_bytes: bytes, name: str) -> None:
    encoded = encode_state_key(key_group, key_bytes, namespace_bytes, name)
    assert decode_state_key(encoded) == (key_group, key_bytes, namespace_bytes, name)
    assert key_group_of(encoded) == key_group


def test_key_group_is_two_big_endian_bytes_up_front() -> None:
    assert key_group_prefix(258) == b"\x01\x02"
    encoded = encode_state_key(258, b"k", b"n", "s")
    assert encoded.startswith(b"\x01\x02")
    assert encoded == b"\x01\x02" + b"\x01k" + b"\x01n" + b"s"


def test_length_prefixes_make_it_unambiguous() -> None:
    first = encode_state_key(1, b"ab", b"c", "s")
    second = encode_state_key(1, b"a", b"bc", "s")
    third = encode_state_key(1, b"a", b"b", "cs")
    assert len({first, second, third}) == 3
    assert decode_state_key(second) == (1, b"a", b"bc", "s")
    assert decode_state_key(third) == (1, b"a", b"b", "cs")


def test_each_key_group_is_one_contiguous_byte_range() -> None:
    keys = [
        encode_state_key(group, key, ns, name)
        for group in (3, 1, 2, 255, 256)
        for key in (b"", b"\xff\xff", b"a" * 200)
        for ns in (b"", b"\x00")
        for name in ("a", "zz")
    ]
    ordered = sorted(keys)
    groups = [key_group_of(k) for k in ordered]
    assert groups == sorted(groups)
    start, end = key_group_range_bounds(KeyGroupRange(2, 255))
    inside = [k for k in ordered if start <= k and (end is None or k < end)]
    assert {key_group_of(k) for k in inside} == {2, 3, 255}
    assert key_group_range_bounds(KeyGroupRange(0, 65_535))[1] is None


def test_invalid_key_group_and_corrupt_keys_raise() -> None:
    with pytest.raises(StateError, match="does not fit"):
        encode_state_key(70_000, b"", b"", "s")
    with pytest.raises(StateError, match="corrupt state key"):
        decode_state_key(b"\x00")
    with pytest.raises(StateError, match="corrupt state key"):
        decode_state_key(b"\x00\x01\x05ab")
