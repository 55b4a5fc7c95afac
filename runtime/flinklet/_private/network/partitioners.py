"""Stream partitioners: which downstream channel each record goes to.

Partitioners are plain descriptions kept in the job graph (picklable); ``RecordWriter``
turns one into the per-batch routing code. Routing works on whole batches: forwarding and
broadcasting hand the batch over untouched, round-robin uses list slicing, and hash
partitioning computes one channel per record through a cached key-group router.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flinklet._private.network.channels import LocalChannel
from flinklet._private.network.elements import RecordBatch


@dataclass(frozen=True)
class Partitioner:
    """Base of all partitioners; ``pointwise`` ones connect a subset of downstream subtasks."""

    pointwise = False
    name = "UNKNOWN"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ForwardPartitioner(Partitioner):
    pointwise = True
    name = "FORWARD"


@dataclass(frozen=True)
class RescalePartitioner(Partitioner):
    pointwise = True
    name = "RESCALE"


@dataclass(frozen=True)
class RebalancePartitioner(Partitioner):
    name = "REBALANCE"


@dataclass(frozen=True)
class ShufflePartitioner(Partitioner):
    name = "SHUFFLE"


@dataclass(frozen=True)
class BroadcastPartitioner(Partitioner):
    name = "BROADCAST"


@dataclass(frozen=True)
class GlobalPartitioner(Partitioner):
    name = "GLOBAL"


@dataclass(frozen=True)
class KeyGroupPartitioner(Partitioner):
    """Hash partitioning by key group (``key_by``)."""

    key_selector: Callable[[Any], Any] = field(default=lambda v: v)
    max_parallelism: int = 128
    name = "HASH"


@dataclass(frozen=True)
class CustomPartitioner(Partitioner):
    """``partition_custom``: the user's ``partition(key, num_partitions)``."""

    partition: Callable[[Any, int], int] = field(default=lambda k, n: 0)
    key_selector: Callable[[Any], Any] = field(default=lambda v: v)
    name = "CUSTOM"


