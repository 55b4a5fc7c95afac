"""Disposing of old savepoints: a one-method :class:`SavepointStore` and its back-ends.

Retention (:mod:`flinklet_operator.retention`) decides *which* savepoints go; a store
deletes one savepoint directory. Back-ends: the local filesystem (``file://`` or a plain
path, for a shared volume or a single machine), S3 (:mod:`flinklet_operator.s3`) and
memory (:class:`InMemorySavepointStore`, for tests).

Safety: only a directory whose last path segment starts with ``savepoint-`` (Flink's and
Flinklet's naming) is ever deleted; a location pointing at ``_metadata`` means its
directory. Anything else raises
:class:`~flinklet_operator.errors.SavepointDisposalError` rather than delete a wrong prefix.

>>> savepoint_directory("s3://bucket/jobs/savepoints/savepoint-a1b2c3-0123456789ab/_metadata")
's3://bucket/jobs/savepoints/savepoint-a1b2c3-0123456789ab'
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from flinklet_operator.errors import SavepointDisposalError

__all__ = [
    "FilesystemSavepointStore",
    "InMemorySavepointStore",
    "SavepointStore",
    "savepoint_directory",
]


class SavepointStore(Protocol):
    def dispose(self, location: str) -> None:
        """Delete the savepoint at ``location`` (absent is fine)."""
        ...


def savepoint_directory(location: str) -> str:
    """The savepoint directory ``location`` names; refuses anything that is not one."""
    trimmed = location.rstrip("/")
    if trimmed.endswith("/_metadata"):
        trimmed = trimmed[: -len("/_metadata")]
    last = trimmed.rsplit("/", 1)[-1]
    if not last.startswith("savepoint-"):
        raise SavepointDisposalError(
            f"refusing to dispose of {location!r}: it does not name a savepoint directory "
            "(savepoint-...); delete it by hand if it really is one"
        )
    return trimmed


class FilesystemSavepointStore:
    """Savepoints on a filesystem this process can see (``file:///...`` or a path)."""

    def dispose(self, location: str) -> None:
        directory = savepoint_directory(location)
        parsed = urlparse(directory)
        if parsed.scheme not in ("", "file"):
            raise SavepointDisposalError(
                f"cannot dispose of {location!r} from the filesystem: scheme {parsed.scheme!r}"
            )
        path = Path(parsed.path if parsed.scheme else directory)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SavepointDisposalError(f"could not delete {path}: {exc}") from exc


class InMemorySavepointStore:
    """Remembers what exists and what was disposed of; for tests.

    >>> store = InMemorySavepointStore({"mem://sp/savepoint-1"})
    >>> store.dispose("mem://sp/savepoint-1")
    >>> (store.existing, store.disposed)
    (set(), ['mem://sp/savepoint-1'])
    """

    def __init__(self, existing: set[str] | None = None, *, failing: set[str] | None = None):
        self.existing = set(existing or ())
        self.failing = set(failing or ())
        self.disposed: list[str] = []

    def dispose(self, location: str) -> None:
        directory = savepoint_directory(location)
        if directory in self.failing:
            raise SavepointDisposalError(f"could not delete {directory}: injected failure")
        self.existing.discard(directory)
        self.disposed.append(directory)
