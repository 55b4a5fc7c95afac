"""The hashmap backend's one-pass snapshot encoder, and the process that runs it.

``encode_sections`` writes the exact bytes of ``KeyedStateSnapshot.to_bytes()`` in one
pass: no intermediate ``(layout key, value)`` tuples, the encoded key-group/key prefix
computed once per key, ints and floats encoded inline. Over a million keys it is still
seconds of pure Python, which must not run in the task process (its GIL) nor in a
copy-on-write child of it for longer than necessary: every page the task writes while such
a child lives is copied (about 3 us a page here, and the task rewrites most of its state
within seconds).

So a forked child (``heap_snapshots.fork_snapshot``) only pickles the state tables it
shares copy-on-write with the task (tens of milliseconds for a million entries: C code)
into a file and exits. ``python -m flinklet._private.state.heap_encoder <parent pid>``, a
fresh process that shares no memory with the task, reads that pickle on stdin and writes
the snapshot bytes to stdout (``run_encoder``); the checkpoint writer thread waits for it
without holding the GIL.

A pickle only carries data the fresh process can rebuild exactly: ``dump_plain`` refuses
everything but exact instances of the builtin types (``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes``, ``bytearray``, ``tuple``, ``list``, ``dict``, ``set``,
``frozenset``) by raising ``NotPlainData``, and the child then encodes
itself as before. So do states whose snapshot transforms their values (TTL clean-up).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO, Final

from flinklet._private.state.keygroups import KeyGroupRange, assign_to_key_group, murmur_mix
from flinklet._private.state.serializers import (
    FORMAT_VERSION,
    encode_into,
    encode_varint,
    serialize,
    serialize_key,
)
from flinklet.errors import StateError

__all__ = [
    "DATA_ERROR_EXIT",
    "NotPlainData",
    "Section",
    "dump_plain",
    "encode_payload",
    "encode_sections",
    "encoder_command",
    "main",
]

Section = tuple[str, bytes, Mapping[Any, Any], Callable[[Any], Any] | None]
"""``(state name, namespace bytes, the namespace's key -> value table, value transform)``:
the transform (TTL clean-up) maps a stored value to the one to snapshot, ``None`` to leave
the entry out."""

DATA_ERROR_EXIT: Final = 2
"""The encoder process' exit status when the state itself cannot be encoded (a key outside
the subtask's key groups): anything else means the process could not do its job."""

_HANDOFF_MAGIC: Final = "flinklet-heap-handoff"
_HANDOFF_VERSION: Final = 1
# below the task processes' priority: a snapshot may finish later, records must not wait
_NICENESS: Final = 10

_INT64 = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
# "b" + len 10 + (version byte, tag) of a serialized int64 / float: the tail of an entry
_INT_VALUE: Final = b"b\x0a\x01i"
_FLOAT_VALUE: Final = b"b\x0a\x01d"
_M32: Final = 0xFFFFFFFF
_M64: Final = (1 << 64) - 1
_INT_KEY: Final = b"\x01i"  # version byte, int64 tag
_STR_KEY: Final = b"\x01s"  # version byte, str tag
_VARINT1: Final = [bytes((n,)) for n in range(128)]
# tuple of 2, first item bytes with a one-byte length: the head of an entry
_ENTRY_HEADS: Final = [b"t\x02b" + bytes((n,)) for n in range(128)]


def _varint(value: int) -> bytes:
    if value < 128:
        return _VARINT1[value]
    out = bytearray()
    encode_varint(value, out)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# The one-pass encoder
# ---------------------------------------------------------------------------------------------


def encode_sections(
    sections: Iterable[Section],
    meta: Mapping[str, tuple[str, int | None]],
    max_parallelism: int,
    key_groups: KeyGroupRange,
    extra: Mapping[str, bytes] | None = None,
) -> tuple[bytes, int]:
    """``(bytes, entry count)`` of the state in ``sections`` (each non-empty), in their
    order; ``meta`` is each state's ``(kind value, TTL ms)``. The bytes are exactly those
    of ``HeapKeyedStateBackend.snapshot(extra).to_bytes()`` for the same tables."""
    sections = list(sections)
    groups: dict[int, list[bytes]] = {}
    # key -> (its key group's list of entry parts, key group + length-prefixed key bytes)
    key_info: dict[Any, tuple[list[bytes], bytes]] = {}
    # per key group of this subtask: the start of the layout key of an int key
    int_heads = {
        kg: kg.to_bytes(2, "big") + b"\x0a" + _INT_KEY
        for kg in range(key_groups.start, key_groups.end + 1)
    }
    int64 = _INT64.pack
    double = _DOUBLE.pack
    heads = _ENTRY_HEADS
    count = 0
    # keys are only looked up again when several tables hold entries (states, namespaces)
    remember = len(sections) > 1
    for name, namespace_bytes, ns_table, transform in sections:
        suffix = _varint(len(namespace_bytes)) + namespace_bytes + name.encode("utf-8")
        suffix_len = len(suffix)
        for key, stored in ns_table.items():
            if transform is not None:
                stored = transform(stored)
                if stored is None:
                    continue
            info = key_info.get(key)
            if info is None:
                head = None
                if type(key) is int and _INT64_MIN <= key <= _INT64_MAX:
                    # assign_to_key_group of an int, inlined (tests check they agree)
                    h = key & _M64
                    h = (h ^ (h >> 32)) & _M32
                    h ^= h >> 16
                    h = (h * 0x85EBCA6B) & _M32
                    h ^= h >> 13
                    h = (h * 0xC2B2AE35) & _M32
                    h ^= h >> 16
                    key_group = h % max_parallelism
                    head = int_heads.get(key_group)
                    prefix = b"" if head is None else head + int64(key)
                if head is None:
                    key_group, prefix = _key_info(key, name, max_parallelism, key_groups)
                group = groups.get(key_group)
                if group is None:
                    group = groups[key_group] = []
                if remember:
                    key_info[key] = (group, prefix)
            else:
                group, prefix = info
            layout_len = len(prefix) + suffix_len
            kind = type(stored)
            if kind is int and _INT64_MIN <= stored <= _INT64_MAX:
                tail = _INT_VALUE + int64(stored)
            elif kind is float:
                tail = _FLOAT_VALUE + double(stored)
            else:
                value_bytes = serialize(stored)
                tail = b"b" + _varint(len(value_bytes)) + value_bytes
            group += (
                heads[layout_len] if layout_len < 128 else _entry_head(layout_len),
                prefix,
                suffix,
                tail,
            )
            count += 1
    out = bytearray(b"\x01t\x08")  # version, tuple of 8
    for item in ("keyed", FORMAT_VERSION, max_parallelism, key_groups.start, key_groups.end):
        encode_into(item, out)
    out += b"m"
    out += _varint(len(groups))
    for key_group, parts in groups.items():
        out += b"i"
        out += _INT64.pack(key_group)
        out += b"l"
        out += _varint(len(parts) // 4)
        out += b"".join(parts)
    groups.clear()
    encode_into(dict(meta), out)
    encode_into(dict(extra or {}), out)
    return bytes(out), count


def _key_info(
    key: Any, name: str, max_parallelism: int, key_groups: KeyGroupRange
) -> tuple[int, bytes]:
    """``(key group, key group + length-prefixed key bytes)`` of a key: the start of its
    layout keys. Ints and strs inline ``assign_to_key_group`` and ``serialize_key`` (the
    unit tests check they agree)."""
    kind = type(key)
    if kind is int and _INT64_MIN <= key <= _INT64_MAX:
        folded = key & _M64
        key_group = murmur_mix(folded ^ (folded >> 32)) % max_parallelism
        key_bytes = _INT_KEY + _INT64.pack(key)
    elif kind is str:
        data = key.encode("utf-8", "surrogatepass")
        key_group = murmur_mix(zlib.crc32(data)) % max_parallelism
        key_bytes = _STR_KEY + _varint(len(data)) + data
    else:
        key_group = assign_to_key_group(key, max_parallelism)
        key_bytes = serialize_key(key)
    if not key_groups.start <= key_group <= key_groups.end:
        raise StateError(
            f"key {key!r} of state '{name}' belongs to key group {key_group}, "
            f"outside this subtask's {key_groups!r}: records were routed "
            "with another max parallelism or key than the state uses"
        )
    return key_group, key_group.to_bytes(2, "big") + _varint(len(key_bytes)) + key_bytes


def _entry_head(layout_len: int) -> bytes:
    return b"t\x02b" + _varint(layout_len)


# ---------------------------------------------------------------------------------------------
# The hand-off: plain data pickled by the forked child, encoded by a fresh process
# ---------------------------------------------------------------------------------------------


class NotPlainData(Exception):
    """The state holds an object that is not an exact builtin (see the module docstring)."""


class _PlainPickler(pickle.Pickler):
    # The C pickler saves None, bools and exact ints, floats, strs, bytes, bytearrays,
    # dicts, sets, frozensets, lists and tuples itself and asks reducer_override about
    # anything else (user classes, subclasses such as named tuples and enums, functions).
    def reducer_override(self, obj: Any) -> Any:
        raise NotPlainData(type(obj).__qualname__)


def dump_plain(
    out: BinaryIO,
    sections: Iterable[tuple[str, bytes, Mapping[Any, Any]]],
    meta: Mapping[str, tuple[str, int | None]],
    max_parallelism: int,
    key_groups: KeyGroupRange,
    extra: Mapping[str, bytes] | None = None,
) -> None:
    """Pickle what ``encode_sections`` needs into ``out``; ``NotPlainData`` (with part of
    the pickle written) if a key or value is not plain data."""
    payload = (
        _HANDOFF_MAGIC,
        _HANDOFF_VERSION,
        max_parallelism,
        key_groups.start,
        key_groups.end,
        [(name, namespace, table) for name, namespace, table in sections],
        dict(meta),
        dict(extra or {}),
    )
    _PlainPickler(out, protocol=5).dump(payload)


def encode_payload(source: BinaryIO) -> tuple[bytes, int]:
    """``encode_sections`` of a ``dump_plain`` pickle read from ``source``."""
    payload = pickle.load(source)
    if not (isinstance(payload, tuple) and payload[:2] == (_HANDOFF_MAGIC, _HANDOFF_VERSION)):
        raise StateError("not a hashmap snapshot hand-off (or one of another version)")
    _, _, max_parallelism, start, end, sections, meta, extra = payload
    return encode_sections(
        [(name, namespace, table, None) for name, namespace, table in sections],
        meta,
        max_parallelism,
        KeyGroupRange(start, end),
        extra,
    )


def encoder_command(parent: int) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of an encoder process for the task process ``parent``: the
    same interpreter, with the task's ``sys.path`` so it imports this very module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return [sys.executable, "-m", __name__, str(parent)], env


def _die_with(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes
            import signal

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str]) -> int:
    """Read a ``dump_plain`` pickle on stdin, write the snapshot bytes to stdout."""
    _die_with(int(argv[0]))
    with contextlib.suppress(OSError):
        os.nice(_NICENESS)  # the task's thread comes first when the cores are busy
    stdin = io.FileIO(0, "rb", closefd=False)
    try:
        data, _count = encode_payload(io.BufferedReader(stdin, 1 << 20))
    except StateError as exc:
        sys.stderr.write(f"StateError: {exc}\n")
        return DATA_ERROR_EXIT
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]
    return 0


if __name__ == "__main__":  # pragma: no cover - the encoder process
    sys.exit(main(sys.argv[1:]))
