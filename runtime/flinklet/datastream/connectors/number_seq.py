"""``NumberSequenceSource``: the numbers ``start``..``end`` (inclusive), split into one
contiguous range per subtask."""

from __future__ import annotations

from typing import Any

from flinklet.datastream.connectors.base import Source, SourceReader
from flinklet.errors import ApiUsageError


class NumberSequenceSource(Source):
    def __init__(self, start: int, end: int) -> None:
        if end < start:
            raise ApiUsageError(f"NumberSequenceSource: end ({end}) must be >= start ({start})")
        self.start = start
        self.end = end

    def get_from(self) -> int:
        return self.start

    def get_to(self) -> int:
        return self.end

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        total = self.end - self.start + 1
        lo = self.start + subtask_index * total // parallelism
        hi = self.start + (subtask_index + 1) * total // parallelism
        return _RangeReader(lo, hi)

    def restore_positions(self, positions: list[Any], subtask_index: int, parallelism: int) -> Any:
        if len(positions) == parallelism:
            return positions[subtask_index]
        return super().restore_positions(positions, subtask_index, parallelism)


class _RangeReader(SourceReader):
    def __init__(self, lo: int, hi: int) -> None:
        self.next = lo
        self.hi = hi  # exclusive
        self.finished = lo >= hi

    def poll(self, max_records: int) -> tuple[list[Any], None]:
        end = min(self.next + max_records, self.hi)
        out = list(range(self.next, end))
        self.next = end
        self.finished = end >= self.hi
        return out, None

    def snapshot_position(self) -> int:
        return self.next

    def restore_position(self, position: Any) -> None:
        if position is not None:
            self.next = int(position)
            self.finished = self.next >= self.hi
