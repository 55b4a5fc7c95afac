"""Snapshots of the hashmap backend, taken copy-on-write and encoded off the task process.

Keyed state on the heap is Python objects; turning a million keys into snapshot bytes is
seconds of CPU (``heap_encoder.encode_sections``, one pass), and on the task thread (or on
any thread of the task process, which shares its GIL) the job stands still for as long.
So ``fork_snapshot`` takes the snapshot the way Redis' ``BGSAVE`` does: ``os.fork()`` (tens
of milliseconds even for a large heap: the page tables are copied, the pages are shared
copy-on-write) freezes the state as it is at the barrier in a child process, and the task
goes on processing records at once.

Every page the task writes while the child lives is copied, so the child lives as briefly
as it can: it pickles the state tables into a temp file (C code, tens of milliseconds for
a million entries) and exits. The checkpoint writer thread then starts an encoder process
(``heap_encoder``: a fresh interpreter, no memory shared with the task) on that pickle,
waits for it without the GIL, and hands its output file to the storage as a
``FileRegion`` (copied file to file, never read into the task process). State that is not
plain builtin data (user classes, TTL clean-up) is encoded by the child itself, as is all
state once an encoder process failed to run (``_handoff_disabled``, with a warning).

The child only pickles or encodes (no locks, no logging, no I/O but its own file) and leaves
with ``os._exit``: no ``atexit`` handlers, no flushing of the parent's buffers, no touching
of the parent's threads, sockets or locks. The child and the encoder process are killed
with the task process (``PR_SET_PDEATHSIG`` on Linux), killed and reaped when their
checkpoint is aborted, and report failures through their exit status and a temp file. All
temp files are deleted as soon as they are created (the open descriptors keep them), so a
``kill -9`` of any process leaves nothing on disk. Where ``os.fork`` does not exist, or with
``state.backend.hashmap.snapshot: sync``, the encoder runs on the task thread.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Final, NoReturn, Protocol

from flinklet._private.state.backend import StateMetaInfo, namespace_to_bytes
from flinklet._private.state.heap_encoder import (
    DATA_ERROR_EXIT,
    NotPlainData,
    Section,
    dump_plain,
    encode_payload,
    encode_sections,
    encoder_command,
)
from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.regions import FileRegion
from flinklet.errors import StateError

if TYPE_CHECKING:
    from flinklet._private.state.heap import HeapState

__all__ = [
    "SNAPSHOT_MODES",
    "EncodedKeyedState",
    "ForkedSnapshot",
    "ReadySnapshot",
    "dump_heap_state",
    "encode_heap_state",
    "fork_available",
    "fork_snapshot",
    "heap_sections",
]

SNAPSHOT_MODES: Final = ("fork", "sync")
"""Values of ``state.backend.hashmap.snapshot``."""

# Python 3.12+ warns on fork() in a process with threads; the child here runs only the
# encoder (see the module docstring), which is the case the warning allows.
warnings.filterwarnings(
    "ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning
)

_log = logging.getLogger(__name__)

# the first byte of a forked child's output file: what follows
_ENCODED: Final = b"E"  # the snapshot bytes
_HANDOFF: Final = b"P"  # a dump_plain pickle, for an encoder process

_handoff_disabled: str | None = None
"""Why forked children encode themselves from now on (an encoder process could not run)."""


# ---------------------------------------------------------------------------------------------
# The state's sections
# ---------------------------------------------------------------------------------------------


def heap_sections(
    tables: Mapping[str, Mapping[Any, Mapping[Any, Any]]], states: Mapping[str, HeapState]
) -> list[Section]:
    """The non-empty namespace tables of every state, in snapshot order."""
    sections: list[Section] = []
    for name, table in tables.items():
        state = states.get(name)
        transform = None if state is None else state.snapshot_transform()
        for namespace, ns_table in table.items():
            if ns_table:
                sections.append((name, namespace_to_bytes(namespace), ns_table, transform))
    return sections


def encoded_meta(meta: Mapping[str, StateMetaInfo]) -> dict[str, tuple[str, int | None]]:
    return {name: (m.kind.value, m.ttl_ms) for name, m in meta.items()}


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
    return encode_sections(
        heap_sections(tables, states), encoded_meta(meta), max_parallelism, key_groups, extra
    )


def dump_heap_state(
    out: BinaryIO,
    tables: Mapping[str, Mapping[Any, Mapping[Any, Any]]],
    states: Mapping[str, HeapState],
    meta: Mapping[str, StateMetaInfo],
    max_parallelism: int,
    key_groups: KeyGroupRange,
    extra: Mapping[str, bytes] | None = None,
) -> None:
    """The hand-off for an encoder process (``heap_encoder.dump_plain``);
    ``NotPlainData`` if some state must be encoded here (see ``heap_encoder``)."""
    sections = heap_sections(tables, states)
    if any(transform is not None for _name, _ns, _table, transform in sections):
        raise NotPlainData("a state whose snapshot drops expired entries")
    dump_plain(
        out,
        [(name, namespace, table) for name, namespace, table, _t in sections],
        encoded_meta(meta),
        max_parallelism,
        key_groups,
        extra,
    )


# ---------------------------------------------------------------------------------------------
# Encoded snapshots: ready now, or being written by a child process
# ---------------------------------------------------------------------------------------------


class EncodedKeyedState(Protocol):
    """The bytes of a keyed-state snapshot (``KeyedStateSnapshot.to_bytes()``), now or later."""

    background: bool
    """Another process is producing them (``cancel()`` must be called if never read)."""

    def result(self) -> bytes:
        """The bytes; blocks until they exist. Raises ``StateError`` if they never will.
        Releases the snapshot's files."""
        ...

    def result_region(self) -> bytes | FileRegion:
        """The bytes, or where they are in a file (valid until ``cancel()``, which the
        caller must then call); blocks and raises as ``result``."""
        ...

    def cancel(self) -> None:
        """Give up on the bytes (the checkpoint was aborted), or release the file a
        ``result_region`` pointed into; idempotent."""
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

    def result_region(self) -> bytes:
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
    """Bytes being produced by a forked child (and, for a hand-off, by the encoder process
    the writer thread starts): ``result()``/``result_region()`` wait for them (the
    checkpoint writer thread), ``cancel()`` kills whatever still runs (an aborted
    checkpoint, a cancelled task) and closes the files. Exactly one of them reaps each
    process.

    Once a thread called ``result_region`` it owns the descriptors: a ``cancel()`` from
    another thread (the scheduler aborting the checkpoint) only kills the processes and
    marks the snapshot cancelled, and the owner closes the files when it stops (its own
    ``cancel()``, the release after the write, or an error). Closing them under the owner
    let it hand a closed, or reused, descriptor number to the encoder process: ``-1`` is
    ``subprocess.PIPE``, and an encoder reading an empty pipe never ends.

    The processes write into temp files that were deleted right after they were created:
    only the open descriptors keep them, so nothing is left on disk whatever happens to
    any process (``kill -9`` included)."""

    background = True

    def __init__(
        self, pid: int, fd: int, error_fd: int, has_entries: bool, directory: str | None = None
    ) -> None:
        self.pid = pid
        self.fd = fd
        self.error_fd = error_fd
        self.directory = directory
        self.output_fd = -1  # the encoder process' output, for a hand-off
        self.encoder: subprocess.Popen[bytes] | None = None
        self._has_entries = has_entries
        self._lock = threading.Lock()
        self._exit_code: int | None = None
        self._cancelled = False
        self._owner: int | None = None  # the thread in result_region (see the docstring)
        self.kind = b""  # what the child wrote, once read: _ENCODED or _HANDOFF

    def has_entries(self) -> bool:
        return self._has_entries

    @property
    def handed_off(self) -> bool:
        """The child wrote a hand-off for an encoder process (not the snapshot bytes)."""
        return self.kind == _HANDOFF

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
        try:
            region = self.result_region()
            return region.read() if isinstance(region, FileRegion) else region
        finally:
            self._close()

    def result_region(self) -> bytes | FileRegion:
        with self._lock:
            self._owner = threading.get_ident()
            self._check_cancelled()  # a cancel() before us closed the files
        self._wait()
        try:
            self._check_cancelled()
            if self._exit_code != 0:
                raise StateError(
                    f"the forked snapshot process {self.pid} failed (exit status "
                    f"{self._exit_code}): {self._error_text()}; set "
                    "'state.backend.hashmap.snapshot: sync' to snapshot on the task thread "
                    "instead"
                )
            try:
                size = os.fstat(self.fd).st_size
                kind = os.pread(self.fd, 1, 0)
            except OSError as exc:
                raise StateError(
                    f"could not read the snapshot the forked process wrote: {exc}"
                ) from exc
            self.kind = kind
            if kind == _ENCODED:
                return FileRegion(self.fd, 1, size - 1)
            if kind == _HANDOFF:
                return self._encode_handoff(size)
            raise StateError(f"the forked snapshot process {self.pid} wrote no snapshot")
        except BaseException:
            self._close()
            raise

    def _check_cancelled(self) -> None:
        if self._cancelled:
            raise StateError("the snapshot was cancelled (its checkpoint was aborted)")

    def _encode_handoff(self, size: int) -> bytes | FileRegion:
        """Run an encoder process on the child's pickle (at offset 1 of ``fd``); if it
        cannot run, encode here and leave hand-offs off from now on."""
        global _handoff_disabled
        argv, env = encoder_command(os.getpid())
        try:
            output = _anonymous_file(self.directory)
        except OSError as exc:
            raise StateError(f"could not create a temp file for the snapshot: {exc}") from exc
        with self._lock:
            self.output_fd = output
            self._check_cancelled()
        os.lseek(self.fd, 1, os.SEEK_SET)
        try:
            encoder = subprocess.Popen(
                argv, stdin=self.fd, stdout=output, stderr=self.error_fd, env=env, close_fds=True
            )
        except OSError as exc:
            failure = f"could not start it: {exc}"
        else:
            with self._lock:
                self.encoder = encoder
                if self._cancelled:
                    encoder.kill()
            code = encoder.wait()
            self._check_cancelled()
            if code == 0:
                return FileRegion(output, 0, os.fstat(output).st_size)
            if code == DATA_ERROR_EXIT:
                raise StateError(
                    f"could not encode the keyed state (snapshot encoder process "
                    f"{encoder.pid}): {self._error_text()}"
                )
            failure = f"process {encoder.pid}, exit status {code}: {self._error_text()}"
        _handoff_disabled = failure
        _log.warning(
            "hashmap snapshots: the snapshot encoder process failed (%s); this snapshot is "
            "encoded in the task process, later ones in the forked child",
            failure,
        )
        data, _count = encode_payload(io.BytesIO(FileRegion(self.fd, 1, size - 1).read()))
        return data

    def cancel(self) -> None:
        """Kill and reap what still runs; close the files unless another thread owns them
        (it closes them itself, seeing the snapshot cancelled). Also the release of the
        files after the write, by the owner; idempotent."""
        with self._lock:
            self._cancelled = True
            if self._exit_code is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                try:
                    _pid, status = os.waitpid(self.pid, 0)
                    self._exit_code = os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    self._exit_code = -1
            encoder = self.encoder
            if encoder is not None and encoder.poll() is None:
                encoder.kill()
            owned_elsewhere = self._owner not in (None, threading.get_ident())
        if encoder is not None:
            encoder.wait()
        if not owned_elsewhere:
            self._close()

    def _error_text(self) -> str:
        try:
            raw = FileRegion(self.error_fd, 0, os.fstat(self.error_fd).st_size).read()
            text = raw.decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        if text:
            return text.splitlines()[-1] + "\n" + text
        if self._exit_code is not None and self._exit_code < 0:
            return f"killed by signal {-self._exit_code}"
        return "no error output"

    def _close(self) -> None:
        with self._lock:
            fds = (self.fd, self.error_fd, self.output_fd)
            self.fd = self.error_fd = self.output_fd = -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _anonymous_file(directory: str | None) -> int:
    """A read-write temp file that is already deleted (gone once its descriptors close)."""
    fd, path = tempfile.mkstemp(prefix="flinklet-snapshot-", dir=directory)
    os.unlink(path)
    return fd


