"""Bytes for state keys and values: what snapshots, savepoints and RocksDB store.

Snapshots must outlive the process (and the Python version) that wrote them, and RocksDB keys
must be byte-identical for equal keys. Pickle gives neither guarantee for the common types,
so the plain data types (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, tuples,
lists, dicts and sets of them) get a small tagged format of their own; everything else falls
back to pickle (protocol 5), tagged as such. Every top-level value starts with the format
version byte so that a later format can still read this one.

Format (after the version byte), one tag byte then the payload::

    N None | T True | F False | i int64 (8 bytes BE) | I big int (len, signed BE bytes)
    d float (8 bytes BE) | s str (len, UTF-8) | b bytes (len, data) | B bytearray
    t tuple (count, items) | l list (count, items) | m dict (count, key, value, ...)
    S set / Z frozenset (count, items sorted by their encoding) | P pickle (len, data)

``len`` and ``count`` are unsigned LEB128 varints.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable
from typing import Any

from flinklet.errors import StateError, StateMigrationError

__all__ = [
    "FORMAT_VERSION",
    "decode_at",
    "decode_varint",
    "deserialize",
    "deserialize_key",
    "encode_into",
    "encode_varint",
    "serialize",
    "serialize_key",
]

FORMAT_VERSION = 1

_VERSION_PREFIX = bytes([FORMAT_VERSION])
_INT64 = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_PICKLE_PROTOCOL = 5

_NONE = ord("N")
_TRUE = ord("T")
_FALSE = ord("F")
_INT = ord("i")
_BIGINT = ord("I")
_FLOAT = ord("d")
_STR = ord("s")
_BYTES = ord("b")
_BYTEARRAY = ord("B")
_TUPLE = ord("t")
_LIST = ord("l")
_DICT = ord("m")
_SET = ord("S")
_FROZENSET = ord("Z")
_PICKLE = ord("P")


def encode_varint(value: int, out: bytearray) -> None:
    """Append ``value`` (>= 0) as an unsigned LEB128 varint."""
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def decode_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Read an unsigned LEB128 varint at ``pos``; return ``(value, next position)``."""
    result = 0
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------

_Fallback = Callable[[Any], bytes]
_Encoder = Callable[[Any, bytearray, _Fallback], None]


def _pickle_value(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, protocol=_PICKLE_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise StateError(
            f"a state value of type {type(obj).__qualname__} cannot be serialized for a "
            f"snapshot ({exc}); keep state values picklable (plain data, dataclasses, "
            "module-level classes — no lambdas, locks, open files or sockets)"
        ) from exc


def _pickle_key(obj: Any) -> bytes:
    # Without the memo, the bytes depend on the value only, not on which sub-objects happen
    # to be shared, so equal keys encode equally.
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=_PICKLE_PROTOCOL)
    pickler.fast = True
    try:
        pickler.dump(obj)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
        raise StateError(
            f"a key of type {type(obj).__qualname__} cannot be serialized ({exc}); return a "
            "str, int, bytes, float, bool or tuple of them from the key selector"
        ) from exc
    return buffer.getvalue()


def _enc_none(_obj: Any, out: bytearray, _fb: _Fallback) -> None:
    out.append(_NONE)


def _enc_bool(obj: bool, out: bytearray, _fb: _Fallback) -> None:
    out.append(_TRUE if obj else _FALSE)


