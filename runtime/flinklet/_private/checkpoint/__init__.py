"""Checkpoint storage: where checkpoints and savepoints are persisted, and their layout.

``storage_for(uri, options)`` gives the :class:`CheckpointStorage` of a ``file://`` path,
an ``s3://`` bucket or a ``memory://`` store; ``layout`` names Flink's directories.
"""

from flinklet._private.checkpoint.layout import (
    METADATA,
    checkpoint_dir,
    find_latest_checkpoint,
    metadata_key,
    parse_checkpoint_pointer,
    resolve_checkpoint_pointer,
    savepoint_dir_name,
    shared_dir,
    taskowned_dir,
)
from flinklet._private.checkpoint.s3 import S3CheckpointStorage, S3Settings
from flinklet._private.checkpoint.storage import (
    CheckpointStorage,
    FileSystemCheckpointStorage,
    InMemoryCheckpointStorage,
    storage_for,
)

__all__ = [
    "METADATA",
    "CheckpointStorage",
    "FileSystemCheckpointStorage",
    "InMemoryCheckpointStorage",
    "S3CheckpointStorage",
    "S3Settings",
    "checkpoint_dir",
    "find_latest_checkpoint",
    "metadata_key",
    "parse_checkpoint_pointer",
    "resolve_checkpoint_pointer",
    "savepoint_dir_name",
    "shared_dir",
    "storage_for",
    "taskowned_dir",
]
