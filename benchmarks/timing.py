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

__all__ = ["Timing", "time_once"]


def time_once(program: Callable[[Any], Outcome], data: Any) -> tuple[float, Outcome]:
    """Run ``program(data)`` once; its wall-clock seconds and its outcome."""
    gc.collect()
    start = time.perf_counter()
    outcome = program(data)
    elapsed = time.perf_counter() - start
    return elapsed, outcome


@dataclass(frozen=True)
class Timing:
    """The repeated measurements of one program over ``records`` input records."""

    records: int
    seconds: tuple[float, ...]

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

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": list(self.seconds),
            "best_s": self.best,
            "median_s": self.median,
            "records_per_s_best": self.records_per_s_best,
            "records_per_s_median": self.records_per_s_median,
        }
