"""Channels between subtasks and the input gates that read them.

A channel is a bounded FIFO of items (``RecordBatch`` or events). Its capacity is counted
in buffers, which is what credit-based flow control counts too: a producer whose channel
is full is not scheduled until the consumer takes buffers out (backpressure with bounded
memory). ``LocalChannel`` connects subtasks in one process; the TCP implementation
subclasses it and keeps the same consumer-facing interface, so tasks never know which one
they read.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from flinklet._private.network.elements import EndOfPartition


class LocalChannel:
    """A bounded in-memory FIFO between a producer subtask and a consumer subtask.

    ``deque.append``/``popleft`` are atomic in CPython, so a network thread may feed a
    channel that the task thread drains without a lock.
    """

    __slots__ = ("_items", "capacity", "name", "queued_buffers")

    def __init__(self, capacity: int, name: str = "") -> None:
        self._items: deque[Any] = deque()
        self.capacity = capacity
        self.name = name
        self.queued_buffers = 0

    def push(self, item: Any) -> None:
        self._items.append(item)

    def is_full(self) -> bool:
        return len(self._items) >= self.capacity

    def poll(self) -> Any | None:
        items = self._items
        return items.popleft() if items else None

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"LocalChannel({self.name!r}, {len(self._items)}/{self.capacity})"


class InputGate:
    """The channels feeding one logical input of a task, read round-robin.

    Channels can be blocked (barrier alignment) and are retired when they deliver
    ``EndOfPartition``.
    """

    __slots__ = ("_next", "blocked", "channels", "finished", "num_finished")

    def __init__(self, channels: list[LocalChannel]) -> None:
        self.channels = channels
        self.finished = [False] * len(channels)
        self.blocked = [False] * len(channels)
        self.num_finished = 0
        self._next = 0

    def poll(self) -> tuple[int, Any] | None:
        """Next (channel index, item) from a ready channel, or None if nothing is ready."""
        channels = self.channels
        n = len(channels)
        start = self._next
        for offset in range(n):
            idx = (start + offset) % n
            if self.blocked[idx] or self.finished[idx]:
                continue
            item = channels[idx].poll()
            if item is not None:
                self._next = (idx + 1) % n
                if type(item) is EndOfPartition:
                    self.finished[idx] = True
                    self.num_finished += 1
                return idx, item
        return None

    def has_data(self) -> bool:
        for idx, ch in enumerate(self.channels):
            if len(ch) and not self.blocked[idx] and not self.finished[idx]:
                return True
        return False

    @property
    def is_finished(self) -> bool:
        return self.num_finished == len(self.channels)

    def buffered(self) -> int:
        return sum(len(c) for c in self.channels)
