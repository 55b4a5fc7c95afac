"""Full RocksDB snapshots encoded by another process, off the task's thread and GIL.

A full (canonical) snapshot of the RocksDB backend reads every entry back into Python and
re-encodes it: seconds for a million keys, which on the task thread stall the job (and on
another thread of the task process still share its GIL). Here the task thread only creates
a RocksDB checkpoint — memtable flushed, SST files hard-linked, the same ~0.1 s step an
incremental checkpoint takes — and ``export_snapshot`` starts a fresh Python process
(``python -m flinklet._private.state.rocksdb_export <checkpoint dir> <output>``) that
opens that checkpoint read-only, writes the canonical bytes (``canonical_entries``, the
code ``RocksDBKeyedStateBackend.snapshot`` runs) and exits. The checkpoint writer thread
waits for it and uploads the file, as for a forked hashmap snapshot.

A fresh process rather than ``os.fork()``: RocksDB's own background threads may hold its
locks at any moment, so a forked copy of the task process must not call into RocksDB.
States with a TTL keep the synchronous snapshot (it also deletes expired entries from the
live database, which only the task may do).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from flinklet._private.state.backend import KeyedStateSnapshot, StateKind, StateMetaInfo
from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.layout import key_group_range_bounds
from flinklet._private.state.regions import FileRegion
from flinklet._private.state.serializers import deserialize, serialize
from flinklet.errors import StateError

__all__ = ["ExportedSnapshot", "export_snapshot", "main"]

_PARAMS = "flinklet-export.params"
# below the task processes' priority: a snapshot may finish later, records must not wait
_NICENESS = 10


class ExportedSnapshot:
    """Canonical snapshot bytes being written by an export process (see the module
    docstring); ``result()``/``result_region()`` wait for them, ``cancel()`` kills the
    process, or releases the output a ``result_region`` pointed into. As for a forked
    hashmap snapshot, the thread in ``result_region`` owns the output: a ``cancel()`` from
    another thread kills the process and marks the snapshot cancelled, and the owner
    removes the files when it stops (never while it still reads them)."""

    background = True

    def __init__(self, process: subprocess.Popen[bytes], checkpoint_dir: Path) -> None:
        self.process = process
        self.checkpoint_dir = checkpoint_dir
        self.output = checkpoint_dir.with_name(checkpoint_dir.name + ".snapshot")
        self.errors = checkpoint_dir.with_name(checkpoint_dir.name + ".err")
        self._lock = threading.Lock()
        self._cancelled = False
        self._fd = -1  # the output, open for a result_region until cleaned up
        self._owner: int | None = None  # the thread in result_region

    def has_entries(self) -> bool:
        return True  # unknown until the process is done; an empty snapshot is harmless

    def result(self) -> bytes:
        try:
            region = self.result_region()
            return region.read()
        except OSError as exc:
            raise StateError(f"could not read the exported snapshot: {exc}") from exc
        finally:
            self._cleanup()

    def result_region(self) -> FileRegion:
        with self._lock:
            self._owner = threading.get_ident()
        code = self.process.wait()
        try:
            if self._cancelled:
                raise StateError("the snapshot was cancelled (its checkpoint was aborted)")
            if code != 0:
                raise StateError(
                    f"the RocksDB snapshot export process {self.process.pid} failed (exit "
                    f"status {code}): {self._error_text()}"
                )
            try:
                fd = os.open(self.output, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as exc:
                raise StateError(f"could not read the exported snapshot: {exc}") from exc
            with self._lock:
                self._fd = fd
            return FileRegion(fd, 0, os.fstat(fd).st_size)
        except BaseException:
            self._cleanup()
            raise

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
            self.process.wait()
            owned_elsewhere = self._owner not in (None, threading.get_ident())
        if not owned_elsewhere:
            self._cleanup()

    def _error_text(self) -> str:
        try:
            text = self.errors.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return text.splitlines()[-1] + "\n" + text if text else "no error output"

    def _cleanup(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        for path in (self.output, self.errors):
            with contextlib.suppress(OSError):
                path.unlink()


def export_snapshot(
    checkpoint_dir: Path,
    max_parallelism: int,
    key_group_range: KeyGroupRange,
    states: dict[str, StateMetaInfo],
    extra: dict[str, bytes] | None = None,
) -> ExportedSnapshot:
    """Start encoding the RocksDB checkpoint in ``checkpoint_dir`` (which the snapshot then
    owns and deletes) in a new process."""
    params = (
        max_parallelism,
        key_group_range.start,
        key_group_range.end,
        {name: (meta.kind.value, meta.ttl_ms) for name, meta in states.items()},
        dict(extra or {}),
    )
    (checkpoint_dir / _PARAMS).write_bytes(serialize(params))
    output = checkpoint_dir.with_name(checkpoint_dir.name + ".snapshot")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    with open(checkpoint_dir.with_name(checkpoint_dir.name + ".err"), "wb") as errors:
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(checkpoint_dir), str(output)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=env,
                close_fds=True,
            )
        except OSError as exc:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            raise StateError(f"could not start the RocksDB snapshot export: {exc}") from exc
    return ExportedSnapshot(process, checkpoint_dir)


def encode_checkpoint(checkpoint_dir: Path) -> bytes:
    """The canonical snapshot bytes of the RocksDB checkpoint in ``checkpoint_dir``."""
    import rocksdict

    from flinklet._private.state.rocksdb import canonical_entries

    max_parallelism, start, end, states, extra = deserialize(
        (checkpoint_dir / _PARAMS).read_bytes()
    )
    meta = {name: StateMetaInfo(StateKind(kind), ttl) for name, (kind, ttl) in states.items()}
    key_groups = KeyGroupRange(start, end)
    db: Any = rocksdict.Rdict(
        str(checkpoint_dir),
        rocksdict.Options(raw_mode=True),
        access_type=rocksdict.AccessType.read_only(),
    )
    try:
        first, stop = key_group_range_bounds(key_groups)
        kinds = {name.encode("utf-8"): m.kind for name, m in meta.items()}
        entries = canonical_entries(db.items(from_key=first), stop, kinds, {}, 0)
    finally:
        db.close()
    return KeyedStateSnapshot(
        max_parallelism=max_parallelism,
        key_group_range=key_groups,
        entries=entries,
        states=meta,
        extra=extra,
    ).to_bytes()


def main(argv: list[str]) -> int:
    checkpoint_dir, output = Path(argv[0]), Path(argv[1])
    with contextlib.suppress(OSError):
        os.nice(_NICENESS)  # the task's thread comes first when the cores are busy
    data = encode_checkpoint(checkpoint_dir)
    partial = output.with_name(output.name + ".part")
    partial.write_bytes(data)
    partial.replace(output)
    return 0


if __name__ == "__main__":  # pragma: no cover - the export process
    sys.exit(main(sys.argv[1:]))
