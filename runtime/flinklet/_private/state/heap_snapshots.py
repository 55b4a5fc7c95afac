"""Snapshots of the hashmap backend, encoded in one pass and taken copy-on-write.

Keyed state on the heap is Python objects; turning a million keys into snapshot bytes is
seconds of CPU, and on the task thread (or on any thread of the task process, which shares
its GIL) the job stands still for as long. Two things keep that off the record path:

- ``encode_heap_state`` writes the exact bytes of ``KeyedStateSnapshot.to_bytes()`` in one
  pass: no intermediate ``(layout key, value)`` tuples, the encoded key-group/key prefix
  computed once per key, ints and floats encoded inline.
- ``fork_snapshot`` takes the snapshot the way Redis' ``BGSAVE`` does: ``os.fork()`` (tens
  of milliseconds even for a large heap, the page tables are copied, the pages are shared
  copy-on-write) freezes the state as it is at the barrier in a child process. The child
  encodes it into a temp file and ``_exit``s; the task goes on processing records at once,
  and the checkpoint writer thread waits for the child and uploads the file.

The child only runs the encoder (pure Python over the state dicts, no locks, no logging,
no I/O but its own file) and leaves with ``os._exit`` — no ``atexit`` handlers, no
flushing of the parent's buffers, no touching of the parent's threads, sockets or locks.
It is killed with the parent (``PR_SET_PDEATHSIG`` on Linux), killed and reaped when its
checkpoint is aborted, and reports failures through its exit status and a second temp
file. Both temp files are deleted as soon as they are created (the open descriptors keep
them), so a ``kill -9`` of either process leaves nothing on disk. Where ``os.fork`` does
not exist, or with ``state.backend.hashmap.snapshot: sync``, the same encoder runs on the
task thread.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from flinklet._private.state.backend import StateMetaInfo, namespace_to_bytes
from flinklet._private.state.keygroups import KeyGroupRange, assign_to_key_group, murmur_mix
from flinklet._private.state.serializers import (
    FORMAT_VERSION,
    encode_into,
    encode_varint,
    serialize,
    serialize_key,
)
from flinklet.errors import StateError

if TYPE_CHECKING:
    from flinklet._private.state.heap import HeapState

__all__ = [
    "SNAPSHOT_MODES",
    "EncodedKeyedState",
    "ForkedSnapshot",
    "ReadySnapshot",
    "encode_heap_state",
    "fork_available",
    "fork_snapshot",
]

SNAPSHOT_MODES: Final = ("fork", "sync")
"""Values of ``state.backend.hashmap.snapshot``."""

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

# Python 3.12+ warns on fork() in a process with threads; the child here runs only the
# encoder (see the module docstring), which is the case the warning allows.
warnings.filterwarnings(
    "ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning
)


def _varint(value: int) -> bytes:
    if value < 128:
        return _VARINT1[value]
    out = bytearray()
    encode_varint(value, out)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# The one-pass encoder
# ---------------------------------------------------------------------------------------------


def encode_heap_state(
    tables: Mapping[str, Mapping[Any, Mapping[Any, Any]]],
    states: Mapping[str, HeapState],
    meta: Mapping[str, StateMetaInfo],
    max_parallelism: int,
    key_groups: KeyGroupRange,
    extra: Mapping[str, bytes] | None = None,
) -> tuple[bytes, int]:
    """``(bytes, entry count)``: the bytes are exactly those of
    ``HeapKeyedStateBackend.snapshot(extra).to_bytes()``, entries in the same order."""
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
    tables_with_entries = sum(1 for table in tables.values() for ns in table.values() if ns)
    remember = tables_with_entries > 1
    for name, table in tables.items():
        state = states.get(name)
        transform = None if state is None else state.snapshot_transform()
        name_bytes = name.encode("utf-8")
        for namespace, ns_table in table.items():
            if not ns_table:
                continue
            namespace_bytes = namespace_to_bytes(namespace)
            suffix = _varint(len(namespace_bytes)) + namespace_bytes + name_bytes
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
    encode_into({name: (m.kind.value, m.ttl_ms) for name, m in meta.items()}, out)
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
# Encoded snapshots: ready now, or being written by a child process
# ---------------------------------------------------------------------------------------------


class EncodedKeyedState(Protocol):
    """The bytes of a keyed-state snapshot (``KeyedStateSnapshot.to_bytes()``), now or later."""

    background: bool
    """Another process is producing them (``cancel()`` must be called if never read)."""

    def result(self) -> bytes:
        """The bytes; blocks until they exist. Raises ``StateError`` if they never will."""
        ...

    def cancel(self) -> None:
        """Give up on the bytes (the checkpoint was aborted); idempotent."""
        ...

    def has_entries(self) -> bool: ...


class ReadySnapshot:
    """Bytes encoded on the calling thread (the ``sync`` mode, and the fallback)."""

    __slots__ = ("_data", "_entries")
    background = False

    def __init__(self, data: bytes, entries: int) -> None:
        self._data = data
        self._entries = entries

    def result(self) -> bytes:
        return self._data

    def cancel(self) -> None:
        return None

    def has_entries(self) -> bool:
        return self._entries > 0


def fork_available() -> bool:
    """Whether this platform can take copy-on-write snapshots (``os.fork``)."""
    return hasattr(os, "fork") and sys.platform not in ("win32", "emscripten", "wasi")


def _parent_death_signal() -> Callable[[], None]:
    """A function the child calls to be SIGKILLed when its parent dies (Linux), else a no-op.
    Resolved in the parent: the child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)

    return set_signal


