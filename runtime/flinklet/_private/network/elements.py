"""What travels on a channel: record batches and in-band events.

A channel carries a sequence of items. Records always travel in batches (two parallel
lists: values and optional timestamps) so the per-record cost of crossing a task
boundary is one list append. Events (watermarks, watermark status, checkpoint barriers,
end of partition) travel in-band, after every record that precedes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_WATERMARK = -(2**63)
MAX_WATERMARK = 2**63 - 1


class RecordBatch:
    """Records in arrival order; ``timestamps`` is None when no record has one."""

    __slots__ = ("timestamps", "values")

    def __init__(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        self.values = values
        self.timestamps = timestamps

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"RecordBatch({len(self.values)} records)"


@dataclass(frozen=True, slots=True)
class Watermark:
    """Event time has reached ``timestamp``: no record with a smaller timestamp follows."""

    timestamp: int


@dataclass(frozen=True, slots=True)
class WatermarkStatus:
    """A channel went idle (its watermark no longer holds back the task) or active."""

    idle: bool


@dataclass(frozen=True, slots=True)
class CheckpointBarrier:
    """Chandy-Lamport barrier: everything before it belongs to checkpoint ``checkpoint_id``."""

    checkpoint_id: int
    timestamp: int
    is_savepoint: bool = False
    unaligned: bool = False
    target: str | None = None  # the checkpoint directory URI (cluster mode)


@dataclass(frozen=True, slots=True)
class EndOfPartition:
    """The producing subtask finished; nothing follows on this channel."""


END_OF_PARTITION = EndOfPartition()
IDLE = WatermarkStatus(idle=True)
ACTIVE = WatermarkStatus(idle=False)
