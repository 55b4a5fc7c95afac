"""The checksumming sink shared by the workloads, and the job environment they use.

The engine deep-copies function *objects* for each subtask but shares plain callables,
so the sinks handed to ``add_sink`` are bound methods of a ``Tally``: the job's
subtasks write into the very object the benchmark reads afterwards.
"""

from __future__ import annotations

from typing import Any

from benchmarks.registry import Outcome
from flinklet.datastream import StreamExecutionEnvironment

__all__ = ["Tally", "job_environment"]


class Tally:
    """Counts records and sums a value of each: the cheapest sink that proves the job
    delivered every record it should have, with the right values."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def add(self, value: int) -> None:
        """Sink for a stream of ints."""
        self.count += 1
        self.total += value

    def add_second(self, record: tuple[Any, int]) -> None:
        """Sink for a stream of ``(key, value)`` pairs: sums the values."""
        self.count += 1
        self.total += record[1]

    def outcome(self) -> Outcome:
        return Outcome(self.count, self.total)


def job_environment() -> StreamExecutionEnvironment:
    """A fresh environment at parallelism 1: all subtasks of a local job share one
    thread, so more parallelism only adds scheduling work to compare against a loop."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    return env
