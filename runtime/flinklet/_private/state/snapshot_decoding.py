"""Fast decoding of keyed-state snapshots: the restore side of ``heap_snapshots.py``.

A keyed-state snapshot (``KeyedStateSnapshot.to_bytes()``) is one serialized tuple whose
bulk is the entries: ``{key group: [(layout key, value bytes), ...]}``. The generic
decoder dispatches on a type tag for every tuple, list and bytes of it, some ten Python
calls per entry, which made restoring a million keys several times slower than computing
them. ``parse_keyed_snapshot`` reads the same bytes with one loop per key group that
knows the entries' shape (a 2-tuple of two bytes values) and slices them out directly; the
small header and trailer still go through the generic decoder. Anything that is not
shaped as expected makes it return ``None``, and the caller decodes generically, which
also gives the precise error for corrupt bytes.

``INT_LAYOUT_HEAD``/``INT_VALUE_HEAD`` let the heap backend's restore decode the
commonest keys and values (int64) inline.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from flinklet._private.state.serializers import FORMAT_VERSION, decode_at, decode_varint

__all__ = ["INT_LAYOUT_HEAD", "INT_VALUE_HEAD", "parse_keyed_snapshot"]

_INT64 = struct.Struct(">q")
_T: Final = ord("t")
_B: Final = ord("b")
_M: Final = ord("m")
_L: Final = ord("l")
_I: Final = ord("i")
# a layout key's bytes 2..4 for an int64 key: key length 10, version byte, int64 tag
INT_LAYOUT_HEAD: Final = b"\x0a\x01i"
# the bytes of serialize(v) for an int64 v start with these (then 8 bytes)
INT_VALUE_HEAD: Final = bytes((FORMAT_VERSION, _I))


class _Unexpected(Exception):
    """The bytes are not shaped as the fast path expects: decode them generically."""


def parse_keyed_snapshot(data: bytes) -> tuple[Any, ...] | None:
    """The decoded payload tuple of a keyed-state snapshot (what ``deserialize(data)``
    returns), or ``None`` if ``data`` is not shaped as one (then use ``deserialize``)."""
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) < 3 or data[0] != FORMAT_VERSION or data[1] != _T or data[2] != 8:
        return None
    try:
        view = memoryview(data)
        pos = 3
        header = []
        for _ in range(5):
            item, pos = decode_at(view, pos)
            header.append(item)
        entries, pos = _entries(data, pos)
        states, pos = decode_at(view, pos)
        extra, pos = decode_at(view, pos)
    except Exception:  # not shaped as expected, truncated, corrupt: decode it generically
        return None
    if pos != len(data):
        return None
    return (*header, entries, states, extra)


def _entries(data: bytes, pos: int) -> tuple[dict[int, list[tuple[bytes, bytes]]], int]:
    if data[pos] != _M:
        raise _Unexpected
    groups, pos = decode_varint(data, pos + 1)
    entries: dict[int, list[tuple[bytes, bytes]]] = {}
    size = len(data)
    unpack = _INT64.unpack_from
    for _ in range(groups):
        if data[pos] != _I:
            raise _Unexpected
        key_group = unpack(data, pos + 1)[0]
        pos += 9
        if data[pos] != _L:
            raise _Unexpected
        count, pos = decode_varint(data, pos + 1)
        group: list[tuple[bytes, bytes]] = []
        append = group.append
        for _ in range(count):
            # ("t", 2, "b"): a 2-tuple whose first item is bytes
            if data[pos] != _T or data[pos + 1] != 2 or data[pos + 2] != _B:
                raise _Unexpected
            n = data[pos + 3]
            if n < 0x80:
                pos += 4
            else:
                n, pos = decode_varint(data, pos + 3)
            end = pos + n
            key = data[pos:end]
            if data[end] != _B:
                raise _Unexpected
            m = data[end + 1]
            if m < 0x80:
                pos = end + 2
            else:
                m, pos = decode_varint(data, end + 1)
            end = pos + m
            if end > size:
                raise _Unexpected
            append((key, data[pos:end]))
            pos = end
        entries[key_group] = group
    return entries, pos
