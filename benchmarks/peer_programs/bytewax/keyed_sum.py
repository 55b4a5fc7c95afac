"""Bytewax: ``(i % 1000, i)`` -> ``key_on`` -> ``stateful_map`` (running sum), every
running sum to the sink. Bytewax keys are strings, so the key is ``str(i % 1000)``."""

from functools import partial

import bytewax.operators as op
from benchmarks.inputs import keyed_pairs
from benchmarks.peer_programs.bytewax_common import BATCH, execute
from benchmarks.peer_programs.timing import main
from bytewax.testing import TestingSource


def key_of(record: tuple[int, int]) -> str:
    return str(record[0])


def add(state: int | None, record: tuple[int, int]) -> tuple[int, int]:
    running = (state or 0) + record[1]
    return running, running


def running_sum(item: tuple[str, int]) -> int:
    return item[1]


def run(pairs: list[tuple[int, int]]) -> tuple[int, int]:
    def build(flow, sink):  # type: ignore[no-untyped-def]
        stream = op.input("pairs", flow, TestingSource(pairs, BATCH))
        keyed = op.key_on("key", stream, key_of)
        op.output("tally", op.stateful_map("sum", keyed, add), sink(running_sum))

    return execute(build)


main(partial(keyed_pairs, keys=1000), run)