def fork_snapshot(
    encode: Callable[[], bytes],
    has_entries: bool,
    directory: str | None = None,
    handoff: Callable[[BinaryIO], None] | None = None,
) -> ForkedSnapshot:
    """Run ``encode`` in a forked child that writes its bytes to a deleted temp file in
    ``directory`` (the system temp dir by default). With ``handoff`` the child first tries
    that instead: it writes a pickle for an encoder process (``heap_encoder.dump_plain``),
    or raises ``NotPlainData`` to have the child encode after all."""
    global _die_with_parent
    if _die_with_parent is None:
        _die_with_parent = _parent_death_signal()
    die_with_parent = _die_with_parent
    if _handoff_disabled is not None:
        handoff = None
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
        _child(encode, handoff, fd, error_fd, parent, die_with_parent)
    return ForkedSnapshot(pid, fd, error_fd, has_entries, directory)


def _child(
    encode: Callable[[], bytes],
    handoff: Callable[[BinaryIO], None] | None,
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
        if handoff is not None and _write_handoff(handoff, fd):
            os._exit(0)
        view = memoryview(_ENCODED + encode())
        while view:
            view = view[os.write(fd, view) :]
        code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            os.write(error_fd, traceback.format_exc().encode("utf-8", "replace"))
    finally:
        os._exit(code)


def _write_handoff(
    handoff: Callable[[BinaryIO], None], fd: int
) -> bool:  # pragma: no cover - runs in the child
    """Write the hand-off pickle to ``fd``; ``False`` (and ``fd`` emptied) if the state is
    not plain data."""
    raw = io.FileIO(fd, "wb", closefd=False)
    out = io.BufferedWriter(raw, 1 << 20)
    try:
        out.write(_HANDOFF)
        handoff(out)
        out.flush()
    except NotPlainData:
        out.detach()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        return False
    return True
