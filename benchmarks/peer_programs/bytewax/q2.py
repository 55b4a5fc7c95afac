"""Bytewax: nexmark q2, ``(auction, price)`` of the bids with auction % 123 == 0."""

import bytewax.operators as op
from benchmarks.nexmark import Bid, Event, generate
from benchmarks.peer_programs.bytewax_common import BATCH, execute
from benchmarks.peer_programs.timing import main
from bytewax.testing import TestingSource


def is_selected_bid(e: Event) -> bool:
    return type(e) is Bid and e.auction % 123 == 0


def auction_price(bid: Bid) -> tuple[int, int]:
    return (bid.auction, bid.price)


def first_plus_last(record: tuple[int, int]) -> int:
    return record[0] + record[-1]


def run(events: list[Event]) -> tuple[int, int]:
    def build(flow, sink):  # type: ignore[no-untyped-def]
        stream = op.input("events", flow, TestingSource(events, BATCH))
        selected = op.filter("selected", stream, is_selected_bid)
        op.output("tally", op.map("pairs", selected, auction_price), sink(first_plus_last))

    return execute(build)


main(generate, run)
