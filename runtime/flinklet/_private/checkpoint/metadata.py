"""Checkpoint and savepoint metadata: the self-describing, versioned ``_metadata`` file.

A checkpoint is complete when its ``_metadata`` is committed. The metadata names every
operator by uid with its parallelism, max parallelism and one state file per subtask
(keys relative to the checkpoint directory, so a savepoint directory can be moved as a
whole). JSON keeps it readable by people and tools.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from flinklet.errors import CheckpointError

FORMAT = "flinklet-checkpoint"
VERSION = 1


@dataclass
class SubtaskStateHandle:
    subtask: int
    file: str  # relative to the checkpoint directory
    size: int
    finished: bool = False
    shared: list[str] = field(default_factory=list)  # incremental SST files in <job>/shared


@dataclass
class OperatorStateEntry:
    uid: str
    name: str
    parallelism: int
    max_parallelism: int
    has_keyed_state: bool
    subtasks: list[SubtaskStateHandle] = field(default_factory=list)


@dataclass
class CheckpointMetadata:
    checkpoint_id: int
    job_id: str
    job_name: str
    timestamp: int
    is_savepoint: bool
    operators: dict[str, OperatorStateEntry]
    fencing_epoch: int | None = None
    format: str = FORMAT
    version: int = VERSION

    @property
    def total_size(self) -> int:
        return sum(s.size for op in self.operators.values() for s in op.subtasks)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @staticmethod
    def from_bytes(data: bytes, where: str) -> CheckpointMetadata:
        try:
            raw: Any = json.loads(data.decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{where} is not a readable Flinklet checkpoint: its _metadata is corrupt "
                f"({exc}). Restore from an earlier checkpoint or savepoint instead"
            ) from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise CheckpointError(
                f"{where} is not a Flinklet checkpoint or savepoint (no '{FORMAT}' marker "
                f"in its _metadata)"
            )
        if raw.get("version") != VERSION:
            raise CheckpointError(
                f"{where} was written in checkpoint format version {raw.get('version')}; "
                f"this Flinklet reads version {VERSION}"
            )
        try:
            operators = {
                uid: OperatorStateEntry(
                    uid=op["uid"],
                    name=op["name"],
                    parallelism=op["parallelism"],
                    max_parallelism=op["max_parallelism"],
                    has_keyed_state=op["has_keyed_state"],
                    subtasks=[SubtaskStateHandle(**s) for s in op["subtasks"]],
                )
                for uid, op in raw["operators"].items()
            }
            return CheckpointMetadata(
                checkpoint_id=raw["checkpoint_id"],
                job_id=raw["job_id"],
                job_name=raw["job_name"],
                timestamp=raw["timestamp"],
                is_savepoint=raw["is_savepoint"],
                operators=operators,
                fencing_epoch=raw.get("fencing_epoch"),
            )
        except (KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{where} has an incomplete _metadata (missing {exc}); it cannot be restored"
            ) from exc