def _enc_int(obj: int, out: bytearray, _fb: _Fallback) -> None:
    if _INT64_MIN <= obj <= _INT64_MAX:
        out.append(_INT)
        out += _INT64.pack(obj)
    else:
        data = obj.to_bytes((obj.bit_length() + 8) // 8, "big", signed=True)
        out.append(_BIGINT)
        encode_varint(len(data), out)
        out += data


def _enc_float(obj: float, out: bytearray, _fb: _Fallback) -> None:
    out.append(_FLOAT)
    out += _DOUBLE.pack(obj)


def _enc_str(obj: str, out: bytearray, _fb: _Fallback) -> None:
    data = obj.encode("utf-8", "surrogatepass")
    out.append(_STR)
    encode_varint(len(data), out)
    out += data


def _enc_bytes(obj: bytes, out: bytearray, _fb: _Fallback) -> None:
    out.append(_BYTES)
    encode_varint(len(obj), out)
    out += obj


def _enc_bytearray(obj: bytearray, out: bytearray, _fb: _Fallback) -> None:
    out.append(_BYTEARRAY)
    encode_varint(len(obj), out)
    out += obj


def _enc_items(tag: int, obj: Any, out: bytearray, fallback: _Fallback) -> None:
    out.append(tag)
    encode_varint(len(obj), out)
    for item in obj:
        _encode(item, out, fallback)


def _enc_tuple(obj: tuple[Any, ...], out: bytearray, fallback: _Fallback) -> None:
    _enc_items(_TUPLE, obj, out, fallback)


def _enc_list(obj: list[Any], out: bytearray, fallback: _Fallback) -> None:
    _enc_items(_LIST, obj, out, fallback)


def _enc_dict(obj: dict[Any, Any], out: bytearray, fallback: _Fallback) -> None:
    out.append(_DICT)
    encode_varint(len(obj), out)
    for key, value in obj.items():
        _encode(key, out, fallback)
        _encode(value, out, fallback)


def _enc_set_like(tag: int, obj: Any, out: bytearray, fallback: _Fallback) -> None:
    # Iteration order of a set depends on the process' hash seed: sort for determinism.
    encoded = []
    for item in obj:
        part = bytearray()
        _encode(item, part, fallback)
        encoded.append(bytes(part))
    encoded.sort()
    out.append(tag)
    encode_varint(len(encoded), out)
    for part_bytes in encoded:
        out += part_bytes


def _enc_set(obj: set[Any], out: bytearray, fallback: _Fallback) -> None:
    _enc_set_like(_SET, obj, out, fallback)


def _enc_frozenset(obj: frozenset[Any], out: bytearray, fallback: _Fallback) -> None:
    _enc_set_like(_FROZENSET, obj, out, fallback)


_ENCODERS: dict[type, _Encoder] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytearray,
    tuple: _enc_tuple,
    list: _enc_list,
    dict: _enc_dict,
    set: _enc_set,
    frozenset: _enc_frozenset,
}


def _encode(obj: Any, out: bytearray, fallback: _Fallback) -> None:
    encoder = _ENCODERS.get(type(obj))
    if encoder is not None:
        encoder(obj, out, fallback)
        return
    # Subclasses (named tuples, enums, Row, ...) keep their type through pickle.
    data = fallback(obj)
    out.append(_PICKLE)
    encode_varint(len(data), out)
    out += data


def serialize(obj: Any) -> bytes:
    """Versioned bytes of a state value; ``deserialize(serialize(x)) == x``.

    >>> deserialize(serialize({"a": [1, 2.5, None]}))
    {'a': [1, 2.5, None]}
    """
    out = bytearray(_VERSION_PREFIX)
    _encode(obj, out, _pickle_value)
    return bytes(out)


def encode_into(obj: Any, out: bytearray) -> None:
    """Append the encoding of a value (``serialize`` without the version byte) to ``out``;
    for encoders that write a larger structure in one pass (``heap_snapshots.py``)."""
    _encode(obj, out, _pickle_value)


def serialize_key(key: Any) -> bytes:
    """Versioned bytes of a key (or namespace), usable inside RocksDB keys: equal keys of the
    same type always give identical bytes (``1`` and ``1.0`` are different types and give
    different bytes)."""
    out = bytearray(_VERSION_PREFIX)
    _encode(key, out, _pickle_key)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

_Decoder = Callable[[memoryview, int], tuple[Any, int]]


def _dec_none(_data: memoryview, pos: int) -> tuple[Any, int]:
    return None, pos


def _dec_true(_data: memoryview, pos: int) -> tuple[Any, int]:
    return True, pos


def _dec_false(_data: memoryview, pos: int) -> tuple[Any, int]:
    return False, pos


def _dec_int(data: memoryview, pos: int) -> tuple[Any, int]:
    end = pos + 8
    if end > len(data):
        raise IndexError("truncated int")
    return _INT64.unpack_from(data, pos)[0], end


def _dec_bigint(data: memoryview, pos: int) -> tuple[Any, int]:
    size, pos = decode_varint(data, pos)
    end = _checked_end(data, pos, size)
    return int.from_bytes(data[pos:end], "big", signed=True), end


def _dec_float(data: memoryview, pos: int) -> tuple[Any, int]:
    end = pos + 8
    if end > len(data):
        raise IndexError("truncated float")
    return _DOUBLE.unpack_from(data, pos)[0], end


def _checked_end(data: memoryview, pos: int, size: int) -> int:
    end = pos + size
    if end > len(data):
        raise IndexError("truncated data")
    return end


