"""Bytewax: nexmark q0, every event to the sink (sum of date_time)."""

import bytewax.operators as op
from benchmarks.nexmark import Event, generate
from benchmarks.peer_programs.bytewax_common import BATCH, execute
from benchmarks.peer_programs.timing import main
from bytewax.testing import TestingSource


def date_time(e: Event) -> int:
    return e.date_time


def run(events: list[Event]) -> tuple[int, int]:
    def build(flow, sink):  # type: ignore[no-untyped-def]
        stream = op.input("events", flow, TestingSource(events, BATCH))
        op.output("tally", stream, sink(date_time))

    return execute(build)


main(generate, run)
