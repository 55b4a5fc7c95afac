"""Reference counts of files shared between incremental checkpoints.

An incremental RocksDB checkpoint uploads only the SST files that earlier checkpoints have
not uploaded yet and refers to the others; so a file may be needed by many retained
checkpoints at once. The checkpoint coordinator registers each completed checkpoint's files
here and releases a checkpoint when it is subsumed or discarded; a file may be deleted from
checkpoint storage only when ``release`` says that no retained checkpoint needs it anymore.
After a JobManager failover the registry is rebuilt from the retained checkpoints'
manifests (``SharedStateRegistry.from_checkpoints``).

This is bookkeeping for the coordinator, not the record path: a lock makes it safe to call
from the coordinator's timer and I/O threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from flinklet.errors import CheckpointError

__all__ = ["SharedStateRegistry"]


class SharedStateRegistry:
    """Which retained checkpoints use which shared files::

    registry = SharedStateRegistry()
    registry.register(1, ["a.sst", "b.sst"])
    registry.register(2, ["b.sst", "c.sst"])  # b.sst is shared, not uploaded again
    registry.release(1)                       # -> ["a.sst"]: delete it from storage
    registry.release(2)                       # -> ["b.sst", "c.sst"]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._checkpoints: dict[int, frozenset[str]] = {}

    @classmethod
    def from_checkpoints(cls, checkpoints: Mapping[int, Iterable[str]]) -> SharedStateRegistry:
        """A registry holding the files of ``checkpoints`` (id -> shared file names)."""
        registry = cls()
        for checkpoint_id, files in sorted(checkpoints.items()):
            registry.register(checkpoint_id, files)
        return registry

    def register(self, checkpoint_id: int, files: Iterable[str]) -> None:
        """Record that checkpoint ``checkpoint_id`` uses ``files`` (each counted once)."""
        names = frozenset(files)
        with self._lock:
            if checkpoint_id in self._checkpoints:
                raise CheckpointError(
                    f"checkpoint {checkpoint_id} is already registered in the shared state "
                    "registry; release it before registering it again"
                )
            self._checkpoints[checkpoint_id] = names
            counts = self._counts
            for name in names:
                counts[name] = counts.get(name, 0) + 1

    def release(self, checkpoint_id: int) -> list[str]:
        """Forget checkpoint ``checkpoint_id``; return (sorted) the files that no retained
        checkpoint uses anymore — those, and only those, may be deleted. Releasing an
        unknown checkpoint returns nothing."""
        with self._lock:
            names = self._checkpoints.pop(checkpoint_id, None)
            if names is None:
                return []
            unused = []
            counts = self._counts
            for name in names:
                left = counts[name] - 1
                if left:
                    counts[name] = left
                else:
                    del counts[name]
                    unused.append(name)
        return sorted(unused)

    def reference_count(self, name: str) -> int:
        """How many retained checkpoints use file ``name``."""
        with self._lock:
            return self._counts.get(name, 0)

    def files(self) -> set[str]:
        """Every file some retained checkpoint uses (what an incremental checkpoint may
        refer to instead of uploading it again)."""
        with self._lock:
            return set(self._counts)

    def checkpoints(self) -> list[int]:
        """The registered (retained) checkpoint ids, ascending."""
        with self._lock:
            return sorted(self._checkpoints)

    def files_of(self, checkpoint_id: int) -> set[str]:
        with self._lock:
            return set(self._checkpoints.get(checkpoint_id, ()))