class ChannelBuffer:
    """Records waiting to be sent on one channel, flushed as one ``RecordBatch``."""

    __slots__ = ("channel", "timestamps", "values")

    def __init__(self, channel: LocalChannel) -> None:
        self.channel = channel
        self.values: list[Any] = []
        self.timestamps: list[int | None] | None = None

    def add(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        pending = self.values
        if timestamps is not None:
            if self.timestamps is None:
                self.timestamps = [None] * len(pending)
            self.timestamps.extend(timestamps)
        elif self.timestamps is not None:
            self.timestamps.extend([None] * len(values))
        pending.extend(values)

    def flush(self) -> bool:
        if not self.values:
            return False
        self.channel.push(RecordBatch(self.values, self.timestamps))
        self.values = []
        self.timestamps = None
        return True


class RecordWriter:
    """Writes batches to the channels of one output edge, routed by the partitioner."""

    def __init__(
        self,
        partitioner: Partitioner,
        channels: list[LocalChannel],
        subtask_index: int,
        buffer_records: int,
    ) -> None:
        from flinklet._private.state.keygroups import KeyGroupRouter

        self.partitioner = partitioner
        self.channels = channels
        self.buffers = [ChannelBuffer(c) for c in channels]
        self.buffer_records = buffer_records
        self.num_records_out = 0
        self._rr_next = subtask_index % max(1, len(channels))
        self._rng = random.Random(subtask_index)
        n = len(channels)
        if n == 1 or isinstance(partitioner, GlobalPartitioner):
            self.emit = self._emit_first  # type: ignore[method-assign]
        elif isinstance(partitioner, (ForwardPartitioner, RescalePartitioner)):
            # pointwise with several targets: rescale round-robins over its subset
            self.emit = self._emit_round_robin  # type: ignore[method-assign]
        elif isinstance(partitioner, BroadcastPartitioner):
            self.emit = self._emit_broadcast  # type: ignore[method-assign]
        elif isinstance(partitioner, RebalancePartitioner):
            self.emit = self._emit_round_robin  # type: ignore[method-assign]
        elif isinstance(partitioner, ShufflePartitioner):
            self.emit = self._emit_shuffle  # type: ignore[method-assign]
        elif isinstance(partitioner, KeyGroupPartitioner):
            self._router = KeyGroupRouter(partitioner.max_parallelism, n)
            self._key_selector = partitioner.key_selector
            self.emit = self._emit_keyed  # type: ignore[method-assign]
        elif isinstance(partitioner, CustomPartitioner):
            self.emit = self._emit_custom  # type: ignore[method-assign]
        else:  # pragma: no cover - exhaustive over the partitioners above
            raise TypeError(f"unknown partitioner {partitioner!r}")

    # -- routing ---------------------------------------------------------------------

    def emit(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        raise NotImplementedError  # replaced per instance in __init__

    def _add(self, idx: int, values: list[Any], timestamps: list[int | None] | None) -> None:
        buf = self.buffers[idx]
        if not buf.values and len(values) >= self.buffer_records:
            buf.channel.push(RecordBatch(values, timestamps))
            return
        buf.add(values, timestamps)
        if len(buf.values) >= self.buffer_records:
            buf.flush()

    def _emit_first(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        self.num_records_out += len(values)
        self._add(0, values, timestamps)

    def _emit_broadcast(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        self.num_records_out += len(values)
        for idx in range(len(self.buffers)):
            self._add(idx, values, timestamps)

    def _emit_round_robin(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        n = len(self.buffers)
        self.num_records_out += len(values)
        start = self._rr_next
        for offset in range(min(n, len(values))):
            idx = (start + offset) % n
            self._add(idx, values[offset::n], None if timestamps is None else timestamps[offset::n])
        self._rr_next = (start + len(values)) % n

    def _emit_by_channel(
        self, channel_of: list[int], values: list[Any], timestamps: list[int | None] | None
    ) -> None:
        n = len(self.buffers)
        self.num_records_out += len(values)
        vals: list[list[Any]] = [[] for _ in range(n)]
        if timestamps is None:
            for c, v in zip(channel_of, values, strict=True):
                vals[c].append(v)
            for idx in range(n):
                if vals[idx]:
                    self._add(idx, vals[idx], None)
        else:
            tss: list[list[int | None]] = [[] for _ in range(n)]
            for c, v, t in zip(channel_of, values, timestamps, strict=True):
                vals[c].append(v)
                tss[c].append(t)
            for idx in range(n):
                if vals[idx]:
                    self._add(idx, vals[idx], tss[idx])

    def _emit_keyed(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        route = self._router.channel_for
        ks = self._key_selector
        self._emit_by_channel([route(ks(v)) for v in values], values, timestamps)

    def _emit_shuffle(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        n = len(self.buffers)
        rnd = self._rng.randrange
        self._emit_by_channel([rnd(n) for _ in values], values, timestamps)

    def _emit_custom(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        part = self.partitioner
        assert isinstance(part, CustomPartitioner)
        n = len(self.buffers)
        fn, ks = part.partition, part.key_selector
        channel_of = []
        for v in values:
            c = fn(ks(v), n)
            if not 0 <= c < n:
                from flinklet.errors import ApiUsageError

                raise ApiUsageError(
                    f"partition_custom: the partitioner returned {c!r} for {n} partitions; "
                    f"return an int in [0, {n - 1}]"
                )
            channel_of.append(c)
        self._emit_by_channel(channel_of, values, timestamps)

    # -- events ----------------------------------------------------------------------

    def flush(self) -> bool:
        flushed = False
        for buf in self.buffers:
            flushed = buf.flush() or flushed
        return flushed

    def broadcast_event(self, event: Any) -> None:
        """Flush pending records, then put ``event`` on every channel (in-band)."""
        for buf in self.buffers:
            buf.flush()
            buf.channel.push(event)

    def is_available(self) -> bool:
        """False while any channel is full: the producer must wait (backpressure)."""
        for ch in self.channels:
            if ch.is_full():
                return False
        return True

    def has_pending(self) -> bool:
        return any(b.values for b in self.buffers)
