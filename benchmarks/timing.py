"""Timing one program: a garbage-collected start, a wall-clock measurement, statistics.

The garbage collector stays enabled while a program runs (it is part of what a user
pays), but every measurement starts from a collected heap so that one program does not
pay for the garbage of the one before it.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.registry import Outcome

__all__ = ["Sample", "Timing", "time_once"]


@dataclass(frozen=True)
class Sample:
    """One timed run: wall-clock seconds, and the CPU seconds of this process."""

    wall: float
    cpu: float


def time_once(program: Callable[[Any], Outcome], data: Any) -> tuple[Sample, Outcome]:
    """Run ``program(data)`` once; how long it took and its outcome."""
    gc.collect()
    cpu_start = time.process_time()
    start = time.perf_counter()
    outcome = program(data)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return Sample(wall, cpu), outcome


@dataclass(frozen=True)
class Timing:
    """The repeated measurements of one program over ``records`` input records.

    ``seconds`` are wall-clock times, the figures that count; ``cpu_seconds`` are the
    process's CPU times of the same runs. They differ when the program waits (sleeps,
    idle scheduling) or when other processes take the CPU away: on a busy machine the
    CPU figures are the steadier ones.
    """

    records: int
    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.seconds:
            raise ValueError("a Timing needs at least one measurement")

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def records_per_s_best(self) -> float:
        return self.records / self.best

    @property
    def records_per_s_median(self) -> float:
        return self.records / self.median

    @property
    def cpu_best(self) -> float | None:
        return min(self.cpu_seconds) if self.cpu_seconds else None

    @staticmethod
    def of(records: int, samples: list[Sample]) -> Timing:
        return Timing(records, tuple(s.wall for s in samples), tuple(s.cpu for s in samples))

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": list(self.seconds),
            "cpu_seconds": list(self.cpu_seconds),
            "cpu_best_s": self.cpu_best,
            "best_s": self.best,
            "median_s": self.median,
            "records_per_s_best": self.records_per_s_best,
            "records_per_s_median": self.records_per_s_median,
        }
