"""A task: one parallel subtask of a job vertex, running its chain of operators.

The task reads its input gates (one per logical input of the chain's head), feeds record
batches to the head operator, runs watermarks through a valve per input, and turns
end-of-partition on every channel into end-of-input. ``step`` does one unit of work and
returns whether it did any; the scheduler interleaves the steps of all tasks of a
process. A task never reads input while one of its output channels is full, which is
how backpressure reaches the sources.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from flinklet._private.exec.operators import StreamOperator, TwoInputOperator
from flinklet._private.exec.sources import END, NOTHING, SourceOperator
from flinklet._private.exec.timers import ProcessingTimeService
from flinklet._private.exec.watermarks import WatermarkValve
from flinklet._private.network.channels import InputGate
from flinklet._private.network.elements import (
    END_OF_PARTITION,
    MAX_WATERMARK,
    CheckpointBarrier,
    EndOfPartition,
    RecordBatch,
    Watermark,
    WatermarkStatus,
)
from flinklet._private.network.partitioners import RecordWriter

CREATED, RUNNING, FINISHED, FAILED, CANCELED = (
    "CREATED",
    "RUNNING",
    "FINISHED",
    "FAILED",
    "CANCELED",
)


class Task:
    def __init__(
        self,
        name: str,
        vertex_id: int,
        subtask_index: int,
        parallelism: int,
        operators: list[StreamOperator],
        gates: list[InputGate],
        writers: list[RecordWriter],
        pts: ProcessingTimeService,
        source_batch_size: int,
    ) -> None:
        self.name = name
        self.vertex_id = vertex_id
        self.subtask_index = subtask_index
        self.parallelism = parallelism
        self.operators = operators
        self.head = operators[0]
        self.gates = gates
        self.writers = writers
        self.pts = pts
        self.state = CREATED
        self.is_source = isinstance(self.head, SourceOperator)
        self.source_batch_size = source_batch_size
        self.num_records_in = 0
        self.backpressured_steps = 0
        self._next_gate = 0
        self._process: list[Callable[[list[Any], Any], None]] = []
        self.valves: list[WatermarkValve] = []
        head = self.head
        if isinstance(head, TwoInputOperator):
            self._process = [head.process_batch1, head.process_batch2]
            self.valves = [
                WatermarkValve(
                    len(gates[0].channels), head.process_watermark1, head.process_watermark_status1
                ),
                WatermarkValve(
                    len(gates[1].channels), head.process_watermark2, head.process_watermark_status2
                ),
            ]
        elif gates:
            self._process = [head.process_batch]
            self.valves = [
                WatermarkValve(
                    len(gates[0].channels), head.process_watermark, head.process_watermark_status
                )
            ]
        self.barrier_handler: Any = None  # installed by checkpointing
        self.on_finished: Callable[[Task], None] | None = None
        self.stop_requested: str | None = None  # 'drain' or 'suspend' (stop-with-savepoint)

    @property
    def display_name(self) -> str:
        return f"{self.name} ({self.subtask_index + 1}/{self.parallelism})"

    def open(self) -> None:
        # downstream operators first, so they are ready when the head emits
        for op in reversed(self.operators):
            op.open()
        self.state = RUNNING

    def close(self) -> None:
        errors: list[BaseException] = []
        for op in self.operators:
            try:
                op.close()
            except Exception as exc:  # closing must reach every operator
                errors.append(exc)
        if errors and self.state == RUNNING:
            raise errors[0]

    # -- the unit of work -------------------------------------------------------------

    def outputs_available(self) -> bool:
        for w in self.writers:
            if not w.is_available():
                return False
        return True

    def step(self) -> bool:
        """Process one input buffer / one source batch. Returns whether work was done."""
        if not self.outputs_available():
            self.backpressured_steps += 1
            return False
        if self.is_source:
            head = self.head
            assert isinstance(head, SourceOperator)
            if self.stop_requested is not None:
                if self.stop_requested == "drain":
                    self._end_of_input()
                    return True
                return False  # stopped without draining: emits nothing more
            result = head.emit_next(self.source_batch_size)
            if result == END:
                self._end_of_input()
                return True
            return result != NOTHING
        gates = self.gates
        n = len(gates)
        for _ in range(n):
            gi = self._next_gate
            if n > 1:
                self._next_gate = (gi + 1) % n
            polled = gates[gi].poll()
            if polled is None:
                continue
            ch, item = polled
            kind = type(item)
            if kind is RecordBatch:
                self.num_records_in += len(item.values)
                self._process[gi](item.values, item.timestamps)
            elif kind is Watermark:
                self.valves[gi].input_watermark(ch, item.timestamp)
            elif kind is WatermarkStatus:
                self.valves[gi].input_status(ch, item)
            elif kind is CheckpointBarrier:
                self.barrier_handler.on_barrier(self, gi, ch, item)
            elif kind is EndOfPartition:
                self.valves[gi].channel_finished(ch)
                if self.barrier_handler is not None:
                    self.barrier_handler.on_channel_finished(self, gi, ch)
                if all(g.is_finished for g in gates):
                    self._end_of_input()
            return True
        return False

    def source_wait_ms(self) -> float | None:
        if self.is_source and self.state == RUNNING:
            head = self.head
            assert isinstance(head, SourceOperator)
            return head.wait_ms()
        return None

    def _end_of_input(self) -> None:
        if self.is_source:
            # a finished source's event time is over: every event-time timer may fire
            self.head.output.emit_watermark(MAX_WATERMARK)
        for op in self.operators:
            op.end_input()
            op.finish()
        for w in self.writers:
            w.broadcast_event(END_OF_PARTITION)
        self.pts.clear()
        self.state = FINISHED
        if self.on_finished is not None:
            self.on_finished(self)

    def flush(self) -> bool:
        flushed = False
        for w in self.writers:
            if w.flush():
                flushed = True
        return flushed

    @property
    def finished(self) -> bool:
        return self.state == FINISHED

    def has_input(self) -> bool:
        return any(g.has_data() for g in self.gates)


def failing_operator(exc: BaseException, task: Task) -> StreamOperator:
    """The innermost operator on the traceback of ``exc`` (the one whose code raised)."""
    found: StreamOperator = task.head
    tb = exc.__traceback__
    ops = {id(op) for op in task.operators}
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if candidate is not None and id(candidate) in ops:
            found = candidate
        tb = tb.tb_next
    return found


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without Flinklet's own frames (what the user wrote)."""
    import flinklet

    pkg_dir = flinklet.__path__[0]
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(pkg_dir)
    ]
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)
