"""Flink's directory layout of checkpoints and savepoints, and pointers to them.

::

    <execution.checkpointing.dir>/<job-id>/chk-<n>/_metadata    one completed checkpoint
                                  <job-id>/shared/               state shared by checkpoints
                                  <job-id>/taskowned/            state owned by the tasks
    <execution.checkpointing.savepoint-dir>/savepoint-<job-id[:6]>-<12 hex>/_metadata

A checkpoint or savepoint exists exactly when its ``_metadata`` has been committed;
directories without one are leftovers of failed attempts. Users point at either the
directory or its ``_metadata`` file (``flinklet run -s``, ``initialSavepointPath``);
:func:`parse_checkpoint_pointer` turns both into a storage URI and a directory key.

>>> checkpoint_dir("a1b2c3d4" * 4, 7)
'a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4/chk-7'
>>> parse_checkpoint_pointer("s3://bucket/savepoints/savepoint-a1b2c3-0123456789ab/_metadata")
('s3://bucket/savepoints', 'savepoint-a1b2c3-0123456789ab')
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from flinklet._private.checkpoint.storage import (
    CheckpointStorage,
    parse_storage_uri,
    storage_for,
)
from flinklet.errors import CheckpointError

__all__ = [
    "METADATA",
    "checkpoint_dir",
    "find_latest_checkpoint",
    "metadata_key",
    "parse_checkpoint_pointer",
    "resolve_checkpoint_pointer",
    "savepoint_dir_name",
    "shared_dir",
    "taskowned_dir",
]

#: The file whose commit completes a checkpoint or savepoint.
METADATA = "_metadata"

_CHECKPOINT_NAME = re.compile(r"^chk-(\d+)$")
_JOB_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def _check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not job_id or "/" in job_id or job_id in (".", ".."):
        raise CheckpointError(f"invalid job id {job_id!r} for a checkpoint directory")
    return job_id


def checkpoint_dir(job_id: str, checkpoint_id: int) -> str:
    """The key of checkpoint ``checkpoint_id``'s directory: ``<job-id>/chk-<n>``."""
    if isinstance(checkpoint_id, bool) or not isinstance(checkpoint_id, int) or checkpoint_id < 0:
        raise CheckpointError(f"a checkpoint id is a non-negative int, got {checkpoint_id!r}")
    return f"{_check_job_id(job_id)}/chk-{checkpoint_id}"


def shared_dir(job_id: str) -> str:
    """The key of the directory of state shared between a job's checkpoints."""
    return f"{_check_job_id(job_id)}/shared"


def taskowned_dir(job_id: str) -> str:
    """The key of the directory of state owned by the tasks (never deleted by the JM)."""
    return f"{_check_job_id(job_id)}/taskowned"


def metadata_key(directory: str) -> str:
    """The ``_metadata`` key of a checkpoint/savepoint directory key."""
    return f"{directory.rstrip('/')}/{METADATA}" if directory.strip("/") else METADATA


def savepoint_dir_name(job_id: str) -> str:
    """A fresh savepoint directory name, as Flink makes them: ``savepoint-<6>-<12 hex>``.

    >>> len(savepoint_dir_name("a1b2c3d4" * 4))
    29
    """
    return f"savepoint-{_check_job_id(job_id)[:6]}-{secrets.token_hex(6)}"


def parse_checkpoint_pointer(path: str) -> tuple[str, str]:
    """Split a pointer to a checkpoint or savepoint into ``(storage_uri, key_of_dir)``.

    ``path`` is the directory or its ``_metadata`` file, as a plain path, ``file://`` or
    ``s3://`` URI. For a checkpoint (``.../<32-hex job id>/chk-<n>``) the storage is the
    checkpoint root and the key ``<job-id>/chk-<n>``, so the job's ``shared/`` state
    resolves from the same storage; for anything else the storage is the parent directory
    and the key the directory's name. Either way
    ``storage_for(uri).read(metadata_key(key))`` reads the metadata.

    >>> parse_checkpoint_pointer("file:///ckpts/" + "ab" * 16 + "/chk-3/")[1][-6:]
    '/chk-3'
    """
    uri = parse_storage_uri(path)
    segments = list(uri.path)
    if segments and segments[-1] == METADATA:
        segments.pop()
    if not segments:
        raise CheckpointError(
            f"{path!r} does not name a checkpoint or savepoint directory; pass e.g. "
            "s3://bucket/savepoints/savepoint-1a2b3c-0123456789ab or "
            "/checkpoints/<job-id>/chk-7 (or its _metadata file)"
        )
    depth = (
        2
        if len(segments) >= 2
        and _CHECKPOINT_NAME.match(segments[-1])
        and (_JOB_ID.match(segments[-2]))
        else 1
    )
    return str(uri.with_path(segments[:-depth])), "/".join(segments[-depth:])


def resolve_checkpoint_pointer(
    path: str, options: Mapping[str, str] | None = None
) -> tuple[CheckpointStorage, str]:
    """The storage and directory key of a pointer, checked to hold a committed ``_metadata``.

    Raises :class:`~flinklet.errors.CheckpointError` if it does not (a failed or deleted
    checkpoint, or a wrong path) and ``StorageError`` if the storage cannot be reached.
    """
    storage_uri, directory = parse_checkpoint_pointer(path)
    storage = storage_for(storage_uri, options)
    if not storage.exists(metadata_key(directory)):
        raise CheckpointError(
            f"no completed checkpoint or savepoint at {path}: "
            f"{storage.location(metadata_key(directory))} does not exist; point at a "
            "directory that holds a _metadata file (an incomplete checkpoint has none)"
        )
    return storage, directory


def find_latest_checkpoint(storage: CheckpointStorage, job_id: str) -> str | None:
    """The key of the job's highest ``chk-<n>`` with a committed ``_metadata``, or None.

    >>> from flinklet._private.checkpoint.storage import InMemoryCheckpointStorage
    >>> store = InMemoryCheckpointStorage()
    >>> store.commit("job/chk-9/_metadata", b"")
    >>> store.write("job/chk-10/state", b"")
    0
    >>> find_latest_checkpoint(store, "job")
    'job/chk-9'
    """
    job = _check_job_id(job_id)
    latest: int | None = None
    for key in storage.list(job):
        parts = key.split("/")
        if len(parts) != 3 or parts[2] != METADATA:
            continue
        match = _CHECKPOINT_NAME.match(parts[1])
        if match is not None and (latest is None or int(match.group(1)) > latest):
            latest = int(match.group(1))
    return None if latest is None else checkpoint_dir(job, latest)
