"""Checkpoint barrier handling at task inputs.

Exactly-once: a channel that delivered barrier ``n`` is blocked until every other live
channel delivered it too (alignment), so the snapshot reflects exactly the records before
the barrier on every input. At-least-once: nothing is blocked; the snapshot is taken when
the last barrier arrives (records after a barrier may be in it and are replayed again on
recovery). Finished channels count as aligned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flinklet._private.network.elements import CheckpointBarrier

if TYPE_CHECKING:
    from flinklet._private.exec.task import Task


class BarrierHandler:
    def __init__(
        self, exactly_once: bool, on_aligned: Callable[[Task, CheckpointBarrier], None]
    ) -> None:
        self.exactly_once = exactly_once
        self.on_aligned = on_aligned
        self.current: CheckpointBarrier | None = None
        self.received: set[tuple[int, int]] = set()
        self.last_completed = 0

    def on_barrier(self, task: Task, gate: int, channel: int, barrier: CheckpointBarrier) -> None:
        cid = barrier.checkpoint_id
        if cid <= self.last_completed:
            return  # a barrier of a checkpoint this task already took (or abandoned)
        if self.current is None or cid > self.current.checkpoint_id:
            if self.current is not None:
                self._unblock(task)  # a newer checkpoint supersedes an unfinished alignment
            self.current = barrier
            self.received = set()
        elif cid < self.current.checkpoint_id:
            return
        self.received.add((gate, channel))
        if self.exactly_once:
            task.gates[gate].blocked[channel] = True
        self._maybe_complete(task)

    def on_channel_finished(self, task: Task, gate: int, channel: int) -> None:
        if self.current is not None:
            self._maybe_complete(task)

    def _maybe_complete(self, task: Task) -> None:
        for gi, g in enumerate(task.gates):
            for ci in range(len(g.channels)):
                if not g.finished[ci] and (gi, ci) not in self.received:
                    return
        barrier = self.current
        assert barrier is not None
        self._unblock(task)
        self.current = None
        self.received = set()
        self.last_completed = barrier.checkpoint_id
        self.on_aligned(task, barrier)

    def _unblock(self, task: Task) -> None:
        for g in task.gates:
            for ci in range(len(g.blocked)):
                g.blocked[ci] = False