def _dec_str(data: memoryview, pos: int) -> tuple[Any, int]:
    size, pos = decode_varint(data, pos)
    end = _checked_end(data, pos, size)
    return str(data[pos:end], "utf-8", "surrogatepass"), end


def _dec_bytes(data: memoryview, pos: int) -> tuple[Any, int]:
    size, pos = decode_varint(data, pos)
    end = _checked_end(data, pos, size)
    return bytes(data[pos:end]), end


def _dec_bytearray(data: memoryview, pos: int) -> tuple[Any, int]:
    size, pos = decode_varint(data, pos)
    end = _checked_end(data, pos, size)
    return bytearray(data[pos:end]), end


def _dec_list(data: memoryview, pos: int) -> tuple[Any, int]:
    count, pos = decode_varint(data, pos)
    items = []
    for _ in range(count):
        item, pos = _decode(data, pos)
        items.append(item)
    return items, pos


def _dec_tuple(data: memoryview, pos: int) -> tuple[Any, int]:
    items, pos = _dec_list(data, pos)
    return tuple(items), pos


def _dec_set(data: memoryview, pos: int) -> tuple[Any, int]:
    items, pos = _dec_list(data, pos)
    return set(items), pos


def _dec_frozenset(data: memoryview, pos: int) -> tuple[Any, int]:
    items, pos = _dec_list(data, pos)
    return frozenset(items), pos


def _dec_dict(data: memoryview, pos: int) -> tuple[Any, int]:
    count, pos = decode_varint(data, pos)
    result = {}
    for _ in range(count):
        key, pos = _decode(data, pos)
        value, pos = _decode(data, pos)
        result[key] = value
    return result, pos


def _dec_pickle(data: memoryview, pos: int) -> tuple[Any, int]:
    size, pos = decode_varint(data, pos)
    end = _checked_end(data, pos, size)
    return pickle.loads(data[pos:end]), end


def _dec_unknown(data: memoryview, pos: int) -> tuple[Any, int]:
    raise StateError(f"corrupt state bytes: unknown type tag {data[pos - 1]!r} at offset {pos - 1}")


_DECODERS: list[_Decoder] = [_dec_unknown] * 256
for _tag, _decoder in (
    (_NONE, _dec_none),
    (_TRUE, _dec_true),
    (_FALSE, _dec_false),
    (_INT, _dec_int),
    (_BIGINT, _dec_bigint),
    (_FLOAT, _dec_float),
    (_STR, _dec_str),
    (_BYTES, _dec_bytes),
    (_BYTEARRAY, _dec_bytearray),
    (_TUPLE, _dec_tuple),
    (_LIST, _dec_list),
    (_DICT, _dec_dict),
    (_SET, _dec_set),
    (_FROZENSET, _dec_frozenset),
    (_PICKLE, _dec_pickle),
):
    _DECODERS[_tag] = _decoder


def _decode(data: memoryview, pos: int) -> tuple[Any, int]:
    return _DECODERS[data[pos]](data, pos + 1)


def decode_at(view: memoryview, pos: int) -> tuple[Any, int]:
    """``(value, next position)``: one value encoded by ``encode_into`` at ``pos`` of a
    larger structure (``snapshot_decoding.py``). Raises ``IndexError``/``struct.error`` on
    truncated data and ``StateError`` on an unknown tag."""
    return _decode(view, pos)


def deserialize(data: bytes | bytearray | memoryview) -> Any:
    """The value ``serialize()`` (or ``serialize_key()``) turned into ``data``."""
    view = memoryview(data)
    if len(view) < 2:
        raise StateError(f"corrupt state bytes: {len(view)} bytes is too short for a value")
    if view[0] != FORMAT_VERSION:
        raise StateMigrationError(
            f"state was written with serializer format version {view[0]}, but this Flinklet "
            f"reads version {FORMAT_VERSION}; restore it with the Flinklet version that wrote it"
        )
    try:
        value, end = _decode(view, 1)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise StateError(f"corrupt state bytes: {exc}") from exc
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError) as exc:
        raise StateMigrationError(
            f"a pickled state value could not be loaded ({exc}); the class it was written "
            "with must be importable under the same module and name"
        ) from exc
    if end != len(view):
        raise StateError(f"corrupt state bytes: {len(view) - end} trailing bytes")
    return value


deserialize_key = deserialize