_die_with_parent: Callable[[], None] | None = None


class ForkedSnapshot:
    """Bytes being written by a forked child: ``result()`` waits for it (the checkpoint
    writer thread), ``cancel()`` kills it (an aborted checkpoint, a cancelled task). Exactly
    one of them reaps the child.

    The child writes into temp files that were deleted right after they were created:
    only the open descriptors (the parent's and the child's) keep them, so nothing is left
    on disk whatever happens to either process (``kill -9`` included)."""

    background = True

    def __init__(self, pid: int, fd: int, error_fd: int, has_entries: bool) -> None:
        self.pid = pid
        self.fd = fd
        self.error_fd = error_fd
        self._has_entries = has_entries
        self._lock = threading.Lock()
        self._exit_code: int | None = None
        self._cancelled = False

    def has_entries(self) -> bool:
        return self._has_entries

    @property
    def done(self) -> bool:
        """The child was reaped."""
        return self._exit_code is not None

    @property
    def closed(self) -> bool:
        """The temp files are closed (and so gone)."""
        return self.fd < 0

    def _reap(self, block: bool) -> bool:
        """Reap the child if it exited (under the lock); whether it is reaped."""
        with self._lock:
            if self._exit_code is not None:
                return True
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: should not happen
                self._exit_code = -1
                return True
            if pid == 0:
                return False
            self._exit_code = os.waitstatus_to_exitcode(status)
            return True

    def _wait(self) -> None:
        if hasattr(os, "waitid"):
            # wait without reaping (WNOWAIT), so that the pid stays ours until _reap: a
            # concurrent cancel() can never signal a reused pid
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            self._reap(block=True)
            return
        while not self._reap(block=False):  # pragma: no cover - platforms without waitid
            time.sleep(0.005)

    def result(self) -> bytes:
        self._wait()
        try:
            if self._cancelled:
                raise StateError("the snapshot was cancelled (its checkpoint was aborted)")
            if self._exit_code != 0:
                raise StateError(
                    f"the forked snapshot process {self.pid} failed (exit status "
                    f"{self._exit_code}): {self._error_text()}; set "
                    "'state.backend.hashmap.snapshot: sync' to snapshot on the task thread "
                    "instead"
                )
            try:
                return _read_all(self.fd)
            except OSError as exc:
                raise StateError(
                    f"could not read the snapshot the forked process wrote: {exc}"
                ) from exc
        finally:
            self._close()

    def cancel(self) -> None:
        with self._lock:
            if self._exit_code is None:
                self._cancelled = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                try:
                    _pid, status = os.waitpid(self.pid, 0)
                    self._exit_code = os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    self._exit_code = -1
        self._close()

    def _error_text(self) -> str:
        try:
            text = _read_all(self.error_fd).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        if text:
            return text.splitlines()[-1] + "\n" + text
        if self._exit_code is not None and self._exit_code < 0:
            return f"killed by signal {-self._exit_code}"
        return "no error output"

    def _close(self) -> None:
        with self._lock:
            fds, self.fd, self.error_fd = (self.fd, self.error_fd), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _read_all(fd: int) -> bytes:
    """The whole content of the file open as ``fd`` (from its start)."""
    size = os.fstat(fd).st_size
    parts = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 30), offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _anonymous_file(directory: str | None) -> int:
    """A read-write temp file that is already deleted (gone once its descriptors close)."""
    fd, path = tempfile.mkstemp(prefix="flinklet-snapshot-", dir=directory)
    os.unlink(path)
    return fd


def fork_snapshot(
    encode: Callable[[], bytes], has_entries: bool, directory: str | None = None
) -> ForkedSnapshot:
    """Run ``encode`` in a forked child that writes its bytes to a deleted temp file in
    ``directory`` (the system temp dir by default)."""
    global _die_with_parent
    if _die_with_parent is None:
        _die_with_parent = _parent_death_signal()
    die_with_parent = _die_with_parent
    fd = _anonymous_file(directory)
    error_fd = _anonymous_file(directory)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(fd)
        os.close(error_fd)
        raise StateError(f"could not fork a process for the snapshot: {exc}") from exc
    if pid == 0:  # pragma: no cover - runs in the child, which leaves with os._exit
        _child(encode, fd, error_fd, parent, die_with_parent)
    return ForkedSnapshot(pid, fd, error_fd, has_entries)


def _child(
    encode: Callable[[], bytes],
    fd: int,
    error_fd: int,
    parent: int,
    die_with_parent: Callable[[], None],
) -> NoReturn:  # pragma: no cover - runs in the child
    code = 1
    try:
        gc.disable()  # a collection would touch (and copy) every page of the heap
        with contextlib.suppress(OSError):
            os.nice(10)  # the task's thread comes first when the cores are busy
        die_with_parent()
        if os.getppid() != parent:
            os._exit(1)  # the parent died before the signal was armed
        view = memoryview(encode())
        while view:
            view = view[os.write(fd, view) :]
        code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            os.write(error_fd, traceback.format_exc().encode("utf-8", "replace"))
    finally:
        os._exit(code)
