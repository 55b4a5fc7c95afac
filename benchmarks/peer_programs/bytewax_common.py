"""What the Bytewax programs share: the checksumming sink and the run.

Each job ends in ``op.output`` with ``TallySink``, which counts and sums every item of each
batch it is given. Dataflows run with ``bytewax.testing.run_main``: one worker in this
process, Bytewax's single-core setting (as Flinklet's jobs at parallelism 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

__all__ = ["BATCH", "TallySink", "Totals", "execute"]

BATCH = 1024  # items per source batch (Flinklet's sources poll 1,024 at a time)


class Totals:
    def __init__(self, value: Callable[[Any], int]) -> None:
        self.value = value
        self.count = 0
        self.total = 0


class _Partition(StatelessSinkPartition[Any]):
    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    def write_batch(self, items: list[Any]) -> None:
        totals = self.totals
        value = totals.value
        totals.count += len(items)
        totals.total += sum(value(item) for item in items)


class TallySink(DynamicSink[Any]):
    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self.totals)


def execute(
    build: Callable[[Dataflow, Callable[[Callable[[Any], int]], TallySink]], None],
) -> tuple[int, int]:
    """Build the dataflow with ``build(flow, sink)`` (``sink(value)`` makes the sink), run
    it, and return the sink's (count, checksum)."""
    flow = Dataflow("flinklet_benchmark_peer")
    made: list[Totals] = []

    def sink(value: Callable[[Any], int]) -> TallySink:
        totals = Totals(value)
        made.append(totals)
        return TallySink(totals)

    build(flow, sink)
    run_main(flow)
    return sum(t.count for t in made), sum(t.total for t in made)
