"""The source contract: a ``Source`` creates one ``SourceReader`` per parallel subtask.

Readers are polled by their task (never blocking it): ``poll`` returns a batch, or None
when nothing is available right now (``wait_ms`` says for how long). A reader's
position is part of every checkpoint, so recovery replays exactly what the last
checkpoint did not cover.
"""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["Boundedness", "Source", "SourceReader"]


class Boundedness:
    BOUNDED = "BOUNDED"
    CONTINUOUS_UNBOUNDED = "CONTINUOUS_UNBOUNDED"


class SourceReader(abc.ABC):
    """Reads the records of one subtask."""

    finished: bool = False

    @abc.abstractmethod
    def poll(self, max_records: int) -> tuple[list[Any], list[int | None] | None] | None:
        """Up to ``max_records`` (values, timestamps or None), or None if nothing is ready.
        Set ``finished`` once everything has been returned."""

    def wait_ms(self) -> float:
        """After ``poll`` returned None: milliseconds until data may be available."""
        return 1.0

    def snapshot_position(self) -> Any:
        """Where this reader is; must be picklable."""
        return None

    def restore_position(self, position: Any) -> None:  # noqa: B027 - optional hook
        """Continue from a position returned by ``snapshot_position``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Source(abc.ABC):
    """A source of records for ``env.from_source``."""

    @abc.abstractmethod
    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader: ...

    def get_boundedness(self) -> str:
        return Boundedness.BOUNDED

    def is_bounded(self) -> bool:
        return self.get_boundedness() == Boundedness.BOUNDED

    def default_parallelism(self) -> int | None:
        """A parallelism this source needs (e.g. 1 for a collection), or None."""
        return None

    def restore_positions(self, positions: list[Any], subtask_index: int, parallelism: int) -> Any:
        """The position for ``subtask_index`` when restoring from ``positions`` that were
        taken at any parallelism. The default requires the same parallelism."""
        if len(positions) == parallelism:
            return positions[subtask_index]
        from flinklet.errors import SavepointRestoreError

        raise SavepointRestoreError(
            f"{type(self).__name__} cannot be restored from {len(positions)} subtasks into "
            f"{parallelism}; keep its parallelism unchanged"
        )
