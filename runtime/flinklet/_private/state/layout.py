"""The byte layout of a keyed-state entry's key: key group first.

``key_group (2 bytes, big-endian) | varint len | key bytes | varint len | namespace bytes |
state name (UTF-8)``

Putting the key group first makes every key group, and every range of key groups, one
contiguous byte range: a subtask restoring with another parallelism reads exactly its range
(one RocksDB range scan, or one dict lookup per key group in a snapshot). The length prefixes
make decoding unambiguous whatever bytes the key and namespace contain.
"""

from __future__ import annotations

from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.serializers import decode_varint, encode_varint
from flinklet.errors import StateError

__all__ = [
    "decode_state_key",
    "encode_state_key",
    "key_group_of",
    "key_group_prefix",
    "key_group_range_bounds",
]

_MAX_KEY_GROUPS = 1 << 16


def key_group_prefix(key_group: int) -> bytes:
    """The two bytes every entry of ``key_group`` starts with."""
    return key_group.to_bytes(2, "big")


def encode_state_key(
    key_group: int, key_bytes: bytes, namespace_bytes: bytes, state_name: str
) -> bytes:
    """The layout key of one entry (see the module docstring)."""
    if not 0 <= key_group < _MAX_KEY_GROUPS:
        raise StateError(f"key group {key_group} does not fit the state layout (0..65535)")
    out = bytearray(key_group.to_bytes(2, "big"))
    encode_varint(len(key_bytes), out)
    out += key_bytes
    encode_varint(len(namespace_bytes), out)
    out += namespace_bytes
    out += state_name.encode("utf-8")
    return bytes(out)


def decode_state_key(data: bytes) -> tuple[int, bytes, bytes, str]:
    """``(key_group, key_bytes, namespace_bytes, state_name)`` of a layout key."""
    try:
        key_group = int.from_bytes(data[:2], "big")
        if len(data) < 3:
            raise IndexError("too short")
        key_len, pos = decode_varint(data, 2)
        key_end = pos + key_len
        key_bytes = data[pos:key_end]
        ns_len, pos = decode_varint(data, key_end)
        ns_end = pos + ns_len
        if ns_end > len(data) or key_end > len(data):
            raise IndexError("length prefix past the end")
        namespace_bytes = data[pos:ns_end]
        state_name = data[ns_end:].decode("utf-8")
    except (IndexError, UnicodeDecodeError) as exc:
        raise StateError(f"corrupt state key {data[:40]!r}: {exc}") from exc
    return key_group, bytes(key_bytes), bytes(namespace_bytes), state_name


def key_group_of(data: bytes) -> int:
    """The key group a layout key belongs to."""
    return int.from_bytes(data[:2], "big")


def key_group_range_bounds(key_groups: KeyGroupRange) -> tuple[bytes, bytes | None]:
    """``(first key, end key exclusive or None)`` of a key-group range, for range scans."""
    start = key_group_prefix(key_groups.start)
    after = key_groups.end + 1
    return start, (key_group_prefix(after) if after < _MAX_KEY_GROUPS else None)
