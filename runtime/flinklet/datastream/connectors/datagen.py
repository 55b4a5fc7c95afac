"""``DataGeneratorSource``: records made by a function of their index, bounded or not,
optionally rate-limited (Flink's ``DataGeneratorSource`` with a ``RateLimiterStrategy``).

    source = DataGeneratorSource(lambda i: f"event-{i}", count=None,
                                 rate_limiter_strategy=RateLimiterStrategy.per_second(1000))
    env.from_source(source, WatermarkStrategy.no_watermarks(), "events")

Subtask ``k`` of ``p`` generates the indices ``k, k + p, k + 2p, ...``; its position
(the next index) is part of every checkpoint. Restoring at another parallelism is exact:
the new subtasks skip every index an old subtask had already emitted (the old positions
are kept as a filter until every new cursor has passed them).
"""

from __future__ import annotations

import abc
import time
from typing import Any

from flinklet.datastream.connectors.base import Boundedness, Source, SourceReader
from flinklet.errors import ApiUsageError

UNBOUNDED = 2**63 - 1


class GeneratorFunction(abc.ABC):
    @abc.abstractmethod
    def map(self, value: int) -> Any: ...


class RateLimiterStrategy:
    """Records per second for the whole source (split evenly over its subtasks)."""

    def __init__(self, records_per_second: float | None) -> None:
        if records_per_second is not None and records_per_second <= 0:
            raise ApiUsageError("RateLimiterStrategy.per_second needs a positive rate")
        self.records_per_second = records_per_second

    @staticmethod
    def per_second(records_per_second: float) -> RateLimiterStrategy:
        return RateLimiterStrategy(records_per_second)

    @staticmethod
    def no_op() -> RateLimiterStrategy:
        return RateLimiterStrategy(None)


class DataGeneratorSource(Source):
    def __init__(
        self,
        generator_function: Any,
        count: int | None = None,
        rate_limiter_strategy: RateLimiterStrategy | None = None,
        type_info: Any = None,
    ) -> None:
        fn = getattr(generator_function, "map", generator_function)
        if not callable(fn):
            raise ApiUsageError("DataGeneratorSource needs a GeneratorFunction or a callable")
        if count is not None and count < 0:
            raise ApiUsageError("DataGeneratorSource: count must be >= 0 (None = unbounded)")
        self.generator = fn
        self.count = UNBOUNDED if count is None else count
        self.rate = rate_limiter_strategy or RateLimiterStrategy.no_op()
        self.type_info = type_info

    def get_boundedness(self) -> str:
        return Boundedness.CONTINUOUS_UNBOUNDED if self.count == UNBOUNDED else Boundedness.BOUNDED

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        rate = self.rate.records_per_second
        return _GeneratorReader(
            self.generator,
            subtask_index,
            parallelism,
            self.count,
            None if rate is None else rate / parallelism,
        )

    def restore_positions(self, positions: list[Any], subtask_index: int, parallelism: int) -> Any:
        live = [p for p in positions if p is not None]
        if not live:
            return None
        if len(positions) == parallelism and all(p.get("stride") == parallelism for p in live):
            return positions[subtask_index]
        # rescaled: index i is still due iff i >= the old cursor of its old residue class
        # (and it passes every earlier generation's filter)
        filters = [tuple(f) for f in live[0].get("filters", [])]
        nexts = [int(p["next"]) for p in positions]
        filters.append((len(positions), nexts))
        low = min(nexts)
        start = low + (subtask_index - low) % parallelism
        return {"next": start, "stride": parallelism, "filters": filters}


class _GeneratorReader(SourceReader):
    def __init__(
        self, fn: Any, index: int, parallelism: int, count: int, rate: float | None
    ) -> None:
        self.fn = fn
        self.stride = parallelism
        self.next = index
        self.count = count
        self.rate = rate
        self.finished = index >= count
        self._started = time.monotonic()
        self._emitted = 0
        self._filters: list[tuple[int, list[int]]] = []

    def _allowed(self, max_records: int) -> int:
        if self.rate is None:
            return max_records
        due = int((time.monotonic() - self._started) * self.rate) - self._emitted
        return max(0, min(max_records, due))

    def poll(self, max_records: int) -> tuple[list[Any], None] | None:
        n = self._allowed(max_records)
        if n == 0:
            return None
        stop = min(self.next + n * self.stride, self.count)
        fn = self.fn
        indices = range(self.next, stop, self.stride)
        if self._filters:
            filters = self._filters
            out = [fn(i) for i in indices if all(i >= nexts[i % s] for s, nexts in filters)]
            if stop >= max(max(nexts) for _s, nexts in filters):
                self._filters = []
        else:
            out = [fn(i) for i in indices]
        self.next += len(indices) * self.stride
        self._emitted += len(out)
        if self.next >= self.count:
            self.finished = True
        return out, None

    def wait_ms(self) -> float:
        if self.rate is None:
            return 0.0
        return max(0.5, 1000.0 / self.rate)

    def snapshot_position(self) -> dict[str, Any]:
        return {"next": self.next, "stride": self.stride, "filters": list(self._filters)}

    def restore_position(self, position: Any) -> None:
        if position is None:
            return
        self.next = int(position["next"])
        self._filters = [(int(s), list(n)) for s, n in position.get("filters", [])]
        self.finished = self.next >= self.count
