"""Source operators and the built-in readers (collection, legacy SourceFunction).

The ``SourceOperator`` is the head of a source task's chain. The task calls
``emit_next``; the operator polls its reader for one batch and pushes it down the chain.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from flinklet._private.exec.operators import StreamOperator, copy_function
from flinklet.datastream.connectors.base import Boundedness, Source, SourceReader
from flinklet.datastream.functions import SourceFunction

MORE, NOTHING, END = 1, 0, -1


class SourceOperator(StreamOperator):
    def __init__(self, source: Source) -> None:
        self.source = source
        self.reader: SourceReader | None = None
        self._restored: Any = None
        self.num_records_out = 0

    def open(self) -> None:
        self.reader = self.source.create_reader(self.env.subtask_index, self.env.parallelism)
        if self._restored is not None:
            self.reader.restore_position(self._restored)

    def emit_next(self, max_records: int) -> int:
        reader = self.reader
        assert reader is not None
        if reader.finished:
            return END
        batch = reader.poll(max_records)
        if batch is None:
            return END if reader.finished else NOTHING
        values, stamps = batch
        if values:
            self.num_records_out += len(values)
            self.output.collect_batch(values, stamps)
        return MORE if values or not reader.finished else END

    def wait_ms(self) -> float:
        return self.reader.wait_ms() if self.reader is not None else 1.0

    def snapshot_state(self) -> dict[str, Any]:
        reader = self.reader
        return {"position": reader.snapshot_position() if reader is not None else None}

    def initialize_state(self, restored: Any) -> None:
        positions = [raw.get("position") for raw in restored.raw]
        env = self.env
        if positions:
            self._restored = self.source.restore_positions(
                positions, env.subtask_index, env.parallelism
            )

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


# ---------------------------------------------------------------------------- readers


class CollectionSource(Source):
    """``env.from_collection``: a non-parallel source over a list."""

    def __init__(self, elements: list[Any]) -> None:
        self.elements = elements

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        # non-parallel: only subtask 0 reads
        return _ListReader(self.elements if subtask_index == 0 else [])

    def default_parallelism(self) -> int:
        return 1

    def restore_positions(self, positions: list[Any], subtask_index: int, parallelism: int) -> Any:
        return positions[0] if subtask_index == 0 and positions else None


class _ListReader(SourceReader):
    def __init__(self, elements: list[Any]) -> None:
        self.elements = elements
        self.pos = 0
        self.finished = not elements

    def poll(self, max_records: int) -> tuple[list[Any], None] | None:
        start = self.pos
        end = min(start + max_records, len(self.elements))
        self.pos = end
        if end >= len(self.elements):
            self.finished = True
        return self.elements[start:end], None

    def snapshot_position(self) -> int:
        return self.pos

    def restore_position(self, position: Any) -> None:
        if position is not None:
            self.pos = int(position)
            self.finished = self.pos >= len(self.elements)


class SourceFunctionSource(Source):
    """``env.add_source``: runs a legacy ``SourceFunction`` in its own thread."""

    def __init__(self, function: SourceFunction[Any], capacity: int = 64) -> None:
        self.function = function
        self.capacity = capacity

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return _ThreadedReader(copy_function(self.function), self.capacity)

    def get_boundedness(self) -> str:
        return Boundedness.CONTINUOUS_UNBOUNDED

    def default_parallelism(self) -> int:
        return 1


class _ThreadedReader(SourceReader, SourceFunction.SourceContext):
    def __init__(self, function: Any, capacity: int) -> None:
        self.function = function
        self.capacity = capacity
        self.queue: deque[tuple[Any, int | None]] = deque()
        self.space = threading.Semaphore(capacity * 256)
        self.error: BaseException | None = None
        self.done = False
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, name="flinklet-source", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.function.run(self)
        except BaseException as exc:  # surfaced to the task on the next poll
            self.error = exc
        finally:
            self.done = True

    def collect(self, element: Any) -> None:
        self._put(element, None)

    def collect_with_timestamp(self, element: Any, timestamp: int) -> None:
        self._put(element, timestamp)

    def _put(self, element: Any, timestamp: int | None) -> None:
        while not self.space.acquire(timeout=0.1):
            if self.cancelled:
                raise SystemExit
        self.queue.append((element, timestamp))

    def poll(self, max_records: int) -> tuple[list[Any], list[int | None] | None] | None:
        if self.error is not None:
            raise self.error
        q = self.queue
        if not q:
            if self.done and not q:
                self.finished = True
                return [], None
            return None
        values: list[Any] = []
        stamps: list[int | None] = []
        any_ts = False
        while q and len(values) < max_records:
            v, t = q.popleft()
            values.append(v)
            stamps.append(t)
            any_ts = any_ts or t is not None
        for _ in values:
            self.space.release()
        return values, stamps if any_ts else None

    def wait_ms(self) -> float:
        return 1.0

    def close(self) -> None:
        self.cancelled = True
        cancel = getattr(self.function, "cancel", None)
        if callable(cancel):
            cancel()
        self.thread.join(timeout=2)
